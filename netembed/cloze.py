"""The cloze embedder: learn what function a network computes from its input-gradients.

Each training example is one model of the zoo's training split (diverged models, whose
weights went NaN/Inf or whose loss blew up, are left out: divergence.py), seen at `n_inputs` fresh
inputs x (shared by the models of a batch). Some of its gradients are hidden: with
`mask_unit="section"` a fraction of the model's *line-sections* that hold samples is
chosen and every sample in them is hidden (so no visible neighbour in the same section
gives the answer away); with `"sample"` single samples are hidden. Smooth activations
(tanh, gelu) have no line-sections, so they fall back to per-sample masking and say so
in `notes_`.

    tokens  = MLP([fourier(x), g * visible, masked])   # (B, N, d): a mask is an indicator
                                                       # channel, never a magic gradient value
    h       = attention over [cls, tokens]             # no positions: a set encoder
    z       = Linear(h_cls)                            # (B, bottleneck): the embedding
    g_hat   = MLP([z, fourier(x_query)])               # (B, N): decoder sees ONLY z and x

The loss is the mean squared error on the masked gradients (scaled by one global
`grad_scale`, the RMS gradient of the training models, so the magnitude that tells
functions apart is kept). Because the decoder is conditioned only on the bottleneck and
the query x, everything it needs about the function must pass through z.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from .config import ClozeConfig, from_dict, to_dict
from .divergence import diverged
from .gradients import NoExactSections, line_sections
from .zoo import Zoo, mlp_forward

N_FREQS = 8  # Fourier features sin/cos(pi k x), k = 1..N_FREQS: lets small MLPs draw wiggly curves
LOG_POINTS = 50  # logged points of the loss and R^2 curves
EMBED_INPUTS = 256  # inputs per model when embedding: more than training uses, for a steadier embedding
ProgressFn = Callable[[int, float, "float | None"], "bool | None"]  # (step, loss, r2) -> False to stop


def fourier(x: torch.Tensor) -> torch.Tensor:
    """x (...,) in [-1, 1] -> (..., 1 + 2 * N_FREQS)."""
    k = torch.arange(1, N_FREQS + 1, dtype=x.dtype, device=x.device) * math.pi
    a = x[..., None] * k
    return torch.cat([x[..., None], torch.sin(a), torch.cos(a)], -1)


def mlp(sizes: list[int]) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class Embedder(nn.Module):
    """Set encoder -> bottleneck -> decoder at query points. Fitted attributes end in `_`."""

    def __init__(self, config: ClozeConfig):
        super().__init__()
        self.config = config
        d, nf = config.d_model, 1 + 2 * N_FREQS
        self.tokens = mlp([nf + 2, d, d])  # [fourier(x), visible gradient, mask indicator]
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        block = nn.TransformerEncoderLayer(d, config.n_heads, 2 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(block, config.n_layers, enable_nested_tensor=False) if config.n_layers else None
        self.norm = nn.LayerNorm(d)
        self.bottleneck = nn.Linear(d, config.bottleneck)
        self.decoder = mlp([config.bottleneck + nf, d, d, 1])
        self.register_buffer("grad_scale", torch.ones(()))  # RMS gradient of the training models
        self.loss_curve_ = np.zeros(0)
        self.log_steps_ = np.zeros(0, dtype=np.int64)
        self.r2_curve_ = np.zeros(0)
        self.cloze_r2_ = float("nan")
        self.seconds_ = 0.0
        self.steps_done_ = 0
        self.mask_unit_ = config.mask_unit  # what was actually used (sample for smooth activations)
        self.notes_: list[str] = []
        self.embeddings_: np.ndarray | None = None  # (n_models, bottleneck), set by the pipeline

    def encode(self, x: torch.Tensor, g: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """x (B, N) or (N,), raw gradients g (B, N), masked (B, N) bool -> embeddings z (B, bottleneck)."""
        x = x.expand_as(g)
        visible = (~masked).to(g.dtype)
        feats = torch.cat([fourier(x), (g / self.grad_scale * visible)[..., None], masked.to(g.dtype)[..., None]], -1)
        h = torch.cat([self.cls.expand(len(g), -1, -1), self.tokens(feats)], 1)  # (B, 1 + N, d)
        if self.encoder is not None:
            h = self.encoder(h)
        return self.bottleneck(self.norm(h[:, 0]))

    def decode(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """z (B, bottleneck), query x (B, Q) or (Q,) -> predicted raw gradients (B, Q)."""
        x = x.expand(len(z), -1) if x.dim() == 1 else x
        zq = z[:, None, :].expand(-1, x.shape[1], -1)
        return self.decoder(torch.cat([zq, fourier(x)], -1))[..., 0] * self.grad_scale

    def forward(self, x, g, masked):
        return self.decode(self.encode(x, g, masked), x)

    def masked_error(self, x: torch.Tensor, g: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """Scaled prediction error at the masked samples only -> (n_masked,), decoding nothing else.

        The same numbers as (forward(x, g, masked) - g)[masked] / grad_scale, at a fraction of
        the decoder's cost when few samples are masked.
        """
        z = self.encode(x, g, masked)  # (B, bottleneck)
        rows, cols = masked.nonzero(as_tuple=True)  # (M,) each
        xq = x.expand_as(g)[rows, cols]  # (M,)
        pred = self.decoder(torch.cat([z[rows], fourier(xq)], -1))[:, 0]  # (M,) in units of grad_scale
        return pred - g[rows, cols] / self.grad_scale

    def describe(self) -> str:
        c = self.config
        r2 = f"{self.cloze_r2_:.3f}" if math.isfinite(self.cloze_r2_) else "n/a"
        return (f"set encoder d={c.d_model} x{c.n_layers} layers, bottleneck {c.bottleneck}, "
                f"mask {self.mask_unit_} {c.mask_ratio:g}, {self.steps_done_}/{c.steps} steps "
                f"in {self.seconds_:.1f} s, cloze R2 {r2}")  # fmt: skip

    # ------------------------------------------------------------ storage

    def to_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        tensors = {f"params.{k}": v.detach().cpu() for k, v in self.state_dict().items()}
        if self.embeddings_ is not None:
            tensors["embeddings"] = torch.as_tensor(np.asarray(self.embeddings_, dtype=np.float32))
        tensors["loss_curve"] = torch.as_tensor(np.asarray(self.loss_curve_, dtype=np.float64))
        tensors["log_steps"] = torch.as_tensor(np.asarray(self.log_steps_, dtype=np.int64))
        tensors["r2_curve"] = torch.as_tensor(np.asarray(self.r2_curve_, dtype=np.float64))
        meta = {"config": to_dict(self.config), "seconds": float(self.seconds_), "steps_done": int(self.steps_done_),
                "cloze_r2": _finite_or_none(self.cloze_r2_), "mask_unit": self.mask_unit_, "notes": list(self.notes_)}  # fmt: skip
        return tensors, meta

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict) -> "Embedder":
        emb = cls(from_dict(ClozeConfig, meta["config"]))
        params = {k[len("params."):]: v for k, v in tensors.items() if k.startswith("params.")}
        try:
            emb.load_state_dict(params, strict=True)
        except RuntimeError as e:  # names or shapes that do not fit the config
            raise ValueError(f"embedder weights do not match embedder.json's config: {str(e)[:300]}") from None
        if "embeddings" in tensors:
            e = tensors["embeddings"].numpy().astype(np.float64)
            if e.ndim != 2 or e.shape[1] != emb.config.bottleneck:
                raise ValueError(f"embeddings have shape {tuple(e.shape)}, expected (n, {emb.config.bottleneck})")
            emb.embeddings_ = e
        emb.loss_curve_ = tensors["loss_curve"].numpy()
        emb.log_steps_ = tensors["log_steps"].numpy()
        emb.r2_curve_ = tensors["r2_curve"].numpy()
        r2 = meta["cloze_r2"]
        emb.cloze_r2_ = float("nan") if r2 is None else float(r2)
        emb.seconds_, emb.steps_done_ = float(meta["seconds"]), int(meta["steps_done"])
        emb.mask_unit_, emb.notes_ = str(meta["mask_unit"]), list(meta["notes"])
        return emb.eval()


def _finite_or_none(v: float):
    return float(v) if v is not None and math.isfinite(v) else None


# ---------------------------------------------------------------- data: inputs, gradients, masks


class GradientSource:
    """Fresh inputs and the exact gradients (and line-section ids) of chosen models of a zoo."""

    def __init__(self, zoo: Zoo, mask_unit: str, device="cpu"):
        self.layers = [(w.to(device), b.to(device)) for w, b in zoo.layers]
        self.activation = zoo.config.activation
        self.device = device
        self.mask_unit, self.note = mask_unit, None
        self.boundaries = None
        if mask_unit == "section":
            try:
                sections = line_sections(zoo)
                self.boundaries = torch.as_tensor(sections.boundaries, device=device)  # (n, P+1) float64
                self.n_sections = torch.as_tensor(sections.n_sections, device=device)
            except NoExactSections:
                self.mask_unit = "sample"
                self.note = (f"activation '{self.activation}' is smooth and has no line-sections: "
                             "fell back to per-sample masking")  # fmt: skip

    def gradients(self, ids: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """ids (B,), x (N,) -> dy/dx (B, N) of those models."""
        layers = [(w[ids], b[ids]) for w, b in self.layers]
        xs = x.expand(len(ids), -1).detach().clone().requires_grad_()
        with torch.enable_grad():
            (g,) = torch.autograd.grad(mlp_forward(layers, xs, self.activation).sum(), xs)
        return g.detach()

    def section_ids(self, ids: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """ids (B,), x (N,) -> (B, N) the line-section of each sample, or each sample its own 'section'."""
        if self.mask_unit == "sample":
            return torch.arange(x.shape[-1], device=x.device).expand(len(ids), -1)
        bounds = self.boundaries[ids]  # (B, P+1), +inf padded
        xs = x.to(bounds.dtype).expand(len(ids), -1).contiguous()
        idx = torch.searchsorted(bounds, xs, right=True) - 1
        return torch.minimum(idx.clamp_min(0), self.n_sections[ids, None] - 1)


def make_mask(section_ids: torch.Tensor, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """Hide round(ratio * present) of the sections that hold samples (at least one hidden, one shown).

    section_ids (B, N) non-negative ints -> masked (B, N) bool; every sample of a chosen
    section is hidden, so a masked section is hidden whole.
    """
    b, n = section_ids.shape
    p = int(section_ids.max()) + 1
    present = torch.zeros(b, p, dtype=torch.bool, device=section_ids.device)
    present.scatter_(1, section_ids, True)
    scores = torch.rand(b, p, generator=generator).to(section_ids.device)
    scores = torch.where(present, scores, torch.full_like(scores, 2.0))  # absent sections rank last
    rank = scores.argsort(1).argsort(1)  # (B, P) random order of the present sections
    n_present = present.sum(1, keepdim=True)
    n_mask = (ratio * n_present).round().long().clamp(min=1)
    n_mask = torch.minimum(n_mask, (n_present - 1).clamp(min=1))
    return (rank < n_mask).gather(1, section_ids)


def draw_inputs(n: int, generator: torch.Generator, device="cpu") -> torch.Tensor:
    return (torch.rand(n, generator=generator) * 2 - 1).to(device)


def rms_gradient(source: GradientSource, ids: torch.Tensor) -> float:
    grid = torch.linspace(-1, 1, 257, device=source.device)
    return float(source.gradients(ids, grid).pow(2).mean().sqrt().clamp_min(1e-6))


# ---------------------------------------------------------------- training


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
    x = draw_inputs(config.n_inputs, g, device)
    true = source.gradients(val_ids, x)
    masked = make_mask(source.section_ids(val_ids, x), config.mask_ratio, g)
    return x, true, masked


def validation_r2(embedder: Embedder, batch) -> float:
    x, true, masked = batch
    if len(true) == 0:
        return float("nan")
    with torch.no_grad():
        return masked_r2(embedder(x, true, masked), true, masked)


def train_embedder(zoo: Zoo, config: ClozeConfig, progress: ProgressFn | None = None, device="cpu",
                   should_stop: Callable[[int], bool] | None = None) -> Embedder:  # fmt: skip
    """Train on the cloze task over the zoo's training split; `progress` may return False to stop early.

    `should_stop(step)` is asked after every step (progress only at the LOG_POINTS logged steps): a cancel
    lands at the next step, and a caller sees every step reached. True stops, logging the partial window."""
    with torch.random.fork_rng(devices=[]):  # nn.Module init draws from the global generator: seed a copy of it
        torch.manual_seed(config.seed)
        embedder = Embedder(config).to(device)
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
    opt = torch.optim.AdamW(embedder.parameters(), lr=config.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(config.seed)
    log_every = max(1, config.steps // LOG_POINTS)
    losses, steps, r2s, window, span = [], [], [], 0.0, 0
    start, step = time.perf_counter(), 0
    batch = min(config.models_per_batch, len(train_ids))
    embedder.train()
    for step in range(1, config.steps + 1):
        ids = train_ids[torch.randperm(len(train_ids), generator=gen)[:batch].to(device)]
        x = draw_inputs(config.n_inputs, gen, device)  # (N,) shared by the batch
        true = source.gradients(ids, x)  # (B, N)
        masked = make_mask(source.section_ids(ids, x), config.mask_ratio, gen)
        loss = embedder.masked_error(x, true, masked).pow(2).mean()  # MSE on the masked gradients only
        for group in opt.param_groups:
            group["lr"] = lr_at(step - 1, config)
        opt.zero_grad(set_to_none=True)
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
    preds, trues, masks = [], [], []
    with torch.no_grad():
        for _ in range(n_draws):
            x = draw_inputs(embedder.config.n_inputs, g, device)
            true = source.gradients(ids, x)
            masked = make_mask(source.section_ids(ids, x), embedder.config.mask_ratio, g)
            preds.append(embedder(x, true, masked))
            trues.append(true)
            masks.append(masked)
    return masked_r2(torch.cat(preds), torch.cat(trues), torch.cat(masks))


# ---------------------------------------------------------------- using a trained embedder


def embed(embedder: Embedder, zoo: Zoo, n_inputs: int | None = None, seed: int = 0, batch: int = 256) -> np.ndarray:
    """Embeddings of every model (both splits) from fresh inputs, all gradients visible -> (n_models, bottleneck)."""
    device = embedder.grad_scale.device
    source = GradientSource(zoo, "sample", device)  # no masking here, so no sections needed
    g = torch.Generator().manual_seed(seed)
    x = draw_inputs(n_inputs or EMBED_INPUTS, g, device)
    out = []
    embedder.eval()
    with torch.no_grad():
        for lo in range(0, zoo.n_models, batch):
            ids = torch.arange(lo, min(lo + batch, zoo.n_models), device=device)
            true = source.gradients(ids, x)
            out.append(embedder.encode(x, true, torch.zeros_like(true, dtype=torch.bool)))
    return torch.cat(out).double().cpu().numpy()


def cloze_examples(embedder: Embedder, zoo: Zoo, model_ids, seed: int = 0) -> list[dict]:
    """One masked example per model, sorted by x: x, true gradient, masked (bool), predicted gradient."""
    device = embedder.grad_scale.device
    source = GradientSource(zoo, embedder.mask_unit_, device)
    ids = torch.as_tensor(np.asarray(model_ids, dtype=np.int64), device=device)
    g = torch.Generator().manual_seed(seed)
    x = draw_inputs(embedder.config.n_inputs, g, device).sort().values
    true = source.gradients(ids, x)
    masked = make_mask(source.section_ids(ids, x), embedder.config.mask_ratio, g)
    with torch.no_grad():
        pred = embedder(x, true, masked)
    xs = x.cpu().numpy()
    return [{"model": int(i), "x": xs.copy(), "gradient": true[j].cpu().numpy(), "masked": masked[j].cpu().numpy(),
             "predicted": pred[j].cpu().numpy()} for j, i in enumerate(ids.tolist())]  # fmt: skip
