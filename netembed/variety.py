"""The variety guarantee of every family: members drawn one by one, each kept only if its gradient differs
from every earlier member's by at least a distance, with a limit on the draws.

A constant offset is invisible to input-gradients, so members are compared by their derivative
(1D: (n_points,) on the dense grid) or gradient field (d inputs: (n_points, d) on the family's fixed
points): the distance is sqrt(mean over points of |g_i - g_j|^2), an RMS distance. The family gives
`draw()`, which consumes its random generator; this loop decides which draws are kept, so every
family draws the same way: one try per draw (degenerate ones included), in order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def gradient_distances(earlier: np.ndarray, g: np.ndarray) -> np.ndarray:
    """RMS distance of the gradient g (n,) or (n, d) to each of the earlier ones (k, n) or (k, n, d) -> (k,)."""
    sq = (earlier - g) ** 2
    if sq.ndim == 3:
        sq = sq.sum(-1)  # |g_i - g_j|^2 at each point
    return np.sqrt(sq.mean(1))


def draw_distinct_members(n_members: int, draw: Callable, min_distance: float, max_tries: int,
                          failure: Callable[[int, float], Exception]) -> list:
    """n_members members, each at least min_distance (RMS, in gradient) from every earlier one.

    draw() -> (member, gradient (n,) or (n, d)), or None for a degenerate draw (a constant function);
    every call counts as a try. A draw too close to an earlier member is rejected and drawn again.
    When the tries exceed max_tries, raises failure(members found, closest rejected distance).
    Returns the members in the order they were kept.
    """
    members, gradients = [], None
    tries, closest = 0, np.inf
    for k in range(n_members):
        while True:
            tries += 1
            if tries > max_tries:
                raise failure(k, closest)
            drawn = draw()
            if drawn is None:
                continue
            member, g = drawn
            if k:
                dist = gradient_distances(gradients[:k], g).min()
                if dist < min_distance:
                    closest = min(closest, dist)
                    continue
            if gradients is None:
                gradients = np.zeros((n_members, *g.shape))  # (K, n) or (K, n, d)
            gradients[k] = g
            members.append(member)
            break
    return members
