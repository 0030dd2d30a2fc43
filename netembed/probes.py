"""Probes: how well does a description of the models (embeddings, gradients, weights...) tell their functions apart?

Every probe is trained on the training seeds and scored on the held-out seeds, so a
high score means models the probe has never seen land with their function's other
seeds. Features are standardised on the training seeds first (scikit-learn Pipelines).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import adjusted_rand_score, confusion_matrix, normalized_mutual_info_score, r2_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

KNN_NEIGHBOURS = 5


def _clean(features: np.ndarray) -> np.ndarray:
    """(n, d) float64 with non-finite entries zeroed (a diverged model must not crash a probe)."""
    f = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    return np.where(np.isfinite(f), f, 0.0)


def linear_probe(features, labels, is_train, random_state=0):
    """Logistic regression on the training seeds -> (accuracy, predictions) on the held-out seeds."""
    f, y, tr = _clean(features), np.asarray(labels), np.asarray(is_train, dtype=bool)
    if len(np.unique(y[tr])) < 2:  # one class: the only possible answer
        pred = np.full((~tr).sum(), y[tr][0] if tr.any() else 0)
        return float((pred == y[~tr]).mean()), pred
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=10.0, max_iter=3000, random_state=random_state))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(f[tr], y[tr])
    pred = clf.predict(f[~tr])
    return float((pred == y[~tr]).mean()), pred


def knn_accuracy(features, labels, is_train) -> float:
    f, y, tr = _clean(features), np.asarray(labels), np.asarray(is_train, dtype=bool)
    k = min(KNN_NEIGHBOURS, int(tr.sum()))
    clf = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=k)).fit(f[tr], y[tr])
    return float(clf.score(f[~tr], y[~tr]))


def clustering_scores(features, labels, random_state=0) -> tuple[float, float]:
    """k-means with as many clusters as functions, on every model -> (ARI, NMI) against the true functions."""
    f, y = _clean(features), np.asarray(labels)
    k = len(np.unique(y))
    if k < 2 or len(f) <= k:
        return float("nan"), float("nan")
    f = StandardScaler().fit_transform(f)
    clusters = KMeans(n_clusters=k, n_init=4, random_state=random_state).fit_predict(f)
    return float(adjusted_rand_score(y, clusters)), float(normalized_mutual_info_score(y, clusters))


def coefficient_r2(features, coefficients, is_train, alpha=1e-3) -> float:
    """Ridge regression from features to the target polynomial's coefficients; R^2 on the held-out seeds."""
    f, c, tr = _clean(features), np.asarray(coefficients, dtype=np.float64), np.asarray(is_train, dtype=bool)
    reg = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(f[tr], c[tr])
    keep = c[~tr].std(0) > 1e-12  # constant columns (e.g. unused top degrees) have no R^2
    if not keep.any():
        return float("nan")
    return float(r2_score(c[~tr][:, keep], reg.predict(f[~tr])[:, keep]))


def probe_all(features, labels, is_train, random_state=0, coefficients=None) -> dict:
    """Every probe on one description of the models: features (n, d), labels (n,), is_train (n,) bool.

    coefficients (n, D+1), if given, are each model's target coefficients for the
    regression probe. The confusion matrix is rows = true function, columns = predicted,
    on the held-out seeds.
    """
    labels = np.asarray(labels)
    is_train = np.asarray(is_train, dtype=bool)
    if is_train.all() or not is_train.any():
        raise ValueError("probe_all needs models on both sides of the split")
    acc, pred = linear_probe(features, labels, is_train, random_state)
    ari, nmi = clustering_scores(features, labels, random_state)
    classes = np.unique(labels)
    out = {
        "linear_accuracy": acc,
        "knn_accuracy": knn_accuracy(features, labels, is_train),
        "kmeans_ari": ari,
        "nmi": nmi,
        "chance": float(1.0 / len(classes)),
        "confusion": confusion_matrix(labels[~is_train], pred, labels=classes).tolist(),
    }
    if coefficients is not None:
        out["coefficient_r2"] = coefficient_r2(features, coefficients, is_train)
    return out


def nearest_models(features: np.ndarray, i: int, n: int = 5) -> np.ndarray:
    """The n models closest to model i in embedding space (Euclidean), nearest first, i excluded."""
    d = np.linalg.norm(np.asarray(features) - np.asarray(features)[i], axis=1)
    d[i] = np.inf
    return np.argsort(d, kind="stable")[:n]
