"""Linear regions of d-input piecewise-linear MLPs, checked against slow obvious references:
torch autograd per model, finite differences, brute-force point-in-polygon over every cell."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from random_nets import random_layers

from netembed.regions import (
    GEOMETRY_TOL,
    NotPiecewiseLinear,
    activation_patterns,
    boundary_distance,
    forward,
    masked_by_region,
    pattern_affine,
    point_gradients,
    polygon_area,
    region_gradients,
    region_ids,
    region_map,
    split_polygon,
)
from netembed.zoo import activation_fn

ACTIVATIONS = ("relu", "leaky_relu")


def autograd_per_model(layers, x, activation):
    """Slow reference: outputs and dy/dx of each model separately, by torch autograd in float64."""
    act = activation_fn(activation)
    ys, grads = [], []
    for m in range(len(layers[0][0])):
        xs = torch.as_tensor(x, dtype=torch.float64).clone().requires_grad_()
        h = xs
        for k, (w, b) in enumerate(layers):
            h = h @ w[m].double() + b[m, 0].double()
            if k < len(layers) - 1:
                h = act(h)
        (g,) = torch.autograd.grad(h.sum(), xs)
        ys.append(h[:, 0].detach().numpy())
        grads.append(g.numpy())
    return np.stack(ys), np.stack(grads)


# ---------------------------------------------------------------- gradients in d dimensions


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("d", [1, 2, 5])
def test_point_gradients_match_autograd_and_finite_differences(d, activation):
    layers = random_layers(d, [d, 7, 6, 1], n_models=3)
    x = np.random.default_rng(10 + d).uniform(-1, 1, (300, d))
    y_ref, g_ref = autograd_per_model(layers, x, activation)
    np.testing.assert_allclose(forward(layers, x, activation), y_ref, rtol=1e-12, atol=1e-12)
    g = point_gradients(layers, x, activation)
    assert g.shape == (3, 300, d) and g.dtype == np.float64
    np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-12)
    # central differences are exact on an affine piece: use points farther than the step from every kink
    step = 1e-5
    far = boundary_distance(layers, x, activation) > 2 * step  # (n, P)
    assert far.mean() > 0.8  # most random points are far from a kink: the check below is not vacuous
    for k in range(d):
        e = np.zeros(d)
        e[k] = step
        fd = (forward(layers, x + e, activation) - forward(layers, x - e, activation)) / (2 * step)
        np.testing.assert_allclose(fd[far], g[..., k][far], atol=1e-8)  # float64 rounding / step ~ 1e-11


def test_per_model_inputs_and_numpy_layers_give_the_same_gradients():
    layers = random_layers(3, [2, 5, 1], n_models=4)
    numpy_layers = [(w.numpy(), b.numpy()) for w, b in layers]
    x = np.random.default_rng(0).uniform(-1, 1, (4, 50, 2))  # each model its own points
    g = point_gradients(layers, x, "relu")
    np.testing.assert_array_equal(g, point_gradients(numpy_layers, x, "relu"))
    for m in range(4):
        np.testing.assert_array_equal(g[m], point_gradients(layers, x[m], "relu")[m])


def test_no_points_give_empty_answers():
    layers = random_layers(0, [2, 4, 1], n_models=2)
    x = np.zeros((0, 2))
    grads, ids, n_regions = region_gradients(layers, x, "relu")
    assert grads.shape == (2, 0, 2) and ids.shape == (2, 0) and (n_regions == 0).all()
    assert boundary_distance(layers, x, "relu").shape == (2, 0)
    assert region_map(layers, "relu").locate(x).shape == (0,)


def test_bad_inputs_say_what_is_wrong():
    layers = random_layers(0, [2, 4, 1])
    with pytest.raises(NotPiecewiseLinear, match="smooth"):
        activation_patterns(layers, np.zeros((3, 2)), "tanh")
    with pytest.raises(ValueError, match=r"\(n_points, 2\)"):
        activation_patterns(layers, np.zeros((3, 5)), "relu")
    with pytest.raises(ValueError, match="needs 2 inputs"):
        region_map(random_layers(0, [3, 4, 1]), "relu")
    with pytest.raises(ValueError, match="stacked"):
        forward([(np.zeros((2, 4)), np.zeros((1, 4)))], np.zeros((3, 2)), "relu")


# ---------------------------------------------------------------- region ids and unique gradients


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_region_ids_name_exactly_the_activation_patterns(activation):
    layers = random_layers(1, [3, 6, 5, 1], n_models=2)
    x = np.random.default_rng(1).uniform(-1, 1, (400, 3))
    patterns = activation_patterns(layers, x, activation)
    assert patterns.shape == (2, 400, 11) and patterns.dtype == bool
    ids, n_regions = region_ids(patterns)
    for m in range(2):
        same_id = ids[m][:, None] == ids[m][None, :]
        same_pattern = (patterns[m][:, None] == patterns[m][None, :]).all(-1)
        np.testing.assert_array_equal(same_id, same_pattern)
        # compact and numbered in order of first appearance
        first = np.unique(ids[m], return_index=True)[1]
        np.testing.assert_array_equal(np.sort(first), first)
        assert n_regions[m] == len(np.unique(ids[m])) == ids[m].max() + 1
        assert n_regions[m] > 5  # several regions, or the test says little


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_region_gradients_are_the_constant_gradient_of_each_region(activation):
    layers = random_layers(2, [5, 8, 8, 1], n_models=3)
    x = np.random.default_rng(2).uniform(-1, 1, (500, 5))
    grads, ids, n_regions = region_gradients(layers, x, activation)
    per_point = point_gradients(layers, x, activation)
    for m in range(3):
        r = n_regions[m]
        assert np.isfinite(grads[m, :r]).all() and np.isnan(grads[m, r:]).all()
        np.testing.assert_array_equal(grads[m][ids[m]], per_point[m])  # same product of masked weights


# ---------------------------------------------------------------- exact 2D region map


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


# ---------------------------------------------------------------- masking whole regions


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 1.0])
def test_masking_by_region_hides_whole_regions(ratio):
    layers = random_layers(5, [2, 8, 8, 1], n_models=6)
    x = np.random.default_rng(5).uniform(-1, 1, (6, 256, 2))
    _, ids, n_regions = region_gradients(layers, x, "leaky_relu")
    masked = masked_by_region(ids, ratio, torch.Generator().manual_seed(0)).numpy()
    assert masked.shape == ids.shape and masked.dtype == bool
    for m in range(6):
        hidden = np.unique(ids[m][masked[m]])
        shown = np.unique(ids[m][~masked[m]])
        assert not set(hidden) & set(shown)  # no region is both: a masked gradient never leaks
        assert len(hidden) == min(max(round(ratio * n_regions[m]), 1), n_regions[m] - 1)
        for r in hidden:  # every point of a masked region is masked, whatever its position in the batch
            assert masked[m][ids[m] == r].all()
    # reproducible from the generator; torch ids work too
    again = masked_by_region(torch.as_tensor(ids), ratio, torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_array_equal(masked, again)


def test_masking_one_region_hides_it_and_bad_ratios_are_refused():
    ids = np.zeros((2, 10), dtype=np.int64)
    assert masked_by_region(ids, 0.5, torch.Generator().manual_seed(0)).all()
    with pytest.raises(ValueError, match="ratio"):
        masked_by_region(ids, 1.5, torch.Generator())
