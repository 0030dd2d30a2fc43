"""The digits and the networks whose hidden units we study: planted modules and a plain classifier.

Data: scikit-learn's bundled `load_digits` (1,797 8x8 images, no download), pixels scaled from
0..16 to [0, 1], a seeded stratified train/test split.

Planted modules: N small MLPs 64 -> h -> ... -> 1, each trained (alone, on its own seed) on a
different binary sub-task of the digits (SUBTASKS: odd, >= 5, has a closed loop, is-a-k...).
They are stitched into one wider network:

    layer 0   w (64, N h)    the modules' first layers side by side (the input is shared)
    hidden    w (N h, N h)   block-diagonal: module k's units only see module k's units
    output    w (N h, N)     block-diagonal: logit k is module k's output

so before any joint training the stitched network computes exactly its modules' outputs.
Each hidden layer's units are then shuffled by a seeded permutation (the next layer's rows
follow), so nothing in the layout gives the modules away; the ground truth is each hidden
unit's module id, carried through the permutation (`DigitsNet.unit_modules`).

Joint fine-tuning (`fine_tune_steps` > 0) trains the full dense matrices, initialised
block-diagonal, on all sub-tasks at once: the off-diagonal blocks get non-zero gradients
(a unit of module j receives error from every logit through the dense layers), so the
modules mix. `off_block_fraction` measures how far.

The plain digits MLP (64 -> w -> ... -> 10, cross-entropy) has no planted structure.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from .config import SEED_MAX, check_fields, setting

# (name, digits that make the answer "yes"): binary sub-tasks, one per planted module, in this order
SUBTASKS = (
    ("odd", (1, 3, 5, 7, 9)),
    ("at_least_5", (5, 6, 7, 8, 9)),
    ("closed_loop", (0, 6, 8, 9)),
    ("is_0", (0,)),
    ("is_1", (1,)),
    ("is_7", (7,)),
    ("is_4", (4,)),
    ("is_3", (3,)),
)
N_PIXELS = 64


FINE_TUNE_OBJECTIVES = ("subtasks", "subtasks+digits")


@dataclass(frozen=True)
class UnitsConfig:
    """Planted-module digits networks (and the plain digits MLP) whose hidden units are studied."""

    n_modules: int = setting(4, "N: planted modules, each on its own sub-task (the first N of odd, >=5, closed "
                             "loop, is-0, is-1, is-7, is-4, is-3)", lo=2, hi=len(SUBTASKS), flag="--modules")  # fmt: skip
    module_width: int = setting(16, "hidden units per layer in each module", lo=1, hi=1024)
    depth: int = setting(2, "hidden layers (of every module and of the plain MLP)", lo=1, hi=8, flag="--net-depth")
    steps: int = setting(600, "full-batch Adam steps training each module alone (and the plain MLP)", lo=0,
                         hi=10**6, flag="--net-steps")  # fmt: skip
    lr: float = setting(1e-2, "Adam learning rate of that training", lo=0.0, hi=10.0, open_lo=True, flag="--net-lr")
    fine_tune_steps: int = setting(0, "joint full-batch steps with dense matrices after stitching; 0 = cleanly "
                                   "separate modules", lo=0, hi=10**6)  # fmt: skip
    fine_tune_lr: float = setting(1e-2, "Adam learning rate of the joint fine-tuning", lo=0.0, hi=10.0, open_lo=True)
    # the sub-tasks alone are already solved, so their loss barely moves the off-block weights
    # (4% after 1000 steps at lr 1e-3); a dense 10-class head on the last hidden layer needs
    # information from every module and so pulls the blocks together
    fine_tune_objective: str = setting("subtasks+digits", "joint objective: subtasks: the sub-tasks' summed BCE; "
                                       "subtasks+digits: plus a dense 10-class head on the last hidden layer "
                                       "(trained jointly, then dropped), which forces the modules to mix",
                                       choices=FINE_TUNE_OBJECTIVES)  # fmt: skip
    plain_width: int = setting(64, "hidden units per layer of the plain 10-class digits MLP", lo=1, hi=4096)
    test_fraction: float = setting(0.2, "digits held out from every training (stratified by digit)", lo=0.0, hi=1.0,
                                   open_lo=True, open_hi=True, cli=False)  # fmt: skip
    seed: int = setting(0, "seeds the data split, every init, the unit permutation", lo=0, hi=SEED_MAX)

    def __post_init__(self):
        check_fields(self)


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class Digits:
    x_train: torch.Tensor  # (n_train, 64) float32 in [0, 1]
    y_train: torch.Tensor  # (n_train,) int64 digit 0..9
    x_test: torch.Tensor  # (n_test, 64)
    y_test: torch.Tensor  # (n_test,)


def load_digits_split(test_fraction: float = 0.2, seed: int = 0) -> Digits:
    """The bundled 8x8 digits, pixels / 16 -> [0, 1], split stratified by digit with a seeded shuffle."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    xtr, xte, ytr, yte = train_test_split(x, data.target, test_size=test_fraction, random_state=seed, stratify=data.target)
    t = torch.as_tensor
    return Digits(t(xtr), t(ytr, dtype=torch.int64), t(xte), t(yte, dtype=torch.int64))


