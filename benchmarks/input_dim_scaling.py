"""Does a higher-dimensional input break the method? d = 1, 2, 4, 8 with the same budget.

For each d: a bumps family (family_nd.py, K functions of d inputs), a zoo of d -> width^depth -> 1
ReLU MLPs (M seeds per function), the cloze embedder masking whole linear regions, then
    held-out seeds      linear probe accuracy of the embedding (probes.probe_all), the grid
                        gradients' probe beside it
    held-out functions  an embedder trained on the seen functions only; retrieval@5 and NMI of
                        the cloze embedding and of the raw grid gradients on the unseen functions
    regions             distinct linear regions hit by the embedding's 256 samples per model, and the
                        share of samples alone in their region (masking a region = masking a sample there)
    cost                seconds of each stage (family, zoo, region ids of one batch, embedders, probes)
Every d gets the same budget: the same K, M, zoo steps and batch, embedder steps and samples.

    python -m benchmarks.input_dim_scaling --dims 1 2 4 8 --seeds 20 --out benchmarks/results/input_dim_scaling
    python -m benchmarks.input_dim_scaling --dims 2 --seeds 50 --out benchmarks/results/input_dim_2d_target  # targets

Writes results.json and scaling.png (plotly + kaleido if present, else matplotlib) into --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from netembed.baselines import grid_gradients
from netembed.cloze_task import GradientSource, draw_inputs
from netembed.cloze_training import train_embedder
from netembed.config import ClozeConfig, FamilyConfig, ZooConfig
from netembed.embedding import EMBED_INPUTS, EMBED_SEED, embed
from netembed.family import make_family
from netembed.probes import probe_all
from netembed.protocols import held_out_function_scores, split_functions, train_on_seen
from netembed.run_schema import json_safe
from netembed.zoo import train_zoo


def region_stats(zoo, n_inputs: int = EMBED_INPUTS) -> dict:
    """Regions the embedding's samples hit per model: mean / median count, share of samples alone in theirs."""
    source = GradientSource(zoo, "section")
    x = draw_inputs(n_inputs, torch.Generator().manual_seed(EMBED_SEED), "cpu", zoo.input_dim)
    ids = torch.arange(zoo.n_models)
    t = time.perf_counter()
    regions = source.section_ids(ids, x).numpy()  # (n, N)
    seconds = time.perf_counter() - t
    counts = np.array([len(np.unique(r)) for r in regions])
    alone = np.mean([np.mean(np.bincount(r)[r] == 1) for r in regions])
    return {"samples": n_inputs, "regions_mean": float(counts.mean()), "regions_median": float(np.median(counts)),
            "share_samples_alone": float(alone), "region_ids_seconds_all_models": round(seconds, 3)}  # fmt: skip


