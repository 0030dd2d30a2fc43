"""Protocols beyond held-out seeds: held-out functions, parameter regression, cross-architecture retrieval.

A protocol is a split plus the scores that fit it. Data follow scikit-learn: features
(n_models, n_features), one row per model; `random_state` seeds every random choice.

Held-out functions: the functions are split into seen and unseen (`split_functions`); the
embedder trains on the seen functions' models only (`train_on_seen`: the training seeds of
those functions; their held-out seeds give its validation R^2), then every model is embedded.
On the unseen functions' models:
    retrieval@k   share of a model's k nearest neighbours (among unseen-function models)
                  that fit the same function
    NMI           k-means with one cluster per unseen function, against the true functions
    few-shot      logistic regression trained on `shots` seeds per unseen function, scored
                  on the other seeds of those functions (averaged over FEW_SHOT_DRAWS draws)
Parameter regression: ridge and kNN regression from a description to the members'
continuous parameters, fitted on the seen functions' models, R^2 and MSE per parameter on
the unseen functions' models (a parameter constant there, e.g. the sines' shared phase,
has no R^2: "n/a").
Cross-architecture retrieval: `retrieval_at_k(..., groups=architecture)` only counts
neighbours from other architectures (the mixed-architecture zoo is a later step).

Every description is scaled with the statistics of the seen functions' models (the models a
description may be fitted on), so unseen functions never shape a description. Two scalings
(`scale`): "global" (default) centres and divides by ONE overall standard deviation, keeping
the description's own geometry (its neighbours, its clusters); "feature" standardises every
feature (the held-out-seed probes' convention), which lifts a description's weakest,
noisiest directions (e.g. the trailing components of a PCA) to the weight of its strongest.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import mean_squared_error, normalized_mutual_info_score, r2_score
from sklearn.neighbors import KNeighborsRegressor, NearestNeighbors
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler

from .baselines import evaluation_inputs, flat_weights, grid_gradients, weight_stats
from .cloze_training import train_embedder
from .config import ClozeConfig
from .embedding import embed
from .zoo import Zoo

RETRIEVAL_K = 5
FEW_SHOT_DRAWS = 5  # few-shot probe: draws of which seeds form the training shots, averaged
KNN_REGRESSION_NEIGHBOURS = 5
RIDGE_ALPHA = 1e-3
EMBED_SEED = 12345  # the pipeline's input draw for embedding every model (pipeline.EMBED_SEED)


@dataclass(frozen=True)
class FunctionSplit:
    seen: np.ndarray  # (n_seen,) function ids the embedder may train on
    unseen: np.ndarray  # (n_unseen,) function ids it never sees


def split_functions(n_functions: int, n_unseen: int, random_state: int = 0) -> FunctionSplit:
    """A seeded random split of the functions 0..n_functions-1 into seen and unseen."""
    if not 1 <= n_unseen < n_functions:
        raise ValueError(f"n_unseen must be in 1..{n_functions - 1}, got {n_unseen}")
    order = np.random.default_rng(random_state).permutation(n_functions)
    return FunctionSplit(seen=np.sort(order[n_unseen:]), unseen=np.sort(order[:n_unseen]))


def models_of(zoo: Zoo, functions) -> np.ndarray:
    """(n_selected,) ids of the models that fit any of `functions`, in zoo order."""
    return np.flatnonzero(np.isin(zoo.task_ids, np.asarray(functions)))


def train_on_seen(zoo: Zoo, split: FunctionSplit, config: ClozeConfig, progress=None, device="cpu"):
    """An embedder trained on the seen functions' models only; unseen ones are not even passed in."""
    return train_embedder(zoo.select(models_of(zoo, split.seen)), config, progress=progress, device=device)


# ---------------------------------------------------------------- scores


def _clean(features) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    return np.where(np.isfinite(f), f, 0.0)


SCALES = ("global", "feature")


