"""Functions of d inputs: the bumps family, d -> h -> 1 zoos, region masking, the embedder, storage and the CLI."""

import json

import numpy as np
import pytest
import torch

from netembed.cli import main
from netembed.cloze_model import Embedder
from netembed.cloze_task import GradientSource, draw_inputs, region_mask
from netembed.config import ClozeConfig, ConfigError, FamilyConfig, ZooConfig
from netembed.family import make_family
from netembed.gradients import input_gradients
from netembed.pipeline import run_pipeline
from netembed.regions import activation_patterns, point_gradients
from netembed.store import load_run, save_run
from netembed.zoo import train_zoo
from netembed.zoo_kernel import KernelUnavailable


def bumps(d, k=5, seed=0):
    return make_family(FamilyConfig(kind="bumps", input_dim=d, n_functions=k, seed=seed, min_derivative_distance=0.5))


@pytest.fixture(scope="module")
def zoo2d():
    family = bumps(2, k=3)
    return family, train_zoo(family, ZooConfig(models_per_function=4, width=8, steps=40, batch_size=64))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_bump_gradients_match_autograd_and_finite_differences(d):
    family = bumps(d)
    x = np.random.default_rng(1).uniform(-1, 1, (40, d))
    grads = family.derivatives(x)  # (K, n, d)
    xt = torch.tensor(x, requires_grad=True)
    a, c, s = (torch.as_tensor(v) for v in (family.amplitudes, family.centres, family.widths))
    y = (a[:, :, None] * torch.exp(-((xt[None, None] - c[:, :, None]) ** 2).sum(-1) / (2 * s[:, :, None] ** 2))).sum(1)
    np.testing.assert_allclose(y.detach().numpy() + family.offsets[:, None], family.values(x), atol=1e-12)
    auto = np.stack([torch.autograd.grad(y[k].sum(), xt, retain_graph=True)[0].numpy() for k in range(len(y))])
    np.testing.assert_allclose(grads, auto, atol=1e-10)  # (K, n, d): each member's own gradient field
    h = 1e-6
    for j in range(d):
        step = np.zeros(d)
        step[j] = h
        fd = (family.values(x + step) - family.values(x - step)) / (2 * h)
        np.testing.assert_allclose(grads[..., j], fd, atol=1e-6)


def test_bump_family_is_normalised_and_varied():
    for d in (1, 2, 4):
        family = bumps(d)
        from netembed.family_nd import sample_points

        y = family.values(sample_points(d))
        np.testing.assert_allclose(y.min(1), -1.0, atol=1e-12)
        np.testing.assert_allclose(y.max(1), 1.0, atol=1e-12)
        dist = family.derivative_distances()
        assert dist[np.triu_indices(len(dist), 1)].min() >= 0.5


def test_one_dimensional_bumps_keep_the_1d_interface():
    family = bumps(1)
    x = np.linspace(-1, 1, 11)
    assert family.values(x).shape == (5, 11) and family.derivatives(x).shape == (5, 11)
    np.testing.assert_allclose(family.derivatives(x), family.derivatives(x[:, None])[..., 0])


def test_input_dim_needs_bumps():
    with pytest.raises(ConfigError, match="input_dim"):
        FamilyConfig(kind="polynomials", input_dim=2)


def test_zoo_gradients_in_2d_match_exact_regions_and_finite_differences(zoo2d):
    family, zoo = zoo2d
    assert zoo.input_dim == 2 and zoo.engine == "fused"
    x = np.random.default_rng(2).uniform(-1, 1, (50, 2))
    g = input_gradients(zoo, x)  # (n, 50, 2) float32 autograd
    exact = point_gradients(zoo.layers, x, zoo.config.activation)  # float64 from the activation patterns
    np.testing.assert_allclose(g, exact, rtol=1e-4, atol=1e-5)
    layers64 = [(w.double(), b.double()) for w, b in zoo.layers]
    from netembed.zoo import mlp_forward

    h = 1e-7
    for j in range(2):
        step = np.zeros(2)
        step[j] = h
        plus = mlp_forward(layers64, torch.as_tensor(x + step), "relu").numpy()
        minus = mlp_forward(layers64, torch.as_tensor(x - step), "relu").numpy()
        fd = (plus - minus) / (2 * h)
        # a point within h of a kink has a one-sided difference: allow those few (none expected at 50 points)
        assert np.mean(np.abs(fd - exact[..., j]) < 1e-5) > 0.99


def test_fit_check_and_seed_split_in_2d(zoo2d):
    _, zoo = zoo2d
    assert zoo.fit_mse.shape == (12,) and np.isfinite(zoo.fit_mse).all()
    assert zoo.is_train.sum() == 3 * zoo.config.n_train_seeds


