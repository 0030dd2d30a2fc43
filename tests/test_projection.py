import numpy as np
import pytest
from sklearn.decomposition import PCA

from netembed.projection import project


def test_pca_matches_sklearn_and_is_deterministic():
    f = np.random.default_rng(0).standard_normal((30, 5))
    p = project(f, "pca", random_state=0)
    assert p.shape == (30, 2)
    np.testing.assert_allclose(np.abs(p), np.abs(PCA(2).fit_transform(f)), atol=1e-9)
    np.testing.assert_array_equal(p, project(f, "pca", random_state=0))


def test_one_dimensional_and_tiny_inputs_still_give_two_columns():
    assert project(np.arange(10.0)[:, None], "pca").shape == (10, 2)
    assert project(np.ones((2, 3)), "pca").shape == (2, 2)


def test_umap_is_seeded_and_keeps_clusters_apart():
    rng = np.random.default_rng(0)
    f = np.concatenate([rng.standard_normal((20, 4)), rng.standard_normal((20, 4)) + 20])
    a = project(f, "umap", random_state=0)
    assert a.shape == (40, 2)
    np.testing.assert_allclose(a, project(f, "umap", random_state=0))
    gap = np.linalg.norm(a[:20].mean(0) - a[20:].mean(0))
    assert gap > 3 * max(a[:20].std(0).max(), a[20:].std(0).max())


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="pca, umap"):
        project(np.zeros((5, 2)), "tsne")
