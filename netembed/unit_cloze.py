"""Cloze embeddings of hidden units, and the per-unit descriptions built from them.

Two ways to make a hidden unit a 1D function the cloze embedder can read (`unit_input`):

"input": the unit as a function of the 64 pixels along lines between two digits
(units.unit_line_zoo); one unit's description is the mean embedding over its lines.

"previous_layer" (the default): the unit as a function of the PREVIOUS LAYER'S activations h,
    pre-activation  z(h) = h . W[:, u] + b[u]      (unit_value "pre", the default)
    post-activation u(h) = relu(z(h))              (unit_value "post")
h (width_prev,), W (width_prev, width), sampled along coordinate lines: for a base point and a
previous unit j,
    h(s) = h_prev(a) + s * span[j] * e_j,   s in [-1, 1]
so d z / d s = span[j] * W[j, u] (and d u / d s = gate * that): the line projects the
width_prev-dimensional gradient d z / d h onto one coordinate at a time. Why coordinates and not
random directions or the line between two digits: a random direction mixes every previous unit
into one number, and module membership is a statement about WHICH previous units a unit listens
to (the baselines: incoming-weight magnitudes at layer 1 give NMI 1.00, every function-of-the-pixels
description 0.1-0.4), which a coordinate line isolates. span[j] is unit j's std over the training
digits (floored), so a line moves j by its typical range. Why "pre" by default: a third of the
units of a planted-module network are off on every digit (measured: 15-25 of 64 per layer), and
their post-activation is flat along every line through the data, so nothing can be read from it.
Base points (post): each unit's n_base most driving training digits; pre uses one (its lines have
the same gradient through any point).

Each (unit, base point, previous unit) is one model of a 1D zoo (width 1, depth 1), so the
cloze embedder trains on it unchanged. A unit's response on a line is the distance of that
model's embedding from the embedding of a flat function (all gradients zero):
    response[u, j] = mean over base points of || e(u, a, j) - e_flat ||
The descriptions, each row scaled to unit length (the wiring pattern, not the gain): a unit of
layer l >= 1 by its row response[u, :] over the previous layer (incoming: what it listens to); a
unit of layer 0, whose previous layer is the pixels (which every module reads), by its column of
layer 1's responses, response[:, j] (outgoing: which units listen to it, i.e. how layer 1
responds when it moves). Both are per layer (their widths differ in meaning), scored per layer
like incoming weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .cloze_model import Embedder
from .cloze_task import draw_inputs
from .cloze_training import train_embedder
from .config import ClozeConfig, ConfigError, ZooConfig, check_fields, setting
from .digits import Digits, DigitsNet
from .embedding import embed
from .units import line_pairs, per_unit, unit_layers, unit_line_zoo
from .zoo import Zoo

UNIT_INPUTS = ("previous_layer", "input")
UNIT_VALUES = ("pre", "post")
SPAN_FLOOR = 0.1  # a previous unit's line half-length is at least this fraction of the mean std (dead units too)


@dataclass(frozen=True)
class UnitEmbedConfig:
    """How hidden units become 1D functions for the cloze embedder."""

    unit_input: str = setting("previous_layer", "what a unit is a function of: previous_layer: the previous "
                              "layer's activations along one previous unit at a time (sees connectivity); "
                              "input: the pixels along lines between two digits", choices=UNIT_INPUTS)  # fmt: skip
    unit_value: str = setting("pre", "previous_layer: the unit's pre-activation (its input map; sees every "
                              "unit) or its post-activation relu (flat wherever the unit is off, so a unit dead "
                              "on every digit has no function to read)", choices=UNIT_VALUES)  # fmt: skip
    n_base: int = setting(4, "previous_layer, post: base digits per unit (its most driving digits) the lines pass "
                          "through (pre uses one: its lines are the same through any point)", lo=1, hi=256)  # fmt: skip
    n_lines: int = setting(8, "input: lines between digits of different classes per unit", lo=1, hi=256)
    embed_inputs: int = setting(64, "inputs per model when embedding the units' lines", lo=2, hi=4096)
    train_fraction: float = setting(0.7, "fraction of each (layer, module)'s units the embedder and the probes "
                                    "train on", lo=0.0, hi=1.0, open_lo=True, open_hi=True)  # fmt: skip

    def __post_init__(self):
        check_fields(self)


# ---------------------------------------------------------------- the previous layer's coordinate lines


def previous_activations(net: DigitsNet, layer: int, x: torch.Tensor) -> torch.Tensor:
    """x (n, 64) -> the input of hidden layer `layer`: the pixels for layer 0, else h_{layer-1} (n, width_prev)."""
    return x if layer == 0 else net.hidden(x)[layer - 1]


def line_spans(h: torch.Tensor) -> torch.Tensor:
    """h (n, width_prev) over the data -> (width_prev,) half-lengths: each unit's std, floored."""
    std = h.double().std(0)
    return torch.clamp(std, min=SPAN_FLOOR * float(std.mean()) + 1e-6)


