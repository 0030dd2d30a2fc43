"""The cloze task's data: fresh inputs, the models' exact gradients there, and which of them to hide.

Each example is one model seen at `n_inputs` fresh inputs x (shared by the models of a
batch). Some of its gradients are hidden: with `mask_unit="section"` a fraction of the
model's *line-sections* that hold samples is chosen and every sample in them is hidden (so
no visible neighbour in the same section gives the answer away); with `"sample"` single
samples are hidden. Smooth activations (tanh, gelu) have no line-sections, so they fall
back to per-sample masking and say so (`GradientSource.note`).

With d inputs (zoo.input_dim > 1) the unit is the *linear region*: a sample's region is its
activation pattern (regions.py, exact in float64), and whole regions are hidden
(regions.masked_by_region), so no visible sample shares a hidden sample's gradient. Inputs
are x (N, d) uniform on [-1, 1]^d and gradients (B, N, d).
"""

from __future__ import annotations

import torch

from .gradients import NoExactSections, line_sections
from .regions import activation_patterns, mask_whole_groups, masked_by_region, region_ids
from .zoo import Zoo, mlp_forward


class GradientSource:
    """Fresh inputs and the exact gradients (and line-section ids) of chosen models of a zoo."""

    def __init__(self, zoo: Zoo, mask_unit: str, device="cpu"):
        self.layers = [(w.to(device), b.to(device)) for w, b in zoo.layers]
        self.activation = zoo.config.activation
        self.device = device
        self.mask_unit, self.note = mask_unit, None
        self.boundaries = None
        self.input_dim = zoo.input_dim
        if self.input_dim > 1 and mask_unit == "section" and not zoo.config.piecewise_linear:
            self.mask_unit = "sample"
            self.note = (f"activation '{self.activation}' is smooth and has no linear regions: "
                         "fell back to per-sample masking")  # fmt: skip
        elif mask_unit == "section" and self.input_dim == 1:
            try:
                sections = line_sections(zoo)
                self.boundaries = torch.as_tensor(sections.boundaries, device=device)  # (n, P+1) float64
                self.n_sections = torch.as_tensor(sections.n_sections, device=device)
                self.slopes = torch.as_tensor(sections.slopes, device=device)  # (n, P) float64, NaN padded
            except NoExactSections:
                self.mask_unit = "sample"
                self.note = (f"activation '{self.activation}' is smooth and has no line-sections: "
                             "fell back to per-sample masking")  # fmt: skip

    def gradients(self, ids: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """ids (B,), x (N,) -> dy/dx (B, N) of those models; d > 1: x (N, d) -> (B, N, d)."""
        layers = [(w[ids], b[ids]) for w, b in self.layers]
        xs = x.expand(len(ids), *x.shape).detach().clone().requires_grad_()
        with torch.enable_grad():
            (g,) = torch.autograd.grad(mlp_forward(layers, xs, self.activation).sum(), xs)
        return g.detach()

    def gradients_and_sections(self, ids: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (B,), x (N,) or (N, d) -> (dy/dx (B, N) or (B, N, d), section ids (B, N)): one cloze example.

        With exact line-sections the gradient is the slope of each sample's section, gathered
        from slopes computed once per model (float64, from the weights), instead of a forward
        and backward pass through the models at every step. It equals `gradients` up to float32
        rounding, except for samples within rounding distance of a kink (test_cloze checks both).
        """
        sections = self.section_ids(ids, x)
        if self.mask_unit == "sample" or self.input_dim > 1:  # d inputs: region ids mask, autograd gives gradients
            return self.gradients(ids, x), sections
        dtype = self.layers[0][0].dtype
        return self.slopes[ids].gather(1, sections).to(dtype), sections

    def section_ids(self, ids: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """ids (B,), x (N,) -> (B, N) the line-section of each sample, or each sample its own 'section'."""
        if self.mask_unit == "sample":
            return torch.arange(x.shape[0], device=x.device).expand(len(ids), -1)
        if self.input_dim > 1:  # linear regions: one id per distinct activation pattern, per model
            layers = [(w[ids], b[ids]) for w, b in self.layers]
            ids_np, _ = region_ids(activation_patterns(layers, x.detach().cpu().numpy(), self.activation))
            return torch.as_tensor(ids_np, device=x.device)
        bounds = self.boundaries[ids]  # (B, P+1), +inf padded
        xs = x.to(bounds.dtype).expand(len(ids), -1).contiguous()
        idx = torch.searchsorted(bounds, xs, right=True) - 1
        return torch.minimum(idx.clamp_min(0), self.n_sections[ids, None] - 1)


def make_mask(section_ids: torch.Tensor, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """Hide round(ratio * present) of the sections that hold samples (at least one hidden, one shown).

    section_ids (B, N) non-negative ints -> masked (B, N) bool; every sample of a chosen
    section is hidden, so a masked section is hidden whole.
    """
    return mask_whole_groups(section_ids, ratio, generator)


def draw_inputs(n: int, generator: torch.Generator, device="cpu", input_dim: int = 1) -> torch.Tensor:
    """n inputs uniform on [-1, 1]: (n,), or (n, d) for d > 1."""
    if input_dim > 1:
        return (torch.rand(n, input_dim, generator=generator) * 2 - 1).to(device)
    return (torch.rand(n, generator=generator) * 2 - 1).to(device)


def region_mask(section_ids: torch.Tensor, ratio: float, generator: torch.Generator, input_dim: int) -> torch.Tensor:
    """make_mask for 1D line-sections (unchanged numbers), regions.masked_by_region for d > 1 regions."""
    return masked_by_region(section_ids, ratio, generator) if input_dim > 1 else make_mask(section_ids, ratio, generator)


def rms_gradient(source: GradientSource, ids: torch.Tensor) -> float:
    """RMS of the models' gradient components on a fixed grid (d = 1) or fixed sample of [-1, 1]^d."""
    if source.input_dim > 1:
        sample = draw_inputs(256, torch.Generator().manual_seed(7), source.device, source.input_dim)
        return float(source.gradients(ids, sample).pow(2).mean().sqrt().clamp_min(1e-6))
    grid = torch.linspace(-1, 1, 257, device=source.device)
    return float(source.gradients(ids, grid).pow(2).mean().sqrt().clamp_min(1e-6))
