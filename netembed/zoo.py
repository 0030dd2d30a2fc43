"""The zoo: K functions x M seeds of small MLPs, trained as ONE vectorised computation.

Every model's weights are stacked along a leading `models` axis, so a step of all models
is a handful of batched matmuls. The summed loss gives each model exactly its own
gradient (models share no parameters), and Adam is elementwise, so the stacked training
is the same computation as a loop of per-model `nn.Module`s with their own optimisers.
Four engines run the step (`make_step`): the fused C kernel of zoo_kernel.py on the CPU for
ReLU / leaky-ReLU (24-31x the loop as measured, see benchmarks/zoo_speed.py); zoo_triton.py's one
Triton kernel per step on a GPU for 1 -> W -> W -> 1 models; zoo_fused.py's `FusedStep` (batched
matmuls, a hand-derived backward, fused Adam; a CUDA graph on a GPU) for any device and activation;
and this file's `AutogradStep` (autograd and torch's Adam), the reference.

Model i trains function `task_ids[i]`; models are ordered function-major
(i = k * M + m) and the first `n_train_seeds` replicates of each function form the
training split.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from . import zoo_kernel, zoo_triton
from .config import ZooConfig
from .family import dense_grid
from .zoo_fused import FusedStep

FIT_GRID = 1025  # dense held-out grid for each model's fit error
FIT_CHUNK = 128  # models evaluated at once on that grid (bounds its memory)
DRAW_CHUNK = 64  # training steps whose inputs and targets are drawn at once (saves per-step overhead)
ProgressFn = Callable[[int, np.ndarray], "bool | None"]  # (step, per-model losses) -> False to stop


PER_MODEL = ("task_ids", "replicates", "seeds", "loss_curves", "fit_mse", "failed")  # Zoo's arrays with a row per model


@dataclass
class Zoo:
    config: ZooConfig
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # [(w (n, fan_in, fan_out), b (n, 1, fan_out))]
    task_ids: np.ndarray  # (n,) which family member each model fits
    replicates: np.ndarray  # (n,) seed index m of the model within its function
    seeds: np.ndarray  # (n,) init seed of each model
    loss_curves: np.ndarray  # (n, n_logged) training MSE, averaged over each logging window
    log_steps: np.ndarray  # (n_logged,) the step each loss_curves column ends at
    fit_mse: np.ndarray  # (n,) MSE against the target on a dense held-out grid
    failed: np.ndarray  # (n,) bool: diverged (NaN/Inf) or fit_mse / target variance > config.fail_relative_mse
    seconds: float = 0.0  # wall time of training
    steps_done: int = 0  # < config.steps when training was stopped early
    engine: str = ""  # which training step ran: "kernel", "triton", "fused" or "autograd" (see make_step)

    @property
    def n_models(self) -> int:
        return len(self.task_ids)

    @property
    def input_dim(self) -> int:
        """d: inputs of every model (the first layer's fan_in)."""
        return self.layers[0][0].shape[1]

    @property
    def is_train(self) -> np.ndarray:
        """(n,) bool: the training split, by seed."""
        return self.replicates < self.config.n_train_seeds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs of every model: x (batch,) shared, or (n, batch) per model -> (n, batch); for d > 1 inputs
        x (batch, d) shared or (n, batch, d) per model."""
        return mlp_forward(self.layers, x, self.config.activation)

    def __call__(self, x) -> np.ndarray:
        """Numpy convenience: x (batch,) (or (batch, d) for d > 1) -> outputs (n, batch), float64."""
        w = self.layers[0][0]
        with torch.no_grad():
            y = self.forward(torch.as_tensor(np.asarray(x), dtype=w.dtype, device=w.device))
        return y.double().cpu().numpy()

    def to(self, device) -> "Zoo":
        layers = [(w.to(device), b.to(device)) for w, b in self.layers]
        return Zoo(**{**self.__dict__, "layers": layers})

    def select(self, ids) -> "Zoo":
        """The models `ids` (n_selected,), in that order, with their per-model arrays; the rest is kept."""
        index = np.asarray(ids)
        rows = torch.as_tensor(index, device=self.layers[0][0].device)
        layers = [(w[rows], b[rows]) for w, b in self.layers]
        return Zoo(**{**self.__dict__, "layers": layers, **{k: getattr(self, k)[index] for k in PER_MODEL}})


def activation_fn(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    return {
        "relu": torch.relu,
        "leaky_relu": torch.nn.functional.leaky_relu,  # negative slope 0.01, torch's default
        "tanh": torch.tanh,
        "gelu": torch.nn.functional.gelu,
        "sine": torch.sin,  # SIREN: the frequency omega_0 is folded into the weights (init_layers)
    }[name]


def mlp_forward(layers, x: torch.Tensor, activation: str) -> torch.Tensor:
    """Stacked MLPs: x (batch,) or (n, batch) -> (n, batch); with d > 1 inputs x (batch, d) or (n, batch, d)."""
    act = activation_fn(activation)
    w0, b0 = layers[0]
    if w0.shape[1] > 1:  # d inputs: the first layer is a real matmul
        h = torch.matmul(x if x.dim() == 3 else x[None], w0) + b0  # (n, batch, width)
        for w, b in layers[1:]:
            h = torch.baddbmm(b, act(h), w)
        return h.squeeze(-1)
    x = x.reshape(-1, x.shape[-1], 1) if x.dim() == 2 else x[None, :, None]
    h = x * w0 + b0  # (n, batch, width): fan_in is 1, so the first matmul is a broadcast
    for w, b in layers[1:]:
        h = torch.baddbmm(b, act(h), w)  # (n, batch, fan_out)
    return h.squeeze(-1)


def model_seed(zoo_seed: int, task: int, replicate: int) -> int:
    """Each model's own init seed, independent of K and M so a model keeps its init in any zoo."""
    return int(np.random.SeedSequence([zoo_seed, task, replicate]).generate_state(1)[0])


def init_layers(config: ZooConfig, seeds: np.ndarray, device="cpu", input_dim: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """nn.Linear's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn per model from its own seed."""
    sizes = [input_dim] + [config.width] * config.depth + [1]
    n = len(seeds)
    layers = [(torch.empty(n, i, o), torch.empty(n, 1, o)) for i, o in zip(sizes[:-1], sizes[1:])]
    for m, seed in enumerate(seeds):
        g = torch.Generator().manual_seed(int(seed))
        for w, b in layers:
            fan_in, fan_out = w.shape[1:]
            bound = 1.0 / math.sqrt(fan_in)
            # nn.Linear stores (out, in) and draws weight before bias; keep that order.
            w[m] = (torch.rand(fan_out, fan_in, generator=g) * 2 - 1).mul_(bound).T
            b[m, 0] = (torch.rand(fan_out, generator=g) * 2 - 1).mul_(bound)
    if config.activation == "sine":
        siren_scale(layers)
    return [(w.to(device), b.to(device)) for w, b in layers]


SIREN_OMEGA = 10.0  # first-layer frequency of sine networks; see siren_scale


def siren_scale(layers) -> None:
    """SIREN's init (Sitzmann et al. 2020) with omega_0 folded into the weights, in place.

    SIREN computes sin(omega_0 (W x + b)) with W ~ U(+-1/fan_in) in the first layer and
    U(+-sqrt(6 / fan_in) / omega_0) after it; folding omega_0 in gives the first layer
    U(+-omega_0 / d) for d inputs, hidden layers U(+-sqrt(6 / fan_in)) and the linear output
    U(+-sqrt(6 / fan_in) / omega_0). The nn.Linear draws (bound 1/sqrt(fan_in)) are rescaled,
    so a sine model keeps its seeds' draws. omega_0 = 10 rather than SIREN's 30: inputs span
    [-1, 1] and the families hold at most about 10 periods there, and Adam at lr 1e-2 trains it.
    """
    last = len(layers) - 1
    for i, (w, b) in enumerate(layers):
        if i == 0:
            w.mul_(SIREN_OMEGA / math.sqrt(w.shape[1]))  # the draw's bound 1/sqrt(d) becomes omega_0 / d
            b.mul_(math.pi)  # a phase spread over a half-period either way
        else:
            w.mul_(math.sqrt(6.0) / (SIREN_OMEGA if i == last else 1.0))


def polynomial_targets(coefficients: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Horner's rule: coefficients (K, D+1), x (batch,) -> (K, batch)."""
    y = coefficients[:, -1:].expand(-1, x.shape[0])
    for d in range(coefficients.shape[1] - 2, -1, -1):
        y = y * x + coefficients[:, d : d + 1]
    return y


def lr_at(step: int, config: ZooConfig) -> float:
    """Cosine decay from lr to lr / 100 over the run."""
    frac = step / max(1, config.steps)
    return config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac)))


