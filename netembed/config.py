"""Frozen configurations: every setting of the pipeline, with a default and its allowed range.

Each config validates itself where it is built, so a bad setting fails at once with one
readable message naming the setting and the allowed range (`ConfigError`), in the app
and on the command line alike.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "gelu", "sine")
PIECEWISE_LINEAR = ("relu", "leaky_relu")
SAMPLINGS = ("roots", "chebyshev", "monomial")
MASK_UNITS = ("section", "sample")
LOSS_SCALES = ("zoo", "model")
INPUT_SCALES = ("zoo", "model")
FAMILY_KINDS = ("polynomials", "sines", "bumps")
INPUT_DIM_MAX = 64


class ConfigError(ValueError):
    """A setting outside its allowed range; the message names the setting and the range.

    `setting` is the field the message is about (None when it is about no single field), so a
    face (the command line, the app) can point at its own control for it (a flag, a widget).
    """

    def __init__(self, message: str, setting: str | None = None):
        super().__init__(message)
        self.setting = setting


# ---------------------------------------------------------------- one declaration per setting


def setting(default, help: str, *, lo=None, hi=None, open_lo=False, open_hi=False, choices=None, flag=None, cli=True,
            pattern=None):
    """A config field with everything the faces need: default, help, allowed range or choices, flag.

    Validation (`check_fields`), the command line's flags (cli_flags.py) and the app's widgets
    (app/widgets.py) are derived from this, so a new setting is declared here and nowhere else.
    lo/hi bound a number (open_lo/open_hi exclude the bound; hi=None: no upper bound); choices
    lists a string's allowed values; flag is the command-line flag where it is not --field-name;
    cli=False keeps a setting off the command line (it stays settable in JSON and in the app);
    pattern (a regular expression the whole value must match) replaces choices for a free-form string.
    """
    kind = type(default)
    if kind not in (int, float, str):
        raise TypeError(f"setting() supports int, float and str defaults, got {kind.__name__}")
    if (kind is str) != ((choices is None) != (pattern is None)) or (kind is not str and lo is None):
        raise TypeError("a str setting needs choices or a pattern; a number needs lo (and hi unless unbounded)")
    meta = {"help": help, "kind": kind, "lo": lo, "hi": hi, "open_lo": open_lo, "open_hi": open_hi, "flag": flag,
            "cli": cli, "choices": tuple(choices) if choices is not None else None, "pattern": pattern}  # fmt: skip
    return dataclasses.field(default=default, metadata=meta)


def spec(cls, name: str) -> dict:
    """A field's declaration: its metadata plus name and default."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return {**f.metadata, "name": name, "default": f.default}


def specs(cls) -> list[dict]:
    """Every declared setting of a config, in field order."""
    return [spec(cls, f.name) for f in dataclasses.fields(cls) if "help" in f.metadata]


def help_text(s: dict) -> str:
    """A declaration's help plus its allowed range, e.g. 'hidden layers; 1..16' (choices are listed by the faces)."""
    if s["kind"] is str:
        return s["help"]
    if s["hi"] is None:
        allowed = f">{'' if s['open_lo'] else '='} {s['lo']:g}"
    elif s["kind"] is int:
        allowed = f"{s['lo']}..{s['hi']}"
    else:
        allowed = f"{'(' if s['open_lo'] else '['}{s['lo']:g}, {s['hi']:g}{')' if s['open_hi'] else ']'}"
    return f"{s['help']}; {allowed}"


def check_value(s: dict, value: Any) -> None:
    """Raise ConfigError unless `value` fits the declaration `s` (from spec())."""
    name, kind = s["name"], s["kind"]
    if kind is str and s.get("pattern") is not None:
        if not isinstance(value, str) or not re.fullmatch(s["pattern"], value):
            raise ConfigError(f"{name} must look like {s['help'].split(': ', 1)[-1]}, got {value!r}", name)
    elif kind is str:
        _check_choice(name, value, s["choices"])
    elif kind is int:
        _check_int(name, value, s["lo"], s["hi"])
    else:
        hi = math.inf if s["hi"] is None else s["hi"]
        _check_float(name, value, s["lo"], hi, open_lo=s["open_lo"], open_hi=s["open_hi"])


