"""Figures of a digits network's units (no browser), and the per-unit pictures they draw, against slow references."""

import numpy as np
import pytest
import torch

from netembed.digits import UnitsConfig, load_digits_split, planted_modules_net
from netembed.unit_plots import grouped_units, image_grid, unit_groups_figure, units_figure
from netembed.units import driving_digits, mean_unit_gradients, unit_layers, unit_values

TINY = UnitsConfig(n_modules=3, module_width=4, depth=2, steps=60, seed=3)


@pytest.fixture(scope="module")
def digits():
    return load_digits_split(TINY.test_fraction, TINY.seed)


@pytest.fixture(scope="module")
def net(digits):
    return planted_modules_net(digits, TINY)


def test_mean_unit_gradients_match_autograd_averaged(digits, net):
    x = digits.x_test[:50]
    got = mean_unit_gradients(net, x, chunk=16)  # several chunks, one partial
    xg = x.clone().requires_grad_()
    values = torch.cat(net.hidden(xg), 1)  # (50, n_units)
    want = np.stack([torch.autograd.grad(values[:, u].sum(), xg, retain_graph=True)[0].mean(0).numpy()
                     for u in range(values.shape[1])])  # fmt: skip
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_driving_digits_are_the_most_active(digits, net):
    x = digits.x_test
    v = unit_values(net, x).numpy()
    for unit in range(len(unit_layers(net))):
        top = driving_digits(net, x, unit, 5)
        assert np.allclose(v[unit, top], np.sort(v[unit])[::-1][:5])  # by value: ties may order either way


def test_units_figure_holds_every_unit_once_with_its_index():
    rng = np.random.default_rng(0)
    points, layers, groups = rng.normal(size=(10, 2)), np.repeat([0, 1], 5), np.array([0, 1, 2] * 3 + [0])
    fig = units_figure(points, layers, groups, ["a", "b", "c"], selected=3)
    units = [int(c[0]) for t in fig.data if t.customdata is not None for c in t.customdata]
    assert sorted(units) == list(range(10))
    for t in fig.data:
        if t.customdata is None:
            continue
        for (u, layer), x, y in zip(t.customdata, t.x, t.y):
            assert (x, y) == tuple(points[int(u)]) and layer == layers[int(u)]
    assert fig.data[-1].name == "unit 3" and fig.data[-1].x[0] == points[3, 0]  # the highlighted selection
    assert units_figure(points, layers, None, [], title="t").layout.title.text == "t"


def test_image_grid_draws_each_picture_upright_on_one_scale():
    images = np.arange(3 * 64, dtype=float).reshape(3, 64) - 50
    fig = image_grid(images, ["a", "b", "c"], cols=2)
    assert len(fig.data) == 3
    for img, trace in zip(images, fig.data):
        np.testing.assert_array_equal(np.asarray(trace.z), img.reshape(8, 8)[::-1])  # row 0 drawn at the top
        assert trace.zmin == -trace.zmax == -np.abs(images).max()
    grey = image_grid(images[:1] + 50, ["d"], signed=False)
    assert grey.data[0].zmin == 0


def test_groups_are_rows_of_their_most_active_units():
    groups = np.array([1, 0, 1, 1, 0, 2])
    scores = np.array([0.1, 5, 3, 2, 1, 0])
    rows = grouped_units(groups, scores, per_group=2)
    slow = []
    for g in sorted(set(groups)):
        members = [i for i in range(len(groups)) if groups[i] == g]
        slow.append(sorted(members, key=lambda i: -scores[i])[:2])
    assert [r.tolist() for r in rows] == slow
    fig = unit_groups_figure(np.ones((6, 64)), groups, scores, per_group=2, group_names=["x", "y", "z"])
    assert len(fig.data) == 3 * 2  # a cell per (group, slot); empty slots are blank pictures
    assert any(a.text == "x (2)" for a in fig.layout.annotations)