def target_function(family, device) -> Callable[[torch.Tensor], torch.Tensor]:
    """x (batch,) -> every member's targets (K, batch), float32 on `device`.

    Polynomials keep their float32 Horner pass (the numbers every earlier zoo was trained on);
    any other family is evaluated exactly by its own `values` in float64, then rounded.
    """
    if getattr(family, "coefficients", None) is not None:
        coeffs = torch.as_tensor(family.coefficients, dtype=torch.float32, device=device)
        return lambda x: polynomial_targets(coeffs, x)
    return lambda x: torch.as_tensor(family.values(x.double().cpu().numpy()), dtype=torch.float32, device=device)


def draw_chunk(gen: torch.Generator, targets, config: ZooConfig, steps: int, device, input_dim: int = 1):
    """The next `steps` input draws, one per step as the loop of modules draws them, and every function's
    targets on them in one pass (`targets`, see target_function): x (steps, batch), y (K, steps, batch);
    for d > 1 inputs x (steps, batch, d) uniform on [-1, 1]^d."""
    if input_dim > 1:
        x = torch.stack([torch.rand(config.batch_size, input_dim, generator=gen) * 2 - 1 for _ in range(steps)])
        x = x.to(device)
        return x, targets(x.reshape(-1, input_dim)).reshape(-1, steps, config.batch_size)
    x = torch.stack([torch.rand(config.batch_size, generator=gen) * 2 - 1 for _ in range(steps)]).to(device)
    return x, targets(x.reshape(-1)).reshape(-1, steps, config.batch_size)