def check_fields(config) -> None:
    """Check every declared field of a config against its declaration, in field order."""
    for s in specs(type(config)):
        check_value(s, getattr(config, s["name"]))


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number, got {value!r}", name)
    if value < lo or (hi is not None and value > hi):
        allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ConfigError(f"{name} must be in {allowed}, got {value}", name)


def _check_float(name: str, value: Any, lo: float, hi: float, *, open_lo=False, open_hi=False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}", name)
    below = value <= lo if open_lo else value < lo
    above = value >= hi if open_hi else value > hi
    if below or above:
        left, right = "(" if open_lo else "[", ")" if open_hi else "]"
        raise ConfigError(f"{name} must be in {left}{lo:g}, {hi:g}{right}, got {value:g}", name)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}", name)


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
            "ask for fewer functions, higher degrees or a smaller distance",
            "n_functions",
        )


SEED_MAX = 2**31 - 1


@dataclass(frozen=True)
class FamilyConfig:
    """K random 1D functions on [-1, 1]: polynomials normalised to the range [-1, 1], or sines (sines.py)."""

    kind: str = setting("polynomials", "which functions: polynomials (family.py), sines a*sin(b*x + c) on "
                        "x in [-pi, pi) (sines.py), or bumps: sums of Gaussian bumps in input_dim variables "
                        "(family_nd.py)", choices=FAMILY_KINDS, flag="--family")
    # polynomials and sines are 1D; bumps take any d (family_nd.py)
    input_dim: int = setting(1, "d: inputs of every function and network (x in [-1, 1]^d); d > 1 needs --family bumps",
                             lo=1, hi=INPUT_DIM_MAX)
    n_functions: int = setting(10, "K: number of target functions", lo=1, hi=1000, flag="--functions")
    # the command line sets both degrees with one range flag, --degree 3-4 (cli_flags.py)
    degree_min: int = setting(3, "lowest polynomial degree", lo=1, hi=8, flag="--degree")
    degree_max: int = setting(4, "highest polynomial degree (>= degree_min)", lo=1, hi=8, flag="--degree")
    sampling: str = setting("roots", "how polynomials are drawn: roots: random roots in [-1, 1]; chebyshev: N(0,1) "
                            "Chebyshev coefficients; monomial: naive N(0,1) power coefficients (members look alike)",
                            choices=SAMPLINGS)  # fmt: skip
    min_derivative_distance: float = setting(1.0, "least RMS distance between two members' derivatives on a dense grid",
                                             lo=0.0, hi=100.0, flag="--min-distance")  # fmt: skip
    seed: int = setting(0, "seed of the family's random draws", lo=0, hi=SEED_MAX)
    max_tries: int = setting(2000, "resamples allowed before giving up on the variety guarantee", lo=1, hi=10**6,
                             cli=False)  # fmt: skip
    # DWSNets draws a, b from [0, 10]; a floor keeps members off the flat zero function, and below b ~ 0.5 only
    # the product a*b is visible, not a and b apart
    sine_amplitude_min: float = setting(0.5, "sines: least amplitude a (a ~ U[min, max])", lo=0.0, hi=100.0)
    sine_amplitude_max: float = setting(10.0, "sines: largest amplitude a (>= the least)", lo=0.0, hi=100.0)
    sine_frequency_min: float = setting(0.5, "sines: least frequency b, in periods on [-pi, pi)", lo=0.0, hi=100.0)
    sine_frequency_max: float = setting(10.0, "sines: largest frequency b (>= the least)", lo=0.0, hi=100.0)
    sine_phase: float = setting(0.0, "sines: the phase c, the same for every member (DWSNets: 0)",
                                lo=-math.pi, hi=math.pi)  # fmt: skip

    def __post_init__(self):
        check_fields(self)
        if self.degree_max < self.degree_min:
            raise ConfigError(f"degree_max must be >= degree_min ({self.degree_min}), got {self.degree_max}", "degree_max")
        for low, high in (("sine_amplitude_min", "sine_amplitude_max"), ("sine_frequency_min", "sine_frequency_max")):
            if getattr(self, high) < getattr(self, low):
                raise ConfigError(f"{high} must be >= {low} ({getattr(self, low):g}), got {getattr(self, high):g}", high)
        _check_variety(self)
        if self.input_dim > 1 and self.kind != "bumps":
            raise ConfigError(f"input_dim {self.input_dim} needs kind bumps ({self.kind} are functions of one input)",
                              "input_dim")