def test_the_c_kernel_refuses_2d_inputs():
    with pytest.raises(KernelUnavailable, match="one input"):
        train_zoo(bumps(2, k=2), ZooConfig(models_per_function=2, width=8, steps=2), engine="kernel")


def test_region_masking_never_leaks_a_masked_gradient_into_the_embedder(zoo2d):
    _, zoo = zoo2d
    source = GradientSource(zoo, "section")
    embedder = Embedder(ClozeConfig(d_model=16, bottleneck=2), input_dim=2)
    seen = {}
    embedder.tokens.register_forward_hook(lambda module, inputs, output: seen.update(feats=inputs[0]))
    for seed in range(5):
        gen = torch.Generator().manual_seed(seed)
        ids = torch.arange(zoo.n_models)
        x = draw_inputs(64, gen, input_dim=2)
        true = source.gradients(ids, x)  # (B, N, 2)
        regions = source.section_ids(ids, x)
        masked = region_mask(regions, 0.5, gen, 2)
        embedder.encode(x, true, masked)
        feats = seen["feats"]  # (B, N, 2 * 17 + 2 + 1): [fourier(x1), fourier(x2), g * visible, masked]
        g_in = feats[..., -3:-1]
        assert (g_in[masked] == 0).all() and (feats[..., -1] == masked.float()).all()
        patterns = activation_patterns(zoo.layers, x.numpy(), "relu")  # (B, N, H)
        for b in range(zoo.n_models):
            hidden = {p.tobytes() for p in patterns[b][masked[b].numpy()]}
            shown = {p.tobytes() for p in patterns[b][~masked[b].numpy()]}
            assert hidden and not (hidden & shown)  # no shown sample lies in a hidden region


def test_embedder_is_invariant_to_the_order_of_2d_samples(zoo2d):
    _, zoo = zoo2d
    torch.manual_seed(0)
    embedder = Embedder(ClozeConfig(d_model=16, bottleneck=3), input_dim=2).eval()
    source = GradientSource(zoo, "section")
    gen = torch.Generator().manual_seed(3)
    x = draw_inputs(40, gen, input_dim=2)
    ids = torch.arange(zoo.n_models)
    true = source.gradients(ids, x)
    masked = region_mask(source.section_ids(ids, x), 0.3, gen, 2)
    perm = torch.randperm(40, generator=gen)
    with torch.no_grad():
        a = embedder.encode(x, true, masked)
        b = embedder.encode(x[perm], true[:, perm], masked[:, perm])
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_a_2d_run_round_trips_through_the_store(tmp_path):
    run = run_pipeline(FamilyConfig(kind="bumps", input_dim=2, n_functions=3), ZooConfig(models_per_function=4, width=8,
                       steps=30, batch_size=64), ClozeConfig(steps=5, d_model=16, n_inputs=16), projections=("pca",))  # fmt: skip
    save_run(run, tmp_path / "r")
    back = load_run(tmp_path / "r")
    assert back.family.input_dim == back.zoo.input_dim == back.embedder.input_dim == 2
    x = np.random.default_rng(0).uniform(-1, 1, (20, 2))
    np.testing.assert_array_equal(back.family.values(x), run.family.values(x))
    np.testing.assert_array_equal(back.zoo(x), run.zoo(x))
    np.testing.assert_array_equal(back.embedder.embeddings_, run.embedder.embeddings_.astype(np.float32))
    assert back.report == run.report


def test_run_input_dim_2_end_to_end_on_the_command_line(tmp_path):
    flags = ["--family", "bumps", "--input-dim", "2", "--functions", "3", "--models-per-function", "4", "--width", "8",
             "--steps", "30", "--batch-size", "64", "--embed-steps", "5", "--d-model", "16", "--n-inputs", "16"]  # fmt: skip
    assert main(["run", *flags, "--out", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["config"]["family"]["input_dim"] == 2
    assert 0.0 <= report["probes"]["cloze"]["linear_accuracy"] <= 1.0
    assert load_run(tmp_path / "r").zoo.input_dim == 2


def test_every_app_page_renders_a_2d_run(private_runs_folder):
    from app_session import PAGES, fresh, visit

    run = run_pipeline(FamilyConfig(kind="bumps", input_dim=2, n_functions=3), ZooConfig(models_per_function=4, width=8,
                       steps=30, batch_size=64), ClozeConfig(steps=5, d_model=16, n_inputs=16), projections=("pca",))  # fmt: skip
    save_run(run, private_runs_folder / "tiny-2d")
    at = fresh()
    at.selectbox(key="run").set_value("saved:tiny-2d").run()
    for page in PAGES:
        visit(at, page)  # asserts no exception on the page
    visit(at, "gradients")
    assert any("linear regions" in c.value for c in at.caption)
