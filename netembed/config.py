"""Frozen configurations: every setting of the pipeline, with a default and its allowed range.

Each config validates itself where it is built, so a bad setting fails at once with one
readable message naming the setting and the allowed range (`ConfigError`), in the app
and on the command line alike.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "gelu")
PIECEWISE_LINEAR = ("relu", "leaky_relu")
SAMPLINGS = ("roots", "chebyshev", "monomial")
MASK_UNITS = ("section", "sample")
FAMILY_KINDS = ("polynomials", "sines")


class ConfigError(ValueError):
    """A setting outside its allowed range; the message names the setting and the range."""


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ConfigError(f"{name} must be in {allowed}, got {value}")


def _check_float(name: str, value: Any, lo: float, hi: float, *, open_lo=False, open_hi=False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    below = value <= lo if open_lo else value < lo
    above = value >= hi if open_hi else value > hi
    if below or above:
        left, right = "(" if open_lo else "[", ")" if open_hi else "]"
        raise ConfigError(f"{name} must be in {left}{lo:g}, {hi:g}{right}, got {value:g}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def max_family_size(degree_max: int, min_distance: float) -> float:
    """An upper bound on how many members can differ pairwise by `min_distance` in derivative.

    A member's range is [-1, 1], so by Markov's inequality |f'| <= degree^2 on [-1, 1]: the
    derivatives lie in a ball of radius R = degree_max^2 of a degree_max-dimensional space,
    and at most (1 + 2R/d)^dim points of it are d apart (the volume-packing bound); no two
    are further apart than 2R. Degree 1 is exact: the only members are x and -x.
    """
    if min_distance <= 0:
        return math.inf
    if degree_max == 1:
        return 2 if min_distance <= 2 else 1
    radius = degree_max**2
    if min_distance > 2 * radius:
        return 1
    try:
        return (1 + 2 * radius / min_distance) ** degree_max
    except OverflowError:  # a vanishing distance: no limit worth stating
        return math.inf


def _check_variety(c: "FamilyConfig") -> None:
    """Refuse up front a family that no number of draws could make (make_family finds the rest)."""
    most = max_family_size(c.degree_max, c.min_derivative_distance)
    if c.kind == "polynomials" and c.n_functions > most:
        raise ConfigError(
            f"n_functions {c.n_functions} is more than degree <= {c.degree_max} polynomials can give with "
            f"min_derivative_distance {c.min_derivative_distance:g} (at most {math.floor(most)}); "
            "ask for fewer functions, higher degrees or a smaller distance"
        )


@dataclass(frozen=True)
class FamilyConfig:
    """K random 1D functions on [-1, 1]: polynomials normalised to the range [-1, 1], or sines (sines.py)."""

    kind: str = "polynomials"  # polynomials (family.py) or sines a*sin(b*x + c) on x in [-pi, pi) (sines.py)
    n_functions: int = 10  # K: members of the family
    degree_min: int = 3  # lowest polynomial degree (1..8)
    degree_max: int = 4  # highest polynomial degree (degree_min..8)
    sampling: str = "roots"  # roots: random roots in [-1, 1]; chebyshev: N(0,1) Chebyshev coefficients; monomial: naive N(0,1) power coefficients
    min_derivative_distance: float = 1.0  # RMS distance between any two members' derivatives on a dense grid
    seed: int = 0  # seed of the family's random draws
    max_tries: int = 2000  # resamples allowed before giving up on the variety guarantee
    sine_amplitude_min: float = 0.5  # sines: a ~ U[min, max]; DWSNets draws from [0, 10], a floor keeps members off the flat zero function
    sine_amplitude_max: float = 10.0  # sines: largest amplitude a
    sine_frequency_min: float = 0.5  # sines: b ~ U[min, max] (periods on [-pi, pi)); below ~0.5 only a*b is visible, not a and b apart
    sine_frequency_max: float = 10.0  # sines: largest frequency b
    sine_phase: float = 0.0  # sines: the phase c, the same for every member (DWSNets: 0)

    def __post_init__(self):
        _check_choice("kind", self.kind, FAMILY_KINDS)
        _check_int("n_functions", self.n_functions, 1, 1000)
        _check_int("degree_min", self.degree_min, 1, 8)
        _check_int("degree_max", self.degree_max, 1, 8)
        if self.degree_max < self.degree_min:
            raise ConfigError(f"degree_max must be >= degree_min ({self.degree_min}), got {self.degree_max}")
        _check_choice("sampling", self.sampling, SAMPLINGS)
        _check_float("min_derivative_distance", self.min_derivative_distance, 0.0, 100.0)
        _check_int("seed", self.seed, 0, 2**31 - 1)
        _check_int("max_tries", self.max_tries, 1, 10**6)
        _check_float("sine_amplitude_min", self.sine_amplitude_min, 0.0, 100.0)
        _check_float("sine_amplitude_max", self.sine_amplitude_max, self.sine_amplitude_min, 100.0)
        _check_float("sine_frequency_min", self.sine_frequency_min, 0.0, 100.0)
        _check_float("sine_frequency_max", self.sine_frequency_max, self.sine_frequency_min, 100.0)
        _check_float("sine_phase", self.sine_phase, -math.pi, math.pi)
        _check_variety(self)


@dataclass(frozen=True)
class ZooConfig:
    """K x M small MLPs 1 -> width^depth -> 1, trained as one vectorised computation."""

    models_per_function: int = 50  # M: seeds per function
    width: int = 32  # hidden units per layer
    depth: int = 2  # hidden layers
    activation: str = "relu"  # relu, leaky_relu, tanh or gelu
    steps: int = 1000  # optimiser steps (every model takes the same steps); 10x50 default: median fit MSE 8e-5
    batch_size: int = 256  # inputs per step, drawn fresh and shared by all models
    lr: float = 1e-2  # Adam learning rate (cosine-decayed to lr / 100)
    seed: int = 0  # seeds model inits and the input draws
    train_fraction: float = 0.8  # first fraction of each function's seeds forms the training split
    fail_mse: float = 1e-2  # fit MSE on the dense grid above which a model is flagged as failed

    def __post_init__(self):
        _check_int("models_per_function", self.models_per_function, 2, 100_000)
        _check_int("width", self.width, 1, 4096)
        _check_int("depth", self.depth, 1, 16)
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_int("steps", self.steps, 0, 10**7)
        _check_int("batch_size", self.batch_size, 1, 1_000_000)
        _check_float("lr", self.lr, 0.0, 10.0, open_lo=True)
        _check_int("seed", self.seed, 0, 2**31 - 1)
        _check_float("train_fraction", self.train_fraction, 0.0, 1.0, open_lo=True, open_hi=True)
        _check_float("fail_mse", self.fail_mse, 0.0, 1e6, open_lo=True)

    @property
    def n_train_seeds(self) -> int:
        """Seeds per function in the training split; at least one seed stays on each side."""
        return min(max(1, round(self.train_fraction * self.models_per_function)), self.models_per_function - 1)

    @property
    def piecewise_linear(self) -> bool:
        return self.activation in PIECEWISE_LINEAR


@dataclass(frozen=True)
class ClozeConfig:
    """The cloze embedder: predict masked input-gradients from all inputs and the visible gradients."""

    bottleneck: int = 4  # embedding dimension
    mask_ratio: float = 0.25  # fraction of line-sections (or samples) hidden per example (best in the 10x50 sweep)
    mask_unit: str = "section"  # section: hide whole line-sections; sample: hide single samples
    n_inputs: int = 64  # sampled inputs x per example during training
    n_freqs: int = 8  # Fourier features sin/cos(pi k x), k = 1..n_freqs, of each input; a sine with b periods needs n_freqs >= b
    d_model: int = 64  # width of the set encoder and decoder
    n_heads: int = 4  # attention heads in the set encoder
    n_layers: int = 1  # attention blocks in the set encoder (1 reached 100% held-out on 10x50; 2 costs 1.7x)
    steps: int = 600  # optimiser steps
    models_per_batch: int = 48  # models per training batch (48 was steadier across seeds than 32)
    lr: float = 3e-3  # AdamW learning rate (warm-up, then cosine-decayed)
    seed: int = 0  # seeds init, input draws and masks

    def __post_init__(self):
        _check_int("d_model", self.d_model, 4, 4096)
        _check_int("bottleneck", self.bottleneck, 1, self.d_model)
        _check_float("mask_ratio", self.mask_ratio, 0.0, 1.0, open_lo=True, open_hi=True)
        _check_choice("mask_unit", self.mask_unit, MASK_UNITS)
        _check_int("n_inputs", self.n_inputs, 2, 100_000)
        _check_int("n_freqs", self.n_freqs, 1, 256)
        _check_int("n_heads", self.n_heads, 1, 64)
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        _check_int("n_layers", self.n_layers, 0, 32)
        _check_int("steps", self.steps, 0, 10**7)
        _check_int("models_per_batch", self.models_per_batch, 1, 100_000)
        _check_float("lr", self.lr, 0.0, 10.0, open_lo=True)
        _check_int("seed", self.seed, 0, 2**31 - 1)


def parse_range(text: str) -> tuple[int, int]:
    """A degree range as people write it (CLI flag, URL): '3-4' -> (3, 4), '3' -> (3, 3); ValueError otherwise."""
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def from_dict(cls, data: dict):
    """Build a config from JSON data, refusing unknown keys (a hand-edited file names its typo)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{cls.__name__} has no setting(s) {', '.join(sorted(unknown))}")
    return cls(**data)