def one_dim(d: int, a) -> dict:
    seconds = {}
    t = time.perf_counter()
    family = make_family(FamilyConfig(kind="bumps", input_dim=d, n_functions=a.functions, seed=a.seed,
                                      min_derivative_distance=a.min_distance))  # fmt: skip
    dist = family.derivative_distances()
    seconds["family"] = time.perf_counter() - t
    t = time.perf_counter()
    zoo = train_zoo(family, ZooConfig(models_per_function=a.seeds, width=a.width, depth=a.depth, steps=a.zoo_steps,
                                      seed=a.seed))  # fmt: skip
    seconds["zoo"] = time.perf_counter() - t
    print(f"d={d}: zoo {seconds['zoo']:.0f} s ({zoo.engine}), median fit MSE {np.median(zoo.fit_mse):.2e}", flush=True)
    regions = region_stats(zoo)
    cloze = ClozeConfig(bottleneck=a.bottleneck, steps=a.embed_steps, seed=a.seed)
    t = time.perf_counter()
    embedder = train_embedder(zoo, cloze)
    emb = embed(embedder, zoo, seed=EMBED_SEED)
    seconds["embedder"] = time.perf_counter() - t
    t = time.perf_counter()
    gradients = grid_gradients(zoo)
    seeds = {"cloze": probe_all(emb, zoo.task_ids, zoo.is_train, a.seed)["linear_accuracy"],
             "raw_gradients": probe_all(gradients, zoo.task_ids, zoo.is_train, a.seed)["linear_accuracy"]}
    seconds["probes"] = time.perf_counter() - t
    print(f"d={d}: held-out seeds {seeds}, cloze R2 {embedder.cloze_r2_:.3f}", flush=True)
    split = split_functions(family.n_functions, a.unseen, random_state=a.seed)
    t = time.perf_counter()
    seen_embedder = train_on_seen(zoo, split, cloze)
    seen_emb = embed(seen_embedder, zoo, seed=EMBED_SEED)
    seconds["embedder_seen_functions"] = time.perf_counter() - t
    is_seen = np.isin(zoo.task_ids, split.seen)
    functions = {name: held_out_function_scores(f, zoo.task_ids, is_seen, a.seed)
                 for name, f in (("cloze", seen_emb), ("raw_gradients", gradients))}  # fmt: skip
    print(f"d={d}: held-out functions {json.dumps(json_safe(functions))}", flush=True)
    upper = dist[np.triu_indices(len(dist), 1)]
    return {
        "d": d,
        "family": {"gradient_distance_min": float(upper.min()), "gradient_distance_median": float(np.median(upper))},
        "zoo": {"engine": zoo.engine, "fit_mse_median": float(np.median(zoo.fit_mse)), "n_failed": int(zoo.failed.sum())},
        "regions": regions,
        "held_out_seeds_linear_accuracy": seeds,
        "cloze_r2": embedder.cloze_r2_,
        "cloze_r2_seen_functions": seen_embedder.cloze_r2_,
        "held_out_functions": functions,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = [r["d"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for name, style in (("cloze", "o-"), ("raw_gradients", "s--")):
        axes[0].plot(ds, [r["held_out_seeds_linear_accuracy"][name] for r in rows], style, label=f"{name}: held-out seeds")
        axes[0].plot(ds, [r["held_out_functions"][name]["retrieval@5"] for r in rows], style, alpha=0.5,
                     label=f"{name}: unseen functions retrieval@5")  # fmt: skip
    axes[0].set(xscale="log", xticks=ds, xticklabels=ds, xlabel="input dimension d", ylabel="score", ylim=(0, 1.02))
    axes[0].legend(fontsize=7)
    axes[1].plot(ds, [r["regions"]["regions_mean"] for r in rows], "o-", label="regions hit (of 256 samples)")
    axes[1].plot(ds, [256 * r["regions"]["share_samples_alone"] for r in rows], "s--", label="samples alone in a region")
    axes[1].set(xscale="log", xticks=ds, xticklabels=ds, xlabel="input dimension d")
    axes[1].legend(fontsize=7)
    for stage in rows[0]["seconds"]:
        axes[2].plot(ds, [r["seconds"][stage] for r in rows], "o-", label=stage)
    axes[2].set(xscale="log", xticks=ds, xticklabels=ds, xlabel="input dimension d", ylabel="seconds")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dims", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--functions", type=int, default=10)
    p.add_argument("--seeds", type=int, default=20, help="models per function")
    p.add_argument("--unseen", type=int, default=3, help="functions held out from the embedder's training")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--zoo-steps", type=int, default=1000)
    p.add_argument("--embed-steps", type=int, default=600)
    p.add_argument("--bottleneck", type=int, default=4)
    p.add_argument("--min-distance", type=float, default=0.5, help="variety threshold (RMS gradient-field distance)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/input_dim_scaling")
    a = p.parse_args()
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for d in a.dims:
        rows.append(one_dim(d, a))
        (out / "results.json").write_text(json.dumps(json_safe({"args": vars(a), "rows": rows}), indent=1))
    plot(rows, out / "scaling.png")
    print(f"wrote {out / 'results.json'} and {out / 'scaling.png'}")


if __name__ == "__main__":
    main()
