"""Linear regions of d-input piecewise-linear MLPs, checked against slow obvious references:
torch autograd per model and finite differences (the exact 2D region map: test_region_map.py)."""

import numpy as np
import pytest
import torch
from random_nets import random_layers

from netembed.region_map import region_map
from netembed.regions import (
    NotPiecewiseLinear,
    activation_patterns,
    boundary_distance,
    forward,
    masked_by_region,
    point_gradients,
    region_gradients,
    region_ids,
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