def subtask_targets(y: torch.Tensor, n_modules: int) -> torch.Tensor:
    """Digit labels (n,) -> (n, n_modules) float 0/1: column k answers SUBTASKS[k] for each digit."""
    yes = [torch.isin(y, torch.tensor(digits)) for _, digits in SUBTASKS[:n_modules]]
    return torch.stack(yes, 1).float()


# ---------------------------------------------------------------- networks


@dataclass
class DigitsNet:
    """A ReLU MLP on the 64 pixels; `layers[-1]` is the (linear) output layer, the others are hidden."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]  # [(w (fan_in, fan_out), b (fan_out,))], float32
    unit_modules: list[np.ndarray] | None  # per hidden layer, (width,) planted module of each unit; None: no ground truth
    task_names: tuple[str, ...]  # what each output means
    test_accuracy: np.ndarray  # (n_outputs,) per sub-task for planted modules, (1,) for the plain classifier

    @property
    def widths(self) -> list[int]:
        return [w.shape[1] for w, _ in self.layers[:-1]]

    def hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x (n, 64) -> each hidden layer's post-activations [(n, width)]."""
        hs, h = [], x
        for w, b in self.layers[:-1]:
            h = torch.relu(h @ w + b)
            hs.append(h)
        return hs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (n, 64) -> logits (n, n_outputs)."""
        return mlp_logits(self.layers, x)


def mlp_logits(layers, x: torch.Tensor) -> torch.Tensor:
    h = x
    for w, b in layers[:-1]:
        h = torch.relu(h @ w + b)
    w, b = layers[-1]
    return h @ w + b


def init_mlp(sizes: list[int], seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """nn.Linear's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases, from one seed."""
    g = torch.Generator().manual_seed(seed)
    layers = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        bound = 1.0 / math.sqrt(fan_in)
        w = (torch.rand(fan_in, fan_out, generator=g) * 2 - 1) * bound
        b = (torch.rand(fan_out, generator=g) * 2 - 1) * bound
        layers.append((w, b))
    return layers


