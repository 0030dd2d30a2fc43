"""The cloze embedder's network: a set encoder over (x, visible gradient) tokens, a bottleneck, a decoder.

    tokens  = MLP([fourier(x), g * visible, masked])   # (B, N, d): a mask is an indicator
                                                       # channel, never a magic gradient value
    h       = attention over [cls, tokens]             # no positions: a set encoder
    z       = Linear(h_cls)                            # (B, bottleneck): the embedding
    g_hat   = MLP([z, fourier(x_query)])               # (B, N): decoder sees ONLY z and x

Because the decoder is conditioned only on the bottleneck and the query x, everything it
needs about the function must pass through z. Gradients are scaled by one global
`grad_scale` (the RMS gradient of the training models), so the magnitude that tells
functions apart is kept. Training is in cloze_training.py, the task's data in cloze_task.py.

With d inputs (`input_dim` > 1) a token is [fourier(x_1), ..., fourier(x_d), g * visible (d),
masked]: Fourier features per coordinate, the whole gradient vector, one mask indicator per
sample (a masked sample hides its whole gradient); the decoder predicts the d-vector gradient
at each query point. d = 1 runs the original code, so its numbers do not move.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import ClozeConfig, from_dict, to_dict

MODEL_RMS_FLOOR = 1e-3  # in units of grad_scale: a flat model's gradients (or errors) are not blown up without bound
N_FREQS = 8  # default Fourier features sin/cos(pi k x), k = 1..n_freqs (ClozeConfig.n_freqs): small MLPs draw wiggly curves


def fourier(x: torch.Tensor, n_freqs: int = N_FREQS) -> torch.Tensor:
    """x (...,) in [-1, 1] -> (..., 1 + 2 * n_freqs)."""
    k = torch.arange(1, n_freqs + 1, dtype=x.dtype, device=x.device) * math.pi
    a = x[..., None] * k
    return torch.cat([x[..., None], torch.sin(a), torch.cos(a)], -1)


def visible_rms(g: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Each model's RMS over its visible samples (and gradient components), floored at MODEL_RMS_FLOOR.

    g (B, N) or (B, N, d) in units of grad_scale, already zero where masked; visible (B, N) or (B, N, 1) 0/1 -> (B,).
    Masked samples never enter it: the scale the encoder is told must not leak what the decoder has to predict."""
    count = visible.expand_as(g).flatten(1).sum(1).clamp_min(1)  # (B,)
    return (g.pow(2).flatten(1).sum(1) / count).sqrt().clamp_min(MODEL_RMS_FLOOR)


def mlp(sizes: list[int]) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


