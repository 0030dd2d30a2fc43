"""The fused C training step against the plain autograd step (and, in test_zoo.py, against a loop of nn.Modules)."""

import platform
import shutil

import numpy as np
import pytest
import torch

from netembed import zoo_kernel
from netembed.config import ZooConfig
from netembed.zoo import AutogradStep, init_layers, lr_at, train_zoo

needs_kernel = pytest.mark.skipif(
    zoo_kernel.why_unavailable(ZooConfig(), "cpu") is not None, reason="no C compiler: the kernel cannot be built"
)


def train_steps(step_cls, config, seeds, xs, ys, poison=None):
    """Run one engine for len(xs) steps from the zoo's init; optionally set model `poison`'s first weight to NaN."""
    layers = init_layers(config, seeds)
    if poison is not None:
        layers[0][0][poison, 0, 0] = float("nan")
    step = step_cls(layers, config, lr_at) if step_cls is zoo_kernel.KernelStep else step_cls(layers, config)
    losses = [step(x, y, i + 1) for i, (x, y) in enumerate(zip(xs, ys))]
    return [(w.detach(), b.detach()) for w, b in layers], torch.stack(losses, 1)


def random_batches(n_models, batch, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.rand(batch, generator=g) * 2 - 1 for _ in range(steps)]
    ys = [torch.sin(3 * x + torch.arange(n_models)[:, None].float()) for x in xs]  # (n, batch) distinct targets
    return xs, ys


def assert_kernel_matches_autograd(config: ZooConfig, seeds, xs, ys) -> None:
    """The C kernel and the autograd step, trained from the same inits on the same batches, agree."""
    kernel_layers, kernel_losses = train_steps(zoo_kernel.KernelStep, config, seeds, xs, ys)
    ref_layers, ref_losses = train_steps(AutogradStep, config, seeds, xs, ys)
    torch.testing.assert_close(kernel_losses, ref_losses, rtol=1e-4, atol=1e-6)
    for (kw, kb), (rw, rb) in zip(kernel_layers, ref_layers):
        torch.testing.assert_close(kw, rw, rtol=1e-4, atol=2e-5)
        torch.testing.assert_close(kb, rb, rtol=1e-4, atol=2e-5)


@needs_kernel
@pytest.mark.parametrize(
    "activation, width, depth, batch",
    [("relu", 32, 2, 64), ("relu", 12, 3, 37), ("leaky_relu", 7, 2, 19), ("relu", 16, 1, 8), ("leaky_relu", 40, 4, 50)],
)
def test_kernel_matches_the_autograd_step(activation, width, depth, batch):
    # Three steps: later, a sample sitting on a ReLU kink can flip sides under float rounding, which
    # Adam's normalisation turns into a weight change of order lr; that is rounding, not a bug.
    config = ZooConfig(width=width, depth=depth, activation=activation, steps=3, batch_size=batch, lr=3e-3)
    seeds = np.arange(5) + 100
    assert_kernel_matches_autograd(config, seeds, *random_batches(5, batch, config.steps))


# The default build uses the widest vectors of this CPU (16 lanes with AVX-512); CI machines may have only AVX2
# (8 lanes, 16 registers: another tile shape) or less, so the narrower builds are checked here on any x86-64.
# Widths and batches put edge tiles in every matmul: 32 (two column blocks; 32 = 5 x 6 + 2 rows on AVX2),
# 40 (5 vectors: a one-vector column block) and 12 (3 vectors of 4 lanes on SSE); batches 45 (42 + 3: a full
# half tile on AVX2), 53 (48 + 5: a padded tile) and 37 end in short, padded row tiles. Two builds of three
# libraries each: about 5 s on a quiet machine.
NARROW_BUILDS = {"-mno-avx512f": 8, "-mno-avx512f -mno-avx": 4}  # extra flags -> the most lanes they allow


@needs_kernel
@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 vector flags")
@pytest.mark.parametrize("cflags", NARROW_BUILDS)
def test_kernel_built_for_narrower_vectors_matches_the_autograd_step(cflags, monkeypatch):
    monkeypatch.setenv("NETEMBED_KERNEL_CFLAGS", cflags)
    for activation, width, depth, batch in [("relu", 32, 2, 45), ("leaky_relu", 40, 3, 53), ("relu", 12, 1, 37)]:
        assert zoo_kernel.load_library(width, activation).zoo_vector_lanes() <= NARROW_BUILDS[cflags]
        config = ZooConfig(width=width, depth=depth, activation=activation, steps=3, batch_size=batch, lr=3e-3)
        seeds = np.arange(5) + 7
        assert_kernel_matches_autograd(config, seeds, *random_batches(5, batch, config.steps, seed=width))


@needs_kernel
def test_a_nan_model_never_touches_the_others():
    config = ZooConfig(width=16, steps=5, batch_size=32)
    seeds = np.arange(6)
    xs, ys = random_batches(6, 32, config.steps)
    clean, clean_losses = train_steps(zoo_kernel.KernelStep, config, seeds, xs, ys)
    poisoned, poisoned_losses = train_steps(zoo_kernel.KernelStep, config, seeds, xs, ys, poison=2)
    others = np.arange(6) != 2
    assert torch.isnan(poisoned_losses[2]).all()
    assert torch.equal(poisoned_losses[others], clean_losses[others])
    for (cw, cb), (pw, pb) in zip(clean, poisoned):
        assert torch.equal(cw[others], pw[others]) and torch.equal(cb[others], pb[others])
        assert torch.isnan(pw[2]).any()


