"""Held-out architectures (issue 11, protocol 3): an embedder trained on ONE architecture's models,
scored on the models of the others by cross-architecture sibling retrieval.

The embedder sees only the training seeds of one part of a mixed zoo (e.g. '32x2:relu');
every model of every part is then embedded with the same input draw (mixed_zoo.embed_mixed).
A model's siblings are the models fitting the same function; retrieval@k counts only
neighbours of ANOTHER architecture (protocols.retrieval_at_k with groups), so a description
that merely clusters by architecture scores nothing. Reported per held-out architecture
(its models as queries, every other architecture's models as the pool) and over all models.

Descriptions: cloze, raw_gradients and outputs on the fixed grid, raw_gradients_pca (as many
components as the embedding has dimensions, fitted on the training architecture's models);
flattened weights and weight statistics have no common coordinates across widths and depths:
"n/a" with the reason (protocols.WHY_NOT_ACROSS_ARCHITECTURES).
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from .baselines import grid
from .cloze_training import train_embedder
from .config import ClozeConfig
from .embedding import EMBED_SEED
from .gradients import input_gradients
from .mixed_zoo import MixedZoo, embed_mixed
from .protocols import RETRIEVAL_K, WHY_NOT_ACROSS_ARCHITECTURES, _clean, retrieval_at_k, standardise


def cross_descriptions(zoo: MixedZoo, embeddings: np.ndarray, fit_rows: np.ndarray, random_state: int = 0) -> dict:
    """{name: (n, d) features, or the string saying why it cannot apply across architectures}."""
    x = grid()
    g = _clean(np.concatenate([input_gradients(p, x) for p in zoo.parts]))  # (n, GRID_SIZE), part by part
    dim = min(embeddings.shape[1], int(fit_rows.sum()), g.shape[1])
    return {
        "cloze": embeddings,
        "raw_gradients": g,
        "raw_gradients_pca": PCA(dim, random_state=random_state).fit(g[fit_rows]).transform(g),
        "outputs": zoo(x),
        **WHY_NOT_ACROSS_ARCHITECTURES,
    }


def per_architecture_retrieval(features, labels, architectures, k: int = RETRIEVAL_K) -> dict:
    """{architecture: retrieval@k of its models among every OTHER architecture's models}, plus 'all'.

    Features are standardised on all models with one overall std (protocols.standardise)."""
    f = standardise(features, slice(None))
    y, groups = np.asarray(labels), np.asarray(architectures)
    out = {str(g): _share(f, y, groups == g, k) for g in np.unique(groups)}
    out["all"] = retrieval_at_k(f, y, k, groups=groups)
    return out


def _share(f, y, query, k) -> float:
    """Share of the query rows' k nearest non-query rows that carry the query's label."""
    idx = NearestNeighbors(n_neighbors=k).fit(f[~query]).kneighbors(f[query], return_distance=False)
    return float((y[~query][idx] == y[query][:, None]).mean())


def cross_architecture_study(zoo: MixedZoo, config: ClozeConfig, train_architecture: str, random_state: int = 0,
                             progress=None) -> dict:  # fmt: skip
    """Train on `train_architecture`'s models only; score every description.

    Returns {"retrieval": {description: {architecture | 'all': retrieval@k} or 'n/a: why'},
    "cloze_r2": validation R^2 on the training architecture's held-out seeds, "mask_unit",
    "embeddings" (n, d)}."""
    part = zoo.part_of(train_architecture)
    embedder = train_embedder(part, config, progress=progress)
    embeddings = embed_mixed(embedder, zoo, seed=EMBED_SEED)
    architectures = zoo.architectures
    fit_rows = architectures == train_architecture
    out = {"retrieval": {}, "cloze_r2": embedder.cloze_r2_, "mask_unit": embedder.mask_unit_, "embeddings": embeddings}
    for name, f in cross_descriptions(zoo, embeddings, fit_rows, random_state).items():
        out["retrieval"][name] = f if isinstance(f, str) else per_architecture_retrieval(f, zoo.task_ids, architectures)
    return out
