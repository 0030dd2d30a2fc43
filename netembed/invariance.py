"""The invariance check: other weights, the same function. Descriptions of the function must not move.

Permuting a model's hidden neurons, and for (leaky) ReLU scaling a neuron's incoming
weights and bias by c > 0 and its outgoing weights by 1 / c, leaves the function (hence
the gradients and the embedding) unchanged, while the flattened weights change completely.
Descriptions of the *function* should not see it; weights do.
"""

from __future__ import annotations

import numpy as np
import torch

from .baselines import evaluation_inputs, flat_weights
from .embedding import EMBED_SEED, embed
from .gradients import input_gradients
from .zoo import Zoo

INVARIANCE_MODELS = 50  # models checked for invariance (spread over the zoo); enough to see a leak


def invariance_check(zoo: Zoo, embedder, seed: int = 0) -> dict:
    """Permute and positively rescale hidden neurons: the function must not move, the weights must."""
    zoo = zoo.select(np.unique(np.linspace(0, zoo.n_models - 1, INVARIANCE_MODELS).round().astype(int)))
    other = permute_and_rescale(zoo, np.random.default_rng(seed))
    x = np.linspace(-1, 1, 257) if zoo.input_dim == 1 else evaluation_inputs(zoo, 257)
    grad_scale = float(np.abs(input_gradients(zoo, x)).max())
    out = {
        "output_max_change": float(np.abs(other(x) - zoo(x)).max()),
        "gradient_max_change_relative": float(np.abs(input_gradients(other, x) - input_gradients(zoo, x)).max())
        / max(grad_scale, 1e-12),
        "weights_relative_change": _relative_change(flat_weights(zoo), flat_weights(other)),
    }
    if embedder is not None:
        a, b = embed(embedder, zoo, seed=EMBED_SEED), embed(embedder, other, seed=EMBED_SEED)
        spread = float(np.linalg.norm(a - a.mean(0), axis=1).mean())  # typical distance of a model from the centre
        out["embedding_max_change_relative"] = float(np.linalg.norm(a - b, axis=1).max()) / max(spread, 1e-12)
    return out


def _relative_change(a, b) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-12))


def permute_and_rescale(zoo: Zoo, rng: np.random.Generator) -> Zoo:
    """The same functions with other weights: hidden neurons permuted (and rescaled by c > 0 for ReLU).

    Layer l's hidden units are reordered by a permutation P_l and scaled by c_l: the
    incoming columns (and bias) of layer l are permuted and multiplied by c_l, the outgoing
    rows of layer l + 1 are permuted and divided by c_l. relu(c z) = c relu(z) for c > 0,
    so the network computes exactly the same function (up to float rounding).
    """
    positive_homogeneous = zoo.config.piecewise_linear
    layers = [(w.detach().clone(), b.detach().clone()) for w, b in zoo.layers]
    n = zoo.n_models
    for layer in range(len(layers) - 1):  # every hidden layer
        (w, b), (w_next, b_next) = layers[layer], layers[layer + 1]
        width = w.shape[2]
        perm = torch.as_tensor(np.argsort(rng.random((n, width)), 1))  # (n, width) a permutation per model
        c = rng.uniform(0.5, 2.0, (n, width)) if positive_homogeneous else np.ones((n, width))
        c = torch.as_tensor(c, dtype=w.dtype)
        w = torch.gather(w, 2, perm[:, None, :].expand_as(w)) * c[:, None, :]  # (n, fan_in, width)
        b = torch.gather(b, 2, perm[:, None, :]) * c[:, None, :]  # (n, 1, width)
        w_next = torch.gather(w_next, 1, perm[:, :, None].expand_as(w_next)) / c[:, :, None]  # (n, width, fan_out)
        layers[layer], layers[layer + 1] = (w, b), (w_next, b_next)
    return Zoo(**{**zoo.__dict__, "layers": layers})
