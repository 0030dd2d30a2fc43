"""Input-gradients dy/dx of every model, and the exact line-sections of piecewise-linear models.

A ReLU (or leaky-ReLU) MLP on 1D input is piecewise linear: its gradient is piecewise
constant, one slope per *line-section*. The sections are found from the weights, layer by
layer: on an interval where every earlier neuron keeps its sign, each neuron of the next
layer is affine in x, so it changes sign at most once, at x* = m - z(m) / z'(m) for the
interval midpoint m. Splitting at those points for each layer in turn gives the exact
breakpoints. Everything is batched over models, padded with +inf where models have fewer
sections.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import NoExactSections  # noqa: F401 - raised here; defined there so catching it needs no torch
from .zoo import Zoo

LEAKY_SLOPE = 0.01  # torch.nn.functional.leaky_relu's default negative slope


def input_gradients(zoo: Zoo, x) -> np.ndarray:
    """dy/dx of every model: x (batch,) shared, or (n, batch) per model -> (n, batch), float32.

    d > 1 inputs: x (batch, d) shared or (n, batch, d) -> (n, batch, d)."""
    w = zoo.layers[0][0]
    x = torch.as_tensor(np.asarray(x), dtype=w.dtype, device=w.device)
    return input_gradients_torch(zoo, x).cpu().numpy()


def input_gradients_torch(zoo: Zoo, x: torch.Tensor) -> torch.Tensor:
    """Torch version for hot loops: x (batch,) or (n, batch) -> dy/dx (n, batch) on x's device."""
    n = zoo.n_models
    shared = x.dim() == (1 if zoo.input_dim == 1 else 2)
    xs = (x.expand(n, *x.shape) if shared else x).detach().clone().requires_grad_()
    with torch.enable_grad():
        y = zoo.forward(xs)  # (n, batch); each output depends only on its own input
        (grad,) = torch.autograd.grad(y.sum(), xs)
    return grad


@dataclass(frozen=True)
class LineSections:
    """Exact linear pieces of each model on [-1, 1]; padded columns hold +inf / NaN."""

    boundaries: np.ndarray  # (n, P + 1) sorted section edges; -1 first, 1 after the last valid edge, then +inf
    slopes: np.ndarray  # (n, P) slope of each piece (NaN for padding)
    intercepts: np.ndarray  # (n, P) intercept of each piece (NaN for padding)
    n_sections: np.ndarray  # (n,) number of real pieces per model

    def section_index(self, x) -> np.ndarray:
        """Which piece each x falls into: x (batch,) or (n, batch) -> (n, batch) ints in [0, n_sections)."""
        x = np.broadcast_to(np.asarray(x, dtype=np.float64), (len(self.slopes), np.shape(x)[-1]))
        idx = np.stack([np.searchsorted(b, xi, side="right") - 1 for b, xi in zip(self.boundaries, x)])
        return np.clip(idx, 0, self.n_sections[:, None] - 1)

    def gradient(self, x) -> np.ndarray:
        """Piecewise-constant gradient: (n, batch)."""
        return np.take_along_axis(self.slopes, self.section_index(x), 1)

    def evaluate(self, x) -> np.ndarray:
        """The sections' piecewise-linear function, which equals the model: (n, batch)."""
        idx = self.section_index(x)
        x = np.broadcast_to(np.asarray(x, dtype=np.float64), idx.shape)
        return np.take_along_axis(self.slopes, idx, 1) * x + np.take_along_axis(self.intercepts, idx, 1)

    def model(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Model i's edges (s + 1,), slopes (s,), intercepts (s,) without padding."""
        s = int(self.n_sections[i])
        return self.boundaries[i, : s + 1], self.slopes[i, :s], self.intercepts[i, :s]


def _affine_at(layers, activation, mid: torch.Tensor, n_layers: int):
    """Value and slope of layer `n_layers`' pre-activations at midpoints mid (n, I) -> 2 x (n, I, fan_out).

    Activations of earlier layers are linearised with the pattern at the midpoint, which is
    exact over the whole interval once the interval is free of those layers' kinks.
    """
    w0, b0 = layers[0]
    z = mid[..., None] * w0 + b0  # (n, I, width)
    dz = w0.expand_as(z)  # dz/dx (n, I, width)
    for w, b in layers[1:n_layers]:
        # the leaky gate is built in z's dtype: torch.where on Python scalars would round 0.01 to float32
        gate = (z > 0).to(z.dtype) if activation == "relu" else torch.where(z > 0, 1.0, torch.full_like(z, LEAKY_SLOPE))
        z, dz = torch.baddbmm(b, z * gate, w), torch.bmm(dz * gate, w)
    return z, dz


def line_sections(zoo: Zoo, eps: float = 1e-9) -> LineSections:
    """The exact line-sections of every model on [-1, 1], computed in float64 from the weights."""
    act = zoo.config.activation
    if not zoo.config.piecewise_linear:
        raise NoExactSections(
            f"activation '{act}' is smooth: its models have no line-sections; use sampled gradients instead"
        )
    layers = [(w.detach().double().cpu(), b.detach().double().cpu()) for w, b in zoo.layers]
    n = zoo.n_models
    edges = torch.tensor([-1.0, 1.0], dtype=torch.float64).expand(n, 2).clone()  # (n, E), +inf padded
    for depth in range(1, len(layers)):  # kinks of hidden layer `depth`
        lo, hi = edges[:, :-1], edges[:, 1:]
        valid = torch.isfinite(hi) & (hi - lo > eps)
        mid = torch.where(valid, (lo + hi) / 2, torch.zeros_like(lo))
        z, dz = _affine_at(layers, act, mid, depth)  # (n, I, width)
        with torch.no_grad():
            root = mid[..., None] - z / dz  # where each neuron's pre-activation crosses zero
        inside = valid[..., None] & (root > lo[..., None] + eps) & (root < hi[..., None] - eps)
        new = torch.where(inside, root, torch.full_like(root, float("inf"))).reshape(n, -1)
        edges, _ = torch.sort(torch.cat([edges, new], 1), 1)
        edges = edges[:, : int(torch.isfinite(edges).sum(1).max())]  # drop all-padding columns
    lo, hi = edges[:, :-1], edges[:, 1:]
    valid = torch.isfinite(hi) & (hi - lo > eps)
    mid = torch.where(valid, (lo + hi) / 2, torch.zeros_like(lo))
    y, dy = _affine_at(layers, act, mid, len(layers))  # (n, I, 1)
    slopes = torch.where(valid, dy[..., 0], float("nan"))
    intercepts = torch.where(valid, y[..., 0] - dy[..., 0] * mid, float("nan"))
    return _compact(edges.numpy(), slopes.numpy(), intercepts.numpy(), valid.numpy())


def _compact(edges, slopes, intercepts, valid) -> LineSections:
    """Drop zero-length pieces so each model's real sections come first, then pad."""
    n = len(edges)
    counts = valid.sum(1)
    p = int(counts.max())
    b = np.full((n, p + 1), np.inf)
    s = np.full((n, p), np.nan)
    c = np.full((n, p), np.nan)
    for i in range(n):
        keep = valid[i]
        k = counts[i]
        b[i, :k] = edges[i, :-1][keep]
        b[i, k] = 1.0
        s[i, :k] = slopes[i][keep]
        c[i, :k] = intercepts[i][keep]
    return LineSections(boundaries=b, slopes=s, intercepts=c, n_sections=counts)

