"""`python -m netembed bench`: one declared suite of studies x protocols x descriptions x embedder seeds.

The suite is declared here and nowhere else (SUITE, and QUICK_SUITE for `--quick`, a
minutes-long version with tiny zoos that the tests run). Every study trains its zoo once;
each (study, seed) cell then trains its embedders and scores every description:
    seeds       held-out seeds: an embedder on every function's training seeds, probes on
                the held-out seeds (probes.py): linear, kNN, NMI, coefficient R^2
    functions   held-out functions: an embedder on the seen functions only (protocols.py),
                retrieval@5, NMI, 1-shot and 5-shot on the unseen functions
    parameters  ridge regression of the members' parameters, fitted on the seen functions,
                R^2 and MSE on the unseen ones (the same embedder as `functions`)
The cells run through an executor (executor.py), so `--executor ray` spreads them over a
cluster. The results: DIR/bench.json (every seed's scores and the summary), DIR/bench.md
(one markdown table per study and protocol, mean ± std over seeds, "n/a" with the reason
where a score cannot apply) and DIR/bench.png (the headline score of every description).
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .cloze_training import train_embedder
from .config import ClozeConfig, FamilyConfig, ZooConfig, to_dict
from .embedding import EMBED_SEED, embed
from .family import make_family
from .pipeline import probe_descriptions
from .protocols import PROTOCOLS, RETRIEVAL_K, check_protocol_zoo, function_protocols
from .run_schema import json_safe
from .zoo import train_zoo


@dataclass(frozen=True)
class Study:
    """One study of the suite: a family, its zoo, the embedder, how many functions stay unseen, which protocols."""

    name: str
    family: FamilyConfig
    zoo: ZooConfig
    cloze: ClozeConfig
    n_unseen: int
    protocols: tuple[str, ...] = PROTOCOLS
    about: str = ""


# The README's results table comes from this suite (benchmarks/results/study_targets.md has the single studies).
SUITE = (
    Study("polynomials", FamilyConfig(n_functions=60, max_tries=20000), ZooConfig(models_per_function=50),
          ClozeConfig(bottleneck=8, steps=1200), n_unseen=20,
          about="60 polynomials (degree 3-4) x 50 seeds; 20 functions held out"),
    # SIREN nets fit every sine (ReLU nets miss b > ~8); the cloze loss relative to each model, as gradients span
    # 1.6-310 (benchmarks/results/study_targets.md, 2026-11-28); held-out seeds would add 600-class probes: left out
    Study("sines", FamilyConfig(kind="sines", n_functions=600),
          ZooConfig(models_per_function=6, width=32, depth=2, activation="sine", steps=300, lr=1e-2, batch_size=256),
          ClozeConfig(bottleneck=16, n_freqs=12, n_inputs=128, steps=2400, loss_scale="model"), n_unseen=200,
          protocols=("functions", "parameters"),
          about="600 sines a*sin(b*x), a, b ~ U[0.5, 10] x 6 seeds (SIREN 1-32-32-1); 200 functions held out"),
)  # fmt: skip

# Minutes on 2 CPU cores: tiny zoos and short embedders, every protocol and description still scored.
QUICK_SUITE = (
    Study("polynomials", FamilyConfig(n_functions=6), ZooConfig(models_per_function=8, steps=300),
          ClozeConfig(bottleneck=4, steps=60, models_per_batch=24), n_unseen=2,
          about="quick: 6 polynomials x 8 seeds; 2 held out"),
    Study("sines", FamilyConfig(kind="sines", n_functions=6, sine_frequency_max=3.0),
          ZooConfig(models_per_function=8, steps=300),
          ClozeConfig(bottleneck=4, steps=60, models_per_batch=24), n_unseen=2,
          about="quick: 6 sines (b <= 3) x 8 seeds; 2 held out"),
)  # fmt: skip

SEED_SCORES = ("linear_accuracy", "knn_accuracy", "nmi", "coefficient_r2")
FUNCTION_SCORES = (f"retrieval_at_{RETRIEVAL_K}", "nmi", "one_shot", "five_shot")
PARAMETER_SCORES = ("r2", "mse")
HEADLINE = {"seeds": "linear_accuracy", "functions": f"retrieval_at_{RETRIEVAL_K}", "parameters": "r2"}

# Why a score is missing, by where it is missing (the reports hold None there).
WHY_NA = {
    "one_shot": "n/a (too few seeds)",
    "five_shot": "n/a (too few seeds)",
    "parameter": "n/a (constant)",
    "coefficient_r2": "n/a (constant)",
}
NA_NOTES = ("n/a (too few seeds): a few-shot probe needs more seeds per unseen function than shots, to score the rest",
            "n/a (constant): the parameter is the same for every member (the sines' phase c is one setting), so it "
            "has no R^2 and its MSE says nothing")  # fmt: skip


def check_suite(studies) -> None:
    """Refuse a study whose zoo cannot serve its protocols, before any training."""
    for s in studies:
        if {"functions", "parameters"} & set(s.protocols):
            try:
                check_protocol_zoo(s.family.n_functions, s.zoo.models_per_function, s.n_unseen)
            except ValueError as e:
                raise ValueError(f"study {s.name}: {e}") from None


def bench_cell(family, zoo, study: Study, seed: int) -> dict:
    """Every protocol of one study for one embedder seed -> {protocol: {description: scores}}."""
    config = replace(study.cloze, seed=seed)
    out = {}
    if "seeds" in study.protocols:
        embedder = train_embedder(zoo, config)
        probes = probe_descriptions(zoo, family, embed(embedder, zoo, seed=EMBED_SEED), random_state=seed)
        out["seeds"] = {name: {k: p.get(k) for k in SEED_SCORES} for name, p in probes.items()}
        out["seeds_cloze_r2"] = embedder.cloze_r2_
    if {"functions", "parameters"} & set(study.protocols):
        scored = function_protocols(zoo, family, config, study.n_unseen, random_state=seed)
        for protocol in ("functions", "parameters"):
            if protocol in study.protocols:
                out[protocol] = scored[protocol]
        out["functions_cloze_r2"] = scored["cloze_r2"]
    return out


# ---------------------------------------------------------------- summary: mean ± std over seeds


def mean_std(values) -> dict | None:
    """{"mean", "std", "n"} over the seeds' values; None when any seed has none (the score does not apply)."""
    if not values or any(v is None for v in values):
        return None
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}


