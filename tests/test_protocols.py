"""Protocols against plain scikit-learn on tiny data, and the held-out-function guarantee."""

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import normalized_mutual_info_score, r2_score
from sklearn.neighbors import KNeighborsRegressor
from sklearn.preprocessing import StandardScaler

from netembed.config import ClozeConfig
from netembed.protocols import (
    few_shot_accuracy,
    held_out_function_scores,
    kmeans_nmi,
    models_of,
    parameter_regression,
    retrieval_at_k,
    split_functions,
    train_on_seen,
)
from netembed.zoo import Zoo

SMALL = dict(d_model=16, n_heads=2, n_inputs=16, models_per_batch=4)


def blobs(n_labels=4, per_label=6, dim=3, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (n_labels, dim))
    y = np.repeat(np.arange(n_labels), per_label)
    return centres[y] + rng.normal(0, spread, (len(y), dim)), y


def test_split_is_seeded_disjoint_and_complete():
    a, b = split_functions(10, 3, random_state=1), split_functions(10, 3, random_state=1)
    np.testing.assert_array_equal(a.unseen, b.unseen)
    assert len(a.unseen) == 3 and not set(a.seen) & set(a.unseen)
    assert sorted([*a.seen, *a.unseen]) == list(range(10))
    assert not np.array_equal(a.unseen, split_functions(10, 3, random_state=2).unseen)
    with pytest.raises(ValueError, match="n_unseen"):
        split_functions(4, 4)


