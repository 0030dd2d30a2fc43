"""The zoo's fused CPU training step: zoo_kernel.c, built once with the system's C compiler.

`KernelStep` trains stacked ReLU / leaky-ReLU float32 models on the CPU, one fused pass per
model per step (forward, hand-written backward and Adam), keeping activations in L1. It
updates the zoo's weight tensors in place. Where it cannot run (no compiler, another
device, a smooth activation) `available()` says why and the zoo falls back to the torch
step in fused_step.py, which computes the same numbers.

Threads: the kernel parallelises over models with OpenMP, but uses ONE thread unless
$NETEMBED_KERNEL_THREADS says otherwise. Every step ends at a barrier, and when another
process holds a core the waiting thread spins: on this shared 2-core machine 2 threads ran
4-7x SLOWER than 1 (1000 steps of 100 models: 13-23 s against 3.1-3.6 s). To use many
cores, train shards in separate processes (shards.py), which never wait on each other.

Build: gcc -O3 -march=native -fopenmp, one library per (width, activation), cached under
$NETEMBED_KERNEL_CACHE or the temp folder, keyed by the source, the flags and the CPU, so
a library built for one machine is never loaded on another. A build takes about a second.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

from .config import ZooConfig

SOURCE = Path(__file__).with_name("zoo_kernel.c")
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-ffp-contract=fast", "-fopenmp", "-shared", "-fPIC", "-std=c11"]
MAX_WIDTH = 512  # wider layers are matmul-bound: torch's BLAS does better there
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults
_lock = threading.Lock()
_libraries: dict[tuple[int, str, str], ctypes.CDLL] = {}


class KernelUnavailable(RuntimeError):
    """The fused C step cannot run here; the message says why."""


def why_unavailable(config: ZooConfig, device) -> str | None:
    """None if the kernel can train this zoo, else the reason it cannot."""
    if torch.device(device).type != "cpu":
        return f"the C kernel runs on the CPU only, not {device}"
    if config.activation not in ("relu", "leaky_relu"):
        return f"the C kernel handles relu and leaky_relu, not {config.activation}"
    if config.width > MAX_WIDTH:
        return f"width {config.width} > {MAX_WIDTH}: torch's BLAS is the better engine there"
    if os.environ.get("NETEMBED_NO_KERNEL"):
        return "disabled by NETEMBED_NO_KERNEL"
    if shutil.which(os.environ.get("CC", "gcc")) is None:
        return "no C compiler (gcc) found"
    return None


def _cpu_key() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        flags = platform.processor()
    return platform.machine() + flags


def load_library(width: int, activation: str) -> ctypes.CDLL:
    """Build (once per machine) and load the kernel for this width and activation."""
    cc = os.environ.get("CC", "gcc")
    key = (width, activation, cc)
    with _lock:
        if key not in _libraries:
            try:
                _libraries[key] = _build_and_load(width, activation, cc)
            except OSError as err:  # an unwritable cache folder, a library the loader refuses
                raise KernelUnavailable(f"the C kernel could not be built or loaded: {err}") from err
        return _libraries[key]


def _build_and_load(width: int, activation: str, cc: str) -> ctypes.CDLL:
    """Compile zoo_kernel.c for this width and activation (unless cached) and load it."""
    defines = [f"-DW={width}"] + (["-DLEAKY"] if activation == "leaky_relu" else [])
    digest = hashlib.sha256(
        SOURCE.read_bytes() + " ".join([cc, *FLAGS, *defines]).encode() + _cpu_key().encode()
    ).hexdigest()[:16]
    cache = Path(os.environ.get("NETEMBED_KERNEL_CACHE", Path(tempfile.gettempdir()) / "netembed-kernels"))
    target = cache / f"zoo_kernel_{width}_{activation}_{digest}.so"
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.tmp")  # atomic: another process may build too
        done = subprocess.run([cc, *FLAGS, *defines, str(SOURCE), "-o", str(partial), "-lm"], capture_output=True, text=True)
        if done.returncode != 0:
            raise KernelUnavailable(f"building the C kernel failed: {done.stderr.strip()[-500:]}")
        os.replace(partial, target)
    lib = ctypes.CDLL(str(target))
    ptrs = ctypes.POINTER(ctypes.c_void_p)
    lib.zoo_step.restype = ctypes.c_int
    lib.zoo_step.argtypes = [ctypes.c_int] * 3 + [ctypes.c_void_p] * 2 + [ptrs] * 3 + [ctypes.c_void_p]
    lib.zoo_step.argtypes += [ctypes.c_float] * 5 + [ctypes.c_int]
    return lib


def kernel_threads() -> int:
    """OpenMP threads for the kernel: $NETEMBED_KERNEL_THREADS, else 1 (see the module docstring)."""
    value = os.environ.get("NETEMBED_KERNEL_THREADS", "1")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"NETEMBED_KERNEL_THREADS must be a whole number >= 1, got {value!r}")
    return int(value)


class KernelStep:
    """Adam on stacked float32 CPU layers, updated in place: step(x, targets, step) -> losses (n,)."""

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor]], config: ZooConfig, lr_at):
        reason = why_unavailable(config, layers[0][0].device)
        if reason:
            raise KernelUnavailable(reason)
        self.lib = load_library(config.width, config.activation)
        self.params = [p for layer in layers for p in layer]
        if any(p.dtype != torch.float32 or not p.is_contiguous() for p in self.params):
            raise KernelUnavailable("the C kernel needs contiguous float32 weights")
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.config, self.lr_at = config, lr_at
        self.n_models = self.params[0].shape[0]
        self.threads = kernel_threads()
        self._arrays = [self._pointers(ts) for ts in (self.params, self.exp_avg, self.exp_avg_sq)]

    @staticmethod
    def _pointers(tensors):
        return (ctypes.c_void_p * len(tensors))(*[t.data_ptr() for t in tensors])

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, step: int) -> torch.Tensor:
        """One Adam step (number `step`, from 1) of every model; returns each model's loss before it."""
        x, targets = x.float().contiguous(), targets.float().contiguous()  # (batch,), (n, batch)
        losses = torch.empty(self.n_models)
        (beta1, beta2), lr = ADAM_BETAS, self.lr_at(step - 1, self.config)
        step_size = lr / (1 - beta1**step)
        bc2_sqrt = (1 - beta2**step) ** 0.5
        status = self.lib.zoo_step(
            self.n_models, x.shape[0], self.config.depth, x.data_ptr(), targets.data_ptr(), *self._arrays,
            losses.data_ptr(), beta1, beta2, ADAM_EPS, step_size, bc2_sqrt, self.threads,
        )  # fmt: skip
        if status != 0:
            raise MemoryError("the C kernel could not allocate its work buffers")
        return losses
