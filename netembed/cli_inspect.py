"""`python -m netembed inspect`: load a run folder, validate it and print what it holds."""

from __future__ import annotations

from pathlib import Path

from .cli_zoo import sci
from .divergence import zoo_report
from .store import load_run


def cmd_inspect(a) -> None:
    run = load_run(a.run)
    zoo, family = run.zoo, run.family
    s = zoo_report(zoo)
    fc, zc = family.config, zoo.config
    print(f"run {Path(a.run).resolve()} (saved {run.meta.get('saved_at', '?')})")
    print(f"  family: {family.n_functions} polynomials, degree {fc.degree_min}-{fc.degree_max}, "
          f"sampling {fc.sampling}, seed {fc.seed}")  # fmt: skip
    if hasattr(zoo, "parts"):
        print(f"  architectures: {', '.join(zoo.labels)} (mixed zoo; the line below is the first's)")
    print(f"  zoo:    {s['n_models']} MLPs 1->{'->'.join([str(zc.width)] * zc.depth)}->1 {zc.activation}, "
          f"{zoo.steps_done}/{zc.steps} steps, split {zc.n_train_seeds}/{zc.models_per_function} seeds train")  # fmt: skip
    print(f"          fit MSE median {sci(s['fit_mse_median'])}, worst {sci(s['fit_mse_worst'])}, {s['n_failed']} failed")
    if run.embedder is not None:
        print(f"  embedder: {run.embedder.describe()}")
    if run.report is not None:
        probes = run.report.get("probes", {})
        for name, p in probes.items():
            print(f"  probe {name:>17}: linear {p.get('linear_accuracy', float('nan')):.3f}, "
                  f"kNN {p.get('knn_accuracy', float('nan')):.3f}, NMI {p.get('nmi', float('nan')):.3f}")  # fmt: skip


def add_inspect_command(sub, fmt) -> None:
    p = sub.add_parser("inspect", help="load a run folder, validate it and print what it holds", formatter_class=fmt)
    p.add_argument("run", help="run folder")
    p.set_defaults(fn=cmd_inspect)  # nothing to check before: loading the run is the check
