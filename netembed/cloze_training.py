"""Training the cloze embedder: predict a model's masked input-gradients from the visible ones.

Each training example is one model of the zoo's training split (diverged models, whose
weights went NaN/Inf or whose loss blew up, are left out: divergence.py), with a fresh
draw of inputs and masks (cloze_task.py). The loss is the mean squared error on the masked
gradients, in units of the embedder's `grad_scale` (with `loss_scale="model"`, relative to
each model's own RMS gradient instead). The held-out seeds give the R^2 curve and the final
cloze R^2 (always in units of grad_scale).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch

from .adamw import FusedAdamW
from .cloze_model import MODEL_RMS_FLOOR, Embedder
from .cloze_task import GradientSource, draw_inputs, region_mask, rms_gradient
from .config import ClozeConfig, ConfigError
from .divergence import diverged
from .zoo import Zoo

LOG_POINTS = 50  # logged points of the loss and R^2 curves
ProgressFn = Callable[[int, float, "float | None"], "bool | None"]  # (step, loss, r2) -> False to stop


def masked_r2(pred: torch.Tensor, true: torch.Tensor, masked: torch.Tensor) -> float:
    """R^2 of the masked gradients (against their own mean)."""
    p, t = pred[masked].double(), true[masked].double()
    sst = ((t - t.mean()) ** 2).sum()
    return float(1 - ((p - t) ** 2).sum() / sst) if sst > 0 else float("nan")


def lr_at(step: int, config: ClozeConfig) -> float:
    """Linear warm-up over 5% of the steps, then cosine decay to lr / 20."""
    warm = max(1, config.steps // 20)
    if step < warm:
        return config.lr * (step + 1) / warm
    frac = (step - warm) / max(1, config.steps - warm)
    return config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))


def _validation_batch(source, val_ids, config, device):
    """A fixed draw (inputs and masks) for the validation models, so the R^2 curve is comparable."""
    g = torch.Generator().manual_seed(config.seed + 104729)
    x = draw_inputs(config.n_inputs, g, device, source.input_dim)
    true, sections = source.gradients_and_sections(val_ids, x)
    masked = region_mask(sections, config.mask_ratio, g, source.input_dim)
    return x, true, masked


def validation_r2(embedder: Embedder, batch) -> float:
    x, true, masked = batch
    if len(true) == 0:
        return float("nan")
    with torch.no_grad():
        return masked_error_r2(embedder.masked_error(x, true, masked), true[masked], float(embedder.grad_scale))


def masked_error_r2(error: torch.Tensor, true: torch.Tensor, grad_scale: float) -> float:
    """masked_r2 from masked_error's output (M,) (in units of grad_scale) and the masked true gradients (M,).

    The decoder then runs at the masked samples only, as in training.
    """
    e, t = error.double() * grad_scale, true.double()
    sst = ((t - t.mean()) ** 2).sum()
    return float(1 - (e**2).sum() / sst) if sst > 0 else float("nan")


def relative_to_model(error: torch.Tensor, true: torch.Tensor, masked: torch.Tensor, grad_scale: float) -> torch.Tensor:
    """masked_error's output (M,) or (M, d) divided by each sample's model's RMS gradient (B,) in this example
    (all its samples, in units of grad_scale, floored at MODEL_RMS_FLOOR): every model's errors become relative,
    so models with small gradients weigh as much as those with large ones (ClozeConfig.loss_scale = "model")."""
    rms = (true / grad_scale).pow(2).flatten(1).mean(1).sqrt().clamp_min(MODEL_RMS_FLOOR)  # (B,)
    rows = masked.nonzero(as_tuple=True)[0]  # (M,) the model of each masked sample, in masked_error's order
    return error / (rms[rows] if error.dim() == 1 else rms[rows, None])


def train_embedder(zoo: Zoo, config: ClozeConfig, progress: ProgressFn | None = None, device="cpu",
                   should_stop: Callable[[int], bool] | None = None) -> Embedder:  # fmt: skip
    """Train on the cloze task over the zoo's training split; `progress` may return False to stop early.

    `should_stop(step)` is asked after every step (progress only at the LOG_POINTS logged steps): a cancel
    lands at the next step, and a caller sees every step reached. True stops, logging the partial window."""
    if hasattr(zoo, "parts"):  # mixed_zoo.MixedZoo: its parts' weights cannot be batched together
        raise ConfigError("this zoo mixes architectures: train the embedder on one of them (MixedZoo.part_of), "
                          "as the cross-architecture study does (cross_architecture.py)")  # fmt: skip
    with torch.random.fork_rng(devices=[]):  # nn.Module init draws from the global generator: seed a copy of it
        torch.manual_seed(config.seed)
        embedder = Embedder(config, zoo.input_dim).to(device)
    source = GradientSource(zoo, config.mask_unit, device)
    embedder.mask_unit_ = source.mask_unit
    embedder.notes_ = [source.note] if source.note else []
    # A diverged model (NaN/Inf weights, or a loss that blew up) would turn every loss NaN or teach
    # noise: leave it out. A model that merely fits its target badly still computes a function, so it stays.
    usable = ~diverged(zoo)
    if not (zoo.is_train & usable).any():
        raise ValueError("every model of the training split diverged: nothing to train the embedder on")
    train_ids = torch.as_tensor(np.flatnonzero(zoo.is_train & usable), device=device)
    val_ids = torch.as_tensor(np.flatnonzero(~zoo.is_train & usable), device=device)
    embedder.grad_scale.fill_(rms_gradient(source, train_ids))
    val = _validation_batch(source, val_ids, config, device)
    # torch's fused AdamW kernel (one pass over all parameters), without importing torch._dynamo: adamw.py
    opt = FusedAdamW(embedder.parameters(), lr=config.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(config.seed)
    log_every = max(1, config.steps // LOG_POINTS)
    losses, steps, r2s, window, span = [], [], [], 0.0, 0
    start, step = time.perf_counter(), 0
    batch = min(config.models_per_batch, len(train_ids))
    embedder.train()
    for step in range(1, config.steps + 1):
        ids = train_ids[torch.randperm(len(train_ids), generator=gen)[:batch].to(device)]
        x = draw_inputs(config.n_inputs, gen, device, source.input_dim)  # (N,) or (N, d) shared by the batch
        true, sections = source.gradients_and_sections(ids, x)  # (B, N) or (B, N, d); (B, N)
        masked = region_mask(sections, config.mask_ratio, gen, source.input_dim)
        error = embedder.masked_error(x, true, masked)  # (M,) or (M, d), in units of grad_scale
        if config.loss_scale == "model":
            error = relative_to_model(error, true, masked, float(embedder.grad_scale))
        loss = error.pow(2).mean()  # MSE on the masked gradients only
        opt.lr = lr_at(step - 1, config)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(embedder.parameters(), 1.0)
        opt.step()
        window, span = window + loss.item(), span + 1
        stopping = should_stop is not None and bool(should_stop(step))
        if step % log_every == 0 or step == config.steps or stopping:
            embedder.eval()
            r2 = validation_r2(embedder, val)
            embedder.train()
            losses.append(window / span)
            steps.append(step)
            r2s.append(r2)
            window, span = 0.0, 0
            if progress is not None and progress(step, losses[-1], r2) is False:
                break
        if stopping:
            break
    embedder.eval()
    embedder.seconds_ = time.perf_counter() - start
    embedder.steps_done_ = step if config.steps else 0
    embedder.loss_curve_, embedder.log_steps_ = np.asarray(losses), np.asarray(steps, dtype=np.int64)
    embedder.r2_curve_ = np.asarray(r2s, dtype=np.float64)
    embedder.cloze_r2_ = cloze_r2(embedder, zoo, val_ids.cpu().numpy(), seed=config.seed + 1)
    return embedder


def cloze_r2(embedder: Embedder, zoo: Zoo, model_ids, seed=0, n_draws=4) -> float:
    """R^2 on masked gradients of the given models, pooled over a few fresh input and mask draws."""
    device = embedder.grad_scale.device
    source = GradientSource(zoo, embedder.mask_unit_, device)
    ids = torch.as_tensor(np.asarray(model_ids), device=device)
    if len(ids) == 0:
        return float("nan")
    g = torch.Generator().manual_seed(seed)
    errors, trues = [], []
    with torch.no_grad():
        for _ in range(n_draws):
            x = draw_inputs(embedder.config.n_inputs, g, device, source.input_dim)
            true, sections = source.gradients_and_sections(ids, x)
            masked = region_mask(sections, embedder.config.mask_ratio, g, source.input_dim)
            errors.append(embedder.masked_error(x, true, masked))  # (M,) each
            trues.append(true[masked])
    return masked_error_r2(torch.cat(errors), torch.cat(trues), float(embedder.grad_scale))
