"""Resource estimates: refuse a zoo, embedder or sweep too large for the machine before it starts.

Training a zoo that does not fit in memory would take the machine (and every other user of
the app) down with it, minutes in. So the memory and arithmetic of a job are estimated from
its configs alone, and a job over the limits is refused up front with the estimate.

The estimates are deliberately simple upper-ish bounds (float32 everywhere, every
activation kept for the backward pass); they count the job's own tensors, not the Python
process (~0.5 GiB with torch loaded). Limits come from the environment, so a bigger
machine or a patient user can raise them:

    NETEMBED_MAX_MEMORY_MB    memory one job may use (default: 80% of MemAvailable)
    NETEMBED_MAX_HOURS        estimated hours one job or sweep may run (default 4)
    NETEMBED_GFLOPS           sustained GFLOP/s assumed for time estimates (default 10)
    NETEMBED_MAX_RUN_FILE_MB  largest single file a run folder or upload may hold (default 2048)
    NETEMBED_MAX_UPLOAD_MB    largest uploaded run archive, packed (default 200)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .config import ClozeConfig, ConfigError, ZooConfig

FLOAT = 4  # bytes per float32
TORCH_WORKSPACE = 256 * 2**20  # measured: torch's autograd and optimiser take ~200-250 MiB on first use


class ResourceError(ConfigError):
    """A job whose estimated memory or time is over the configured limits."""


@dataclass(frozen=True)
class Estimate:
    """What one job is expected to need."""

    what: str  # e.g. "zoo of 500 models 1->32x2->1"
    memory_bytes: int  # peak bytes of the job's own tensors
    flops: float  # floating-point operations of the whole job

    def seconds(self, gflops: float) -> float:
        return self.flops / (gflops * 1e9)

    def __add__(self, other: "Estimate") -> "Estimate":
        """Jobs run one after another: memory is the larger peak, work adds up."""
        return Estimate(f"{self.what} + {other.what}", max(self.memory_bytes, other.memory_bytes), self.flops + other.flops)


@dataclass(frozen=True)
class Limits:
    max_memory_bytes: int
    max_seconds: float
    gflops: float
    max_run_file_bytes: int

    @classmethod
    def from_env(cls) -> "Limits":
        return cls(
            max_memory_bytes=int(_env_float("NETEMBED_MAX_MEMORY_MB", default_memory_bytes() / 2**20) * 2**20),
            max_seconds=_env_float("NETEMBED_MAX_HOURS", 4.0) * 3600,
            gflops=_env_float("NETEMBED_GFLOPS", 10.0),
            max_run_file_bytes=int(_env_float("NETEMBED_MAX_RUN_FILE_MB", 2048.0) * 2**20),
        )


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a positive number, got {raw!r}") from None
    if not (value > 0 and value < float("inf")):
        raise ConfigError(f"{name} must be a positive number, got {raw!r}")
    return value


def default_memory_bytes() -> int:
    """80% of the memory available now (Linux), else of physical memory."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(int(line.split()[1]) * 1024 * 0.8)
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.8)


def max_run_file_bytes() -> int:
    return Limits.from_env().max_run_file_bytes


def max_upload_bytes() -> int:
    return int(_env_float("NETEMBED_MAX_UPLOAD_MB", 200.0) * 2**20)


# ---------------------------------------------------------------- estimates


def mlp_params(config: ZooConfig) -> int:
    """Weights and biases of one 1 -> width^depth -> 1 MLP."""
    w, d = config.width, config.depth
    return 2 * w + (d - 1) * (w * w + w) + w + 1


def estimate_zoo(n_functions: int, config: ZooConfig, device: str = "cpu") -> Estimate:
    """Peak memory and arithmetic of train_zoo, for the engine it will pick (zoo.py, zoo_kernel.py).

    Measured against ru_maxrss (500-16000 models, width 16-128, batch 128-2048, both engines):
    1.3-4x the real peak, never below it.
    """
    return estimate_models(n_functions * config.models_per_function, config, device)


def estimate_models(n: int, config: ZooConfig, device: str = "cpu") -> Estimate:
    """estimate_zoo for any number of models `n` trained by one train_zoo call (a whole zoo or one shard)."""
    from .zoo import DRAW_CHUNK, FIT_CHUNK, FIT_GRID  # imported here: store.py imports this module early
    from .zoo_kernel import why_unavailable
    from .zoo_triton import auto_prefers

    p = mlp_params(config)
    state = 4 * n * p * FLOAT  # weights, gradients and Adam's two moments
    # targets drawn DRAW_CHUNK steps ahead, gathered per model (measured: ~2 copies of (n, chunk, batch))
    draws = 2 * DRAW_CHUNK * n * config.batch_size * FLOAT
    on_gpu = str(device).startswith("cuda")
    if why_unavailable(config, device) is None or (on_gpu and auto_prefers(config)):
        activations = 0  # the C step (CPU) and the Triton step (GPU) work model by model in small buffers
    else:  # autograd keeps ~4 (n, batch, width) tensors per layer: pre-activation, activation, their gradients
        activations = 4 * n * config.batch_size * config.width * config.depth * FLOAT
    chunk = min(n, FIT_CHUNK)
    fit = int(3.5 * chunk * FIT_GRID * config.width * FLOAT)  # the dense-grid fit check, a chunk of models at a time
    memory = TORCH_WORKSPACE + int(1.2 * (state + draws + max(activations, fit)))  # 20% slack: allocator, copies
    flops = 6.0 * n * p * config.batch_size * config.steps  # forward 2, backward 4 per weight and sample
    shape = f"1->{config.width}x{config.depth}->1"
    return Estimate(f"zoo of {n} models {shape}", memory, flops)


