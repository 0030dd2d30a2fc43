"""Linear regions of piecewise-linear MLPs with d inputs: activation patterns, exact gradients, region masks.

A ReLU (or leaky-ReLU) MLP is affine wherever every hidden unit keeps its sign. A point's
*activation pattern* (which units are on) names its linear region, and the network's gradient
there is one constant vector: the product of the weight matrices with each layer's off units
gated (0 for relu, 0.01 for leaky relu), the seed's "unique gradients".

Layers are stored as the zoo stores them, stacked over models: a list of (w (n_models, fan_in,
fan_out), b (n_models, 1, fan_out)), torch tensors or numpy arrays, the last layer's fan_out 1.
Everything here runs in float64 numpy on a float64 copy of the weights (float32 -> float64 is
exact), so patterns are those of the exact network, not of a float32 forward pass.

Convention at a kink: a unit is on iff its pre-activation z > 0, as torch's relu / leaky_relu
backward passes use; a point exactly on a boundary gets the "off" side.

The exact 2D map of one model's regions, as polygons from its weights, is region_map.py.
"""

from __future__ import annotations

import numpy as np
import torch

from .config import PIECEWISE_LINEAR

LEAKY_SLOPE = 0.01  # torch.nn.functional.leaky_relu's default negative slope


class NotPiecewiseLinear(ValueError):
    """Smooth activations (tanh, gelu) have no linear regions."""


def check_piecewise_linear(activation: str) -> None:
    if activation not in PIECEWISE_LINEAR:
        raise NotPiecewiseLinear(f"activation '{activation}' is smooth: it has no linear regions; "
                                 f"use one of {', '.join(PIECEWISE_LINEAR)}")  # fmt: skip


def float64_layers(layers) -> list[tuple[np.ndarray, np.ndarray]]:
    """Numpy float64 copies of stacked layers (torch or numpy) -> [(w (n, i, o), b (n, 1, o))]."""
    out = []
    for w, b in layers:
        w, b = (t.detach().cpu().double().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, np.float64) for t in (w, b))
        if w.ndim != 3 or b.ndim != 3 or b.shape[1] != 1 or w.shape[::2] != b.shape[::2]:
            raise ValueError(f"layers must be stacked (w (n, fan_in, fan_out), b (n, 1, fan_out)); got {w.shape} and {b.shape}")
        out.append((w, b))
    return out


def _gate(z: np.ndarray, activation: str) -> np.ndarray:
    """The activation's slope at pre-activations z: 1 where z > 0, else 0 (relu) or 0.01 (leaky)."""
    return np.where(z > 0, 1.0, 0.0 if activation == "relu" else LEAKY_SLOPE)


def _as_points(x, n_models: int, d: int) -> np.ndarray:
    """x (n_points, d) shared by all models, or (n_models, n_points, d) -> (n_models or 1, n_points, d)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != d or x.shape[0] not in (1, n_models):
        raise ValueError(f"inputs must be (n_points, {d}) or ({n_models}, n_points, {d}); got shape {x.shape}")
    return x


# ---------------------------------------------------------------- sampled regions (any d)


def forward(layers, x, activation: str) -> np.ndarray:
    """Outputs in float64: x (n_points, d) or (n_models, n_points, d) -> (n_models, n_points)."""
    layers = float64_layers(layers)
    h = _as_points(x, len(layers[0][0]), layers[0][0].shape[1])
    for k, (w, b) in enumerate(layers):
        z = h @ w + b  # (n, P, fan_out)
        h = z * _gate(z, activation) if k < len(layers) - 1 else z
    return h[..., 0]


def activation_patterns(layers, x, activation: str) -> np.ndarray:
    """Which hidden units are on (z > 0) at each point: x (P, d) or (n, P, d) -> (n, P, n_hidden) bool.

    Hidden units are listed layer by layer, in each layer's column order.
    """
    check_piecewise_linear(activation)
    layers = float64_layers(layers)
    h = _as_points(x, len(layers[0][0]), layers[0][0].shape[1])
    on = []
    for w, b in layers[:-1]:
        z = h @ w + b  # (n, P, width)
        on.append(z > 0)
        h = z * _gate(z, activation)
    return np.concatenate(on, -1)  # the first layer's product already broadcast x over the models


def boundary_distance(layers, x, activation: str) -> np.ndarray:
    """A lower bound on each point's distance to the edge of its linear region: x (P, d) or (n, P, d) -> (n, P).

    Every facet of a region lies on the zero set of some unit's pre-activation z_j, which is
    affine on the region, so the distance to the region's edge is at least min_j |z_j| / |grad z_j|
    (the distance to the nearest such hyperplane). Points where this is tiny are the ones whose
    region a float computation may not decide; a unit constant on the region (grad z_j = 0) never
    bounds it.
    """
    check_piecewise_linear(activation)
    layers = float64_layers(layers)
    h = _as_points(x, len(layers[0][0]), layers[0][0].shape[1])
    n, (m, p, d) = len(layers[0][0]), h.shape
    jac = np.broadcast_to(np.eye(d), (m, p, d, d))  # dh/dx (n or 1, P, d, fan_in)
    nearest = np.full((n, p), np.inf)
    for w, b in layers[:-1]:
        z = h @ w + b  # (n, P, width)
        dz = (jac.reshape(jac.shape[0], p * d, jac.shape[-1]) @ w).reshape(n, p, d, w.shape[-1])  # one matmul per model
        norm = np.sqrt(np.einsum("npdw,npdw->npw", dz, dz))
        dist = np.where(norm > 0, np.abs(z) / np.where(norm > 0, norm, 1.0), np.inf)
        nearest = np.minimum(nearest, dist.min(-1))
        gate = _gate(z, activation)
        h, jac = z * gate, dz * gate[:, :, None, :]
    return nearest


def region_ids(patterns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A compact id per distinct pattern of each model, numbered in order of first appearance.

    patterns (n, P, H) bool -> ids (n, P) int64 in [0, n_regions[m]) and n_regions (n,).
    Two points of a model share an id iff their patterns are equal.
    """
    n, p, _ = patterns.shape
    packed = np.packbits(patterns, axis=-1)  # (n, P, ceil(H / 8)) bytes: rows compare as bytes
    ids = np.empty((n, p), dtype=np.int64)
    counts = np.empty(n, dtype=np.int64)
    for m in range(n):
        _, first, inverse = np.unique(packed[m], axis=0, return_index=True, return_inverse=True)
        order = np.argsort(np.argsort(first))  # np.unique sorts patterns; renumber by first appearance
        ids[m] = order[inverse.reshape(-1)]
        counts[m] = len(first)
    return ids, counts