def summarise(cells: list[dict]) -> dict:
    """{protocol: {description: {score: mean_std or None}}}, parameters as {description: {param: {score: ...}}}."""
    out = {}
    for protocol in PROTOCOLS:
        if protocol not in cells[0]:
            continue
        table = {}
        for name, scores in cells[0][protocol].items():
            if protocol == "parameters":
                table[name] = {p: {k: mean_std([c[protocol][name][p][k] for c in cells]) for k in PARAMETER_SCORES}
                               for p in scores}  # fmt: skip
            else:
                table[name] = {k: mean_std([c[protocol][name][k] for c in cells]) for k in scores}
        out[protocol] = table
    return out


def run_bench(studies, seeds, executor, progress=None, train=train_zoo) -> dict:
    """Train each study's zoo, run every (study, seed) cell through `executor` -> the bench's JSON object.

    progress(done, total, what): called after each zoo and each finished cell.
    """
    check_suite(studies)
    seeds = [int(s) for s in seeds]
    total = len(studies) * (1 + len(seeds))
    done = 0
    t0 = time.perf_counter()
    zoos, fits = {}, {}
    for study in studies:
        family = make_family(study.family)
        zoo = train(family, study.zoo).to("cpu")
        zoos[study.name] = (family, zoo)
        fits[study.name] = {"fit_mse_median": float(np.nanmedian(zoo.fit_mse)), "n_failed": int(zoo.failed.sum())}
        done += 1
        if progress is not None:
            progress(done, total, f"zoo {study.name}")
    items = [(*zoos[s.name], s, seed) for s in studies for seed in seeds]

    def cell_done(i, _result):
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, f"{items[i][2].name} seed {items[i][3]}")

    results = executor.map(bench_cell, items, on_done=cell_done)
    out = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
           "executor": executor.name, "seeds": seeds, "seconds": round(time.perf_counter() - t0, 1), "studies": {}}  # fmt: skip
    for k, study in enumerate(studies):
        cells = results[k * len(seeds) : (k + 1) * len(seeds)]
        family, _ = zoos[study.name]
        out["studies"][study.name] = {
            "about": study.about, "family": to_dict(study.family), "zoo": to_dict(study.zoo),
            "cloze": to_dict(study.cloze), "n_unseen": study.n_unseen, "protocols": list(study.protocols),
            "parameter_names": list(family.parameter_names), "fit": fits[study.name],
            "per_seed": cells, "summary": summarise(cells),
        }  # fmt: skip
    return out


