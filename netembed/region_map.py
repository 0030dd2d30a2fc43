"""The exact linear regions of one 2-input piecewise-linear model inside [-1, 1]^2, as convex polygons.

`region_map` computes them from the model's weights, layer by layer (the 2D analogue of
gradients.line_sections): within a cell of the earlier layers' arrangement every unit of the next
layer is affine, so its zero set is a line that splits the (convex) cell in two. Each cell keeps
its activation pattern and its exact affine map; `RegionMap.locate` finds the cell of any point.
Runs in float64 on the weights (regions.float64_layers), like the sampled regions of regions.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .regions import LEAKY_SLOPE, check_piecewise_linear, float64_layers

# Geometry tolerance, a distance in input units. A unit's line that passes within this of every
# vertex on one side of a cell does not split it: the sliver it would cut off (thinner than the
# tolerance) stays with the cell. It is far above float64 rounding of the line coefficients (products
# of <= 4 weight matrices of width <= a few hundred: relative error ~1e-13 at worst) and far below
# the spacing of any sampled input (1e5 uniform points in [-1, 1]^2 are ~6e-3 apart), so it only
# decides the fate of regions no sample could see. Areas stay exact: nothing is dropped, only unsplit.
GEOMETRY_TOL = 1e-10

SQUARE = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])  # counter-clockwise

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
    check_piecewise_linear(activation)
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
