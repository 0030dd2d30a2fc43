"""Planted-module digits networks, hidden units as functions of the input, and their baselines."""

import numpy as np
import pytest
import torch

from netembed.cloze_training import train_embedder
from netembed.config import ClozeConfig, ConfigError
from netembed.digits import (
    UnitsConfig,
    load_digits_split,
    mlp_logits,
    off_block_fraction,
    permute_units,
    plain_digits_net,
    planted_modules_net,
    stitch,
    subtask_targets,
    train_modules,
)
from netembed.embedding import embed
from netembed.gradients import input_gradients, line_sections
from netembed.unit_baselines import DESCRIPTIONS, baseline_features, module_scores, score_descriptions
from netembed.units import (
    line_pairs,
    per_unit,
    unit_gradients,
    unit_layers,
    unit_line_responses,
    unit_line_zoo,
    unit_modules,
    unit_train_split,
    unit_values,
)

TINY = UnitsConfig(n_modules=3, module_width=4, depth=2, steps=60, plain_width=8, seed=3)


@pytest.fixture(scope="module")
def digits():
    return load_digits_split(TINY.test_fraction, TINY.seed)


@pytest.fixture(scope="module")
def modules(digits):
    return train_modules(digits, TINY)


@pytest.fixture(scope="module")
def net(digits):
    return planted_modules_net(digits, TINY)


def test_digits_are_scaled_split_and_reproducible(digits):
    assert digits.x_train.shape == (1437, 64) and digits.x_test.shape == (360, 64)
    assert float(digits.x_train.min()) == 0.0 and float(digits.x_train.max()) == 1.0
    again = load_digits_split(TINY.test_fraction, TINY.seed)
    assert torch.equal(again.x_test, digits.x_test) and torch.equal(again.y_test, digits.y_test)
    other = load_digits_split(TINY.test_fraction, TINY.seed + 1)
    assert not torch.equal(other.y_test, digits.y_test)


def test_subtask_targets():
    y = torch.arange(10)
    t = subtask_targets(y, 3)  # odd, at_least_5, closed_loop
    assert t[:, 0].tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
    assert t[:, 1].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert t[:, 2].tolist() == [1, 0, 0, 0, 0, 0, 1, 0, 1, 1]


def test_config_refuses_bad_settings():
    with pytest.raises(ConfigError, match="n_modules"):
        UnitsConfig(n_modules=1)
    with pytest.raises(ConfigError, match="fine_tune_steps"):
        UnitsConfig(fine_tune_steps=-1)


