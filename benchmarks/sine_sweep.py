"""Embedder settings on one cached sines zoo: the cloze embedding's regression of (a, b) and retrieval, per variant.

    nice -n 10 python -m benchmarks.sine_sweep [the same STUDY options as study_targets sines]
        --variant "bottleneck=16" --variant "bottleneck=8 steps=2400" [--seeds 0,1,2] [--tag _name] [--pca]

Each --variant is a set of ClozeConfig overrides on top of the study's --set. For every variant and
seed, an embedder is trained on the seen functions' models only (the held-out-function split of
study_targets, `split_functions(K, n_unseen, random_state=seed)`), or its embeddings are loaded
when study_targets or this script already stored that very training (same folder, same key), and
only the cloze embedding is scored (the baselines do not depend on the embedder; study_targets and
sine_rows score them):
    ridge R^2 / MSE of a and b   fitted on the seen functions' models, scored on the unseen ones
    kNN R^2 of a and b           the same split, 5 neighbours
    retrieval@5                  among the unseen functions' models (needs > 5 seeds per function)
    cloze_r2                     the embedder's own masked-gradient R^2 on seen functions' held-out seeds
The zoo's fit per b bin is printed first (and stored in the JSON): a sine the zoo does not fit
is no test of the embedder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA

from benchmarks.study_targets import RESULTS, embeddings_file, parse_settings, study_from_flags
from netembed.baselines import grid_gradients
from netembed.config import to_dict
from netembed.embedding import EMBED_SEED, embed
from netembed.protocols import (
    RETRIEVAL_K,
    _clean,
    parameter_regression,
    retrieval_at_k,
    split_functions,
    standardise,
    train_on_seen,
)

B_BINS = (0, 2, 4, 5, 6, 7, 8, 9, 10)


def fit_by_b(family, zoo, bins=B_BINS) -> list[dict]:
    """Per b bin: models, median relative fit MSE (fit MSE / the target's mean square) and share above 5%."""
    var = (family.values(np.linspace(-1, 1, 1025)) ** 2).mean(1)[zoo.task_ids]
    rel = zoo.fit_mse / var
    b = family.parameters[zoo.task_ids, 1]
    rows = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        s = (b >= lo) & (b < hi)
        if s.any():
            rows.append({"b": [lo, hi], "models": int(s.sum()), "relative_fit_mse_median": float(np.median(rel[s])),
                         "relative_fit_mse_max": float(rel[s].max()), "share_above_5pct": float((rel[s] > 0.05).mean())})  # fmt: skip
    return rows


def cloze_scores(z: np.ndarray, family, zoo, is_seen: np.ndarray) -> dict:
    params = family.parameters[zoo.task_ids][:, :2]  # (n, 2): a, b
    reg = parameter_regression(z, params, is_seen, ("a", "b"))
    out = {f"{m}_{k}_{p}": reg[p][f"{m}_{k}"] for m in ("linear", "knn") for k in ("r2", "mse") for p in ("a", "b")}
    if zoo.config.models_per_function > RETRIEVAL_K:
        f = standardise(z, is_seen)
        out[f"retrieval@{RETRIEVAL_K}"] = retrieval_at_k(f[~is_seen], zoo.task_ids[~is_seen])
    return out


def embeddings_for(zoo, family, config, n_unseen: int, folder: Path) -> tuple[np.ndarray, float, float]:
    """(n, d) embeddings of every model by an embedder trained on the seen functions, its cloze R^2, seconds
    (0 when loaded from the store)."""
    stored = embeddings_file(folder, config, n_unseen)
    if stored.exists():
        z = np.load(stored)
        return z["embeddings"], float(z["cloze_r2"]), 0.0
    split = split_functions(family.n_functions, n_unseen, random_state=config.seed)
    t = time.perf_counter()
    embedder = train_on_seen(zoo, split, config)
    z = embed(embedder, zoo, seed=EMBED_SEED)
    np.savez(stored, embeddings=z, cloze_r2=embedder.cloze_r2_)
    return z, float(embedder.cloze_r2_), time.perf_counter() - t


def summarise(per_seed: list[dict]) -> dict:
    return {k: (float(np.mean([s[k] for s in per_seed])), float(np.std([s[k] for s in per_seed], ddof=1))
                if len(per_seed) > 1 else 0.0) for k in per_seed[0]}  # fmt: skip


def pca_rows(zoo, family, dim: int, n_unseen: int, seeds: list[int]) -> dict:
    """The baseline as protocols.descriptions builds it: grid gradients' top `dim` components, fitted on the seen."""
    g = _clean(grid_gradients(zoo))  # (n, grid): non-finite entries zeroed, as protocols.descriptions does
    per_seed = []
    for seed in seeds:
        is_seen = np.isin(zoo.task_ids, split_functions(family.n_functions, n_unseen, random_state=seed).seen)
        f = PCA(dim, random_state=seed).fit(g[is_seen]).transform(g)
        per_seed.append(cloze_scores(f, family, zoo, is_seen))
        print(f"[raw_gradients_pca {dim}] seed {seed}: " + " ".join(f"{k} {v:.3f}" for k, v in per_seed[-1].items()))
    return {"per_seed": per_seed, "summary": summarise(per_seed)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--set", nargs="*", default=[], help="ClozeConfig overrides shared by every variant")
    p.add_argument("--variant", action="append", default=[], help="ClozeConfig overrides of one variant, 'k=v k=v'")
    p.add_argument("--zoo-set", nargs="*", default=[])
    p.add_argument("--family-set", nargs="*", default=[])
    p.add_argument("--n-unseen", type=int, default=None)
    p.add_argument("--cache", default="/tmp/netembed-study-zoos")
    p.add_argument("--tag", default="")
    p.add_argument("--pca", action="store_true", help="also score the PCA of grid gradients of the bottleneck's size")
    a = p.parse_args()
    torch.set_num_threads(1)
    family_config, zoo_config, base, n_unseen, family, zoo, stored = study_from_flags("sines", a)
    fit = fit_by_b(family, zoo)
    print(f"{family.n_functions} sines x {zoo_config.models_per_function} seeds, {n_unseen} unseen; fit per b:")
    for row in fit:
        print(f"  b {row['b']}: {row['models']} models, median rel {row['relative_fit_mse_median']:.1e}, "
              f"max {row['relative_fit_mse_max']:.1e}, above 5% {row['share_above_5pct']:.0%}")  # fmt: skip
    results = {}
    if a.pca:  # the same-size PCA of grid gradients, fitted on each seed's seen functions, scored as the cloze rows
        results["raw_gradients_pca"] = pca_rows(zoo, family, base.bottleneck, n_unseen, [int(s) for s in a.seeds.split(",")])
    for variant in a.variant or [""]:
        cloze = replace(base, **parse_settings(variant.split(), base))
        per_seed = []
        for seed in [int(s) for s in a.seeds.split(",")]:
            config = replace(cloze, seed=seed)
            z, r2, seconds = embeddings_for(zoo, family, config, n_unseen, stored)
            split = split_functions(family.n_functions, n_unseen, random_state=seed)
            scores = {"cloze_r2": r2, **cloze_scores(z, family, zoo, np.isin(zoo.task_ids, split.seen))}
            per_seed.append(scores)
            print(f"[{variant or 'base'}] seed {seed} ({seconds:.0f} s): "
                  + " ".join(f"{k} {v:.3f}" for k, v in scores.items()), flush=True)  # fmt: skip
        summary = summarise(per_seed)
        print(f"[{variant or 'base'}] " + " ".join(f"{k} {m:.3f}±{s:.3f}" for k, (m, s) in summary.items()), flush=True)
        results[variant or "base"] = {"cloze": to_dict(cloze), "per_seed": per_seed, "summary": summary}
    out = RESULTS / f"sine_sweep{a.tag}.json"
    out.write_text(json.dumps({"command": " ".join(sys.argv), "family": to_dict(family_config), "zoo": to_dict(zoo_config),
                               "n_unseen": n_unseen, "fit_by_b": fit, "variants": results}, indent=1))  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