@dataclass(frozen=True)
class ZooConfig:
    """K x M small MLPs 1 -> width^depth -> 1, trained as one vectorised computation."""

    models_per_function: int = setting(50, "M: seeds per function", lo=2, hi=100_000)
    width: int = setting(32, "hidden units per layer", lo=1, hi=4096)
    depth: int = setting(2, "hidden layers", lo=1, hi=16)
    activation: str = setting("relu", "hidden activation; relu and leaky_relu have exact line-sections, tanh, "
                              "gelu and sine (SIREN) are smooth", choices=ACTIVATIONS)  # fmt: skip
    # every model takes the same steps; 10x50 default: median fit MSE 8e-5
    steps: int = setting(1000, "training steps of every model", lo=0, hi=10**7)
    batch_size: int = setting(256, "fresh inputs per step, shared by all models", lo=1, hi=1_000_000)
    lr: float = setting(1e-2, "Adam learning rate (cosine-decayed to lr / 100)", lo=0.0, hi=10.0, open_lo=True)
    # on the command line --seed seeds the family and the zoo alike (one flag, shared)
    seed: int = setting(0, "seed of the model inits and the input draws", lo=0, hi=SEED_MAX)
    train_fraction: float = setting(0.8, "first fraction of each function's seeds that forms the training split",
                                    lo=0.0, hi=1.0, open_lo=True, open_hi=True, cli=False)  # fmt: skip
    # relative, so targets of any scale are judged alike (sines reach amplitude 10: an absolute 1e-2 flagged 43 of
    # the sines demo's 120 models, 8 at this rule). 0.05 keeps polynomial zoos' flags where the absolute 1e-2 put
    # them: their targets' variance is 0.11-0.46 (median 0.18; 10 families x 10 seeds), and measured on 10 x 20
    # zoos (seeds 0, 1; 300 and 1000 steps) the flags were 15/16, 5/5, 0/0 and 0/0 models (absolute / relative)
    fail_relative_mse: float = setting(0.05, "fit MSE on the dense grid over the target's variance there (1 - R^2) "
                                       "above which a model is flagged as failed", lo=0.0, hi=1e3, open_lo=True,
                                       cli=False)  # fmt: skip

    def __post_init__(self):
        check_fields(self)

    @property
    def n_train_seeds(self) -> int:
        """Seeds per function in the training split; at least one seed stays on each side."""
        return min(max(1, round(self.train_fraction * self.models_per_function)), self.models_per_function - 1)

    @property
    def piecewise_linear(self) -> bool:
        return self.activation in PIECEWISE_LINEAR


ARCHITECTURE = r"[0-9]+x[0-9]+:(" + "|".join(ACTIVATIONS) + ")"  # WIDTHxDEPTH:ACTIVATION, e.g. 32x2:relu


@dataclass(frozen=True)
class MixedZooConfig:
    """Several architectures in one zoo (mixed_zoo.py): each trains the family with ZooConfig's other settings."""

    architectures: str = setting("", "architectures of a mixed zoo, empty for one: comma-separated "
                                 "WIDTHxDEPTH:ACTIVATION, e.g. 32x2:relu,16x2:relu,32x2:tanh",
                                 pattern=f"({ARCHITECTURE}(,{ARCHITECTURE})*)?")  # fmt: skip

    def __post_init__(self):
        check_fields(self)
        names = self.architectures.split(",")
        if len(set(names)) != len(names):
            raise ConfigError(f"architectures must differ, got {self.architectures!r}", "architectures")


