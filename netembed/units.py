"""Hidden units as functions of the network's input: values and exact input-gradients.

Unit u is hidden unit `unit_columns[u]` of hidden layer `unit_layers[u]` (layer-major order),
and its "function" is its post-activation relu(z) as a function of the 64 pixels. A ReLU
network is piecewise linear, so each unit's gradient is exact from the activation pattern:

    J_1 = W_1^T                        dz_1/dx, the same at every input    (width_1, 64)
    J_l = W_l^T (gate_{l-1} * J_{l-1})  gate = 1[z > 0]                     (n, width_l, 64)
    d relu(z_l)/dx = gate_l * J_l

(relu'(0) = 0, as torch's autograd takes it.)

Along the line x(t) = (1 - t) a + t b between two digits, t in [0, 1], a unit is a 1D
piecewise-linear function of t with d unit/dt = grad . (b - a). `unit_line_zoo` writes each
(unit, line) pair as a genuine 1D ReLU MLP, 1 -> ... -> 1, in the zoo's stacked format, so the
1D machinery (exact line-sections, the cloze embedder, `cloze.embed`) runs on units unchanged:
the zoo's input s in [-1, 1] is t = (s + 1) / 2.
"""

from __future__ import annotations

import numpy as np
import torch

from .config import ZooConfig
from .digits import DigitsNet
from .zoo import Zoo

DEAD_BIAS = -1.0  # bias of padding channels in the line zoo: with zero weight in, relu(-1) = 0, no kink


def unit_layers(net: DigitsNet) -> np.ndarray:
    """(n_units,) the hidden layer (0-based) of each unit, layer-major."""
    return np.concatenate([np.full(w, i) for i, w in enumerate(net.widths)])


def unit_columns(net: DigitsNet) -> np.ndarray:
    """(n_units,) each unit's column within its layer."""
    return np.concatenate([np.arange(w) for w in net.widths])


def unit_modules(net: DigitsNet) -> np.ndarray:
    """(n_units,) the planted module of each unit (the ground truth); ValueError for the plain MLP."""
    if net.unit_modules is None:
        raise ValueError("this network has no planted modules")
    return np.concatenate(net.unit_modules)


def unit_values(net: DigitsNet, x: torch.Tensor) -> torch.Tensor:
    """x (n_points, 64) -> every unit's post-activation (n_units, n_points)."""
    with torch.no_grad():
        return torch.cat(net.hidden(x.to(net.layers[0][0].dtype)), 1).T


def unit_gradients(net: DigitsNet, x: torch.Tensor) -> torch.Tensor:
    """x (n_points, 64) -> d unit / d x (n_units, n_points, 64), exact (forward-mode through the gates)."""
    x = x.to(net.layers[0][0].dtype)
    w, b = net.layers[0]
    z = x @ w + b  # (n, width_1)
    jac = w.T.expand(len(x), -1, -1)  # (n, width_1, 64): dz_1/dx
    grads = []
    for i in range(len(net.layers) - 1):
        gate = (z > 0).to(x.dtype)[..., None]  # (n, width, 1)
        grads.append(gate * jac)
        if i + 1 < len(net.layers) - 1:
            w, b = net.layers[i + 1]
            z = torch.relu(z) @ w + b
            jac = torch.einsum("ji,njk->nik", w, gate * jac)  # (n, width_next, 64)
    return torch.cat(grads, 1).permute(1, 0, 2).contiguous()