def machine() -> str:
    import os

    return f"{platform.machine()} {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"


# ---------------------------------------------------------------- writing: markdown, JSON, PNG


def cell_text(value: dict | None, why: str) -> str:
    return why if value is None else f"{value['mean']:.3f} ± {value['std']:.3f}"


def markdown(bench: dict, command: str) -> str:
    """One table per study and protocol; every description a row, every score a column."""
    lines = [f"# netembed bench ({bench['date']})", "",
             f"`{command}` on {bench['machine']}, executor {bench['executor']}, {bench['seconds']:.0f} s. "
             f"Mean ± std over embedder seeds {', '.join(map(str, bench['seeds']))} (each seed also draws its own "
             "seen/unseen split of the functions).", ""]  # fmt: skip
    for name, study in bench["studies"].items():
        lines += [f"## {name}: {study['about']}", ""]
        summary = study["summary"]
        if "seeds" in summary:
            lines += ["### held-out seeds (probes trained on the training seeds, scored on the held-out seeds)", ""]
            lines += _table(summary["seeds"], SEED_SCORES)
        if "functions" in summary:
            lines += [f"### held-out functions (embedder trained on {study['family']['n_functions'] - study['n_unseen']} "
                      f"functions, scored on {study['n_unseen']} unseen)", ""]  # fmt: skip
            lines += _table(summary["functions"], FUNCTION_SCORES)
        if "parameters" in summary:
            lines += ["### parameter regression (ridge fitted on the seen functions, scored on the unseen; "
                      "supervised_mlp: an MLP regressor on grid gradients)", ""]  # fmt: skip
            params = study["parameter_names"]
            cols = [f"{p} {s}" for p in params for s in PARAMETER_SCORES]
            lines += ["| description | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
            for desc, per_param in summary["parameters"].items():
                cells = [cell_text(per_param[p][s], WHY_NA["parameter"]) for p in params for s in PARAMETER_SCORES]
                lines.append(f"| {desc} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join([*lines, *(f"- {note}" for note in NA_NOTES), ""])


def _table(rows: dict, scores) -> list[str]:
    out = ["| description | " + " | ".join(scores) + " |", "|---" * (len(scores) + 1) + "|"]
    for desc, values in rows.items():
        out.append(f"| {desc} | " + " | ".join(cell_text(values.get(s), WHY_NA.get(s, "n/a")) for s in scores) + " |")
    return [*out, ""]


def headline(summary: dict, protocol: str) -> dict:
    """{description: mean_std} of the protocol's headline score (parameters: the mean R^2 over varying parameters)."""
    out = {}
    for desc, values in summary.get(protocol, {}).items():
        if protocol != "parameters":
            out[desc] = values.get(HEADLINE[protocol])
            continue
        r2 = [v["r2"] for v in values.values() if v["r2"] is not None]
        out[desc] = {"mean": float(np.mean([v["mean"] for v in r2])), "std": float(np.mean([v["std"] for v in r2]))} if r2 else None
    return out


def figure(bench: dict, path: Path) -> None:
    """bench.png: one panel per study x protocol, a bar per description (headline score, ± std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(name, protocol) for name, s in bench["studies"].items() for protocol in PROTOCOLS if protocol in s["summary"]]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.8), squeeze=False)
    for ax, (name, protocol) in zip(axes[0], panels):
        values = headline(bench["studies"][name]["summary"], protocol)
        names = list(values)
        means = [values[n]["mean"] if values[n] else np.nan for n in names]
        stds = [values[n]["std"] if values[n] else 0.0 for n in names]
        colours = ["tab:red" if n == "cloze" else "tab:grey" for n in names]
        ax.barh(names, np.clip(means, -0.2, None), xerr=stds, color=colours)
        ax.set_xlim(-0.2, 1.05)
        ax.invert_yaxis()
        ax.set_title(f"{name}: {protocol}\n{HEADLINE[protocol] if protocol != 'parameters' else 'mean ridge R²'}", fontsize=9)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_bench(bench: dict, out: Path, command: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "bench.json", out / "bench.md", out / "bench.png"]
    paths[0].write_text(json.dumps(json_safe({"command": command, **bench}), indent=1, allow_nan=False))
    paths[1].write_text(markdown(bench, command))
    figure(bench, paths[2])
    return paths