def unit_base_points(net: DigitsNet, layer: int, x: torch.Tensor, n_base: int) -> torch.Tensor:
    """Each unit's base points: the previous-layer activations of the n_base digits of x (n, 64) that
    drive its pre-activation highest -> (width, n_base, width_prev). Where a unit is active at all,
    its lines start where it is active (a line through a digit that leaves it dead shows nothing)."""
    h = previous_activations(net, layer, x).double()  # (n, width_prev)
    w, b = (t.double() for t in net.layers[layer])
    z = h @ w + b  # (n, width)
    top = torch.topk(z, min(n_base, len(x)), dim=0).indices  # (n_base, width)
    return h[top.T]  # (width, n_base, width_prev)


def coordinate_line_zoo(net: DigitsNet, layer: int, base: torch.Tensor, span: torch.Tensor, labels: np.ndarray,
                        split: tuple[np.ndarray, int], value: str = "pre") -> Zoo:  # fmt: skip
    """Every (unit of `layer`, base point, previous unit) as a 1D ReLU model s -> relu(w s + b).

    base (width, n_base, width_prev) each unit's points of the previous layer's space (unit_base_points),
    span (width_prev,). Model (u * n_base + i) * width_prev + j is unit u through base[u, i] along
    previous unit j, with slope w = span[j] W[j, u] and offset c = base[u, i] . W[:, u] + b[u]:
    value "post" is the unit itself, relu(w s + c); value "pre" its pre-activation w s + c, written
    as relu(w s + |w| + 1), which is linear on [-1, 1] with the same gradient (the cloze task reads
    gradients only, so the offset does not matter). labels, split: per unit of this layer (width,),
    as for unit_line_zoo.
    """
    w, b = (t.double() for t in net.layers[layer])  # (width_prev, width), (width,)
    width, n_base, width_prev = base.shape
    if len(labels) != width:
        raise ValueError(f"labels has {len(labels)} entries, layer {layer} has {width} units")
    slope = (span.double()[:, None] * w).T[:, None, :].expand(width, n_base, width_prev)
    offset = torch.einsum("uip,pu->ui", base.double(), w) + b[:, None]  # (width, n_base)
    offset = offset[:, :, None].expand(width, n_base, width_prev)
    if value == "pre":
        offset = slope.abs() + 1.0
    elif value != "post":
        raise ValueError(f"value must be pre or post, got {value!r}")
    n = width * n_base * width_prev
    replicate, n_train = split
    per_stratum = int(replicate.max()) + 1
    layers = [(slope.reshape(n, 1, 1).float(), offset.reshape(n, 1, 1).float()),
              (torch.ones(n, 1, 1), torch.zeros(n, 1, 1))]  # fmt: skip
    config = ZooConfig(models_per_function=per_stratum, width=1, depth=1, steps=0,
                       train_fraction=n_train / per_stratum)  # fmt: skip
    per_model = n_base * width_prev
    return Zoo(config=config, layers=layers, task_ids=np.repeat(np.asarray(labels), per_model),
               replicates=np.repeat(replicate, per_model), seeds=np.zeros(n, dtype=np.int64),
               loss_curves=np.zeros((n, 1)), log_steps=np.zeros(1, dtype=np.int64), fit_mse=np.zeros(n),
               failed=np.zeros(n, dtype=bool))  # fmt: skip


def flat_embedding(embedder: Embedder, n_inputs: int, seed: int = 0) -> np.ndarray:
    """The embedding of a flat function (every gradient zero) -> (bottleneck,), at the inputs
    embedding.embed draws with the same n_inputs and seed (the embedding depends on where x lies)."""
    x = draw_inputs(n_inputs, torch.Generator().manual_seed(seed), embedder.grad_scale.device)[None, :]
    with torch.no_grad():
        z = embedder.encode(x, torch.zeros_like(x), torch.zeros_like(x, dtype=torch.bool))
    return z[0].double().numpy()


def line_responses(embeddings: np.ndarray, flat: np.ndarray, width: int, n_base: int) -> np.ndarray:
    """Embeddings of a coordinate-line zoo (width * n_base * width_prev, d) -> response (width, width_prev):
    the mean over base points of each line's embedding distance from the flat function's."""
    dist = np.linalg.norm(np.asarray(embeddings) - flat, axis=1)
    return dist.reshape(width, n_base, -1).mean(1)


