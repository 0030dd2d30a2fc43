"""Random stacked MLP layers for region tests: no training, just nn.Linear-like weights."""

from itertools import pairwise

import numpy as np
import torch


def random_layers(seed: int, sizes: list[int], n_models: int = 1, torch_tensors: bool = True):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights and biases in float32, stacked over models like the zoo's layers.

    sizes [d, width, ..., 1] -> [(w (n_models, fan_in, fan_out), b (n_models, 1, fan_out))].
    """
    rng = np.random.default_rng(seed)
    layers = []
    for i, o in pairwise(sizes):
        bound = 1 / np.sqrt(i)
        w = rng.uniform(-bound, bound, (n_models, i, o)).astype(np.float32)
        b = rng.uniform(-bound, bound, (n_models, 1, o)).astype(np.float32)
        layers.append((torch.from_numpy(w), torch.from_numpy(b)) if torch_tensors else (w, b))
    return layers
