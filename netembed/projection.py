"""2D projections of embeddings for plots: PCA (instant) and UMAP (imported lazily).

umap-learn compiles with numba: a cold import takes tens of seconds and the first fit
more. `warm_umap()` pays that once (e.g. when an app starts), with numba's cache in a
writable folder so later processes reuse the compiled code.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from sklearn.decomposition import PCA

METHODS = ("pca", "umap")
NUMBA_CACHE = "/tmp/netembed-numba-cache"


def _as_2d_input(features) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    f = np.where(np.isfinite(f), f, 0.0)
    if f.shape[1] < 2:  # a 1D embedding: pad a zero column so the plot has two axes
        f = np.concatenate([f, np.zeros((len(f), 2 - f.shape[1]))], 1)
    return f


def _import_umap():
    os.environ.setdefault("NUMBA_CACHE_DIR", NUMBA_CACHE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import umap

    return umap


def project(features, method: str = "pca", random_state: int = 0) -> np.ndarray:
    """features (n, d) -> (n, 2) coordinates."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    f = _as_2d_input(features)
    n = len(f)
    if n < 3:  # too few points to fit a projection: the first two features, centred
        return f[:, :2] - f[:, :2].mean(0)
    if method == "pca":
        return PCA(n_components=2, random_state=random_state).fit_transform(f)
    umap = _import_umap()
    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=random_state, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(reducer.fit_transform(f), dtype=np.float64)


def warm_umap() -> None:
    """Import umap and fit a tiny problem once, so numba compiles (and caches) before a user waits."""
    rng = np.random.default_rng(0)
    project(rng.standard_normal((40, 4)), "umap")