def fit(layers, x, target, loss_fn, steps: int, lr: float):
    """Full-batch Adam on every weight and bias of `layers` (in place of copies) -> trained layers."""
    params = [t.clone().requires_grad_() for layer in layers for t in layer]
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        trained = list(zip(params[0::2], params[1::2]))
        loss = loss_fn(mlp_logits(trained, x), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return [(w.detach(), b.detach()) for w, b in zip(params[0::2], params[1::2])]


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def train_modules(digits: Digits, config: UnitsConfig) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Each planted module 64 -> h^depth -> 1 trained alone on its sub-task (binary cross-entropy)."""
    targets = subtask_targets(digits.y_train, config.n_modules)  # (n, N)
    sizes = [N_PIXELS] + [config.module_width] * config.depth + [1]
    modules = []
    for k in range(config.n_modules):
        init = init_mlp(sizes, _seed(config.seed, 1, k))
        modules.append(fit(init, digits.x_train, targets[:, k : k + 1], F.binary_cross_entropy_with_logits,
                           config.steps, config.lr))  # fmt: skip
    return modules


def stitch(modules) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[np.ndarray]]:
    """N modules -> one network (input layer side by side, hidden and output layers block-diagonal),
    and each hidden layer's module ids (N h,), module-major before any permutation."""
    depth = len(modules[0]) - 1
    first = (torch.cat([m[0][0] for m in modules], 1), torch.cat([m[0][1] for m in modules]))
    rest = [(torch.block_diag(*[m[i][0] for m in modules]), torch.cat([m[i][1] for m in modules]))
            for i in range(1, depth + 1)]  # fmt: skip
    ids = [np.repeat(np.arange(len(modules)), m_w) for m_w in [modules[0][i][0].shape[1] for i in range(depth)]]
    return [first] + rest, ids


def permute_units(layers, unit_modules, rng: np.random.Generator):
    """Shuffle each hidden layer's units (columns of its w and b, rows of the next w): the same function.

    Returns the new layers, module ids and the permutations [(width,)]: new unit i is old unit perm[i].
    """
    layers = [(w.clone(), b.clone()) for w, b in layers]
    modules, perms = [], []
    for i, ids in enumerate(unit_modules):
        perm = rng.permutation(len(ids))
        p = torch.as_tensor(perm)
        w, b = layers[i]
        layers[i] = (w[:, p], b[p])
        w_next, b_next = layers[i + 1]
        layers[i + 1] = (w_next[p, :], b_next)
        modules.append(ids[perm])
        perms.append(perm)
    return layers, modules, perms


def sum_of_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Joint loss: each sub-task's mean BCE, summed (so each module sees the gradient it saw alone)."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(0).sum()


def fine_tune(layers, digits: Digits, config: UnitsConfig):
    """Joint full-batch training of the stitched network with dense matrices (initialised block-diagonal).

    "subtasks": the sub-tasks' summed BCE. "subtasks+digits": the network's logits gain 10
    columns, a digit head on the last hidden layer (the output layer's w widened from (H, N) to
    (H, N + 10), the new columns initialised like nn.Linear, seeded), and the loss adds the
    10-class cross-entropy; the head is dropped afterwards, so the result has the same shapes.
    """
    targets = subtask_targets(digits.y_train, config.n_modules)  # (n, N)
    if config.fine_tune_objective == "subtasks":
        return fit(layers, digits.x_train, targets, sum_of_bce, config.fine_tune_steps, config.fine_tune_lr)
    n = config.n_modules
    w_out, b_out = layers[-1]
    (w_head, b_head), = init_mlp([w_out.shape[0], 10], _seed(config.seed, 4))
    wide = layers[:-1] + [(torch.cat([w_out, w_head], 1), torch.cat([b_out, b_head]))]

    def joint_loss(logits, y):  # logits (n_digits, N + 10), y (n_digits,) digit labels
        return sum_of_bce(logits[:, :n], targets) + F.cross_entropy(logits[:, n:], y)

    tuned = fit(wide, digits.x_train, digits.y_train, joint_loss, config.fine_tune_steps, config.fine_tune_lr)
    w, b = tuned[-1]
    return tuned[:-1] + [(w[:, :n].contiguous(), b[:n].contiguous())]


def subtask_accuracy(layers, digits: Digits, n_modules: int) -> np.ndarray:
    with torch.no_grad():
        pred = mlp_logits(layers, digits.x_test) > 0
    return (pred == subtask_targets(digits.y_test, n_modules).bool()).float().mean(0).numpy()


def planted_modules_net(digits: Digits, config: UnitsConfig) -> DigitsNet:
    """Train the modules, stitch them, shuffle the units, fine-tune jointly for `fine_tune_steps`."""
    layers, ids = stitch(train_modules(digits, config))
    layers, ids, _ = permute_units(layers, ids, np.random.default_rng(_seed(config.seed, 2)))
    if config.fine_tune_steps:
        layers = fine_tune(layers, digits, config)
    names = tuple(name for name, _ in SUBTASKS[: config.n_modules])
    return DigitsNet(layers, ids, names, subtask_accuracy(layers, digits, config.n_modules))


def plain_digits_net(digits: Digits, config: UnitsConfig) -> DigitsNet:
    """A 10-class MLP 64 -> plain_width^depth -> 10 trained end to end (cross-entropy): no ground truth."""
    sizes = [N_PIXELS] + [config.plain_width] * config.depth + [10]
    layers = fit(init_mlp(sizes, _seed(config.seed, 3)), digits.x_train, digits.y_train, F.cross_entropy,
                 config.steps, config.lr)  # fmt: skip
    with torch.no_grad():
        acc = (mlp_logits(layers, digits.x_test).argmax(1) == digits.y_test).float().mean()
    return DigitsNet(layers, None, tuple(str(d) for d in range(10)), np.array([float(acc)]))


def off_block_fraction(net: DigitsNet) -> float:
    """How mixed the modules are: the share of squared hidden-to-hidden and hidden-to-output weight
    between different modules (0 for the stitched network, grows with joint fine-tuning)."""
    if net.unit_modules is None:
        raise ValueError("the plain digits MLP has no planted modules")
    outputs = np.arange(len(net.task_names))  # output k belongs to module k
    owners = list(net.unit_modules) + [outputs]
    off = total = 0.0
    for (w, _), src, dst in zip(net.layers[1:], owners[:-1], owners[1:]):
        w2 = w.double().pow(2).numpy()
        across = src[:, None] != dst[None, :]
        off, total = off + w2[across].sum(), total + w2.sum()
    return float(off / total)