def input_generator(config: ZooConfig) -> torch.Generator:
    return torch.Generator().manual_seed(config.seed + 7919)  # separate stream from the inits


def train_zoo(
    family,
    config: ZooConfig,
    progress: ProgressFn | None = None,
    device: str = "cpu",
    log_every: int | None = None,
    engine: str = "auto",
    tasks=None,
    replicates=None,
    should_stop: Callable[[int], bool] | None = None,
) -> Zoo:
    """Train every model of the zoo at once; `progress(step, losses)` may return False to stop early.

    `progress` runs only at the logged steps (every steps/500); `should_stop(step)` is asked after every
    step, so a cancel lands at the next step (True stops, logging the partial window).

    engine: "kernel" (the fused C step, CPU relu / leaky_relu), "triton" (one Triton kernel per step, 1 -> W ->
    W -> 1 models; a GPU, or its interpreter on the CPU), "fused" (batched matmuls, a
    hand-derived backward and fused Adam; a CUDA graph on a GPU; any device and activation),
    "autograd" (the same with autograd and torch's Adam: the reference), or "auto" (Triton on a GPU, the C
    kernel on the CPU, where each runs; else fused). All compute the same numbers up to float rounding.
    tasks, replicates: train only these functions / seed indices (a shard, see shards.py);
    every model still gets the init, inputs and targets it has in the whole zoo.
    """
    tasks = np.arange(family.n_functions) if tasks is None else np.asarray(tasks, dtype=np.int64)
    reps = np.arange(config.models_per_function) if replicates is None else np.asarray(replicates, dtype=np.int64)
    for name, ids, top in (("tasks", tasks, family.n_functions), ("replicates", reps, config.models_per_function)):
        if ids.ndim != 1 or len(ids) == 0 or len(set(ids.tolist())) != len(ids) or ids.min() < 0 or ids.max() >= top:
            raise ValueError(f"{name} must be distinct whole numbers in 0..{top - 1}, got {ids.tolist()}")
    task_ids = np.repeat(tasks, len(reps))  # function-major, as in the whole zoo
    replicates = np.tile(reps, len(tasks))
    seeds = np.array([model_seed(config.seed, t, r) for t, r in zip(task_ids, replicates)], dtype=np.int64)
    input_dim = getattr(family, "input_dim", 1)
    layers = init_layers(config, seeds, device, input_dim)
    train_step, engine = make_step(layers, config, device, engine)
    targets = target_function(family, device)
    task_index = torch.as_tensor(task_ids, device=device)
    gen = input_generator(config)
    log_every = log_every or max(1, config.steps // 500)
    curves, log_steps, window = [], [], torch.zeros(len(seeds), device=device)
    start = time.perf_counter()
    step = 0
    for step in range(1, config.steps + 1):
        if (step - 1) % DRAW_CHUNK == 0:
            xs, ys = draw_chunk(gen, targets, config, min(DRAW_CHUNK, config.steps - step + 1), device, input_dim)
        x, y = xs[(step - 1) % DRAW_CHUNK], ys[:, (step - 1) % DRAW_CHUNK]  # (batch,) or (batch, d) shared, (K, batch)
        window += train_step(x, y[task_index], step).to(device)  # (n,) each model's loss before the update
        stop = should_stop is not None and should_stop(step)
        if stop or step % log_every == 0 or step == config.steps:
            span = (step - 1) % log_every + 1
            curves.append((window / span).cpu().numpy())
            log_steps.append(step)
            window.zero_()
            if (progress is not None and progress(step, curves[-1]) is False) or stop:
                break
    seconds = time.perf_counter() - start
    layers = [(w.detach(), b.detach()) for w, b in layers]
    zoo = Zoo(
        config=config,
        layers=layers,
        task_ids=task_ids,
        replicates=replicates,
        seeds=seeds,
        loss_curves=np.stack(curves, 1) if curves else np.zeros((len(seeds), 0), np.float32),
        log_steps=np.asarray(log_steps, dtype=np.int64),
        fit_mse=np.zeros(len(seeds)),
        failed=np.zeros(len(seeds), dtype=bool),
        seconds=seconds,
        steps_done=step if config.steps else 0,
        engine=engine,
    )
    zoo.fit_mse, zoo.failed = fit_errors(zoo, family)
    return zoo


class AutogradStep:
    """The plain step: batched matmuls, autograd and torch's Adam, on any device and activation."""

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor]], config: ZooConfig):
        self.layers, self.config = layers, config
        params = [p.requires_grad_() for layer in layers for p in layer]
        self.opt = torch.optim.Adam(params, lr=config.lr)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        """Adam step number `step` (from 1) on inputs x (batch,), targets y (n, batch) -> losses (n,)."""
        losses = ((mlp_forward(self.layers, x, self.config.activation) - y) ** 2).mean(1)  # (n,)
        for group in self.opt.param_groups:
            group["lr"] = lr_at(step - 1, self.config)
        self.opt.zero_grad(set_to_none=True)
        losses.sum().backward()  # each model receives exactly its own gradient
        self.opt.step()
        return losses.detach()