def test_stitched_network_computes_exactly_its_modules(digits, modules):
    layers, _ = stitch(modules)
    x = digits.x_test
    separate = torch.cat([mlp_logits(m, x) for m in modules], 1)  # (n, N)
    assert (mlp_logits(layers, x) - separate).abs().max() < 1e-5  # float32: only the summation order differs
    # in float64 the zero blocks add exact zeros: agreement to rounding of float64
    as64 = [[(w.double(), b.double()) for w, b in m] for m in modules]
    l64, _ = stitch(as64)
    sep64 = torch.cat([mlp_logits(m, x.double()) for m in as64], 1)
    assert (mlp_logits(l64, x.double()) - sep64).abs().max() < 1e-12
    # and the permuted, un-fine-tuned network computes the same logits
    shuffled, _, _ = permute_units(l64, [np.arange(12) // 4] * 2, np.random.default_rng(0))
    assert (mlp_logits(shuffled, x.double()) - sep64).abs().max() < 1e-12


def test_ground_truth_survives_the_permutation(digits, modules):
    layers, ids = stitch(modules)
    shuffled, new_ids, perms = permute_units(layers, ids, np.random.default_rng(5))
    assert any((p != np.arange(len(p))).any() for p in perms)  # it did shuffle
    for i, perm in enumerate(perms):
        inverse = np.argsort(perm)
        assert (new_ids[i][inverse] == ids[i]).all()  # permuting back gives module-major ids
    undo = [torch.as_tensor(np.argsort(p)) for p in perms]
    assert torch.equal(shuffled[0][0][:, undo[0]], layers[0][0]) and torch.equal(shuffled[0][1][undo[0]], layers[0][1])
    assert torch.equal(shuffled[2][0][undo[1]], layers[2][0])  # the output layer's rows follow the last shuffle
    # the hidden-to-hidden matrix, permuted back on both sides, is block-diagonal again: module k's
    # weights on the diagonal, exact zeros elsewhere
    back = shuffled[1][0][undo[0]][:, undo[1]]
    h = TINY.module_width
    for k, m in enumerate(modules):
        for j in range(len(modules)):
            block = back[k * h:(k + 1) * h, j * h:(j + 1) * h]
            assert torch.equal(block, m[1][0]) if j == k else not block.any()
    # a unit's module id names the module whose weights it carries
    for u in range(len(new_ids[0])):
        k, col = new_ids[0][u], perms[0][u] - new_ids[0][u] * h
        assert torch.equal(shuffled[0][0][:, u], modules[k][0][0][:, col])


def test_planted_net_is_block_diagonal_until_fine_tuned(digits, net):
    assert off_block_fraction(net) == 0.0
    assert (net.test_accuracy > 0.75).all()  # every module learned its sub-task: seed 3 measured 0.87-0.93;
    # the weakest module over seeds 0-5 ranged 0.60-0.89 (seed 5's 4-unit module stalls), so the seed is fixed
    mixed = planted_modules_net(digits, UnitsConfig(**{**TINY.__dict__, "fine_tune_steps": 20}))
    assert off_block_fraction(mixed) > 0.0
    np.testing.assert_array_equal(mixed.unit_modules[0], net.unit_modules[0])  # same shuffle, same truth


def test_plain_digits_net_learns(digits):
    plain = plain_digits_net(digits, UnitsConfig(plain_width=16, steps=100, seed=0))
    assert plain.unit_modules is None and plain.widths == [16, 16]
    assert plain.test_accuracy[0] > 0.8  # 10 classes, chance 0.1; measured 0.936-0.972 over seeds 0-5


def _float64(net):
    return type(net)([(w.double(), b.double()) for w, b in net.layers], net.unit_modules, net.task_names, net.test_accuracy)


def _autograd_unit_gradients(net, x):
    """The slow reference: one autograd pass per unit."""
    x = x.clone().requires_grad_()
    values = torch.cat(net.hidden(x), 1)  # (n, n_units)
    rows = [torch.autograd.grad(values[:, u].sum(), x, retain_graph=True)[0] for u in range(values.shape[1])]
    return torch.stack(rows)  # each point's unit depends on that point only


def test_unit_gradients_match_autograd(digits, net):
    x = digits.x_test[:20]
    g = unit_gradients(net, x)
    assert g.shape == (len(unit_layers(net)), 20, 64)
    torch.testing.assert_close(g, _autograd_unit_gradients(net, x), rtol=1e-5, atol=1e-6)


def test_unit_gradients_match_finite_differences(digits, net):
    # float64 copy of the net; central differences are exact for a piecewise-linear function when
    # no kink lies within the step, which we check by comparing the activation patterns
    net64 = _float64(net)
    x = digits.x_test[:10].double()
    g = unit_gradients(net64, x)  # (U, 10, 64)
    eps = 1e-6
    checked = 0
    for k in range(64):
        step = torch.zeros(64, dtype=torch.float64)
        step[k] = eps
        up, down = torch.cat(net64.hidden(x + step), 1), torch.cat(net64.hidden(x - step), 1)
        same = (torch.cat(net64.hidden(x), 1) > 0) == (up > 0)
        same &= (up > 0) == (down > 0)
        fd = ((up - down) / (2 * eps)).T  # (U, 10)
        ok = same.all(1)  # points whose whole pattern is unchanged
        assert ((fd - g[:, :, k]).abs()[:, ok] < 1e-7).all()
        checked += int(ok.sum())
    assert checked > 0.9 * 64 * 10


def test_line_derivative_is_gradient_along_the_line(digits, net):
    pairs = line_pairs(digits.y_test.numpy(), 4, np.random.default_rng(0))
    a, b = digits.x_test[pairs[:, 0]], digits.x_test[pairs[:, 1]]
    values, slopes = unit_line_responses(net, a, b, 9)
    assert values.shape == slopes.shape == (len(unit_layers(net)), 4, 9)
    t = torch.linspace(0, 1, 9)
    for line in range(4):
        x = a[line] + t[:, None] * (b[line] - a[line])  # (9, 64)
        torch.testing.assert_close(values[:, line], unit_values(net, x))
        expected = unit_gradients(net, x) @ (b[line] - a[line])  # (U, 9)
        torch.testing.assert_close(slopes[:, line], expected)
    # and d/dt is the derivative of the values: within a linear piece, the secant equals the slope
    # (in float64: float32 secants over steps of 1/2000 lose 3-4 digits)
    fine_v, fine_s = unit_line_responses(_float64(net), a.double(), b.double(), 2001)
    secant = (fine_v[..., 1:] - fine_v[..., :-1]) * 2000
    smooth = fine_s[..., 1:] == fine_s[..., :-1]  # both ends in one piece (same slope)
    assert smooth.float().mean() > 0.9
    torch.testing.assert_close(secant[smooth], fine_s[..., :-1][smooth], rtol=1e-6, atol=1e-8)


def test_line_pairs_cross_classes():
    labels = np.array([0, 0, 1, 2, 2])
    pairs = line_pairs(labels, 50, np.random.default_rng(1))
    assert pairs.shape == (50, 2) and (labels[pairs[:, 0]] != labels[pairs[:, 1]]).all()
    with pytest.raises(ValueError, match="two classes"):
        line_pairs(np.zeros(3, dtype=int), 1, np.random.default_rng(0))


def test_unit_split_is_stratified(net):
    replicate, n_train = unit_train_split(net, 0.7, seed=0)
    is_train = replicate < n_train
    layers, mods = unit_layers(net), unit_modules(net)
    for layer in range(2):
        for k in range(3):
            here = (layers == layer) & (mods == k)
            assert is_train[here].sum() == n_train == 3  # round(0.7 * 4)


def test_line_zoo_reproduces_units_along_lines(digits, net):
    """Each (unit, line) model of the 1D zoo is the unit along the line: values, gradients, exact sections."""
    pairs = line_pairs(digits.y_test.numpy(), 3, np.random.default_rng(2))
    a, b = digits.x_test[pairs[:, 0]], digits.x_test[pairs[:, 1]]
    split = unit_train_split(net, 0.7, seed=0)
    zoo = unit_line_zoo(net, a, b, unit_modules(net), split)
    n_units = len(unit_layers(net))
    assert zoo.n_models == n_units * 3
    np.testing.assert_array_equal(zoo.is_train, np.repeat(split[0] < split[1], 3))
    values, slopes = unit_line_responses(net, a, b, 33)
    s = torch.linspace(-1, 1, 33)  # the zoo's input; t = (s + 1) / 2 is linspace(0, 1, 33)
    torch.testing.assert_close(zoo.forward(s).reshape(n_units, 3, 33), values, rtol=1e-4, atol=1e-5)
    zg = torch.as_tensor(input_gradients(zoo, s)).reshape(n_units, 3, 33)
    torch.testing.assert_close(zg, slopes / 2, rtol=1e-4, atol=1e-5)  # d/ds = d/dt * dt/ds
    sections = line_sections(zoo)  # exact pieces from the weights, as for any zoo
    torch.testing.assert_close(torch.as_tensor(sections.evaluate(s.numpy())).reshape(n_units, 3, 33),
                               values.double(), rtol=1e-4, atol=1e-5)  # fmt: skip


def test_cloze_embedder_trains_on_the_line_zoo(digits, net):
    """The adapter needs no change in cloze.py: a few steps train and embed (not a quality check)."""
    pairs = line_pairs(digits.y_test.numpy(), 2, np.random.default_rng(0))
    a, b = digits.x_test[pairs[:, 0]], digits.x_test[pairs[:, 1]]
    zoo = unit_line_zoo(net, a, b, unit_modules(net), unit_train_split(net, 0.7, seed=0))
    config = ClozeConfig(d_model=16, n_heads=2, bottleneck=3, steps=3, n_inputs=16, models_per_batch=8)
    embedder = train_embedder(zoo, config)
    e = per_unit(embed(embedder, zoo, n_inputs=32), n_lines=2)
    assert e.shape == (len(unit_layers(net)), 3) and np.isfinite(e).all()
    assert per_unit(embed(embedder, zoo, n_inputs=32), 2, how="concat").shape == (len(unit_layers(net)), 6)


def test_baselines_shapes_and_perfect_description(digits, net):
    replicate, n_train = unit_train_split(net, 0.7, seed=0)
    is_train = replicate < n_train
    feats = baseline_features(net, digits.x_train, digits.x_test[:8], is_train, pca_dim=4)
    n_units = len(unit_layers(net))
    assert set(feats) == set(DESCRIPTIONS)
    assert [f.shape for f in feats["incoming_weights"]] == [(12, 65), (12, 13)]
    assert feats["activation_stats"].shape == (n_units, 8)
    assert feats["activations"].shape == (n_units, 8)
    assert feats["gradients"].shape == (n_units, 8 * 64)
    assert feats["gradients_pca"].shape == (n_units, 4)
    truth = unit_modules(net)
    perfect = module_scores(np.eye(3)[truth], truth, is_train)
    assert perfect == {"nmi": 1.0, "ari": 1.0, "probe_accuracy": 1.0}
    scores = score_descriptions(net, feats, truth, is_train)
    assert set(scores["incoming_weights"]) == {"layer0", "layer1"}
    assert set(scores["gradients"]) == {"layer0", "layer1", "all"}
    for scopes in scores.values():
        for s in scopes.values():
            assert 0.0 <= s["nmi"] <= 1.0 and -1.0 <= s["ari"] <= 1.0 and 0.0 <= s["probe_accuracy"] <= 1.0
