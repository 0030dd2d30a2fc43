"""The exact 2D region map, checked against slow obvious references: brute-force point-in-polygon over
every cell, the sampled activation patterns, and the network's own outputs and gradients (regions.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from random_nets import random_layers

from netembed.region_map import GEOMETRY_TOL, polygon_area, region_map, split_polygon
from netembed.regions import activation_patterns, boundary_distance, forward, pattern_affine

ACTIVATIONS = ("relu", "leaky_relu")



def test_split_polygon_cases():
    sq = np.array([[-1.0, -1], [1, -1], [1, 1], [-1, 1]])
    pos, neg = split_polygon(sq, np.array([1.0, 0]), 0.0)  # the line x = 0
    assert polygon_area(pos) == pytest.approx(2) and polygon_area(neg) == pytest.approx(2)
    assert (pos[:, 0] >= 0).all() and (neg[:, 0] <= 0).all()
    pos, neg = split_polygon(sq, np.array([1.0, -1]), 0.0)  # the diagonal through two vertices: two triangles
    assert len(pos) == len(neg) == 3 and polygon_area(pos) == pytest.approx(2) and polygon_area(neg) == pytest.approx(2)
    pos, neg = split_polygon(sq, np.array([1.0, 0]), -3.0)  # misses the square: all negative
    assert pos is None and neg is sq
    # a line within the tolerance of an edge cuts off nothing thicker than the tolerance: no split
    pos, neg = split_polygon(sq, np.array([1.0, 0]), 1 - GEOMETRY_TOL / 2)  # x = -1 + tol / 2
    assert pos is sq and neg is None
    pos, neg = split_polygon(sq, np.array([1.0, 0]), 1 - 2 * GEOMETRY_TOL)  # x = -1 + 2 tol: a real sliver
    assert polygon_area(neg) == pytest.approx(4 * GEOMETRY_TOL) and polygon_area(pos) == pytest.approx(4)


def brute_force_depths(rmap, points):
    """Slow reference: each point's signed depth in every cell (P, C), one cell at a time."""
    return np.stack([rmap.depths(points, np.full(len(points), c)) for c in range(rmap.n_cells)], 1)


def check_region_map(layers, activation, n_points: int, seed: int):
    rmap = region_map(layers, activation)
    areas = rmap.areas
    assert (areas > 0).all()  # counter-clockwise and not degenerate
    assert abs(areas.sum() - 4) < 1e-9  # the cells cover the square ...
    assert len(np.unique(rmap.patterns, axis=0)) == rmap.n_cells  # ... once each: one cell per pattern

    points = np.random.default_rng(seed).uniform(-1, 1, (n_points, 2))
    depths = brute_force_depths(rmap, points)  # (P, C)
    # each point lies in at least one cell (up to the tolerance) and strictly inside at most one
    assert ((depths >= -GEOMETRY_TOL).sum(1) >= 1).all()
    assert ((depths > GEOMETRY_TOL).sum(1) <= 1).all()
    cell, depth = rmap.locate(points, return_depth=True)  # the bucketed lookup finds the deepest cell
    np.testing.assert_array_equal(depth, depths.max(1))

    # the point's own activation pattern is its cell's pattern, away from boundaries (where floats may
    # decide either way); random points are almost never that close, so nearly all points are checked
    clear = boundary_distance(layers, points, activation)[0] > 1e-9
    assert clear.mean() > 0.99
    patterns = activation_patterns(layers, points, activation)[0]
    np.testing.assert_array_equal(rmap.patterns[cell][clear], patterns[clear])
    # the hardest points: 1e-6 inside the midpoint of every edge (far above the 1e-10 geometry tolerance)
    mids = [((v + np.roll(v, -1, 0)) / 2, np.roll(v, -1, 0) - v) for v in rmap.vertices]
    inset = 1e-6
    probes = np.concatenate([m + inset * np.stack([-e[:, 1], e[:, 0]], 1) / np.hypot(*e.T)[:, None] for m, e in mids])
    owner = np.concatenate([np.full(len(m), c) for c, (m, _) in enumerate(mids)])
    keep = rmap.depths(probes, owner) > inset / 2  # a cell thinner than the inset cannot hold its probe
    assert keep.mean() > 0.9
    np.testing.assert_array_equal(rmap.locate(probes[keep]), owner[keep])
    np.testing.assert_array_equal(activation_patterns(layers, probes[keep], activation)[0], rmap.patterns[owner[keep]])
    # points on inner edges are where the pattern is ambiguous: boundary_distance flags them all
    on_edge = np.concatenate([m for m, _ in mids])
    on_edge = on_edge[(np.abs(on_edge) < 1 - 1e-12).all(1)]
    assert (boundary_distance(layers, on_edge, activation)[0] < 1e-9).all()
    # each cell's affine map is the network there; its gradient is the pattern's product of weights
    np.testing.assert_allclose(rmap.evaluate(points), forward(layers, points, activation)[0], rtol=0, atol=1e-12)
    grads, offsets = pattern_affine(layers, rmap.patterns[None], activation)
    np.testing.assert_allclose(rmap.gradients, grads[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rmap.offsets, offsets[0], rtol=1e-12, atol=1e-12)
    return rmap


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_region_map_of_a_two_layer_net(activation):
    rmap = check_region_map(random_layers(7, [2, 8, 8, 1]), activation, n_points=2000, seed=7)
    assert rmap.n_cells > 20  # deep enough that the second layer splits the first layer's cells
    assert all((np.diff(v, axis=0) != 0).any(1).all() for v in rmap.vertices)  # no repeated vertices


@settings(max_examples=60, deadline=None, database=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    widths=st.lists(st.integers(2, 8), min_size=1, max_size=3),
    activation=st.sampled_from(ACTIVATIONS),
)
def test_region_map_of_random_small_nets(seed, widths, activation):
    check_region_map(random_layers(seed, [2, *widths, 1]), activation, n_points=300, seed=seed + 1)


def test_region_map_picks_a_model_from_the_stack():
    layers = random_layers(4, [2, 6, 1], n_models=3)
    rmap = region_map(layers, "relu", model=2)
    one = [(w[2:3], b[2:3]) for w, b in layers]
    np.testing.assert_array_equal(rmap.patterns, region_map(one, "relu").patterns)
