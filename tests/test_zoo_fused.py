"""The fused torch step (zoo_fused.py) against the autograd engine, its reproducibility, and its CUDA graph."""

import numpy as np
import pytest
import torch

from netembed.config import FamilyConfig, ZooConfig
from netembed.family import make_family
from netembed.zoo import AutogradStep, init_layers, lr_at, make_step, train_zoo
from netembed.zoo_fused import FusedStep

ACTIVATIONS = ["relu", "leaky_relu", "tanh", "sine", "gelu"]
# Tolerances, measured with train_zoo on these configs over seeds 0-7, every activation, depth 1 and 3, d 1
# and 2, 1 torch thread (tanh on the CPU computed as 2 sigmoid(2h) - 1): the engines' weights after 30 steps
# differ by at most 7.1e-6 (sine, depth 3; the rest <= 2.3e-6), their loss curves by at most 1.9e-7 relative.
# A wrong derivative moves weights by 0.08-0.11 in the same 30 steps (measured by breaking tanh's), and one
# Adam step is about lr = 1e-2.
WEIGHT_ATOL = 1e-4
LOSS_RTOL = 1e-5


def family_of(d: int):
    if d == 1:
        return make_family(FamilyConfig(n_functions=3, seed=1))
    return make_family(FamilyConfig(kind="bumps", input_dim=d, n_functions=3, seed=0, min_derivative_distance=0.5))


def config_of(activation: str, depth: int, seed: int = 2) -> ZooConfig:
    return ZooConfig(
        models_per_function=2, width=8, depth=depth, activation=activation, steps=30, batch_size=32, seed=seed
    )


def assert_same_weights(a, b, atol: float) -> None:
    for (wa, ba), (wb, bb) in zip(a.layers, b.layers):
        np.testing.assert_allclose(wa.numpy(), wb.numpy(), rtol=0, atol=atol)
        np.testing.assert_allclose(ba.numpy(), bb.numpy(), rtol=0, atol=atol)


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_the_fused_step_trains_as_the_autograd_engine_does(activation, depth, d):
    family, config = family_of(d), config_of(activation, depth)
    plain = train_zoo(family, config, engine="autograd")
    fused = train_zoo(family, config, engine="fused")
    assert (plain.engine, fused.engine) == ("autograd", "fused")
    assert_same_weights(plain, fused, WEIGHT_ATOL)
    np.testing.assert_allclose(fused.loss_curves, plain.loss_curves, rtol=LOSS_RTOL, atol=0)


@pytest.mark.parametrize("activation", ["relu", "sine"])
def test_the_fused_step_is_bit_reproducible_by_seed(activation):
    family, config = family_of(1), config_of(activation, 2)
    a, b = (train_zoo(family, config, engine="fused") for _ in range(2))
    assert_same_weights(a, b, atol=0)
    np.testing.assert_array_equal(a.loss_curves, b.loss_curves)
    other = train_zoo(family, config_of(activation, 2, seed=3), engine="fused")
    assert not torch.equal(other.layers[0][0], a.layers[0][0])  # the seed does reach the result


def test_auto_picks_the_fused_step_where_the_c_kernel_does_not_run():
    config = config_of("tanh", 2)
    layers = init_layers(config, np.arange(4))
    assert make_step(layers, config, "cpu", "auto")[1] == "fused"
    layers2 = init_layers(config_of("relu", 2), np.arange(4), input_dim=2)
    assert make_step(layers2, config_of("relu", 2), "cpu", "auto")[1] == "fused"
    with pytest.raises(ValueError, match="fused"):  # the error lists the engines
        make_step(layers, config, "cpu", "fast")


def test_one_fused_step_leaves_the_losses_it_returned_alone():
    """The step returns a copy: the next step overwrites its loss buffer, not the caller's tensor."""
    config = config_of("relu", 1)
    step = FusedStep(init_layers(config, np.arange(3)), config, lr_at)
    x, y = torch.linspace(-1, 1, 32), torch.zeros(3, 32)
    first = step(x, y, 1)
    kept = first.clone()
    step(x, y + 1, 2)
    assert torch.equal(first, kept)