ENGINES = ("auto", "kernel", "triton", "fused", "autograd")


def make_step(layers, config: ZooConfig, device, engine: str = "auto"):
    """The training step for this zoo and the engine's name. "auto": on a GPU the Triton kernel where it takes
    the shape (zoo_triton.py: 1 -> W -> W -> 1; 1.5-4.8x the fused step on an H200), else the fused torch
    step (zoo_fused.py, one CUDA graph per step); on the CPU the C kernel where it runs (relu / leaky_relu, one input), else the fused torch step
    (faster than autograd there); a C kernel that should run but cannot be built warns first. "triton" on the
    CPU runs Triton's interpreter: for tests, far slower than any other engine."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine in ("fused", "autograd"):
        return (FusedStep(layers, config, lr_at) if engine == "fused" else AutogradStep(layers, config)), engine
    auto_on_gpu = engine == "auto" and torch.device(device).type == "cuda"
    if engine == "triton" or (auto_on_gpu and zoo_triton.auto_prefers(config, layers[0][0].shape[1])):
        return zoo_triton.TritonStep(layers, config, lr_at), "triton"
    if auto_on_gpu:  # a shape the Triton kernel is not written for
        return FusedStep(layers, config, lr_at), "fused"
    # The C kernel's first layer is a broadcast of one scalar input (and its backward a row sum);
    # d inputs need a (batch, d) x (d, width) matmul and its transpose inside the C pass: not done yet.
    if layers[0][0].shape[1] > 1:
        if engine == "kernel":
            raise zoo_kernel.KernelUnavailable(f"the C kernel takes one input; these models take {layers[0][0].shape[1]}")
        return FusedStep(layers, config, lr_at), "fused"
    # a missing compiler is not a reason to skip silently: KernelStep raises it and we warn below
    if engine == "auto" and zoo_kernel.why_unavailable(config, device, check_compiler=False):
        return FusedStep(layers, config, lr_at), "fused"
    try:
        return zoo_kernel.KernelStep(layers, config, lr_at), "kernel"
    except zoo_kernel.KernelUnavailable as err:
        if engine == "kernel":
            raise
        warnings.warn(f"{err}; training with the slower fused torch step", RuntimeWarning, stacklevel=3)
        return FusedStep(layers, config, lr_at), "fused"


def fit_errors(zoo: Zoo, family) -> tuple[np.ndarray, np.ndarray]:
    """Each model's MSE against its target on the dense grid, and the failed flag: the MSE is not finite or is
    over config.fail_relative_mse of the target's variance on the grid (a target of 10x the scale may miss by 10x)."""
    grid = dense_grid(FIT_GRID)
    if zoo.input_dim > 1:  # the family's fixed sample of [-1, 1]^d (family_nd.py) stands in for the grid
        from .family_nd import sample_points

        grid = sample_points(zoo.input_dim)
    target = family.values(grid)[zoo.task_ids]  # (n, grid)
    w = zoo.layers[0][0]
    x = torch.as_tensor(grid, dtype=w.dtype, device=w.device)
    outputs = []
    with torch.no_grad():  # a chunk of models at a time: activations (chunk, grid, width) stay small
        for lo in range(0, zoo.n_models, FIT_CHUNK):
            chunk = [(w[lo : lo + FIT_CHUNK], b[lo : lo + FIT_CHUNK]) for w, b in zoo.layers]
            outputs.append(mlp_forward(chunk, x, zoo.config.activation).double().cpu().numpy())
    mse = ((np.concatenate(outputs) - target) ** 2).mean(1)
    with np.errstate(divide="ignore", invalid="ignore"):  # a flat target: any miss is infinitely relative, 0/0 is no fail
        relative = mse / target.var(1)  # (n,)
    failed = ~np.isfinite(mse) | (relative > zoo.config.fail_relative_mse)
    return mse, failed