def region_representatives(ids: np.ndarray, n_regions: np.ndarray) -> np.ndarray:
    """One point index per region: ids (n, P) -> (n, R) int64, R = max regions; padding holds -1."""
    rep = np.full((len(ids), int(n_regions.max(initial=0))), -1, dtype=np.int64)
    for m, row in enumerate(ids):
        present, first = np.unique(row, return_index=True)  # the first point of each region
        rep[m, present] = first
    return rep


def pattern_affine(layers, patterns: np.ndarray, activation: str) -> tuple[np.ndarray, np.ndarray]:
    """The affine map y = x . gradient + offset that each pattern fixes, exactly, in float64.

    patterns (n, R, n_hidden) bool -> gradients (n, R, d), offsets (n, R). The gradient is the
    product of the weight matrices with off units gated, computed back to front (one
    vector-matrix product per layer); the offset is the gated network's output at x = 0.
    """
    check_piecewise_linear(activation)
    layers = float64_layers(layers)
    widths = [w.shape[2] for w, _ in layers[:-1]]
    if patterns.shape[-1] != sum(widths):
        raise ValueError(f"patterns have {patterns.shape[-1]} units; the layers have {sum(widths)} hidden units")
    off = 0.0 if activation == "relu" else LEAKY_SLOPE
    gates = np.split(np.where(patterns, 1.0, off), np.cumsum(widths)[:-1], axis=-1)  # per layer (n, R, width)
    offset = np.broadcast_to(layers[0][1], gates[0].shape)  # pre-activations at x = 0: (n, R, width)
    for (w, b), gate in zip(layers[1:], gates):
        offset = (offset * gate) @ w + b
    grad = np.broadcast_to(layers[-1][0][:, None, :, 0], gates[-1].shape)  # dy/dh of the last hidden layer
    for (w, _), gate in zip(layers[-2::-1], gates[::-1]):
        grad = (grad * gate) @ np.swapaxes(w, 1, 2)  # (n, R, fan_in)
    return grad, offset[..., 0]


def point_gradients(layers, x, activation: str) -> np.ndarray:
    """Exact dy/dx at each point in float64: x (P, d) or (n, P, d) -> (n, P, d)."""
    return pattern_affine(layers, activation_patterns(layers, x, activation), activation)[0]


def region_gradients(layers, x, activation: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The "unique gradients": one exact gradient per region the points x hit.

    x (P, d) or (n, P, d) -> gradients (n, R, d) NaN-padded past each model's n_regions,
    ids (n, P) (region of each point, see region_ids) and n_regions (n,).
    """
    patterns = activation_patterns(layers, x, activation)
    ids, n_regions = region_ids(patterns)
    rep = region_representatives(ids, n_regions)
    picked = np.take_along_axis(patterns, np.maximum(rep, 0)[..., None], 1)  # (n, R, H)
    grads, _ = pattern_affine(layers, picked, activation)
    return np.where(rep[..., None] >= 0, grads, np.nan), ids, n_regions


def masked_by_region(ids, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """Hide round(ratio * present) of the regions that hold points (at least one hidden, one shown).

    ids (B, N) non-negative region ids (torch or numpy, e.g. from region_ids) -> masked (B, N) bool
    torch tensor; every point of a chosen region is hidden, so a masked region is hidden whole: no
    shown point lies in it. The d-input analogue of cloze.make_mask over line-sections.
    """
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"mask ratio must lie in [0, 1]; got {ratio}")
    ids = torch.as_tensor(ids).long()
    if ids.dim() != 2 or (ids.numel() and int(ids.min()) < 0):
        raise ValueError(f"region ids must be non-negative ints of shape (B, N); got shape {tuple(ids.shape)}")
    return mask_whole_groups(ids, ratio, generator)


def mask_whole_groups(ids: torch.Tensor, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """Hide round(ratio * present) of the groups (regions, line-sections) that hold points, at least one
    hidden and one shown: ids (B, N) non-negative longs -> masked (B, N) bool, every point of a chosen group
    hidden. The one masking rule of the cloze task (cloze_task.make_mask and masked_by_region both use it)."""
    b, _ = ids.shape
    r = int(ids.max()) + 1 if ids.numel() else 1
    present = torch.zeros(b, r, dtype=torch.bool, device=ids.device)
    present.scatter_(1, ids, True)
    scores = torch.rand(b, r, generator=generator).to(ids.device)
    scores = torch.where(present, scores, torch.full_like(scores, 2.0))  # absent groups rank last
    rank = scores.argsort(1).argsort(1)  # (B, R) random order of the present groups
    n_present = present.sum(1, keepdim=True)
    n_mask = (ratio * n_present).round().long().clamp(min=1)
    n_mask = torch.minimum(n_mask, (n_present - 1).clamp(min=1))  # a model with one group is hidden whole
    return (rank < n_mask).gather(1, ids)
