"""Units as functions of the previous layer: the coordinate-line zoo against a slow reference, responses, store."""

import numpy as np
import pytest
import torch

from netembed.config import ClozeConfig
from netembed.digits import UnitsConfig, load_digits_split, planted_modules_net
from netembed.gradients import input_gradients
from netembed.run_schema import RunError
from netembed.unit_cloze import (
    UnitEmbedConfig,
    coordinate_line_zoo,
    flat_embedding,
    line_responses,
    line_spans,
    previous_activations,
    unit_base_points,
)
from netembed.unit_store import load_units, save_units
from netembed.units import unit_layers, unit_modules, unit_train_split
from netembed.units_pipeline import run_units

TINY = UnitsConfig(n_modules=3, module_width=4, depth=2, steps=60, plain_width=8, seed=3)
TINY_CLOZE = ClozeConfig(d_model=16, n_heads=2, bottleneck=3, steps=4, n_inputs=16, models_per_batch=8,
                         mask_unit="sample")  # fmt: skip


@pytest.fixture(scope="module")
def digits():
    return load_digits_split(TINY.test_fraction, TINY.seed)


@pytest.fixture(scope="module")
def net(digits):
    return planted_modules_net(digits, TINY)


def _layer1_zoo(net, digits, value, n_base=2):
    split = unit_train_split(net, 0.7, seed=0)
    here = unit_layers(net) == 1
    span = line_spans(previous_activations(net, 1, digits.x_train))
    base = unit_base_points(net, 1, digits.x_train, n_base)
    zoo = coordinate_line_zoo(net, 1, base, span, unit_modules(net)[here], (split[0][here], split[1]), value)
    return zoo, base, span


def test_base_points_are_each_units_most_driving_digits(digits, net):
    base = unit_base_points(net, 1, digits.x_train, 3)  # (width, 3, width_prev)
    h0 = net.hidden(digits.x_train)[0].double()
    w, b = (t.double() for t in net.layers[1])
    for u in range(net.widths[1]):
        z = [float(h0[i] @ w[:, u] + b[u]) for i in range(len(h0))]  # the slow way, one digit at a time
        best = sorted(z, reverse=True)[:3]  # compared by value: digits may tie (the same activations)
        at_base = [float(base[u, i] @ w[:, u] + b[u]) for i in range(3)]
        assert at_base == pytest.approx(best, rel=1e-9, abs=1e-12)
        assert all(any(torch.equal(base[u, i], row) for row in h0) for i in range(3))  # real digits' activations


def test_post_activation_lines_are_the_unit_along_one_previous_unit(digits, net):
    """Each model of the zoo is relu(layer 1) fed the base activations with one coordinate moved: a loop."""
    zoo, base, span = _layer1_zoo(net, digits, "post")
    width, n_base, width_prev = base.shape
    assert zoo.n_models == width * n_base * width_prev
    s = torch.linspace(-1, 1, 17, dtype=torch.float64)
    got = zoo.forward(s.float()).double()  # (n_models, 17)
    w, b = (t.double() for t in net.layers[1])
    for u in range(width):
        for i in range(n_base):
            for j in range(width_prev):
                h = base[u, i].repeat(17, 1)  # (17, width_prev)
                h[:, j] += s * span[j]
                want = torch.relu(h @ w[:, u] + b[u])
                model = (u * n_base + i) * width_prev + j
                torch.testing.assert_close(got[model], want, rtol=1e-4, atol=1e-5)


def test_pre_activation_lines_have_the_weight_times_span_as_slope(digits, net):
    zoo, base, span = _layer1_zoo(net, digits, "pre")
    width, n_base, width_prev = base.shape
    s = torch.linspace(-1, 1, 9)
    g = torch.as_tensor(input_gradients(zoo, s)).double().reshape(width, n_base, width_prev, 9)
    want = (span.double()[:, None] * net.layers[1][0].double()).T  # (width, width_prev)
    torch.testing.assert_close(g, want[:, None, :, None].expand_as(g), rtol=1e-5, atol=1e-6)


def test_line_responses_average_distances_over_base_points():
    rng = np.random.default_rng(0)
    width, n_base, width_prev, d = 3, 2, 5, 4
    e = rng.normal(size=(width * n_base * width_prev, d))
    flat = rng.normal(size=d)
    got = line_responses(e, flat, width, n_base)
    for u in range(width):
        for j in range(width_prev):
            rows = [(u * n_base + i) * width_prev + j for i in range(n_base)]
            assert got[u, j] == pytest.approx(np.mean([np.linalg.norm(e[r] - flat) for r in rows]))


def test_flat_embedding_is_a_zero_gradient_model(digits, net):
    from netembed.cloze_training import train_embedder
    from netembed.embedding import embed

    zoo, _, _ = _layer1_zoo(net, digits, "pre", n_base=1)
    embedder = train_embedder(zoo, TINY_CLOZE)
    flat_zoo = zoo.select(np.arange(2))
    flat_zoo.layers[0] = (torch.zeros_like(flat_zoo.layers[0][0]), torch.ones_like(flat_zoo.layers[0][1]))
    e = embed(embedder, flat_zoo, n_inputs=32)  # zero slope: every gradient 0, whatever the inputs
    np.testing.assert_allclose(flat_embedding(embedder, 32), e[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("unit_input", ["previous_layer", "input"])
def test_run_units_reports_every_description_and_round_trips(tmp_path, unit_input):
    run = run_units("planted", TINY, UnitEmbedConfig(unit_input=unit_input, n_base=2, n_lines=2), TINY_CLOZE)
    mods = run.report["modules"]
    assert "cloze" in mods and "incoming_magnitudes" in mods and "gradients_pca" in mods
    for scores in mods.values():
        assert set(scores) >= {"nmi", "ari", "probe_accuracy", "layers"}
        assert scores["nmi"] == pytest.approx(np.mean([s["nmi"] for s in scores["layers"].values()]))
    assert [f.shape[0] for f in run.cloze.features] == run.net.widths
    save_units(run, tmp_path / "u")
    back = load_units(tmp_path / "u")
    assert back.report == run.report
    for a, b in zip(back.net.layers, run.net.layers):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    np.testing.assert_array_equal(np.concatenate(back.net.unit_modules), np.concatenate(run.net.unit_modules))
    np.testing.assert_allclose(back.cloze.features[1], run.cloze.features[1], rtol=1e-6)
    (tmp_path / "u" / "report.json").write_text("{}")
    with pytest.raises(RunError, match="checksum"):
        load_units(tmp_path / "u")


def test_wiring_baseline_is_unit_length_weight_magnitudes(net):
    from netembed.unit_baselines import wiring

    w1 = net.layers[1][0].double().numpy()  # (width_0, width_1)
    rows = wiring(net)
    for u in range(net.widths[1]):  # layer 1: incoming
        col = np.abs(w1[:, u])
        np.testing.assert_allclose(rows[1][u], col / np.linalg.norm(col))
    for j in range(net.widths[0]):  # layer 0: outgoing
        row = np.abs(w1[j])
        np.testing.assert_allclose(rows[0][j], row / np.linalg.norm(row))