def unit_length(profiles: np.ndarray) -> np.ndarray:
    """(n_units, k) -> each row divided by its Euclidean norm (an all-zero row stays zero)."""
    norm = np.linalg.norm(profiles, axis=1, keepdims=True)
    return profiles / np.where(norm > 0, norm, 1.0)


# ---------------------------------------------------------------- per-unit cloze descriptions


@dataclass
class UnitCloze:
    """A trained embedder on a network's units and what it says about them."""

    embedder: Embedder
    features: list[np.ndarray]  # per hidden layer, (width, features): each unit's description
    responses: list[np.ndarray]  # previous_layer: per layer l >= 1, (width_l, width_{l-1}); input: []
    line_embeddings: np.ndarray  # (n_models, bottleneck) every line model's embedding


def concat_zoos(zoos: list[Zoo]) -> Zoo:
    """Zoos of one architecture and one split size -> one zoo, models in order."""
    if len(zoos) == 1:
        return zoos[0]
    first = zoos[0]
    layers = [(torch.cat([z.layers[i][0] for z in zoos]), torch.cat([z.layers[i][1] for z in zoos]))
              for i in range(len(first.layers))]  # fmt: skip
    cat = {k: np.concatenate([getattr(z, k) for z in zoos]) for k in ("task_ids", "replicates", "seeds",
           "loss_curves", "fit_mse", "failed")}  # fmt: skip
    return Zoo(config=first.config, layers=layers, log_steps=first.log_steps, **cat)


def unit_cloze(net: DigitsNet, digits: Digits, labels: np.ndarray, split: tuple[np.ndarray, int],
               embed_config: UnitEmbedConfig, cloze_config: ClozeConfig, seed: int = 0, progress=None) -> UnitCloze:  # fmt: skip
    """Train a cloze embedder on the units' 1D lines and describe every hidden unit by it.

    labels (n_units,) go into the zoo's task ids (the planted module, or anything for a net
    without one; the embedder never reads them); split = unit_train_split(...): the embedder
    trains on the training units' lines only.
    """
    if embed_config.unit_input == "input":
        return _input_line_cloze(net, digits, labels, split, embed_config, cloze_config, seed, progress)
    if len(net.widths) < 2:
        raise ConfigError("unit_input previous_layer needs a network with at least 2 hidden layers "
                          "(layer 0 is described through layer 1)", "unit_input")  # fmt: skip
    replicate, n_train = split
    layer_of = unit_layers(net)
    # a pre-activation is linear in h: its lines through different base points have the same gradient,
    # so one base point per unit says all (and keeps the zoo, and the embedder's validation, 1/n_base the size)
    n_base = 1 if embed_config.unit_value == "pre" else embed_config.n_base
    zoos = []
    for layer in range(1, len(net.widths)):
        span = line_spans(previous_activations(net, layer, digits.x_train))
        base = unit_base_points(net, layer, digits.x_train, n_base)
        here = layer_of == layer
        zoos.append(coordinate_line_zoo(net, layer, base, span, labels[here], (replicate[here], n_train),
                                        embed_config.unit_value))  # fmt: skip
    zoo = concat_zoos(zoos)
    embedder = train_embedder(zoo, cloze_config, progress=progress)
    e = embed(embedder, zoo, n_inputs=embed_config.embed_inputs)
    flat = flat_embedding(embedder, embed_config.embed_inputs)
    responses, lo = [], 0
    for layer, z in zip(range(1, len(net.widths)), zoos):
        responses.append(line_responses(e[lo : lo + z.n_models], flat, net.widths[layer], n_base))
        lo += z.n_models
    # layer 0: outgoing (columns of layer 1); layers >= 1: incoming. Each unit's profile is scaled to
    # unit length: WHICH units it is wired to, not its overall gain (a unit that is rarely active has a
    # small span as a previous unit and would otherwise sit near the origin with every weak unit)
    features = [unit_length(responses[0].T)] + [unit_length(r) for r in responses]
    return UnitCloze(embedder, features, responses, e)


def _input_line_cloze(net, digits, labels, split, embed_config, cloze_config, seed, progress) -> UnitCloze:
    pairs = line_pairs(digits.y_train.numpy(), embed_config.n_lines, np.random.default_rng(seed))
    a, b = digits.x_train[torch.as_tensor(pairs[:, 0])], digits.x_train[torch.as_tensor(pairs[:, 1])]
    zoo = unit_line_zoo(net, a, b, labels, split)
    embedder = train_embedder(zoo, cloze_config, progress=progress)
    e = embed(embedder, zoo, n_inputs=embed_config.embed_inputs)
    per = per_unit(e, embed_config.n_lines)
    layer_of = unit_layers(net)
    return UnitCloze(embedder, [per[layer_of == i] for i in range(len(net.widths))], [], e)
