"""Extra rows for the sines study, from its cached zoo and stored embeddings (nothing is trained).

    python -m benchmarks.sine_rows [the same STUDY options as study_targets sines] [--fit-b-max 7]

The target stays (a, b); these rows say where the shortfall comes from:
    a, b               the target itself (ridge R^2 on unseen functions, as study_targets reports)
    log a, log b       the same parameters in log space
    a*b                the derivative's amplitude / pi (f' = pi*a*b*cos(b*pi*x))
    a, b | b < B       restricted to the sines the zoo fits (b below --fit-b-max, fitted and scored there)
for the cloze embedding (3 stored seeds), the same-size PCA of the zoo's grid gradients, and the
same-size PCA of the EXACT derivatives (no network at all: what any linear readout of a 16-dim
linear projection of the gradient can give), plus kNN regression on the exact-derivative PCA.
Retrieval@5 rows (when the zoo has > 5 seeds per function): on all unseen functions, and among
the unseen functions with b < B only (the sines the zoo fits).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import torch
from sklearn.decomposition import PCA

from benchmarks.study_targets import RESULTS, embeddings_file, study_from_flags
from netembed.baselines import grid
from netembed.config import to_dict
from netembed.gradients import input_gradients
from netembed.protocols import parameter_regression, retrieval_at_k, split_functions, standardise


def targets(params: np.ndarray, b_max: float) -> dict:
    """{row name: ((n, p) targets, names, (n,) bool rows kept)} from (n, 3) sine parameters (a, b, c)."""
    a, b = params[:, 0], params[:, 1]
    every = np.ones(len(a), dtype=bool)
    return {
        "a, b": (np.stack([a, b], 1), ("a", "b"), every),
        "log a, log b": (np.stack([np.log(a), np.log(b)], 1), ("log a", "log b"), every),
        "a, a*b": (np.stack([a, a * b], 1), ("a", "a*b"), every),
        f"a, b | b < {b_max:g}": (np.stack([a, b], 1), ("a", "b"), b < b_max),
    }


def rows_for(features: np.ndarray, params, is_seen, b_max: float, method: str = "linear") -> dict:
    out = {}
    for row, (y, names, keep) in targets(params, b_max).items():
        scores = parameter_regression(features[keep], y[keep], is_seen[keep], names)
        out[row] = {n: scores[n][f"{method}_r2"] for n in names}
    return out


def retrieval_rows(features: np.ndarray, labels, b, is_seen, b_max: float) -> dict:
    """Retrieval@5 among the unseen functions' models (scaled on the seen ones): all of them, and those with b < b_max."""
    f = standardise(features, is_seen)
    unseen, fitted = ~is_seen, ~is_seen & (b < b_max)
    return {"retrieval@5": retrieval_at_k(f[unseen], labels[unseen]),
            f"retrieval@5 | b < {b_max:g}": retrieval_at_k(f[fitted], labels[fitted])}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--set", nargs="*", default=[])
    p.add_argument("--zoo-set", nargs="*", default=[])
    p.add_argument("--family-set", nargs="*", default=[])
    p.add_argument("--n-unseen", type=int, default=None)
    p.add_argument("--cache", default="/tmp/netembed-study-zoos")
    p.add_argument("--fit-b-max", type=float, default=7.0, help="b below which the zoo fits (see the per-b fit)")
    p.add_argument("--tag", default="")
    a = p.parse_args()
    torch.set_num_threads(1)
    family_config, zoo_config, cloze, n_unseen, family, zoo, stored = study_from_flags("sines", a)
    params = family.parameters[zoo.task_ids]  # (n, 3): a, b, c
    x = grid()
    g = np.nan_to_num(input_gradients(zoo, x))  # (n, grid) the zoo's gradients
    exact = family.derivatives(x)[zoo.task_ids]  # (n, grid) the sines' own derivatives
    per_seed = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        config = replace(cloze, seed=seed)
        z = np.load(embeddings_file(stored, config, n_unseen))["embeddings"]
        is_seen = np.isin(zoo.task_ids, split_functions(family.n_functions, n_unseen, random_state=seed).seen)
        d = z.shape[1]
        pca = PCA(d, random_state=seed).fit(g[is_seen]).transform(g)
        pca_exact = PCA(d, random_state=seed).fit(exact[is_seen]).transform(exact)
        per_seed.append({
            "cloze": rows_for(z, params, is_seen, a.fit_b_max),
            f"raw_gradients_pca ({d})": rows_for(pca, params, is_seen, a.fit_b_max),
            f"exact_derivatives_pca ({d})": rows_for(pca_exact, params, is_seen, a.fit_b_max),
            f"exact_derivatives_pca ({d}), kNN": rows_for(pca_exact, params, is_seen, a.fit_b_max, "knn"),
            "cloze, kNN": rows_for(z, params, is_seen, a.fit_b_max, "knn"),
        })  # fmt: skip
        if zoo_config.models_per_function > 5:
            b = params[:, 1]
            per_seed[-1]["cloze"]["retrieval"] = retrieval_rows(z, zoo.task_ids, b, is_seen, a.fit_b_max)
            per_seed[-1][f"raw_gradients_pca ({d})"]["retrieval"] = retrieval_rows(
                pca, zoo.task_ids, b, is_seen, a.fit_b_max
            )
            per_seed[-1][f"exact_derivatives_pca ({d})"]["retrieval"] = retrieval_rows(
                pca_exact, zoo.task_ids, b, is_seen, a.fit_b_max
            )
    summary = {}
    for desc in per_seed[0]:
        for row in per_seed[0][desc]:
            cells = []
            for name in per_seed[0][desc][row]:
                v = np.array([s[desc][row][name] for s in per_seed])
                summary.setdefault(desc, {}).setdefault(row, {})[name] = (float(v.mean()), float(v.std(ddof=1)))
                cells.append(f"{name} {v.mean():.2f} ± {v.std(ddof=1):.2f}")
            print(f"{desc:<34} {row:<18} {'   '.join(cells)}")
    out = RESULTS / f"sine_rows{a.tag}.json"
    out.write_text(json.dumps({"fit_b_max": a.fit_b_max, "n_unseen": n_unseen, "family": to_dict(family_config),
                               "zoo": to_dict(zoo_config), "cloze": to_dict(cloze), "per_seed": per_seed,
                               "summary": summary}, indent=1))  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
