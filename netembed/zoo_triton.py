"""The zoo's training step as ONE Triton kernel: forward, loss, backward and Adam, one program per model.

zoo_fused.FusedStep runs a step as a dozen torch kernels, each reading and writing (n, B, W)
activations through GPU memory; the autograd engine saturated at about 1 M model-steps/s on an H100
(issue 14) and 3 M on an H200 (measured here), the fused step at 3.5 M. Here each program owns one
model of 1 -> W -> W -> 1 (input_dim 1, depth 2, the zoo's default shape): it loads the model's weights into registers, walks the batch in blocks of BB
samples, keeps every activation of a block in registers, accumulates the gradients there, and ends
with Adam on its own weights. Per model-step, memory traffic is the weights and Adam's moments read
and written once (about 28 KB at W = 32) plus the model's targets: the step is bound by arithmetic.

    forward   z1 = x w0 + b0 (BB, W),  a1 = act(z1),  z2 = a1 w1 + b1,  a2 = act(z2),  out = a2 w2 + b2 (BB,)
    loss      e = out - y,  loss = mean_B e^2,  g = 2 e / B
    backward  gw2 = a2^T g,  d2 = g w2^T * act'(z2),  gw1 = a1^T d2,  d1 = d2 w1^T * act'(z1),  gw0 = x^T d1
    Adam      torch's update: m, v, then p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

Widths and batches need not be powers of two: the weights are loaded zero-padded to WP (act(0) = 0
for every activation here, so padded units stay silent), and rows past B get zero error. The
matmuls are tl.dot at `precision` "tf32x3" (the default: tensor cores, three TF32 products per float32
product, within float32's rounding of the autograd engine, which keeps TF32 off), "ieee" (float32 on
the CUDA cores: 1.6x slower for relu, 10x for sine) or "tf32" (one TF32 product: 1.5x faster than
tf32x3, but weights drift from autograd's by 2e-2 to 6e-2 in 20 steps). Measured on an H200 with
benchmarks/gpu_step.py: see the README.

Without a GPU the kernel runs in Triton's interpreter (numpy, one program at a time: for tests
only); `auto` in zoo.make_step picks this step on CUDA alone.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from collections.abc import Callable

import torch

from .config import ZooConfig
from .zoo_fused import ADAM_BETAS, ADAM_EPS, LEAKY_SLOPE

ACTIVATION_CODES = {"relu": 0, "leaky_relu": 1, "tanh": 2, "sine": 3, "gelu": 4}
PRECISIONS = ("tf32x3", "ieee", "tf32")
MAX_WIDTH = 128  # a (W, W) weight, its gradient and Adam's moments live in one program's registers
DEPTH = 2  # hidden layers the kernel is written for (1 -> W -> W -> 1)


class TritonUnavailable(RuntimeError):
    """The Triton step cannot run this zoo here (no triton, or a shape it is not written for)."""


def why_unavailable(config: ZooConfig, input_dim: int = 1) -> str | None:
    """None if TritonStep takes this zoo, else why not (one line)."""
    if config.activation not in ACTIVATION_CODES:
        return f"the Triton step has no activation {config.activation!r}"
    if config.depth != DEPTH or input_dim != 1:
        return f"the Triton step is written for 1 -> W -> W -> 1 models, not {input_dim} -> W^{config.depth} -> 1"
    if config.width > MAX_WIDTH:
        return f"the Triton step holds widths up to {MAX_WIDTH} in registers, not {config.width}"
    if importlib.util.find_spec("triton") is None:  # found, not imported: importing fixes its mode (load_kernel)
        return "triton is not installed (pip install -r requirements-gpu.txt)"
    return None


def auto_prefers(config: ZooConfig, input_dim: int = 1) -> bool:
    """Whether `auto` trains this zoo with the Triton step on a GPU: wherever it takes the shape. On an H200 at
    16k models it ran every activation faster than zoo_fused's CUDA graph (model-steps/s: relu 16.8 M vs 3.5 M,
    leaky_relu 16.3 vs 3.6, tanh 11.6 vs 3.6, gelu 8.0 vs 3.1, sine 5.0 vs 3.2; benchmarks/gpu_step.py)."""
    return why_unavailable(config, input_dim) is None


def next_power_of_two(k: int) -> int:
    return 1 << max(0, k - 1).bit_length()


SLOW_ACTIVATIONS = ("sine", "gelu")  # libdevice's sin / cos and erf / exp: more registers per sample


def default_block(width: int, batch: int, activation: str = "relu") -> tuple[int, int]:
    """(BB, num_warps): samples per block and warps per program, by shape and activation alone (never by timing,
    so a config sums in the same order, to the same numbers, on every run). Measured on an H200 at W = 32, 16k
    models, tf32x3 (benchmarks/gpu_step.py --engines triton@BBxWARPS; M model-steps/s at 32x1, 32x2, 16x2, 64x2):
    relu 16.9, 12.4, 14.9, 14.6; tanh 11.6, 8.6, 8.3, 9.0; gelu 7.3, 8.0, 6.4, 6.7; sine 2.8, 5.0, 4.4, 3.2; and
    relu at 32x4 5.8, 64x4 10.1 (spills). So 32 samples of 32 units, one warp, two for sine and gelu. Other widths
    keep a block's (BB, WP) tiles at that size per thread; they were not measured."""
    wp = max(16, next_power_of_two(width))
    warps = {16: 1, 32: 1, 64: 4, 128: 8}[wp] * (2 if activation in SLOW_ACTIVATIONS and wp <= 32 else 1)
    return max(16, min(next_power_of_two(batch), 1024 // wp)), warps


class TritonStep:
    """The zoo's training step as one Triton kernel per step; updates `layers` [(w (n, fan_in, fan_out),
    b (n, 1, fan_out))] in place, as the other engines do. Same call as zoo_fused.FusedStep."""

    def __init__(
        self,
        layers: list[tuple[torch.Tensor, torch.Tensor]],
        config: ZooConfig,
        lr_at: Callable[[int, ZooConfig], float],
        precision: str = "tf32x3",
        block: tuple[int, int] | None = None,
    ):
        why = why_unavailable(config, layers[0][0].shape[1])
        if why:
            raise TritonUnavailable(why)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.kernel = load_kernel(layers[0][0].device)
        self.params = [p.detach() for layer in layers for p in layer]  # w0 b0 w1 b1 w2 b2, updated in place
        if any(not p.is_contiguous() or p.dtype != torch.float32 for p in self.params):
            raise ValueError("the Triton step needs contiguous float32 weights")
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in self.params]
        self.n, self.width, self.B = self.params[0].shape[0], config.width, config.batch_size
        self.config, self.lr_at, self.precision = config, lr_at, precision
        self.block_batch, self.num_warps = block or default_block(config.width, config.batch_size, config.activation)
        self.losses = torch.empty(self.n, device=self.params[0].device)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        """Adam step number `step` (from 1) on inputs x (B,), targets y (n, B) -> losses (n,) before it."""
        beta1, beta2 = ADAM_BETAS
        # torch's fused Adam forms these per step in float32 from the step count; here in float64, then rounded
        step_size = self.lr_at(step - 1, self.config) / (1 - beta1**step)
        bias_correction2_sqrt = math.sqrt(1 - beta2**step)
        self.kernel[(self.n,)](
            x.reshape(self.B).contiguous(), y.contiguous(), self.losses,
            *self.params, *self.exp_avgs, *self.exp_avg_sqs,
            step_size, bias_correction2_sqrt, B=self.B, W=self.width,
            BETA1=beta1, BETA2=beta2, EPS=ADAM_EPS,
            WP=max(16, next_power_of_two(self.width)), BB=self.block_batch,
            ACT=ACTIVATION_CODES[self.config.activation], SLOPE=LEAKY_SLOPE, PRECISION=self.precision,
            num_warps=self.num_warps,
        )  # fmt: skip
        return self.losses.clone()  # the buffer is overwritten by the next step


def load_kernel(device: torch.device):
    """zoo_triton_kernel.zoo_step, compiled for a GPU or run by Triton's interpreter on the CPU. The mode is the
    process's: Triton reads TRITON_INTERPRET when it is first imported (its own tl.zeros, tl.sum, ... are
    decorated then), so on the CPU it is set here if Triton is not imported yet."""
    interpret = torch.device(device).type == "cpu"
    if interpret and "triton" not in sys.modules:
        os.environ["TRITON_INTERPRET"] = "1"
    import triton

    if triton.knobs.runtime.interpret != interpret:
        mode = "its interpreter" if triton.knobs.runtime.interpret else "a GPU"
        raise TritonUnavailable(
            f"Triton was set up for {mode} in this process; run the Triton step on {device.type} in a fresh one"
            + (" with TRITON_INTERPRET=1" if interpret else " without TRITON_INTERPRET")
        )
    from .zoo_triton_kernel import zoo_step

    return zoo_step