def cls_block(block: nn.TransformerEncoderLayer, h: torch.Tensor) -> torch.Tensor:
    """A pre-norm encoder block's output at row 0 (the cls token) only: h (B, T, d) -> (B, d).

    With one query row, attention needs no keys or values per row. Head e's score of row j is
    q_e . (W_k,e y_j + b_k,e) = (W_k,e^T q_e) . y_j + const, and the constant cancels in the
    softmax; its output is sum_j p_ej (W_v,e y_j + b_v,e) = W_v,e (sum_j p_ej y_j) + b_v,e since
    the weights p sum to 1. So each row costs two d-length products per head instead of the
    (2d, d) key/value projection. Uses the block's own weights (stored embedders load
    unchanged); the same numbers as the full block's row 0 up to float rounding (test_cloze).
    """
    assert block.norm_first and block.activation is F.relu, "cls_block follows the Embedder's pre-norm relu blocks"
    attn = block.self_attn
    b, _, d = h.shape
    heads = attn.num_heads
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3)  # (d, d) each, rows grouped by head
    b_q, _, b_v = attn.in_proj_bias.chunk(3)  # (d,) each; the key bias cancels in the softmax
    y = block.norm1(h)  # (B, T, d)
    q = F.linear(y[:, 0], w_q, b_q).view(b, heads, d // heads)  # (B, heads, d / heads)
    u = torch.einsum("bhe,hed->bhd", q, w_k.view(heads, d // heads, d)) / math.sqrt(d // heads)  # (B, heads, d)
    p = torch.softmax(torch.einsum("bhd,btd->bht", u, y), -1)  # (B, heads, T) the cls row's attention
    pooled = torch.einsum("bht,btd->bhd", p, y)  # (B, heads, d) attention-weighted mean of the rows
    o = torch.einsum("bhd,hed->bhe", pooled, w_v.view(heads, d // heads, d)).reshape(b, d) + b_v  # (B, d)
    h0 = h[:, 0] + attn.out_proj(o)  # (B, d)
    return h0 + block.linear2(F.relu(block.linear1(block.norm2(h0))))


class Embedder(nn.Module):
    """Set encoder -> bottleneck -> decoder at query points. Fitted attributes end in `_`."""

    def __init__(self, config: ClozeConfig, input_dim: int = 1):
        super().__init__()
        self.config = config
        self.input_dim = input_dim
        d, nf = config.d_model, (1 + 2 * config.n_freqs) * input_dim
        # [fourier(x) per coordinate, visible gradient, mask indicator (, log of the model's visible RMS gradient)]
        self.tokens = mlp([nf + input_dim + 1 + (config.input_scale == "model"), d, d])
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        block = nn.TransformerEncoderLayer(d, config.n_heads, 2 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(block, config.n_layers, enable_nested_tensor=False) if config.n_layers else None
        self.norm = nn.LayerNorm(d)
        self.bottleneck = nn.Linear(d, config.bottleneck)
        self.decoder = mlp([config.bottleneck + nf, d, d, input_dim])
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

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Fourier features of inputs: x (..., d) -> (..., d * (1 + 2 n_freqs)), per coordinate (d > 1 only)."""
        return fourier(x, self.config.n_freqs).flatten(-2)

    def encode(self, x: torch.Tensor, g: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """x (B, N) or (N,), raw gradients g (B, N), masked (B, N) bool -> embeddings z (B, bottleneck).

        d > 1: x (B, N, d) or (N, d), g (B, N, d), masked (B, N)."""
        if self.input_dim > 1:
            x = x.expand_as(g)
            visible = (~masked).to(g.dtype)[..., None]
            feats = torch.cat([self.features(x), *self.gradient_channels(g / self.grad_scale * visible, visible),
                               masked.to(g.dtype)[..., None]], -1)  # fmt: skip
            h = torch.cat([self.cls.expand(len(g), -1, -1), self.tokens(feats)], 1)  # (B, 1 + N, d_model)
            if self.encoder is not None:
                h = self.encoder(h)
            return self.bottleneck(self.norm(h[:, 0]))
        x = x.expand_as(g)
        visible = (~masked).to(g.dtype)
        if self.config.input_scale == "model":
            scaled, log_rms = self.gradient_channels((g / self.grad_scale * visible)[..., None], visible[..., None])
            feats = torch.cat([fourier(x, self.config.n_freqs), scaled, masked.to(g.dtype)[..., None], log_rms], -1)
        else:  # the original code, so its numbers do not move
            feats = torch.cat([fourier(x, self.config.n_freqs), (g / self.grad_scale * visible)[..., None], masked.to(g.dtype)[..., None]], -1)
        h = torch.cat([self.cls.expand(len(g), -1, -1), self.tokens(feats)], 1)  # (B, 1 + N, d)
        return self.bottleneck(self.norm(self.encode_cls(h)))

    def gradient_channels(self, g: torch.Tensor, visible: torch.Tensor) -> list[torch.Tensor]:
        """The tokens' gradient channels from g (B, N, d) in units of grad_scale, zero where masked, visible (B, N, 1).

        input_scale "zoo": [g]. "model": [g / rms, log(rms)], rms (B,) each model's visible RMS (visible_rms),
        log(rms) repeated on every token (B, N, 1): the shape and the size of the gradients as separate inputs."""
        if self.config.input_scale != "model":
            return [g]
        rms = visible_rms(g, visible)  # (B,)
        return [g / rms[:, None, None], rms.log()[:, None, None].expand(-1, g.shape[1], 1)]

    def encode_cls(self, h: torch.Tensor) -> torch.Tensor:
        """The encoder's output at the cls token: h (B, 1 + N, d) -> (B, d).

        Only the cls row of the last block's output is ever used, so the last block computes
        that row alone (cls_block): a small part of the full block's work. Earlier blocks need every row. The same numbers as `encoder(h)[:, 0]`
        (encode_cls_reference) up to float rounding.
        """
        if self.encoder is None:
            return h[:, 0]
        *early, last = self.encoder.layers
        for block in early:
            h = block(h)
        return cls_block(last, h)

    def encode_cls_reference(self, h: torch.Tensor) -> torch.Tensor:
        """The slow obvious version of encode_cls: every block on every row, then take the cls row."""
        return h[:, 0] if self.encoder is None else self.encoder(h)[:, 0]

    def decode(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """z (B, bottleneck), query x (B, Q) or (Q,) -> predicted raw gradients (B, Q); d > 1: x (B, Q, d)
        or (Q, d) -> (B, Q, d)."""
        if self.input_dim > 1:
            x = x.expand(len(z), -1, -1) if x.dim() == 2 else x
            zq = z[:, None, :].expand(-1, x.shape[1], -1)
            return self.decoder(torch.cat([zq, self.features(x)], -1)) * self.grad_scale
        x = x.expand(len(z), -1) if x.dim() == 1 else x
        zq = z[:, None, :].expand(-1, x.shape[1], -1)
        return self.decoder(torch.cat([zq, fourier(x, self.config.n_freqs)], -1))[..., 0] * self.grad_scale

    def forward(self, x, g, masked):
        return self.decode(self.encode(x, g, masked), x)

    def masked_error(self, x: torch.Tensor, g: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """Scaled prediction error at the masked samples only -> (n_masked,), decoding nothing else.

        The same numbers as (forward(x, g, masked) - g)[masked] / grad_scale, at a fraction of
        the decoder's cost when few samples are masked.
        """
        z = self.encode(x, g, masked)  # (B, bottleneck)
        rows, cols = masked.nonzero(as_tuple=True)  # (M,) each
        if self.input_dim > 1:  # -> (M, d)
            xq = x.expand_as(g)[rows, cols]  # (M, d)
            return self.decoder(torch.cat([z[rows], self.features(xq)], -1)) - g[rows, cols] / self.grad_scale
        xq = x.expand_as(g)[rows, cols]  # (M,)
        pred = self.decoder(torch.cat([z[rows], fourier(xq, self.config.n_freqs)], -1))[:, 0]  # (M,) in units of grad_scale
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
        if self.input_dim > 1:  # 1D runs keep their embedder.json as it was
            meta["input_dim"] = self.input_dim
        return tensors, meta

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict) -> "Embedder":
        input_dim = meta.get("input_dim", 1)  # runs saved before d inputs existed are 1D
        if isinstance(input_dim, bool) or not isinstance(input_dim, int) or input_dim < 1:
            raise ValueError(f"embedder.json: 'input_dim' must be a whole number >= 1, got {input_dim!r}")
        emb = cls(from_dict(ClozeConfig, meta["config"]), input_dim)
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