@needs_kernel
def test_a_nan_weight_behind_a_dead_unit_poisons_its_model_as_in_torch():
    # The kernel skips columns of activations that are 0 in a whole tile (SKIP_ZEROS in zoo_kernel.c), which is
    # exact only for finite weights: torch computes 0 * NaN = NaN. Unit 3 of model 1 is dead (0 for every x)
    # and a weight leaving it is NaN: the loss must turn NaN after the first step, as autograd's does.
    config = ZooConfig(width=16, depth=2, steps=2, batch_size=32)
    seeds = np.arange(4)
    xs, ys = random_batches(4, 32, config.steps)

    def poisoned(step_cls):
        layers = init_layers(config, seeds)
        (w0, b0), (w1, _) = layers[0], layers[1]
        w0[1, 0, 3], b0[1, 0, 3], w1[1, 3, 5] = 0.0, -1.0, float("nan")
        step = step_cls(layers, config, lr_at) if step_cls is zoo_kernel.KernelStep else step_cls(layers, config)
        return torch.stack([step(x, y, i + 1) for i, (x, y) in enumerate(zip(xs, ys))], 1)

    kernel, ref = poisoned(zoo_kernel.KernelStep), poisoned(AutogradStep)
    assert torch.isnan(ref[1]).all() and torch.isnan(kernel[1]).all()
    torch.testing.assert_close(kernel[[0, 2, 3]], ref[[0, 2, 3]], rtol=1e-4, atol=1e-6)


@needs_kernel
def test_diverged_models_are_flagged_by_the_kernel_zoo(tiny_family):
    zoo = train_zoo(tiny_family, ZooConfig(models_per_function=2, width=8, steps=30, batch_size=32, lr=10.0))
    assert zoo.engine == "kernel"
    assert zoo.failed.any() and zoo.failed[~np.isfinite(zoo.fit_mse)].all()


@needs_kernel
def test_kernel_zoo_is_deterministic_and_independent_of_thread_count(tiny_family, monkeypatch):
    config = ZooConfig(models_per_function=3, width=16, steps=40, batch_size=64, seed=2)
    a = train_zoo(tiny_family, config)
    monkeypatch.setenv("NETEMBED_KERNEL_THREADS", "2")
    assert zoo_kernel.kernel_threads() == 2
    b = train_zoo(tiny_family, config)
    assert a.engine == b.engine == "kernel"
    for (wa, ba), (wb, bb) in zip(a.layers, b.layers):
        assert torch.equal(wa, wb) and torch.equal(ba, bb)
    monkeypatch.setenv("NETEMBED_KERNEL_THREADS", "two")
    with pytest.raises(ValueError, match="NETEMBED_KERNEL_THREADS"):
        train_zoo(tiny_family, config)


def test_engines_agree_on_a_whole_zoo_and_auto_falls_back_for_smooth_activations(tiny_family):
    config = ZooConfig(models_per_function=2, width=8, steps=20, batch_size=32, seed=4)
    auto = train_zoo(tiny_family, config)
    plain = train_zoo(tiny_family, config, engine="autograd")
    assert plain.engine == "autograd"
    # measured over seeds 0-9, 1 and 2 threads (EPYC): the engines' fit MSEs differ by at most 1% of this tolerance
    np.testing.assert_allclose(auto.fit_mse, plain.fit_mse, rtol=1e-3, atol=1e-6)
    smooth = train_zoo(tiny_family, ZooConfig(models_per_function=2, width=8, steps=3, activation="tanh"))
    assert smooth.engine == "fused"
    with pytest.raises(zoo_kernel.KernelUnavailable, match="tanh"):
        train_zoo(tiny_family, ZooConfig(models_per_function=2, width=8, steps=3, activation="tanh"), engine="kernel")
    with pytest.raises(ValueError, match="engine"):
        train_zoo(tiny_family, config, engine="fast")


@needs_kernel
def test_a_kernel_that_cannot_be_built_falls_back_to_the_fused_step(tiny_family, monkeypatch, tmp_path):
    config = ZooConfig(models_per_function=2, width=3, steps=3, batch_size=8)
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    with pytest.warns(RuntimeWarning, match="building the C kernel failed"):
        assert train_zoo(tiny_family, config).engine == "fused"
    with pytest.raises(zoo_kernel.KernelUnavailable):
        train_zoo(tiny_family, config, engine="kernel")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("CC", shutil.which("gcc"))
    monkeypatch.setenv("NETEMBED_CACHE_DIR", str(blocker / "cache"))  # cannot be created
    with pytest.warns(RuntimeWarning, match="could not be built or loaded"):
        assert train_zoo(tiny_family, config).engine == "fused"
    monkeypatch.setenv("NETEMBED_NO_KERNEL", "1")
    assert train_zoo(tiny_family, config).engine == "fused"
