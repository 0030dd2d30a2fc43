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

Build: gcc -O3 -march=native -fopenmp, one library per (width, activation), in this user's
cache folder (user_cache.py: $NETEMBED_CACHE_DIR or ~/.cache/netembed, checked to be this
user's alone), keyed by the source, the compiler's --version output, the flags and the CPU's
features (cpu_key), so a library built by another compiler or for another CPU is never
loaded. Where the CPU's features are unknown the build leaves out -march=native.
$NETEMBED_KERNEL_CFLAGS adds flags (e.g. -mno-avx512f to measure without AVX-512). A build
takes about a second; it is killed after BUILD_TIMEOUT_S, written to a temporary name in the
cache folder and renamed into place, so a reader never sees half a library.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from . import user_cache
from .config import ZooConfig

SOURCE = Path(__file__).with_name("zoo_kernel.c")
FLAGS = ("-O3", "-fno-math-errno", "-ffp-contract=fast", "-fopenmp", "-shared", "-fPIC", "-std=c11")
NATIVE = "-march=native"  # only where cpu_key knows the CPU's features (see _build_plan)
BUILD_TIMEOUT_S = 120  # a build takes ~1 s; 120 s allows a badly overloaded machine
MAX_WIDTH = 512  # wider layers are matmul-bound: torch's BLAS does better there
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults
# /proc/cpuinfo fields that decide what -march=native emits: the features, and the model it tunes for
CPU_FIELDS = {
    "x86_64": ("flags", "vendor_id", "cpu family", "model", "model name"),
    "aarch64": ("Features", "CPU implementer", "CPU architecture", "CPU variant", "CPU part"),
}
_lock = threading.Lock()
_libraries: dict[tuple, ctypes.CDLL | Exception] = {}  # failures too: a process does not rebuild in vain


class KernelUnavailable(RuntimeError):
    """The fused C step cannot run here; the message says why."""


def compiler() -> str:
    return os.environ.get("CC", "gcc")


def why_unavailable(config: ZooConfig, device, check_compiler: bool = True) -> str | None:
    """None if the kernel can train this zoo, else the reason it cannot.

    check_compiler=False leaves out the one reason that is a fault of the machine, not a choice
    (make_step then tries the build and warns when there is no compiler)."""
    if torch.device(device).type != "cpu":
        return f"the C kernel runs on the CPU only, not {device}"
    if config.activation not in ("relu", "leaky_relu"):
        return f"the C kernel handles relu and leaky_relu, not {config.activation}"
    if config.width > MAX_WIDTH:
        return f"width {config.width} > {MAX_WIDTH}: torch's BLAS is the better engine there"
    if os.environ.get("NETEMBED_NO_KERNEL"):
        return "disabled by NETEMBED_NO_KERNEL"
    if check_compiler and shutil.which(compiler()) is None:
        return f"no C compiler ({compiler()}) found"
    return None


def cpu_key(cpuinfo: str, machine: str) -> str | None:
    """The CPU fields of /proc/cpuinfo text that -march=native depends on, or None where unknown.

    x86-64: flags, vendor, family, model; aarch64: Features, implementer, architecture, variant,
    part. Each field's distinct values over all cores, sorted (big.LITTLE cores differ). None
    (an unknown machine, no cpuinfo, no feature line) means -march=native must not be used.
    """
    fields = CPU_FIELDS.get({"amd64": "x86_64", "arm64": "aarch64"}.get(machine.lower(), machine))
    if fields is None:
        return None
    values: dict[str, set[str]] = {f: set() for f in fields}
    for line in cpuinfo.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() in values:
            values[name.strip()].add(" ".join(value.split()))
    if not values[fields[0]]:  # no feature list: the key could not tell two CPUs apart
        return None
    return machine + "\n" + "\n".join(f"{f}: {' | '.join(sorted(v))}" for f, v in values.items())


def read_cpu_key() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return cpu_key(text, platform.machine())


def cache_key(source: bytes, compiler_version: str, flags: list[str], cpu: str | None) -> str:
    """A digest of everything the library's bytes depend on."""
    parts = [source, compiler_version.encode(), "\0".join(flags).encode(), (cpu or platform.machine()).encode()]
    return hashlib.sha256(b"\0\0".join(parts)).hexdigest()[:24]


@dataclass(frozen=True)
class BuildPlan:
    """How to build the kernel for one width and activation here, and the cached library's name."""

    command: tuple[str, ...]  # compiler and flags, without the output path
    file_name: str


def _run(command: list[str], what: str) -> str:
    """stdout of `command`; KernelUnavailable if it fails or outlives BUILD_TIMEOUT_S (its whole process group is killed)."""
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    except OSError as err:
        raise KernelUnavailable(f"building the C kernel failed: cannot run {command[0]}: {err.strerror or err}") from err
    with proc:
        try:
            out, err = proc.communicate(timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # gcc's children (cc1, as, ld) too: they hold the pipes
            proc.communicate()
            raise KernelUnavailable(f"building the C kernel timed out: {what} ran over {BUILD_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise KernelUnavailable(f"building the C kernel failed: {what} exited with {proc.returncode}: {err.strip()[-500:]}")
    return out


def build_plan(width: int, activation: str) -> BuildPlan:
    """The compile command and the cache name for this machine, compiler and flags (runs `cc --version`)."""
    cc = compiler()
    if shutil.which(cc) is None:
        raise KernelUnavailable(f"no C compiler ({cc}) found")
    version = _run([cc, "--version"], f"{cc} --version")
    cpu = read_cpu_key()
    extra = shlex.split(os.environ.get("NETEMBED_KERNEL_CFLAGS", ""))
    defines = [f"-DW={width}"] + (["-DLEAKY"] if activation == "leaky_relu" else [])
    flags = [*FLAGS, *([NATIVE] if cpu else []), *extra, *defines]
    digest = cache_key(SOURCE.read_bytes(), version, flags, cpu)
    return BuildPlan((cc, *flags), f"zoo_kernel_{width}_{activation}_{digest}.so")


def load_library(width: int, activation: str) -> ctypes.CDLL:
    """Build (once per machine, compiler and flags) and load the kernel for this width and activation."""
    key = (width, activation, compiler(), os.environ.get("NETEMBED_KERNEL_CFLAGS", ""), str(user_cache.cache_root()))
    with _lock:
        if key not in _libraries:
            try:
                _libraries[key] = _build_and_load(width, activation)
            except KernelUnavailable as err:
                _libraries[key] = err
            except OSError as err:  # a refused or unwritable cache folder, a library the loader refuses
                _libraries[key] = KernelUnavailable(f"the C kernel could not be built or loaded: {err}")
        found = _libraries[key]
    if isinstance(found, Exception):
        raise found
    return found


def _build_and_load(width: int, activation: str) -> ctypes.CDLL:
    """Compile zoo_kernel.c for this width and activation into the user's cache (unless there) and load it."""
    plan = build_plan(width, activation)
    folder = user_cache.private_folder("kernels")
    target = folder / plan.file_name
    if not os.path.lexists(target):
        partial = folder / f".{plan.file_name}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            _run([*plan.command, str(SOURCE), "-o", str(partial), "-lm"], "the compiler")
            os.replace(partial, target)  # atomic: another process may be building the same library
        finally:
            partial.unlink(missing_ok=True)
    lib = _load_checked(target)
    if not hasattr(lib, "zoo_step"):
        raise KernelUnavailable(f"the cached library {target} has no zoo_step: delete it to rebuild")
    ptrs = ctypes.POINTER(ctypes.c_void_p)
    lib.zoo_step.restype = ctypes.c_int
    lib.zoo_step.argtypes = [ctypes.c_int] * 3 + [ctypes.c_void_p] * 2 + [ptrs] * 3 + [ctypes.c_void_p]
    lib.zoo_step.argtypes += [ctypes.c_float] * 5 + [ctypes.c_int]
    return lib


def _load_checked(path: Path) -> ctypes.CDLL:
    """dlopen the library at `path` only if it is this user's own file.

    The file is checked on an open descriptor (user_cache.open_checked), loaded by its path, and
    the path must still name the checked file afterwards. In between nobody else can swap it: the
    folder is this user's alone (checked). Loading through /proc/self/fd/N instead would be wrong:
    glibc matches dlopen names against libraries already loaded, and fd numbers recur, so a second
    kernel loaded that way silently returns the first one.
    """
    fd = user_cache.open_checked(path)
    try:
        checked = os.fstat(fd)
        lib = ctypes.CDLL(str(path))
        now = os.lstat(path)
    finally:
        os.close(fd)
    if (now.st_dev, now.st_ino) != (checked.st_dev, checked.st_ino):
        raise KernelUnavailable(f"the cached library {path} changed while it was loaded")
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
        reason = why_unavailable(config, layers[0][0].device, check_compiler=False)  # load_library says if none
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
