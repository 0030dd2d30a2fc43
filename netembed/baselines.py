"""Baselines: the same probes on other descriptions of the same models.

Descriptions (all (n_models, features)):
    raw_gradients  dy/dx on a fixed grid of GRID_SIZE inputs
    outputs        y on the same grid (probing the function directly)
    weights        every weight and bias, flattened
    weight_stats   per layer, for weights and biases: mean, variance and the quantiles
                   0, .25, .5, .75, 1 (as in "Predicting Neural Network Accuracy from Weights")
    raw_gradients_pca  (optional) the grid gradients' top principal components, as many as
                   the cloze bottleneck: is a learned embedding better than a linear one?
The supervised ceiling is a classifier trained WITH the function labels on the training
seeds' gradients (the seed notebook's "02-func-classifier"), scored on held-out seeds.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from .family import Family
from .gradients import input_gradients
from .probes import probe_all
from .zoo import Zoo

GRID_SIZE = 128  # fixed evaluation grid on [-1, 1] for the gradient and output descriptions
QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


def grid(n: int = GRID_SIZE) -> np.ndarray:
    return np.linspace(-1.0, 1.0, n)


def evaluation_inputs(zoo: Zoo, n: int = GRID_SIZE) -> np.ndarray:
    """The fixed inputs the grid descriptions use: the grid (n,) for 1D models, else a fixed sample (n, d)
    of [-1, 1]^d (family_nd.sample_points)."""
    if zoo.input_dim == 1:
        return grid(n)
    from .family_nd import sample_points

    return sample_points(zoo.input_dim, n)


def grid_gradients(zoo: Zoo, n: int = GRID_SIZE) -> np.ndarray:
    """(n_models, n * d) every model's gradients at the evaluation inputs, flattened, float64."""
    return input_gradients(zoo, evaluation_inputs(zoo, n)).astype(np.float64).reshape(zoo.n_models, -1)


def flat_weights(zoo: Zoo) -> np.ndarray:
    """(n, n_params): every weight and bias of each model, layer by layer."""
    parts = [t.detach().cpu().reshape(zoo.n_models, -1) for layer in zoo.layers for t in layer]
    return torch.cat(parts, 1).double().numpy()


def weight_stats(zoo: Zoo) -> np.ndarray:
    """(n, layers * 2 * 7): mean, variance and quantiles of each layer's weights and of its biases."""
    cols = []
    for layer in zoo.layers:
        for t in layer:
            v = t.detach().cpu().double().reshape(zoo.n_models, -1).numpy()
            cols += [v.mean(1), v.var(1)] + [np.quantile(v, q, axis=1) for q in QUANTILES]
    return np.stack(cols, 1)


def baseline_features(zoo: Zoo, family: Family | None = None, pca_dim: int | None = None) -> dict[str, np.ndarray]:
    """Each unsupervised baseline description of every model -> {name: (n, features)}.

    With `pca_dim`, also "raw_gradients_pca": the grid gradients projected on their top
    `pca_dim` principal components (fitted on the training seeds), a linear, unlearned
    embedding of the same size as the cloze bottleneck.
    """
    x = evaluation_inputs(zoo)
    g = grid_gradients(zoo)
    out = {"raw_gradients": g, "outputs": zoo(x), "weights": flat_weights(zoo), "weight_stats": weight_stats(zoo)}
    if pca_dim is not None:
        finite = np.where(np.isfinite(g), g, 0.0)
        k = min(pca_dim, int(zoo.is_train.sum()), g.shape[1])
        out["raw_gradients_pca"] = PCA(k, random_state=0).fit(finite[zoo.is_train]).transform(finite)
    return out


def supervised_features(zoo: Zoo, random_state=0, hidden=64) -> tuple[np.ndarray, float]:
    """Train an MLP classifier on the training seeds' grid gradients WITH the labels.

    Returns its hidden-layer features for every model (n, hidden) and its own accuracy on the
    held-out seeds: the ceiling an unsupervised embedding is measured against.
    """
    g = grid_gradients(zoo)
    g = np.where(np.isfinite(g), g, 0.0)
    tr, y = zoo.is_train, zoo.task_ids
    scaler = StandardScaler().fit(g[tr])
    clf = MLPClassifier((hidden,), max_iter=500, random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(g[tr]), y[tr])
    accuracy = float(clf.score(scaler.transform(g[~tr]), y[~tr]))
    h = np.maximum(scaler.transform(g) @ clf.coefs_[0] + clf.intercepts_[0], 0.0)  # (n, hidden) relu features
    return h, accuracy


def supervised_probe(zoo: Zoo, family: Family | None = None, random_state=0, coefficients=None) -> dict:
    """The supervised ceiling: probes on its learned features, plus the classifier's own accuracy."""
    h, accuracy = supervised_features(zoo, random_state)
    out = probe_all(h, zoo.task_ids, zoo.is_train, random_state, coefficients=coefficients)
    out["classifier_accuracy"] = accuracy
    return out
