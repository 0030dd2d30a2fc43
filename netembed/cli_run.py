"""`python -m netembed run`: the full research pipeline (zoo, embedder, probes, baselines, projections) and its
report; the cloze-embedder flags that sweep shares."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .cli_checks import check_device, set_threads
from .cli_errors import CliError, warn_divergence
from .cli_executor import add_executor_flags, executor_from_flags
from .cli_flags import add_config_flags, config_from_args
from .cli_progress import StageBars
from .cli_zoo import add_family_flags, add_zoo_flags, family_config, sci, train_zoo_run, zoo_config
from .config import ClozeConfig
from .store import RunError, load_run, save_run


def add_cloze_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cloze embedder")
    g.add_argument("--embed-seed", type=int, default=None, metavar="INT", help="seed of the embedder (default: --seed)")
    add_config_flags(g, ClozeConfig)
    g.add_argument("--from-zoo", default=None, help="reuse the family and zoo of this run folder instead of training")
    g.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads; 1 is the safe choice on a shared 2-core machine (2 threads were "
                        "measured 10x slower there when another process was busy)")  # fmt: skip


def cloze_config(a) -> ClozeConfig:
    return config_from_args(ClozeConfig, a, seed=a.seed if a.embed_seed is None else a.embed_seed)


def reused_zoo(a):
    """(family, zoo) from --from-zoo, or (None, None) to train them."""
    if a.from_zoo is None:
        return None, None
    try:
        run = load_run(a.from_zoo)
    except RunError as e:
        raise RunError(f"{e} (--from-zoo)") from None
    if hasattr(run.zoo, "parts"):
        raise CliError(f"--from-zoo {a.from_zoo}: a mixed-architecture zoo; run and sweep take one architecture "
                       "(the cross-architecture study is benchmarks/cross_arch.py)")  # fmt: skip
    return run.family, run.zoo


def print_report(report: dict) -> None:
    z, e = report["zoo"], report["embedder"]
    print(f"zoo: {z['n_models']} models, fit MSE median {sci(z['fit_mse_median'])}, {z['n_failed']} failed")
    print(f"embedder: cloze R2 on held-out seeds {e['cloze_r2'] if e['cloze_r2'] is None else round(e['cloze_r2'], 3)}"
          f", {e['steps_done']} steps in {e['seconds']:.1f} s")  # fmt: skip
    for note in e["notes"]:
        print(f"  note: {note}")
    print(f"{'description':>17}  {'linear':>6}  {'kNN':>6}  {'NMI':>6}  (held-out seeds; chance "
          f"{report['probes']['cloze']['chance']:.3f})")  # fmt: skip
    for name, p in report["probes"].items():
        cells = [p[k] for k in ("linear_accuracy", "knn_accuracy", "nmi")]
        print(f"{name:>17}  " + "  ".join("   n/a" if c is None else f"{c:6.3f}" for c in cells))
    print_protocols(report.get("protocols", {}))
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in report["seconds"].items()))


def print_protocols(protocols: dict) -> None:
    """The held-out-function and parameter-regression tables of a report (if it has them)."""
    functions, parameters = protocols.get("functions"), protocols.get("parameters")
    if functions:
        print(f"held-out functions (embedder trained on {len(protocols['split']['seen'])} functions, scored on "
              f"{len(protocols['split']['unseen'])} unseen):")  # fmt: skip
        cols = next(iter(functions.values())).keys()
        print(f"{'description':>17}  " + "  ".join(f"{c:>14}" for c in cols))
        for name, scores in functions.items():
            print(f"{name:>17}  " + "  ".join(f"{'n/a':>14}" if v is None else f"{v:14.3f}" for v in scores.values()))
    if parameters:
        print("parameter regression on the unseen functions (ridge R^2 / MSE; supervised_mlp: an MLP regressor):")
        for name, per_param in parameters.items():
            cells = [f"{p} " + ("n/a (constant)" if s["r2"] is None else f"{s['r2']:.3f} / {s['mse']:.3g}")
                     for p, s in per_param.items()]  # fmt: skip
            print(f"{name:>17}  " + ", ".join(cells))


def parse_protocols(text: str) -> tuple[str, ...]:
    from .protocols import PROTOCOLS

    names = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    bad = [n for n in names if n not in PROTOCOLS]
    if bad or not names:
        raise CliError(f"--protocols must be a comma-separated list of {', '.join(PROTOCOLS)}, got {text!r}")
    return names


def cmd_run(a) -> None:
    from .pipeline import run_pipeline
    from .shards import discard_shards, shard_folder

    set_threads(a.threads)
    family, zoo = reused_zoo(a)
    sharded_seconds = None
    if zoo is None and (a.shards > 1 or a.executor != "local"):
        t = time.perf_counter()
        with executor_from_flags(a) as executor:
            family, zoo = train_zoo_run(a, executor, keep_in=shard_folder(a.out))
        sharded_seconds = time.perf_counter() - t
    bars = StageBars()
    try:
        run = run_pipeline(family_config(a), zoo_config(a), cloze_config(a), device=check_device(a.device),
                           progress=bars, projections=("pca", "umap") if a.umap else ("pca",),
                           family=family, zoo=zoo, protocols=parse_protocols(a.protocols))  # fmt: skip
    finally:
        bars.close()
    warn_divergence(run.zoo)
    if sharded_seconds is not None:  # the zoo was trained before the pipeline: count it in the report's seconds
        seconds = run.report["seconds"]
        seconds.update(zoo=round(sharded_seconds, 3), total=round(seconds["total"] + sharded_seconds, 3))
    out = save_run(run, a.out)  # the run folder holds report.json (listed, with its checksum, in meta.json)
    discard_shards(a.out)
    print_report(run.report)
    print(f"saved to {out} (report: {Path(out) / 'report.json'})")


def add_run_command(sub, fmt) -> None:
    from .cli_preflight import preflight_training

    p = sub.add_parser("run", help="the full pipeline: zoo, embedder, probes, baselines, projections", formatter_class=fmt)
    add_family_flags(p)
    add_zoo_flags(p)
    add_cloze_flags(p)
    add_executor_flags(p)
    p.add_argument("--umap", action="store_true", help="add the UMAP projection (its first use in a process "
                   "compiles for 20-60 s; without it the app computes UMAP when it first shows the run)")  # fmt: skip
    p.add_argument("--protocols", default="seeds",
                   help="comma-separated: seeds (held-out seeds, always), functions (held-out functions: a second "
                        "embedder trained on two thirds of the functions, scored on the rest) and parameters (regression "
                        "of the members' parameters on those unseen functions); functions or parameters add about the "
                        "embedder's time again")  # fmt: skip
    p.add_argument("--out", required=True, help="run folder to write (with report.json)")
    p.set_defaults(fn=cmd_run, preflight=preflight_training)
