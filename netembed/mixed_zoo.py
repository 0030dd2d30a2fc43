"""A zoo of several architectures: one stacked Zoo per architecture, seen as one list of models.

Weights of different widths and depths cannot share one stacked tensor, so each
architecture is its own `Zoo` part, trained by the fastest engine for it (zoo.make_step:
the C kernel for relu / leaky_relu on the CPU, autograd for tanh, gelu and sine). The
`MixedZoo` numbers the models part after part (model i of part j is model offset_j + i)
and carries an `architectures` label per model, e.g. "32x2:relu".

The cloze embedder only needs input-gradients, which every part gives, so a mixed zoo is
embedded part by part with one shared input draw (`embed_mixed`): the same as embedding all
models together. Line-sections exist only for relu / leaky_relu parts, so training an
embedder with section masking on a smooth part falls back to per-sample masking
(cloze_task.GradientSource says so in its note).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from .config import ConfigError, MixedZooConfig, ZooConfig
from .zoo import PER_MODEL, Zoo, train_zoo


def parse_architectures(text: str) -> list[tuple[int, int, str]]:
    """'32x2:relu,16x2:tanh' -> [(32, 2, 'relu'), (16, 2, 'tanh')]; ConfigError on a malformed list."""
    MixedZooConfig(architectures=text)  # checks the pattern and that the architectures differ
    out = []
    for item in text.split(","):
        size, activation = item.split(":")
        width, depth = size.split("x")
        out.append((int(width), int(depth), activation))
    return out


def architecture_label(config: ZooConfig) -> str:
    """A zoo config's architecture as the command line writes it: WIDTHxDEPTH:ACTIVATION."""
    return f"{config.width}x{config.depth}:{config.activation}"


def part_configs(base: ZooConfig, architectures: str) -> list[ZooConfig]:
    """One ZooConfig per architecture: the base's training settings with that width, depth and activation."""
    configs = []
    for width, depth, activation in parse_architectures(architectures):
        try:
            configs.append(dataclasses.replace(base, width=width, depth=depth, activation=activation))
        except ConfigError as e:
            raise ConfigError(f"architecture {width}x{depth}:{activation}: {e}", "architectures") from None
    return configs


@dataclass
class MixedZoo:
    """Several Zoo parts over one family, numbered part after part."""

    parts: list[Zoo]

    def __post_init__(self):
        shared = {(p.config.models_per_function, p.config.train_fraction) for p in self.parts}
        if not self.parts or len(shared) != 1:
            raise ValueError("a mixed zoo needs at least one part, all with the same seeds per function and split")

    @property
    def config(self) -> ZooConfig:
        """The first part's config: the training settings every part shares (width etc. differ per part)."""
        return self.parts[0].config

    @property
    def input_dim(self) -> int:
        return self.parts[0].input_dim

    @property
    def n_models(self) -> int:
        return sum(p.n_models for p in self.parts)

    @property
    def offsets(self) -> np.ndarray:
        """(n_parts + 1,) first model id of each part, then n_models."""
        return np.concatenate([[0], np.cumsum([p.n_models for p in self.parts])]).astype(np.int64)

    @property
    def architectures(self) -> np.ndarray:
        """(n,) each model's architecture label, e.g. '32x2:relu'."""
        return np.concatenate([np.full(p.n_models, architecture_label(p.config), dtype=object) for p in self.parts])

    @property
    def is_train(self) -> np.ndarray:
        return np.concatenate([p.is_train for p in self.parts])

    @property
    def seconds(self) -> float:
        return float(sum(p.seconds for p in self.parts))

    @property
    def steps_done(self) -> int:
        return min(p.steps_done for p in self.parts)

    @property
    def log_steps(self) -> np.ndarray:
        return self.parts[0].log_steps

    @property
    def engine(self) -> str:
        """Which step trained each part, e.g. '32x2:relu: kernel, 32x2:tanh: autograd' (not stored: '' once loaded)."""
        return ", ".join(f"{architecture_label(p.config)}: {p.engine}" for p in self.parts if p.engine)

    def __getattr__(self, name):
        parts = self.__dict__.get("parts")  # absent while copy / pickle rebuild the object
        if parts is not None and name in PER_MODEL and name != "loss_curves":  # task_ids, seeds, ...: (n,)
            return np.concatenate([getattr(p, name) for p in parts])
        if parts is not None and name == "loss_curves":  # (n, n_logged): parts may log at other steps: pad
            curves = [p.loss_curves for p in parts]
            width = max(c.shape[1] for c in curves)
            return np.concatenate([np.pad(c, ((0, 0), (0, width - c.shape[1])), constant_values=np.nan) for c in curves])
        raise AttributeError(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (batch,) shared, or (n, batch) per model -> (n, batch)."""
        if x.dim() == 1:
            return torch.cat([p.forward(x) for p in self.parts])
        bounds = self.offsets
        return torch.cat([p.forward(x[lo:hi]) for p, lo, hi in zip(self.parts, bounds[:-1], bounds[1:])])

    def __call__(self, x) -> np.ndarray:
        return np.concatenate([p(x) for p in self.parts])

    def to(self, device) -> "MixedZoo":
        return MixedZoo([p.to(device) for p in self.parts])

    def part_of(self, label: str) -> Zoo:
        """The part of one architecture, e.g. '32x2:relu'."""
        for p in self.parts:
            if architecture_label(p.config) == label:
                return p
        raise KeyError(f"no architecture {label!r} in this zoo (it has {', '.join(self.labels)})")

    @property
    def labels(self) -> list[str]:
        return [architecture_label(p.config) for p in self.parts]

    def select(self, ids) -> "MixedZoo":
        """The models `ids` in that order; ids must keep the parts' order (all of a part's ids before the next's)."""
        ids = np.asarray(ids, dtype=np.int64)
        part = np.searchsorted(self.offsets, ids, side="right") - 1
        if np.any(np.diff(part) < 0):
            raise ValueError("a mixed zoo's selection must keep its parts in order")
        chosen = [(j, self.parts[j].select(ids[part == j] - self.offsets[j])) for j in np.unique(part)]
        return MixedZoo([p for _, p in chosen])


def train_mixed_zoo(family, base: ZooConfig, architectures: str, progress=None, device: str = "cpu",
                    should_stop=None) -> MixedZoo:  # fmt: skip
    """Train each architecture's part in turn with the fastest engine for it; `progress(label, step, losses)`.

    `should_stop(label, step)` is asked after every step of every part (train_zoo's should_stop). A part
    stopped early (should_stop said True, or progress returned False) ends the whole zoo: the later parts
    are not trained, and the zoo holds the parts trained so far (the stopped one with its steps done)."""
    parts = []
    for config in part_configs(base, architectures):
        label = architecture_label(config)
        report = None if progress is None else (lambda step, losses, label=label: progress(label, step, losses))
        stop = None if should_stop is None else (lambda step, label=label: should_stop(label, step))
        parts.append(train_zoo(family, config, progress=report, device=device, should_stop=stop).to("cpu"))
        if parts[-1].steps_done < config.steps:
            break
    return MixedZoo(parts)


def embed_mixed(embedder, zoo, seed: int) -> np.ndarray:
    """Embeddings (n, bottleneck) of every model of a Zoo or MixedZoo, all parts with the same input draw."""
    from .embedding import embed

    parts = zoo.parts if isinstance(zoo, MixedZoo) else [zoo]
    return np.concatenate([embed(embedder, p, seed=seed) for p in parts])