CUDA = torch.cuda.is_available()


@pytest.mark.skipif(not CUDA, reason="no CUDA device: the CUDA-graph path runs only on a GPU")
@pytest.mark.parametrize("activation", ["relu", "sine"])
def test_the_cuda_graph_step_trains_as_the_autograd_engine_does_on_the_gpu(activation):
    family, config = family_of(1), config_of(activation, 2)
    plain = train_zoo(family, config, device="cuda", engine="autograd").to("cpu")
    fused = train_zoo(family, config, device="cuda", engine="fused").to("cpu")
    again = train_zoo(family, config, device="cuda", engine="fused").to("cpu")
    # the CPU-measured tolerance, not yet measured on a GPU (cuBLAS sums in other orders; no GPU was lent)
    assert_same_weights(plain, fused, WEIGHT_ATOL)
    assert_same_weights(fused, again, atol=0)  # the graph's replays are as reproducible as eager steps
    np.testing.assert_allclose(fused.loss_curves, plain.loss_curves, rtol=LOSS_RTOL, atol=0)


def test_the_fused_step_updates_the_callers_weights_in_place_even_when_they_require_grad():
    config = config_of("tanh", 2)
    layers = [(w.requires_grad_(), b.requires_grad_()) for w, b in init_layers(config, np.arange(3))]
    before = [p.detach().clone() for layer in layers for p in layer]
    FusedStep(layers, config, lr_at)(torch.linspace(-1, 1, 32), torch.ones(3, 32), 1)
    after = [p.detach() for layer in layers for p in layer]
    assert all(not torch.equal(a, b) for a, b in zip(before, after))  # every weight and bias took Adam's step


def test_the_gpu_step_benchmark_runs_small_on_the_cpu(tmp_path):
    """The one command a GPU session runs (`--device cuda`), here on the CPU at toy size: it must not break."""
    import json

    from benchmarks import gpu_step

    out = tmp_path / "gpu_step.json"
    args = ["--models", "8", "--activations", "relu,sine", "--model-steps", "40", "--rounds", "1", "--out", str(out)]
    gpu_step.main(args + ["--threads", str(torch.get_num_threads())])  # it sets torch's threads: keep the suite's
    result = json.loads(out.read_text())
    assert [(r["activation"], r["models"]) for r in result["rows"]] == [("relu", 8), ("sine", 8)]
    for row in result["rows"]:
        assert set(row["model_steps_per_s"]) == {"autograd", "fused"} and min(row["model_steps_per_s"].values()) > 0
    assert all(err["fused"] <= gpu_step.CHECK_ATOL for err in result["check_max_weight_difference"].values())


@pytest.mark.parametrize("activation", ["relu", "sine"])
@pytest.mark.parametrize(("width", "depth", "batch", "d"), [(1, 1, 1, 1), (3, 6, 2, 2), (1, 4, 5, 3)])
def test_the_fused_step_matches_autograd_at_edge_shapes(activation, width, depth, batch, d):
    """Width 1, batch 1, six layers (the gradient buffers alternate), three inputs: step by step from one init."""
    config = ZooConfig(models_per_function=2, width=width, depth=depth, activation=activation, batch_size=batch)
    plain_layers, fused_layers = (init_layers(config, np.arange(4), input_dim=d) for _ in range(2))
    plain, fused = AutogradStep(plain_layers, config), FusedStep(fused_layers, config, lr_at)
    g = torch.Generator().manual_seed(1)
    for step in range(1, 16):
        x = torch.rand(batch, d, generator=g) * 2 - 1
        y = torch.randn(4, batch, generator=g)
        plain(x.squeeze(-1) if d == 1 else x, y, step)
        fused(x.squeeze(-1) if d == 1 else x, y, step)
    for (wa, ba), (wf, bf) in zip(plain_layers, fused_layers):  # measured: <= 2.4e-7 on these shapes
        np.testing.assert_allclose(wf.numpy(), wa.detach().numpy(), rtol=0, atol=WEIGHT_ATOL)
        np.testing.assert_allclose(bf.numpy(), ba.detach().numpy(), rtol=0, atol=WEIGHT_ATOL)
