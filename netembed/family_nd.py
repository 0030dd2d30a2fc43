"""A family of K random functions of d inputs: sums of Gaussian bumps on [-1, 1]^d, exact values and gradients.

    f_k(x)      = offset_k + sum_b a_kb * exp(-|x - c_kb|^2 / (2 s_kb^2))        x in [-1, 1]^d
    grad f_k(x) = -sum_b a_kb * exp(...) * (x - c_kb) / s_kb^2                 (K, n, d)

Each member has N_BUMPS bumps with signs and sizes a ~ +-U(0.5, 1), centres c ~ U[-1, 1]^d and
widths s ~ U(0.3, 0.6) * sqrt(d): a random point of the cube lies ~sqrt(d) from a random centre,
so widths that grow like sqrt(d) keep the bumps visible in every dimension (with fixed widths an
8D member would be flat nearly everywhere). Every member is rescaled so that its range on the
family's sample points (`sample_points`) is exactly [-1, 1], like the polynomials. The variety
guarantee is measured on the *gradient fields*: every pair of members differs by at least
`min_derivative_distance` in RMS distance sqrt(mean_points |grad f_i - grad f_j|^2), on the same
points (for d = 1 the dense grid of family.py, where this is the polynomials' derivative distance).

The interface is the families' (family.py): values(x), derivatives(x), parameters,
parameter_names, labels, n_functions, config, plus input_dim. Inputs are x (n, d); for d = 1
also x (n,), and then derivatives are (K, n) like the 1D families', so the 1D zoo runs unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import FamilyConfig
from .family import GRID_SIZE, FamilyError, dense_grid
from .variety import draw_distinct_members

N_BUMPS = 4
SAMPLE_SIZE = 4096  # points of [-1, 1]^d (d > 1) for normalisation, the variety check and the zoo's fit check
SAMPLE_SEED = 2024  # the sample is fixed per d, the same for every family of that d
AMPLITUDE_RANGE = (0.5, 1.0)
WIDTH_RANGE = (0.3, 0.6)  # times sqrt(d)


def sample_points(d: int, n: int | None = None) -> np.ndarray:
    """The fixed evaluation points of [-1, 1]^d: the dense grid (GRID_SIZE, 1) for d = 1, else n uniform points."""
    if d == 1:
        return dense_grid(n or GRID_SIZE)[:, None]
    return np.random.default_rng([SAMPLE_SEED, d]).uniform(-1.0, 1.0, (n or SAMPLE_SIZE, d))


def _bump_terms(x: np.ndarray, amplitudes, centres, widths):
    """x (n, d) -> each bump's value a * exp(...) (K, B, n) and displacement (x - c) / s^2 (K, B, n, d)."""
    diff = x[None, None, :, :] - centres[:, :, None, :]  # (K, B, n, d)
    sq = (diff**2).sum(-1)  # (K, B, n)
    s2 = (widths**2)[:, :, None]
    return amplitudes[:, :, None] * np.exp(-sq / (2 * s2)), diff / s2[..., None]