@dataclass(frozen=True)
class ClozeConfig:
    """The cloze embedder: predict masked input-gradients from all inputs and the visible gradients."""

    bottleneck: int = setting(4, "embedding dimension (<= d_model)", lo=1, hi=4096)
    # 0.25 was best in the 10x50 sweep
    mask_ratio: float = setting(0.25, "fraction of line-sections (or samples) hidden per example",
                                lo=0.0, hi=1.0, open_lo=True, open_hi=True)  # fmt: skip
    mask_unit: str = setting("section", "section: hide whole line-sections; sample: hide single samples",
                             choices=MASK_UNITS)  # fmt: skip
    n_inputs: int = setting(64, "sampled inputs x per example in training", lo=2, hi=100_000)
    # a sine with b periods on [-1, 1] needs n_freqs >= b
    n_freqs: int = setting(8, "Fourier features sin/cos(pi k x), k = 1..n_freqs, of each sampled input", lo=1, hi=256)
    d_model: int = setting(64, "width of the set encoder and decoder", lo=4, hi=4096)
    n_heads: int = setting(4, "attention heads in the set encoder (divides d_model)", lo=1, hi=64, cli=False)
    # 1 reached 100% held-out on 10x50; 2 costs 1.7x
    n_layers: int = setting(1, "attention blocks in the set encoder", lo=0, hi=32, flag="--layers")
    steps: int = setting(600, "embedder training steps", lo=0, hi=10**7, flag="--embed-steps")
    # 48 was steadier across seeds than 32
    models_per_batch: int = setting(48, "models per embedder training batch", lo=1, hi=100_000, flag="--embed-batch")
    lr: float = setting(3e-3, "embedder AdamW learning rate (warm-up, then cosine-decayed)", lo=0.0, hi=10.0,
                        open_lo=True, flag="--embed-lr")  # fmt: skip
    seed: int = setting(0, "seed of the embedder's init, input draws and masks", lo=0, hi=SEED_MAX,
                        flag="--embed-seed")  # fmt: skip
    # model: 600 sines (gradients 1.6-310), 2400 steps, 5 seeds: ridge R^2 of b 0.84 -> 0.97, of a 0.76 -> 0.90
    # on unseen sines (benchmarks/results/study_targets.md, 2026-11-28)
    loss_scale: str = setting("zoo", "zoo: masked-gradient errors in units of the zoo's RMS gradient (large gradients "
                              "dominate); model: each model's errors relative to its own RMS gradient (every model "
                              "counts alike)", choices=LOSS_SCALES)  # fmt: skip
    # model: the encoder's tokens carry each model's gradients divided by its visible RMS, and log(RMS) as a
    # channel of its own, so shape and scale are separate inputs. Sines: ridge R^2 of a 0.81 -> 0.95 on one SIREN
    # zoo (5 seeds, every seed up), no gain on another (3 seeds): benchmarks/results/study_targets.md, 2026-11-28
    input_scale: str = setting("zoo", "zoo: the encoder sees gradients in units of the zoo's RMS gradient; model: "
                               "divided by the model's own visible RMS, with log(RMS) as an extra token channel",
                               choices=INPUT_SCALES)  # fmt: skip

    def __post_init__(self):
        check_fields(self)
        if self.bottleneck > self.d_model:
            raise ConfigError(f"bottleneck must be in 1..{self.d_model}, got {self.bottleneck}", "bottleneck")
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})", "d_model")


# The sweep's default grid, shared by `python -m netembed sweep` and the app's Sweep page
SWEEP_MASK_RATIOS = (0.25, 0.5, 0.75)
SWEEP_BOTTLENECKS = (2, 4, 8)


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