def estimate_sharded_zoo(n_functions: int, config: ZooConfig, n_shards: int, by: str = "function",
                         device: str = "cpu") -> Estimate:
    """Peak memory and arithmetic of train_zoo_sharded (shards.py): the zoo as n_shards train_zoo calls.

    Each shard is its own train_zoo call (one after another here, one task per worker on Ray), so the
    training peak is the largest shard's; the finished shards' weights are kept until they are merged,
    and the merge holds up to 3 copies of the whole zoo's weights (the shards, their concatenation, its
    function-major reordering). The work is the whole zoo's. Not counted: several Ray workers on one
    machine train shards at once, and their peaks add up.
    """
    from .shards import plan_shards  # imported here: shards.py imports store.py, which imports this module

    n = n_functions * config.models_per_function
    largest = max(len(s["tasks"]) * len(s["replicates"]) for s in plan_shards(n_functions, config, n_shards, by))
    shard = estimate_models(largest, config, device)
    kept = 3 * n * mlp_params(config) * FLOAT
    whole = estimate_models(n, config, device)
    return Estimate(f"{whole.what} in {n_shards} shards of up to {largest} models", shard.memory_bytes + kept, whole.flops)


def estimate_cloze(n_models: int, config: ClozeConfig) -> Estimate:
    d, L, h = config.d_model, config.n_layers, config.n_heads
    b, t = min(config.models_per_batch, n_models), config.n_inputs + 1  # tokens: inputs + a class token
    params = L * (4 * d * d + 2 * 2 * d * d) + 4 * d * d + (2 * config.n_freqs + 3) * d + config.bottleneck * d
    per_token = L * 6 * d + 6 * d  # kept for backward: attention projections, feed-forward, norms, decoder
    attention_map = b * h * t * t  # one (batch, heads, tokens, tokens) map live at a time
    # measured against ru_maxrss (batch 64-128, 64-1024 inputs, d 64-128): 1.3-2x the real peak
    memory = TORCH_WORKSPACE + (4 * params + 2 * b * t * per_token + attention_map) * FLOAT
    flops_step = 6.0 * b * t * params + 3 * 4.0 * L * b * t * t * d  # weights, then attention maps
    return Estimate(f"embedder d={d} x{L} on {b} models x {config.n_inputs} inputs", memory, flops_step * config.steps)


# ---------------------------------------------------------------- checks


def check(estimate: Estimate, limits: Limits | None = None) -> Estimate:
    """Raise ResourceError with the estimate if it is over the limits; else return it."""
    limits = limits or Limits.from_env()
    mem, secs = estimate.memory_bytes, estimate.seconds(limits.gflops)
    if mem > limits.max_memory_bytes:
        raise ResourceError(
            f"{estimate.what} needs about {_gib(mem)} of memory, over the limit of {_gib(limits.max_memory_bytes)}; "
            "use fewer models, a smaller width or batch, or raise NETEMBED_MAX_MEMORY_MB"
        )
    if secs > limits.max_seconds:
        raise ResourceError(
            f"{estimate.what} needs about {estimate.flops:.2g} FLOPs, about {secs / 3600:.1f} h at "
            f"{limits.gflops:g} GFLOP/s, over the limit of {limits.max_seconds / 3600:g} h; "
            "use fewer models or steps, or raise NETEMBED_MAX_HOURS"
        )
    return estimate


def check_zoo(n_functions: int, config: ZooConfig, limits: Limits | None = None) -> Estimate:
    return check(estimate_zoo(n_functions, config), limits)


def check_pipeline(n_functions: int, zoo: ZooConfig, clozes: list[ClozeConfig] = (), limits=None, shards: int = 1,
                   shard_by: str = "function") -> Estimate:
    """A zoo then one embedder per cloze config (a `run` has one, a sweep several), as one job.

    With shards > 1 the zoo is trained as that many shards (split by `shard_by`), sized per shard.
    """
    n_models = n_functions * zoo.models_per_function
    total = estimate_zoo(n_functions, zoo) if shards == 1 else estimate_sharded_zoo(n_functions, zoo, shards, shard_by)
    for c in clozes:
        total = total + estimate_cloze(n_models, c)
    if len(clozes) > 1:
        total = Estimate(f"sweep of a zoo of {n_models} models and {len(clozes)} embedders", total.memory_bytes, total.flops)
    return check(total, limits)


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"