@dataclass(frozen=True)
class BumpFamily:
    config: FamilyConfig
    amplitudes: np.ndarray  # (K, B) after the rescaling
    centres: np.ndarray  # (K, B, d)
    widths: np.ndarray  # (K, B)
    offsets: np.ndarray  # (K,)

    @property
    def input_dim(self) -> int:
        return self.centres.shape[2]

    @property
    def n_functions(self) -> int:
        return len(self.offsets)

    @property
    def labels(self) -> np.ndarray:
        return np.arange(self.n_functions)

    @property
    def parameters(self) -> np.ndarray:
        """(K, B * (d + 2) + 1): amplitudes, widths, centres (bump-major), offset."""
        k = self.n_functions
        return np.concatenate([self.amplitudes, self.widths, self.centres.reshape(k, -1), self.offsets[:, None]], 1)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        b, d = self.widths.shape[1], self.input_dim
        return (tuple(f"a{i}" for i in range(b)) + tuple(f"s{i}" for i in range(b))
                + tuple(f"c{i}_{j}" for i in range(b) for j in range(d)) + ("offset",))  # fmt: skip

    def _points(self, x) -> tuple[np.ndarray, bool]:
        x = np.asarray(x, dtype=np.float64)
        flat = x.ndim == 1 and self.input_dim == 1
        x = x[:, None] if flat else x
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"inputs must be (n, {self.input_dim}); got shape {x.shape}")
        return x, flat

    def values(self, x) -> np.ndarray:
        """f_k(x) for every member: x (n, d) (or (n,) when d = 1) -> (K, n)."""
        x, _ = self._points(x)
        value, _ = _bump_terms(x, self.amplitudes, self.centres, self.widths)
        return value.sum(1) + self.offsets[:, None]

    def derivatives(self, x) -> np.ndarray:
        """grad f_k(x): x (n, d) -> (K, n, d); x (n,) with d = 1 -> (K, n) like the 1D families."""
        x, flat = self._points(x)
        value, disp = _bump_terms(x, self.amplitudes, self.centres, self.widths)
        grad = -(value[..., None] * disp).sum(1)  # (K, n, d)
        return grad[..., 0] if flat else grad

    def derivative_distances(self, n: int | None = None) -> np.ndarray:
        """(K, K) RMS distances between members' gradient fields on the sample points."""
        g = self.derivatives(sample_points(self.input_dim, n))  # (K, n, d)
        return gradient_field_distances(g)


def gradient_field_distances(g: np.ndarray) -> np.ndarray:
    """(K, n, d) gradient fields -> (K, K) sqrt(mean over points of |g_i - g_j|^2)."""
    flat = g.reshape(len(g), -1)
    sq = (flat**2).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2 * flat @ flat.T) / g.shape[1]
    return np.sqrt(np.clip(d2, 0.0, None))


def _draw_member(d: int, rng: np.random.Generator):
    """One raw member: amplitudes (B,), centres (B, d), widths (B,)."""
    a = rng.choice([-1.0, 1.0], N_BUMPS) * rng.uniform(*AMPLITUDE_RANGE, N_BUMPS)
    c = rng.uniform(-1.0, 1.0, (N_BUMPS, d))
    s = rng.uniform(*WIDTH_RANGE, N_BUMPS) * np.sqrt(d)
    return a, c, s


def make_bump_family(config: FamilyConfig) -> BumpFamily:
    """Draw K members, rescale each to the range [-1, 1] on the sample points, resample any member whose
    gradient field lies within min_derivative_distance of an earlier one's (variety.py)."""
    d, k_total = config.input_dim, config.n_functions
    rng = np.random.default_rng(config.seed)
    points = sample_points(d)

    def draw():
        a, c, s = _draw_member(d, rng)
        value, disp = _bump_terms(points, a[None], c[None], s[None])
        y = value.sum(1)[0]
        lo, hi = y.min(), y.max()
        if hi - lo < 1e-9:
            return None
        scale = 2.0 / (hi - lo)
        g = -(value[..., None] * disp).sum(1)[0] * scale  # (n, d)
        return (a * scale, c, s, -1.0 - lo * scale), g

    def failure(found: int, closest: float) -> FamilyError:
        return FamilyError(
            f"could not draw {k_total} bump functions whose gradient fields differ by at least "
            f"{config.min_derivative_distance:g} (RMS) in {config.max_tries} tries; only {found} found (closest "
            f"rejected pair: {closest:.3g}). Lower min_derivative_distance or ask for fewer functions."
        )

    members = draw_distinct_members(k_total, draw, config.min_derivative_distance, config.max_tries, failure)
    amps, cents, wids, offsets = (np.array(part, dtype=np.float64) for part in zip(*members))  # (K, B), (K, B, d), (K, B), (K,)
    return BumpFamily(config=config, amplitudes=amps, centres=cents, widths=wids, offsets=offsets)
