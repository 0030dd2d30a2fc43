"""Zoos built straight from random weights: no training, so fault and property tests stay fast."""

import numpy as np
import torch

from netembed.config import FamilyConfig, ZooConfig
from netembed.family import make_family
from netembed.zoo import Zoo


def random_zoo(n_functions=2, models_per_function=2, width=8, depth=2, activation="relu", seed=0, scale=1.0):
    """A Zoo whose layers are N(0, scale^2 / fan_in) draws; every model 'fits' (fit_mse 0)."""
    config = ZooConfig(models_per_function=models_per_function, width=width, depth=depth,
                       activation=activation, steps=0, seed=seed)  # fmt: skip
    n = n_functions * models_per_function
    g = torch.Generator().manual_seed(seed)
    sizes = [1] + [width] * depth + [1]
    layers = [((torch.randn(n, i, o, generator=g) * scale / i**0.5), torch.randn(n, 1, o, generator=g) * scale)
              for i, o in zip(sizes[:-1], sizes[1:])]  # fmt: skip
    return Zoo(
        config=config, layers=layers,
        task_ids=np.repeat(np.arange(n_functions), models_per_function),
        replicates=np.tile(np.arange(models_per_function), n_functions),
        seeds=np.arange(n, dtype=np.int64), loss_curves=np.zeros((n, 0), np.float32),
        log_steps=np.zeros(0, np.int64), fit_mse=np.zeros(n), failed=np.zeros(n, bool),
    )  # fmt: skip


def random_run_parts(n_functions=2, **kwargs):
    """(family, zoo) that belong together, for building a Run."""
    family = make_family(FamilyConfig(n_functions=n_functions, min_derivative_distance=0.1, seed=0))
    return family, random_zoo(n_functions=n_functions, **kwargs)


def with_nan_model(zoo: Zoo, i: int) -> Zoo:
    """A copy of the zoo whose model i has NaN weights in its second layer (as a diverged model has)."""
    layers = [(w.clone(), b.clone()) for w, b in zoo.layers]
    layers[1][0][i] = float("nan")
    return Zoo(**{**zoo.__dict__, "layers": layers})