def standardise(features, fit_rows, scale: str = "global") -> np.ndarray:
    """(n, d) features centred on the rows `fit_rows` (bool (n,) or ids) and divided by their std:
    one overall std ("global") or each feature's own ("feature")."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    f = _clean(features)
    if scale == "feature":
        return StandardScaler().fit(f[fit_rows]).transform(f)
    centred = f - f[fit_rows].mean(0)
    return centred / max(float(np.sqrt((centred[fit_rows] ** 2).sum(1).mean())), 1e-12)


def retrieval_at_k(features, labels, k: int = RETRIEVAL_K, groups=None) -> float:
    """Mean share of each model's k nearest neighbours (Euclidean, itself excluded) with its label.

    groups (n,), if given, e.g. each model's architecture: only neighbours from another
    group count (cross-architecture retrieval).
    """
    f, y = _clean(features), np.asarray(labels)
    if groups is None:
        nn = NearestNeighbors(n_neighbors=k + 1).fit(f)
        idx = nn.kneighbors(f, return_distance=False)[:, 1:]  # (n, k): drop the model itself
        return float((y[idx] == y[:, None]).mean())
    groups = np.asarray(groups)
    shares = []
    for g in np.unique(groups):
        query, ref = groups == g, groups != g
        nn = NearestNeighbors(n_neighbors=k).fit(f[ref])
        idx = nn.kneighbors(f[query], return_distance=False)
        shares.append(y[ref][idx] == y[query][:, None])
    return float(np.concatenate(shares).mean())


def kmeans_nmi(features, labels, random_state: int = 0) -> float:
    """k-means with one cluster per label on these rows -> NMI against the labels."""
    f, y = _clean(features), np.asarray(labels)
    k = len(np.unique(y))
    clusters = KMeans(n_clusters=k, n_init=4, random_state=random_state).fit_predict(f)
    return float(normalized_mutual_info_score(y, clusters))


def few_shot_accuracy(features, labels, shots: int, random_state: int = 0, draws: int = FEW_SHOT_DRAWS,
                      scale: str = "feature") -> float:  # fmt: skip
    """Logistic regression on `shots` random models per label, accuracy on the rest; mean over `draws` draws.

    The features are scaled on the training shots (`scale`, see standardise). None (n/a) when a
    label has no more than `shots` models."""
    f, y = _clean(features), np.asarray(labels)
    if np.unique(y, return_counts=True)[1].min() <= shots:  # no model left to score for some label
        return None
    rng = np.random.default_rng(random_state)
    scores = []
    for _ in range(draws):
        train = np.zeros(len(y), dtype=bool)
        for label in np.unique(y):
            rows = np.flatnonzero(y == label)
            train[rng.choice(rows, shots, replace=False)] = True
        fs = standardise(f, train, scale)
        clf = LogisticRegression(C=10.0, max_iter=3000, random_state=random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.filterwarnings("ignore", message="The number of unique classes")  # one shot per class is the point
            clf.fit(fs[train], y[train])
        scores.append(float((clf.predict(fs[~train]) == y[~train]).mean()))
    return float(np.mean(scores))


def held_out_function_scores(features, labels, is_seen, random_state: int = 0, k: int = RETRIEVAL_K,
                             scale: str = "global") -> dict:  # fmt: skip
    """Retrieval@k, k-means NMI, 1- and 5-shot accuracy on the unseen-function rows (scaled on seen rows)."""
    is_seen = np.asarray(is_seen, dtype=bool)
    f = standardise(features, is_seen, scale)[~is_seen]
    y = np.asarray(labels)[~is_seen]
    return {
        f"retrieval@{k}": retrieval_at_k(f, y, k),
        "nmi": kmeans_nmi(f, y, random_state),
        "1-shot": few_shot_accuracy(f, y, 1, random_state, scale=scale),
        "5-shot": few_shot_accuracy(f, y, 5, random_state, scale=scale),
    }


def parameter_regression(features, parameters, is_seen, names, k: int = KNN_REGRESSION_NEIGHBOURS,
                         scale: str = "global") -> dict:  # fmt: skip
    """Ridge and kNN regression fitted on seen rows -> {name: {linear_r2, linear_mse, knn_r2, knn_mse}} on unseen rows.

    A parameter constant on the unseen rows has no R^2 (None, and its MSE is None too).
    Features are scaled on the seen rows (`scale`); parameters are regressed in their own units.
    """
    is_seen = np.asarray(is_seen, dtype=bool)
    f = standardise(features, is_seen, scale)
    p = np.asarray(parameters, dtype=np.float64)
    predictions = {
        "linear": Ridge(alpha=RIDGE_ALPHA).fit(f[is_seen], p[is_seen]).predict(f[~is_seen]),
        "knn": KNeighborsRegressor(n_neighbors=min(k, int(is_seen.sum()))).fit(f[is_seen], p[is_seen]).predict(f[~is_seen]),
    }
    return _regression_scores(predictions, p[~is_seen], names)


def _regression_scores(predictions: dict, truth: np.ndarray, names) -> dict:
    out = {}
    for j, name in enumerate(names):
        row = {}
        for method, pred in predictions.items():
            varies = truth[:, j].std() > 1e-12
            row[f"{method}_r2"] = float(r2_score(truth[:, j], pred[:, j])) if varies else None
            row[f"{method}_mse"] = float(mean_squared_error(truth[:, j], pred[:, j])) if varies else None
        out[name] = row
    return out


# ---------------------------------------------------------------- descriptions for the held-out-function protocol


def descriptions(zoo: Zoo, embeddings: np.ndarray, is_seen: np.ndarray, random_state: int = 0) -> dict:
    """Every description of every model: {name: (n, d) features, or a string saying why it does not apply}.

    cloze (the given embeddings), raw_gradients and outputs on the fixed grid, raw_gradients_pca
    (the grid gradients' top components, as many as the embedding has dimensions, fitted on the
    seen functions' models), weights, weight_stats, and supervised: the hidden layer of an MLP
    classifier trained WITH the seen functions' labels (its features carried to unseen functions).
    """
    x = evaluation_inputs(zoo)
    g = _clean(grid_gradients(zoo))
    pca_dim = min(embeddings.shape[1], int(is_seen.sum()), g.shape[1])
    out = {
        "cloze": embeddings,
        "raw_gradients": g,
        "outputs": zoo(x),
        "raw_gradients_pca": PCA(pca_dim, random_state=random_state).fit(g[is_seen]).transform(g),
        "weights": flat_weights(zoo),
        "weight_stats": weight_stats(zoo),
    }
    scaler = StandardScaler().fit(g[is_seen])
    clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(g[is_seen]), zoo.task_ids[is_seen])
    out["supervised"] = np.maximum(scaler.transform(g) @ clf.coefs_[0] + clf.intercepts_[0], 0.0)  # (n, 64)
    return out


def supervised_regression(zoo: Zoo, parameters, is_seen, names, random_state: int = 0) -> dict:
    """The regression ceiling: an MLP regressor trained WITH the seen functions' parameters on grid gradients."""
    g = _clean(grid_gradients(zoo))
    f = standardise(g, is_seen, "feature")
    p = np.asarray(parameters, dtype=np.float64)
    varies = p[is_seen].std(0) > 1e-12
    pred = np.repeat(p[is_seen].mean(0, keepdims=True), int((~is_seen).sum()), 0)
    target = StandardScaler().fit(p[is_seen][:, varies])
    reg = MLPRegressor(hidden_layer_sizes=(128,), max_iter=1000, random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(f[is_seen], target.transform(p[is_seen][:, varies]))
    pred[:, varies] = target.inverse_transform(reg.predict(f[~is_seen]).reshape(int((~is_seen).sum()), -1))
    return _regression_scores({"mlp": pred}, p[~is_seen], names)


def held_out_function_study(zoo: Zoo, family, config: ClozeConfig, split: FunctionSplit, random_state: int = 0,
                            progress=None, embeddings=None) -> dict:  # fmt: skip
    """The whole protocol for one embedder seed: train on seen, score every description on unseen.

    Returns {"functions": {description: scores}, "functions_feature_scaled": the same with every
    feature standardised, "regression": {description: per-parameter scores}, "cloze_r2": the
    embedder's validation R^2 on the seen functions' held-out seeds, "embeddings"}.
    `embeddings` (n, d), if given, are a stored result of this very training (nothing is trained).
    """
    cloze_r2 = None
    if embeddings is None:
        embedder = train_on_seen(zoo, split, config, progress=progress)
        embeddings, cloze_r2 = embed(embedder, zoo, seed=EMBED_SEED), embedder.cloze_r2_
    is_seen = np.isin(zoo.task_ids, split.seen)
    params = family.parameters[zoo.task_ids]
    out = {"functions": {}, "functions_feature_scaled": {}, "regression": {}, "cloze_r2": cloze_r2}
    for name, f in descriptions(zoo, embeddings, is_seen, random_state).items():
        out["functions"][name] = held_out_function_scores(f, zoo.task_ids, is_seen, random_state)
        out["functions_feature_scaled"][name] = held_out_function_scores(f, zoo.task_ids, is_seen, random_state,
                                                                         scale="feature")  # fmt: skip
        out["regression"][name] = parameter_regression(f, params, is_seen, family.parameter_names)
    out["regression"]["supervised_mlp"] = supervised_regression(zoo, params, is_seen, family.parameter_names,
                                                                random_state)  # fmt: skip
    out["embeddings"] = embeddings
    return out


# ---------------------------------------------------------------- held-out architectures (scores only; the mixed zoo comes later)

WHY_NOT_ACROSS_ARCHITECTURES = {
    "weights": "n/a: flattened weights have another length and meaning for every width and depth",
    "weight_stats": "n/a across depths: one block of statistics per layer, so other depths give other columns",
}


def cross_architecture_retrieval(descriptions: dict, labels, architectures, k: int = RETRIEVAL_K) -> dict:
    """{name: retrieval@k counting only neighbours of another architecture, or the string saying why n/a}.

    descriptions: {name: (n, d) features, or a string (a description that cannot apply)};
    architectures (n,): any label per model, e.g. "1-32x2-1 relu". Features are standardised
    on all models (no function is held out here: the architecture is), with one overall std.
    """
    out = {}
    for name, f in descriptions.items():
        out[name] = f if isinstance(f, str) else retrieval_at_k(standardise(f, slice(None)), labels, k, groups=architectures)
    return out
