import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from netembed.probes import nearest_models, probe_all


def blobs(k=4, m=10, d=3, spread=0.05, seed=0):
    """k well-separated clusters of m points; the first 70% of each cluster's points are 'training seeds'."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d)) * 3
    labels = np.repeat(np.arange(k), m)
    features = centres[labels] + spread * rng.standard_normal((k * m, d))
    is_train = np.tile(np.arange(m) < 7, k)
    return features, labels, is_train


def test_matches_plain_sklearn():
    f, y, tr = blobs(spread=2.0, seed=1)  # overlapping, so the scores are not trivially 1
    out = probe_all(f, y, tr, random_state=0)
    scaler = StandardScaler().fit(f[tr])
    ref = LogisticRegression(C=10.0, max_iter=3000, random_state=0).fit(scaler.transform(f[tr]), y[tr])
    assert out["linear_accuracy"] == pytest.approx(ref.score(scaler.transform(f[~tr]), y[~tr]))
    knn = KNeighborsClassifier(5).fit(scaler.transform(f[tr]), y[tr])
    assert out["knn_accuracy"] == pytest.approx(knn.score(scaler.transform(f[~tr]), y[~tr]))
    conf = np.asarray(out["confusion"])
    assert conf.shape == (4, 4) and conf.sum() == (~tr).sum()
    assert np.trace(conf) / conf.sum() == pytest.approx(out["linear_accuracy"])


def test_separated_clusters_score_perfectly_and_noise_scores_near_chance():
    f, y, tr = blobs()
    out = probe_all(f, y, tr)
    assert out["linear_accuracy"] == out["knn_accuracy"] == 1.0
    assert out["kmeans_ari"] == pytest.approx(1.0) and out["nmi"] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), 60)
    tr = np.tile(np.arange(60) < 40, 5)
    noise = probe_all(rng.standard_normal((300, 4)), y, tr)
    assert noise["chance"] == 0.2
    # noise seeds 0-29 gave linear <= 0.30, kNN <= 0.27, NMI <= 0.03 (chance 0.2): 0.4 and 0.1 leave room
    assert noise["linear_accuracy"] < 0.4 and noise["knn_accuracy"] < 0.4 and noise["nmi"] < 0.1


def test_coefficient_regression():
    f, y, tr = blobs(k=6)
    coeffs = np.random.default_rng(1).standard_normal((6, 4))[y]
    coeffs[:, 3] = 0.0  # an unused top degree: constant, skipped
    exact = probe_all(coeffs[:, :3] @ np.diag([1, 2, 3]), y, tr, coefficients=coeffs)
    assert exact["coefficient_r2"] > 0.999
    assert probe_all(f, y, tr)["linear_accuracy"] == 1.0 and "coefficient_r2" not in probe_all(f, y, tr)


def test_non_finite_features_do_not_crash_and_split_is_required():
    f, y, tr = blobs()
    f[0, 0] = np.nan
    assert probe_all(f, y, tr)["linear_accuracy"] > 0.9
    with pytest.raises(ValueError, match="both sides"):
        probe_all(f, y, np.ones(len(y), bool))


def test_nearest_models_matches_brute_force():
    f = np.random.default_rng(1).standard_normal((30, 4))
    got = nearest_models(f, 7, n=5)
    d = [(np.linalg.norm(f[j] - f[7]), j) for j in range(30) if j != 7]
    assert list(got) == [j for _, j in sorted(d)[:5]]