def line_points(a: torch.Tensor, b: torch.Tensor, n_t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Endpoints a, b (n_lines, 64) -> t (n_t,) on [0, 1] and the points (n_lines, n_t, 64)."""
    t = torch.linspace(0, 1, n_t, dtype=a.dtype)
    return t, a[:, None, :] + t[None, :, None] * (b - a)[:, None, :]


def unit_line_responses(net: DigitsNet, a: torch.Tensor, b: torch.Tensor, n_t: int):
    """Each unit along each line (1 - t) a + t b: values and d/dt = grad . (b - a), (n_units, n_lines, n_t) each."""
    _, pts = line_points(a, b, n_t)
    flat = pts.reshape(-1, pts.shape[-1])  # (n_lines * n_t, 64)
    values = unit_values(net, flat).reshape(-1, len(a), n_t)
    grads = unit_gradients(net, flat).reshape(-1, len(a), n_t, pts.shape[-1])  # (units, lines, n_t, 64)
    slopes = torch.einsum("ulnk,lk->uln", grads, (b - a).to(grads.dtype))
    return values, slopes


def line_pairs(labels: np.ndarray, n_lines: int, rng: np.random.Generator) -> np.ndarray:
    """(n_lines, 2) indices of digit pairs with different labels, drawn at random (a line crosses a class border)."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        raise ValueError("line_pairs needs digits of at least two classes")
    pairs = []
    while len(pairs) < n_lines:
        i, j = rng.integers(len(labels), size=2)
        if labels[i] != labels[j]:
            pairs.append((i, j))
    return np.array(pairs, dtype=np.int64)


# ---------------------------------------------------------------- units as 1D models for the cloze embedder


def unit_split(strata: np.ndarray, train_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Units -> (replicate (n_units,), n_train): a seeded rank of each unit within its stratum; the
    first n_train of every stratum form the training split (strata of equal size, as a zoo's functions).
    is_train = replicate < n_train."""
    strata = np.asarray(strata)
    counts = np.unique(strata, return_counts=True)[1]
    if len(set(counts.tolist())) != 1:
        raise ValueError(f"unit_split needs strata of equal size, got sizes {sorted(set(counts.tolist()))}")
    per_stratum = int(counts[0])
    if per_stratum < 2:
        raise ValueError("unit_split needs at least two units per stratum (one on each side)")
    n_train = min(max(1, round(train_fraction * per_stratum)), per_stratum - 1)
    replicate = np.empty(len(strata), dtype=np.int64)
    for k in np.unique(strata):
        members = np.flatnonzero(strata == k)
        replicate[members] = rng.permutation(len(members))
    return replicate, n_train


def unit_train_split(net: DigitsNet, train_fraction: float = 0.7, seed: int = 0) -> tuple[np.ndarray, int]:
    """The held-out-units split: stratified by (layer, module), or by layer for a net without modules."""
    layers = unit_layers(net)
    strata = layers * 1000 + (unit_modules(net) if net.unit_modules is not None else 0)
    return unit_split(strata, train_fraction, np.random.default_rng(seed))


def _line_layers_for_unit(net: DigitsNet, layer: int, column: int, mid: torch.Tensor, half: torch.Tensor):
    """One (unit, line) as a 1D MLP s -> relu(z) with x = mid + s * half (s in [-1, 1]).

    Layers, all float64: the first layer folded onto the line (w = half @ W_1, b = mid @ W_1 + b_1);
    the hidden layers up to the unit's unchanged; the unit's layer cut to its one column (channel 0,
    other channels dead: zero weights, bias DEAD_BIAS); later hidden layers pass channel 0 through
    (relu(relu(z)) = relu(z)); the output reads channel 0. Widths are the network's, so every unit of
    every layer has the same shapes and one zoo holds them all.
    """
    ws = [(w.double(), b.double()) for w, b in net.layers[:-1]]
    widths = net.widths
    out = []
    for i, (w, b) in enumerate(ws):
        if i == 0:
            w, b = (half.double() @ w)[None, :], mid.double() @ w + b  # (1, width_1), (width_1,)
        if i == layer:
            keep_w, keep_b = w[:, column], b[column]
            w = torch.zeros_like(w)
            b = torch.full_like(b, DEAD_BIAS)
            w[:, 0], b[0] = keep_w, keep_b
        elif i > layer:
            w = torch.zeros(widths[i - 1], widths[i], dtype=torch.float64)
            b = torch.full((widths[i],), DEAD_BIAS, dtype=torch.float64)
            w[0, 0], b[0] = 1.0, 0.0
        out.append((w, b))
    read = torch.zeros(widths[-1], 1, dtype=torch.float64)
    read[0, 0] = 1.0
    out.append((read, torch.zeros(1, dtype=torch.float64)))
    return out


def unit_line_zoo(net: DigitsNet, a: torch.Tensor, b: torch.Tensor, labels: np.ndarray,
                  split: tuple[np.ndarray, int]) -> Zoo:  # fmt: skip
    """Every (unit, line) pair as one model of a 1D zoo: model u * n_lines + l is unit u along line l.

    a, b (n_lines, 64) line endpoints; labels (n_units,) the zoo's task ids (the planted module, or
    e.g. the layer for the plain MLP); split = unit_train_split(...), by unit (all lines of a unit fall
    on one side), so zoo.is_train repeats the units' split. The zoo's input s in [-1, 1] is the line's t = (s + 1) / 2, so
    zoo gradients are d unit / ds = grad . (b - a) / 2.
    """
    n_units, n_lines = len(unit_layers(net)), len(a)
    if len(labels) != n_units:
        raise ValueError(f"labels has {len(labels)} entries, the network has {n_units} units")
    replicate, n_train = split
    per_stratum = int(replicate.max()) + 1
    mid, half = (a + b) / 2, (b - a) / 2  # (n_lines, 64)
    models = [_line_layers_for_unit(net, int(layer), int(col), mid[line], half[line])
              for layer, col in zip(unit_layers(net), unit_columns(net)) for line in range(n_lines)]  # fmt: skip
    # [(w (n, fan_in, fan_out), b (n, 1, fan_out))], folded in float64, stored in float32 like a trained zoo
    # (the cloze embedder's float32 weights meet these gradients)
    layers = [(torch.stack([m[i][0] for m in models]).float(), torch.stack([m[i][1] for m in models])[:, None, :].float())
              for i in range(len(models[0]))]  # fmt: skip
    n = n_units * n_lines
    config = ZooConfig(models_per_function=per_stratum, width=max(net.widths), depth=len(net.widths), steps=0,
                       train_fraction=n_train / per_stratum)  # fmt: skip  # so config.n_train_seeds == n_train
    return Zoo(config=config, layers=layers, task_ids=np.repeat(np.asarray(labels), n_lines),
               replicates=np.repeat(replicate, n_lines), seeds=np.zeros(n, dtype=np.int64),
               loss_curves=np.zeros((n, 1)), log_steps=np.zeros(1, dtype=np.int64), fit_mse=np.zeros(n),
               failed=np.zeros(n, dtype=bool))  # fmt: skip


def per_unit(embeddings: np.ndarray, n_lines: int, how: str = "mean") -> np.ndarray:
    """Embeddings of a line zoo's models (n_units * n_lines, d) -> one row per unit:
    the mean over its lines (n_units, d), or all of them side by side (n_units, n_lines * d)."""
    e = np.asarray(embeddings).reshape(-1, n_lines, embeddings.shape[-1])
    if how == "mean":
        return e.mean(1)
    if how == "concat":
        return e.reshape(len(e), -1)
    raise ValueError(f"how must be mean or concat, got {how!r}")


# ---------------------------------------------------------------- what a unit looks at (for pictures)


def mean_unit_gradients(net: DigitsNet, x: torch.Tensor, chunk: int = 256) -> np.ndarray:
    """Each unit's input-gradient averaged over the digits x (n, 64) -> (n_units, 64): an 8x8 picture of
    what the unit responds to on the data (zero where it is off). Chunked: (n_units, chunk, 64) at a time."""
    total = torch.zeros(len(unit_layers(net)), x.shape[1], dtype=torch.float64)
    for lo in range(0, len(x), chunk):
        total += unit_gradients(net, x[lo : lo + chunk]).double().sum(1)
    return (total / len(x)).numpy()


def driving_digits(net: DigitsNet, x: torch.Tensor, unit: int, k: int = 6) -> np.ndarray:
    """Indices into x (n, 64) of the k digits on which `unit` is most active, highest first."""
    v = unit_values(net, x)[unit]  # (n,)
    return torch.argsort(v, descending=True, stable=True)[:k].numpy()