@pytest.mark.parametrize("spread", [0.3, 3.0])
def test_retrieval_matches_a_brute_force_loop(spread):
    f, y = blobs(spread=spread)
    d = ((f[:, None] - f[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    k = 3
    expected = np.mean([(y[np.argsort(d[i])[:k]] == y[i]).mean() for i in range(len(y))])
    assert retrieval_at_k(f, y, k) == pytest.approx(expected)


def test_cross_group_retrieval_only_counts_other_groups():
    f, y = blobs(spread=2.0, seed=3)
    groups = np.arange(len(y)) % 3
    d = ((f[:, None] - f[None]) ** 2).sum(-1)
    d[groups[:, None] == groups[None]] = np.inf  # same architecture: never a neighbour
    expected = np.mean([(y[np.argsort(d[i])[:2]] == y[i]).mean() for i in range(len(y))])
    assert retrieval_at_k(f, y, 2, groups=groups) == pytest.approx(expected)


def test_nmi_matches_sklearn():
    f, y = blobs(spread=2.5, seed=4)
    clusters = KMeans(n_clusters=4, n_init=4, random_state=7).fit_predict(f)
    assert kmeans_nmi(f, y, random_state=7) == pytest.approx(normalized_mutual_info_score(y, clusters))


def test_few_shot_matches_sklearn_with_the_same_draw():
    f, y = blobs(spread=2.0, seed=5)
    rng = np.random.default_rng(3)  # the protocol's draw: `shots` rows per label, label by label
    train = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        train[rng.choice(np.flatnonzero(y == label), 2, replace=False)] = True
    scaler = StandardScaler().fit(f[train])
    clf = LogisticRegression(C=10.0, max_iter=3000, random_state=3).fit(scaler.transform(f[train]), y[train])
    expected = (clf.predict(scaler.transform(f[~train])) == y[~train]).mean()
    assert few_shot_accuracy(f, y, 2, random_state=3, draws=1) == pytest.approx(expected)
    assert few_shot_accuracy(*blobs(spread=0.01), 1) == 1.0  # separated points: one shot is enough
    assert few_shot_accuracy(*blobs(per_label=5), 5) is None  # no model left to score: n/a


def test_held_out_function_scores_only_look_at_unseen_rows():
    f, y = blobs(n_labels=6, spread=0.2, seed=6)
    seen = y < 3
    scores = held_out_function_scores(f, y, seen)
    assert set(scores) == {"retrieval@5", "nmi", "1-shot", "5-shot"}
    noisy = f.copy()
    noisy[seen] = np.random.default_rng(0).normal(0, 1, noisy[seen].shape) * f[seen].std(0) + f[seen].mean(0)
    # the seen rows' values only enter through the scaler; the same statistics give the same scores
    scaled = held_out_function_scores(noisy, y, seen)
    assert scores["retrieval@5"] == 1.0 and scaled["retrieval@5"] == 1.0


def test_parameter_regression_matches_sklearn_and_skips_constant_parameters():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(40, 5))
    p = np.stack([f @ rng.normal(size=5) + 0.1 * rng.normal(size=40), np.full(40, 2.0)], 1)  # (40, 2): one constant
    seen = np.arange(40) < 30
    out = parameter_regression(f, p, seen, ("w", "c"), scale="feature")
    fs = StandardScaler().fit(f[seen]).transform(f)
    ridge = Ridge(alpha=1e-3).fit(fs[seen], p[seen]).predict(fs[~seen])
    knn = KNeighborsRegressor(n_neighbors=5).fit(fs[seen], p[seen]).predict(fs[~seen])
    assert out["w"]["linear_r2"] == pytest.approx(r2_score(p[~seen, 0], ridge[:, 0]))
    assert out["w"]["linear_mse"] == pytest.approx(((p[~seen, 0] - ridge[:, 0]) ** 2).mean())
    assert out["w"]["knn_r2"] == pytest.approx(r2_score(p[~seen, 0], knn[:, 0]))
    assert out["w"]["linear_r2"] > 0.9
    assert out["c"] == {"linear_r2": None, "linear_mse": None, "knn_r2": None, "knn_mse": None}


def test_unseen_functions_never_reach_the_embedders_training(tiny_zoo):
    split = split_functions(3, 1, random_state=0)
    unseen = torch.as_tensor(np.isin(tiny_zoo.task_ids, split.unseen))
    layers = [(torch.where(unseen[:, None, None], -3 * w, w), b) for w, b in tiny_zoo.layers]
    changed = Zoo(**{**tiny_zoo.__dict__, "layers": layers})  # other functions on the unseen functions' models
    config = ClozeConfig(steps=6, **SMALL)
    a = train_on_seen(tiny_zoo, split, config)
    b = train_on_seen(changed, split, config)
    c = train_on_seen(tiny_zoo.select(models_of(tiny_zoo, split.seen)), split, config)  # never given them at all
    for other in (b, c):
        np.testing.assert_array_equal(a.loss_curve_, other.loss_curve_)
        np.testing.assert_array_equal(a.r2_curve_, other.r2_curve_)
        for (name, pa), pb in zip(a.state_dict().items(), other.state_dict().values()):
            assert torch.equal(pa, pb), name
    # and the unseen models are really different (the check above is not vacuous)
    assert not torch.equal(layers[-1][0][unseen], tiny_zoo.layers[-1][0][unseen])


def test_cross_architecture_retrieval_passes_reasons_through():
    from netembed.protocols import (
        WHY_NOT_ACROSS_ARCHITECTURES,
        cross_architecture_retrieval,
    )

    f, y = blobs(spread=0.1, seed=8)
    arch = np.arange(len(y)) % 2
    out = cross_architecture_retrieval({"cloze": f, "weights": WHY_NOT_ACROSS_ARCHITECTURES["weights"]}, y, arch, k=2)
    assert out["cloze"] == 1.0 and out["weights"].startswith("n/a")


def test_global_scaling_keeps_the_geometry_and_feature_scaling_does_not():
    from netembed.protocols import standardise

    f, y = blobs(spread=0.5, seed=9)
    f = np.c_[f, np.random.default_rng(1).normal(0, 1e-3, len(y))]  # a weak, noisy extra direction
    seen = np.arange(len(y)) < 12
    g = standardise(f, seen, "global")
    assert np.allclose(g[seen].mean(0), 0) and np.isclose((g[seen] ** 2).sum(1).mean(), 1.0)
    d_raw, d_global = (((a[:, None] - a[None]) ** 2).sum(-1) for a in (f, g))
    np.testing.assert_allclose(d_global / d_global.max(), d_raw / d_raw.max(), atol=1e-12)  # one scale for all
    assert retrieval_at_k(g, y) == retrieval_at_k(f, y)
    np.testing.assert_allclose(standardise(f, seen, "feature")[seen].std(0), 1.0)  # the noise now weighs as much
    assert retrieval_at_k(standardise(f, seen, "feature"), y) < retrieval_at_k(g, y)
    with pytest.raises(ValueError, match="scale"):
        standardise(f, seen, "none")
