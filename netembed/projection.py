"""2D projections of embeddings for plots: PCA (instant) and UMAP (imported lazily).

umap-learn compiles with numba: a cold import takes tens of seconds and the first fit
more. `warm_umap()` pays that once (e.g. when an app starts), with numba's cache in this
user's private cache folder (user_cache.py) so later processes reuse the compiled code and
no other local user can plant entries in it (numba reads its cache index with pickle).
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
from sklearn.decomposition import PCA

from . import user_cache

METHODS = ("pca", "umap")


def _as_2d_input(features) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    f = np.where(np.isfinite(f), f, 0.0)
    if f.shape[1] < 2:  # a 1D embedding: pad a zero column so the plot has two axes
        f = np.concatenate([f, np.zeros((len(f), 2 - f.shape[1]))], 1)
    return f


def use_private_numba_cache() -> None:
    """Point NUMBA_CACHE_DIR at a folder only this user can write, before numba is imported.

    A NUMBA_CACHE_DIR the user set is kept if it passes user_cache's checks; otherwise (with one
    warning) ours is used, and if ours is refused too numba keeps its default (beside the installed
    package, or ~/.cache/numba). numba reads the variable once, at import: later calls change nothing.
    """
    explicit = os.environ.get("NUMBA_CACHE_DIR")
    if explicit:
        try:
            user_cache.checked_folder(explicit)
            return
        except OSError as err:
            reason = f"NUMBA_CACHE_DIR is not safe to use ({err})"
    else:
        reason = None
    try:
        os.environ["NUMBA_CACHE_DIR"] = str(user_cache.private_folder("numba"))
        if reason:
            warnings.warn(f"{reason}; using {os.environ['NUMBA_CACHE_DIR']}", RuntimeWarning, stacklevel=3)
    except OSError as err:
        os.environ.pop("NUMBA_CACHE_DIR", None)
        warnings.warn(f"{reason + '; ' if reason else ''}{err}: numba keeps its default cache", RuntimeWarning, stacklevel=3)


def _import_umap():
    if "numba" not in sys.modules:
        use_private_numba_cache()
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
