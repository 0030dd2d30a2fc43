"""Linear regions of piecewise-linear MLPs with d inputs: activation patterns, exact gradients, 2D region maps.

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

In 2D, `region_map` computes the exact polygons of one model's regions inside [-1, 1]^2 from
its weights, layer by layer (the 2D analogue of gradients.line_sections): within a cell of the
earlier layers' arrangement every unit of the next layer is affine, so its zero set is a line
that splits the (convex) cell in two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .config import PIECEWISE_LINEAR

LEAKY_SLOPE = 0.01  # torch.nn.functional.leaky_relu's default negative slope

# Geometry tolerance, a distance in input units. A unit's line that passes within this of every
# vertex on one side of a cell does not split it: the sliver it would cut off (thinner than the
# tolerance) stays with the cell. It is far above float64 rounding of the line coefficients (products
# of <= 4 weight matrices of width <= a few hundred: relative error ~1e-13 at worst) and far below
# the spacing of any sampled input (1e5 uniform points in [-1, 1]^2 are ~6e-3 apart), so it only
# decides the fate of regions no sample could see. Areas stay exact: nothing is dropped, only unsplit.
GEOMETRY_TOL = 1e-10

SQUARE = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])  # counter-clockwise


class NotPiecewiseLinear(ValueError):
    """Smooth activations (tanh, gelu) have no linear regions."""


def _check_activation(activation: str) -> None:
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
    _check_activation(activation)
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
    _check_activation(activation)
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
    _check_activation(activation)
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


# ---------------------------------------------------------------- exact 2D region map


def polygon_area(vertices: np.ndarray) -> float:
    """Signed area (shoelace), positive for counter-clockwise vertices (k, 2)."""
    x, y = vertices[:, 0], vertices[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def split_polygon(vertices: np.ndarray, a: np.ndarray, c: float, tol: float = GEOMETRY_TOL):
    """Split a convex polygon by the line a . x + c = 0 (one Sutherland-Hodgman step per side).

    vertices (k, 2) counter-clockwise -> (positive part, negative part), either None when the
    line does not cut the polygon by more than tol (a distance). Vertices within tol of the
    line count as on it and go to both parts; edges between strictly opposite vertices get
    the crossing point. Both parts keep the counter-clockwise order.
    """
    s = (vertices @ a + c) / max(float(np.hypot(*a)), 1e-300)  # signed distances (k,)
    side = np.where(s > tol, 1, np.where(s < -tol, -1, 0))
    if not (side > 0).any():
        return None, vertices
    if not (side < 0).any():
        return vertices, None
    nxt = np.roll(np.arange(len(vertices)), -1)
    positive, negative = [], []
    for i, j in zip(range(len(vertices)), nxt):
        if side[i] >= 0:
            positive.append(vertices[i])
        if side[i] <= 0:
            negative.append(vertices[i])
        if side[i] * side[j] < 0:  # a strict crossing inside edge i -> j
            t = s[i] / (s[i] - s[j])
            point = vertices[i] + t * (vertices[j] - vertices[i])
            positive.append(point)
            negative.append(point)
    return np.array(positive), np.array(negative)


@dataclass(frozen=True)
class RegionMap:
    """One 2-input model's linear regions inside [-1, 1]^2: convex cells with their patterns and affine maps."""

    vertices: list[np.ndarray]  # per cell (k, 2), counter-clockwise
    patterns: np.ndarray  # (C, n_hidden) bool, the cell's activation pattern
    gradients: np.ndarray  # (C, 2) the output's gradient on the cell
    offsets: np.ndarray  # (C,) the output at x = 0 of the cell's affine map

    @property
    def n_cells(self) -> int:
        return len(self.vertices)

    @property
    def areas(self) -> np.ndarray:
        return np.array([polygon_area(v) for v in self.vertices])

    def padded_vertices(self) -> np.ndarray:
        """(C, K, 2): each cell's vertices, repeated last vertex as padding (zero-length edges)."""
        k = max(len(v) for v in self.vertices)
        return np.stack([np.concatenate([v, np.repeat(v[-1:], k - len(v), 0)]) for v in self.vertices])

    def depths(self, points: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """How deep each point lies in its paired cell: the least signed distance to the cell's edge lines.

        points (Q, 2), cells (Q,) -> (Q,) float64: > 0 strictly inside, < 0 outside.
        """
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        v = self.padded_vertices()[cells]  # (Q, K, 2)
        e = np.roll(v, -1, 1) - v  # edges (Q, K, 2)
        length = np.hypot(e[..., 0], e[..., 1])
        rel = points[:, None, :] - v
        cross = e[..., 0] * rel[..., 1] - e[..., 1] * rel[..., 0]  # > 0: left of the edge, i.e. inside (CCW)
        dist = np.where(length > 0, cross / np.where(length > 0, length, 1.0), np.inf)
        return dist.min(1)

    def candidate_pairs(self, points: np.ndarray, n_buckets: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(point, cell) pairs whose bounding boxes can meet, via a uniform grid of buckets over the square.

        -> point indices (Q,), cell indices (Q,). Every cell that contains a point (within 1e-9)
        is among that point's candidates; a cell's box is widened by that margin.
        """
        g = n_buckets or max(1, int(np.sqrt(self.n_cells)))
        margin = 1e-9

        def bucket(t):
            return np.clip(((t + 1) / 2 * g).astype(np.int64), 0, g - 1)

        lo = np.array([v.min(0) for v in self.vertices]) - margin  # (C, 2)
        hi = np.array([v.max(0) for v in self.vertices]) + margin
        b_lo, b_hi = bucket(lo), bucket(hi)
        cell_of, bucket_of = [], []
        for c in range(self.n_cells):  # each cell lists the buckets its box covers
            bx, by = np.meshgrid(np.arange(b_lo[c, 0], b_hi[c, 0] + 1), np.arange(b_lo[c, 1], b_hi[c, 1] + 1))
            bucket_of.append((bx * g + by).ravel())
            cell_of.append(np.full(bx.size, c))
        cell_of, bucket_of = np.concatenate(cell_of), np.concatenate(bucket_of)
        order = np.argsort(bucket_of, kind="stable")
        cell_of = cell_of[order]
        start = np.searchsorted(bucket_of[order], np.arange(g * g + 1))  # CSR: bucket -> cells
        pb = bucket(np.clip(points[:, 0], -1, 1)) * g + bucket(np.clip(points[:, 1], -1, 1))
        counts = start[pb + 1] - start[pb]
        point_idx = np.repeat(np.arange(len(points)), counts)
        within = np.arange(len(point_idx)) - np.repeat(np.cumsum(counts) - counts, counts)
        return point_idx, cell_of[start[pb][point_idx] + within]

    def locate(self, points, return_depth: bool = False):
        """The cell each point falls in: points (P, 2) -> (P,) int64, -1 outside every cell (beyond 1e-9).

        A point on a shared edge lies in several cells; the one it lies deepest in wins.
        With return_depth, also that depth (P,): how far inside, in input units.
        """
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        p_idx, c_idx = self.candidate_pairs(points)
        depth = self.depths(points[p_idx], c_idx)
        order = np.lexsort((-depth, p_idx))  # per point, the deepest cell first
        first = np.unique(p_idx[order], return_index=True)[1]
        best_cell = np.full(len(points), -1, dtype=np.int64)
        best_depth = np.full(len(points), -np.inf)
        best_cell[p_idx[order][first]] = c_idx[order][first]
        best_depth[p_idx[order][first]] = depth[order][first]
        best_cell[best_depth < -1e-9] = -1
        return (best_cell, best_depth) if return_depth else best_cell

    def evaluate(self, points) -> np.ndarray:
        """The cells' affine maps at points (P, 2) -> (P,), NaN outside the square."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        cell = self.locate(points)
        y = np.einsum("pd,pd->p", points, self.gradients[cell]) + self.offsets[cell]
        return np.where(cell >= 0, y, np.nan)


def region_map(layers, activation: str, model: int = 0, tol: float = GEOMETRY_TOL) -> RegionMap:
    """The exact linear regions of one 2-input model inside [-1, 1]^2, from its weights, layer by layer.

    Each cell carries the affine map of the previous hidden layer's output, h = x @ A + c
    (A (2, width), c (width,)), exact on the cell. A unit of the next layer has pre-activation
    z = x @ (A w) + (c w + b) there, affine, so its zero line splits the cell (or misses it).
    Splitting by every unit in turn and then gating A and c with the pieces' patterns gives the
    next layer's cells. Runs in float64.
    """
    _check_activation(activation)
    layers = [(w[model], b[model, 0]) for w, b in float64_layers(layers)]  # one model: (i, o), (o,)
    if layers[0][0].shape[0] != 2:
        raise ValueError(f"region_map needs 2 inputs; the model has {layers[0][0].shape[0]}")
    off = 0.0 if activation == "relu" else LEAKY_SLOPE
    # a cell: (vertices (k, 2), pattern bits so far (list of bool arrays), A (2, width), c (width,))
    cells = [(SQUARE.copy(), [], np.eye(2), np.zeros(2))]
    for w, b in layers[:-1]:
        next_cells = []
        for vertices, bits, a_in, c_in in cells:
            a, c = a_in @ w, c_in @ w + b  # this layer's pre-activations on the cell: (2, width), (width,)
            for piece, on in _split_by_units(vertices, a, c, tol):
                gate = np.where(on, 1.0, off)
                next_cells.append((piece, bits + [on], a * gate, c * gate))
        cells = next_cells
    w, b = layers[-1]
    return RegionMap(
        vertices=[v for v, *_ in cells],
        patterns=np.array([np.concatenate(bits) for _, bits, _, _ in cells]),
        gradients=np.array([(a @ w)[:, 0] for _, _, a, _ in cells]),
        offsets=np.array([float((c @ w + b)[0]) for *_, c in cells]),
    )


def _split_by_units(vertices: np.ndarray, a: np.ndarray, c: np.ndarray, tol: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split one convex cell by the zero lines of units z_j = x . a[:, j] + c[j] -> [(piece, on (width,) bool)].

    Units whose line misses the cell take their sign from its vertices (the cell is convex, so
    every sub-piece shares it); only the lines that cross it are clipped piece by piece.
    """
    norm = np.maximum(np.hypot(a[0], a[1]), 1e-300)
    dist = (vertices @ a + c) / norm  # (k, width) signed distances of the cell's vertices
    crosses = (dist > tol).any(0) & (dist < -tol).any(0)
    on = (dist > tol).any(0)  # for non-crossing units: on iff some vertex is strictly positive
    pieces = [(vertices, on.copy())]
    for j in np.flatnonzero(crosses):
        split = []
        for piece, bits in pieces:
            positive, negative = split_polygon(piece, a[:, j], c[j], tol)
            for part, value in ((positive, True), (negative, False)):
                if part is not None:
                    part_bits = bits.copy()
                    part_bits[j] = value
                    split.append((part, part_bits))
        pieces = split
    return pieces
