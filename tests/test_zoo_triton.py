"""The Triton step (zoo_triton.py) against the autograd engine: on the CPU through Triton's interpreter, on a GPU
compiled. The interpreter runs the kernel's own code (its masks, blocks, dots and Adam), one program at a time."""

import re

import numpy as np
import pytest
import torch
from test_zoo_fused import ACTIVATIONS, LOSS_RTOL, WEIGHT_ATOL, assert_same_weights, config_of, family_of

from netembed.config import ZooConfig
from netembed.zoo import AutogradStep, init_layers, lr_at, make_step, train_zoo
from netembed.zoo_triton import TritonStep, TritonUnavailable, default_block

# WEIGHT_ATOL (1e-4) is the fused step's, measured on the CPU; here, in the interpreter, the largest difference from
# autograd over these cases was 1.2e-7 (relu, tanh, gelu) to 9.5e-7 (sine) after 20-30 steps, on seeds 2-4. On an
# H200 (tf32x3) these tests passed, and benchmarks/gpu_step.py's check (64 models, batch 256) gave 2.7e-7 to 4.7e-6,
# gelu 8.8e-5. A broken derivative or Adam term moved weights by 3e-3 to 2e-2 in the same 30 steps (measured by
# breaking gelu's derivative and Adam's second moment).
CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"


def steps_against_autograd(config: ZooConfig, n: int, block, steps: int = 20, seed: int = 3, **options):
    """The same init and draws through AutogradStep and TritonStep: both engines' (weights, last losses)."""
    layers = init_layers(config, np.arange(seed, seed + n), DEVICE)
    ours = [(w.clone(), b.clone()) for w, b in layers]
    plain, triton = AutogradStep(layers, config), TritonStep(ours, config, lr_at, block=block, **options)
    g = torch.Generator().manual_seed(seed)
    for step in range(1, steps + 1):
        x = (torch.rand(config.batch_size, generator=g) * 2 - 1).to(DEVICE)
        y = torch.sin(3 * x) + 0.1 * torch.randn(n, config.batch_size, generator=g).to(DEVICE)
        loss_plain, loss_triton = plain(x, y, step), triton(x, y, step)
    return (
        [p.detach() for layer in layers for p in layer],
        [p for layer in ours for p in layer],
        loss_plain,
        loss_triton,
    )


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_the_triton_step_trains_as_the_autograd_engine_does(activation):
    family, config = family_of(1), config_of(activation, 2)
    plain = train_zoo(family, config, device=DEVICE, engine="autograd").to("cpu")
    triton = train_zoo(family, config, device=DEVICE, engine="triton").to("cpu")
    assert (plain.engine, triton.engine) == ("autograd", "triton")
    assert_same_weights(plain, triton, WEIGHT_ATOL)
    np.testing.assert_allclose(triton.loss_curves, plain.loss_curves, rtol=LOSS_RTOL, atol=0)


@pytest.mark.parametrize("activation", ["relu", "sine"])  # each activation: the train_zoo test above
@pytest.mark.parametrize(("width", "batch", "block"), [(20, 50, (16, 4)), (7, 33, None), (32, 70, (32, 4))])
def test_padded_widths_and_batches_over_several_blocks_match_autograd(activation, width, batch, block):
    """Widths padded to a power of two (act(0) = 0 keeps padded units silent), and batches whose last block is
    partly masked: the gradient sums over blocks must equal autograd's over the whole batch."""
    config = ZooConfig(width=width, batch_size=batch, activation=activation, steps=20)
    plain, ours, loss_plain, loss_ours = steps_against_autograd(config, n=3, block=block)
    for a, b in zip(plain, ours):
        torch.testing.assert_close(b, a, rtol=0, atol=WEIGHT_ATOL)
    torch.testing.assert_close(loss_ours, loss_plain.detach(), rtol=LOSS_RTOL, atol=0)


def test_the_triton_step_is_bit_reproducible_by_seed():
    family, config = family_of(1), config_of("sine", 2)
    a, b = (train_zoo(family, config, device=DEVICE, engine="triton").to("cpu") for _ in range(2))
    assert_same_weights(a, b, atol=0)  # no atomics: each program sums its own model in a fixed order
    np.testing.assert_array_equal(a.loss_curves, b.loss_curves)


def test_shapes_the_kernel_is_not_written_for_are_a_clear_error():
    for config, d, words in [
        (config_of("relu", 3), 1, "1 -> W -> W -> 1"),
        (config_of("relu", 2), 2, "not 2 -> W^2 -> 1"),
        (ZooConfig(width=200), 1, "widths up to 128"),
    ]:
        with pytest.raises(TritonUnavailable, match=re.escape(words)):
            make_step(init_layers(config, np.arange(2), input_dim=d), config, "cpu", "triton")


def test_the_default_block_keeps_a_blocks_tiles_small():
    assert default_block(32, 256) == (32, 1)  # 32 samples x 32 units: the fastest measured on an H200
    assert default_block(32, 256, "sine") == (32, 2)  # sin and cos need more registers
    assert default_block(7, 33) == (64, 1)  # width padded to 16, the batch to 64
    assert default_block(128, 256) == (16, 8)  # tl.dot's smallest side


@pytest.mark.skipif(not CUDA, reason="no CUDA device: the interpreter computes tl.dot in float32 at any precision")
@pytest.mark.parametrize("precision", ["tf32x3", "ieee"])
def test_both_float32_precisions_train_as_autograd_does_on_a_gpu(precision):
    config = ZooConfig(width=32, batch_size=256, activation="tanh", steps=20)
    plain, ours, loss_plain, loss_ours = steps_against_autograd(config, n=64, block=None, precision=precision)
    for a, b in zip(plain, ours):
        torch.testing.assert_close(b, a, rtol=0, atol=WEIGHT_ATOL)
    torch.testing.assert_close(loss_ours, loss_plain.detach(), rtol=LOSS_RTOL, atol=0)


@pytest.mark.skipif(not CUDA, reason="no CUDA device: on the CPU the same tests run the kernel in the interpreter")
def test_auto_picks_the_triton_step_on_a_gpu_where_it_fits():
    config = config_of("relu", 2)
    assert make_step(init_layers(config, np.arange(2), "cuda"), config, "cuda", "auto")[1] == "triton"
    deep = config_of("relu", 3)  # a shape the kernel is not written for
    assert make_step(init_layers(deep, np.arange(2), "cuda"), deep, "cuda", "auto")[1] == "fused"
