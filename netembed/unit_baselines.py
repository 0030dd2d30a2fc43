"""Baseline descriptions of hidden units, and how well each recovers the planted modules.

Descriptions (each (n_units, features), rows in units.py's layer-major unit order):
    incoming_weights   the unit's column of its layer's w and its bias: (fan_in + 1,). fan_in
                       differs between layers (64 pixels, then the previous layer's width), so this
                       one is only scored within a layer
    incoming_magnitudes  the same with absolute values: *which* inputs a unit listens to. With
                       random signs, two columns on the same inputs are no closer in Euclidean
                       distance than two on disjoint inputs; their magnitudes are. (Connectivity,
                       as in weight-graph clustering; per layer only, like incoming_weights)
    outgoing_magnitudes  the absolute weights FROM the unit to the next layer (the next hidden
                       layer, or the outputs for the last): which units listen to it (per layer only)
    wiring             the weight magnitudes the cloze "previous_layer" description reads through the
                       function, each row scaled to unit length: layer 0 by its outgoing |w| to layer 1,
                       layers >= 1 by their incoming |w| (per layer only; the exact counterpart of cloze)
    activation_stats   over the training digits: mean, std, fraction active, percentiles
                       (PERCENTILES) of the unit's post-activation
    activations        the unit's post-activation at fixed digits (n_points,)
    gradients          d unit / d x at the same fixed digits, flattened (n_points * 64,)
    gradients_pca      those gradients on their top `pca_dim` principal components (fitted on the
                       training units): a linear, unlearned embedding the size of a cloze bottleneck

Scores (probes.py's, on every description): k-means with as many clusters as modules, NMI and ARI
against the planted modules on all units of the scope; a logistic-regression probe for the
module trained on the training units, accuracy on the held-out units. Scopes: each hidden
layer alone ("layer0", "layer1", ...) and all hidden units together ("all", where the
description has one width across layers).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA

from .digits import DigitsNet
from .probes import clustering_scores, linear_probe
from .units import unit_gradients, unit_layers, unit_values

PERCENTILES = (10, 25, 50, 75, 90)
DESCRIPTIONS = ("incoming_weights", "incoming_magnitudes", "outgoing_magnitudes", "wiring", "activation_stats", "activations", "gradients",
                "gradients_pca")  # fmt: skip


def incoming_weights(net: DigitsNet) -> list[np.ndarray]:
    """Per hidden layer, (width, fan_in + 1): each unit's incoming weights and bias."""
    return [torch.cat([w.T, b[:, None]], 1).double().numpy() for w, b in net.layers[:-1]]


def outgoing_magnitudes(net: DigitsNet) -> list[np.ndarray]:
    """Per hidden layer, (width, fan_out): |w| from each unit to every unit of the next layer (or output)."""
    return [w.abs().double().numpy() for w, _ in net.layers[1:]]


def wiring(net: DigitsNet) -> list[np.ndarray]:
    """Per hidden layer, unit-length rows of |w|: layer 0 outgoing (to layer 1), layers >= 1 incoming."""
    mags = [w.abs().double().numpy() for w, _ in net.layers[1:-1]]  # (width_{l-1}, width_l) for l >= 1
    rows = [mags[0]] + [m.T for m in mags]
    return [r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-300) for r in rows]


def activation_stats(net: DigitsNet, x: torch.Tensor) -> np.ndarray:
    """(n_units, 3 + len(PERCENTILES)): mean, std, fraction active, percentiles over the digits x (n, 64)."""
    v = unit_values(net, x).double().numpy()  # (n_units, n)
    pct = np.percentile(v, PERCENTILES, axis=1).T  # (n_units, len(PERCENTILES))
    return np.column_stack([v.mean(1), v.std(1), (v > 0).mean(1), pct])


def baseline_features(net: DigitsNet, x_stats: torch.Tensor, x_fixed: torch.Tensor, is_train: np.ndarray,
                      pca_dim: int = 4) -> dict[str, np.ndarray | list[np.ndarray]]:  # fmt: skip
    """Every description of every unit: {name: (n_units, features)}, incoming_weights a list per layer.

    x_stats (n, 64): digits for the activation statistics; x_fixed (n_points, 64): the fixed digits
    for activations and gradients; is_train (n_units,) the units PCA is fitted on.
    """
    grads = unit_gradients(net, x_fixed).double().numpy()  # (n_units, n_points, 64)
    flat = grads.reshape(len(grads), -1)
    k = min(pca_dim, int(np.sum(is_train)), flat.shape[1])
    return {
        "incoming_weights": incoming_weights(net),
        "incoming_magnitudes": [np.abs(w) for w in incoming_weights(net)],
        "outgoing_magnitudes": outgoing_magnitudes(net),
        **({"wiring": wiring(net)} if len(net.widths) > 1 else {}),
        "activation_stats": activation_stats(net, x_stats),
        "activations": unit_values(net, x_fixed).double().numpy(),
        "gradients": flat,
        "gradients_pca": PCA(k, random_state=0).fit(flat[is_train]).transform(flat),
    }


def module_scores(features: np.ndarray, modules: np.ndarray, is_train: np.ndarray, random_state: int = 0) -> dict:
    """One description of some units -> {nmi, ari, probe_accuracy} against their planted modules."""
    ari, nmi = clustering_scores(features, modules, random_state)
    acc, _ = linear_probe(features, modules, is_train, random_state)
    return {"nmi": nmi, "ari": ari, "probe_accuracy": acc}


def score_descriptions(net: DigitsNet, features: dict, modules: np.ndarray, is_train: np.ndarray,
                       random_state: int = 0) -> dict[str, dict[str, dict]]:  # fmt: skip
    """{description: {scope: {nmi, ari, probe_accuracy}}} with scopes layer0.. and all."""
    layers = unit_layers(net)
    out = {}
    for name, f in features.items():
        per_layer = f if isinstance(f, list) else [f[layers == i] for i in range(len(net.widths))]
        scores = {}
        for i, fi in enumerate(per_layer):
            here = layers == i
            scores[f"layer{i}"] = module_scores(fi, modules[here], is_train[here], random_state)
        if not isinstance(f, list):
            scores["all"] = module_scores(f, modules, is_train, random_state)
        out[name] = scores
    return out
