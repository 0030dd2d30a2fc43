"""A family of K random 1D polynomials on [-1, 1], with exact values and derivatives.

Every family (this one, sines.py) gives the same small interface, used by the zoo, the
store and the protocols: `values(x)` and `derivatives(x)` (K, n) exact, `parameters`
(K, p) continuous parameters named by `parameter_names`, `labels` (K,) the member
index, `n_functions` and `config`. `make_family(config)` picks the family by `config.kind`.

Naive coefficient sampling makes polynomials that all look alike (the seed notebook's
complaint), so members are drawn from random roots or Chebyshev coefficients, each is
rescaled so its range on [-1, 1] is exactly [-1, 1], and every pair must differ in its
*derivative* (a constant offset is invisible to input-gradients) by at least
`min_derivative_distance`, measured as an RMS distance on a dense grid (variety.py, the
rejection loop every family shares).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import chebyshev as C
from numpy.polynomial import polynomial as P

from .config import FamilyConfig
from .variety import draw_distinct_members

GRID_SIZE = 1025  # dense grid on [-1, 1] for normalisation and the variety check


class FamilyError(ValueError):
    """The family's settings cannot be met (e.g. too many functions for the variety threshold)."""


def dense_grid(n: int = GRID_SIZE) -> np.ndarray:
    return np.linspace(-1.0, 1.0, n)


@dataclass(frozen=True)
class Family:
    config: FamilyConfig
    coefficients: np.ndarray  # (K, max_degree + 1) power-basis coefficients, lowest degree first
    degrees: np.ndarray  # (K,) degree of each member

    @property
    def n_functions(self) -> int:
        return self.coefficients.shape[0]

    @property
    def labels(self) -> np.ndarray:
        """(K,) each member's label: its index."""
        return np.arange(self.n_functions)

    @property
    def parameters(self) -> np.ndarray:
        """(K, degree_max + 1) continuous parameters: the power coefficients c0, c1, ..."""
        return self.coefficients

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(f"c{d}" for d in range(self.coefficients.shape[1]))

    def values(self, x) -> np.ndarray:
        """f_k(x) for every member: x (n,) -> (K, n)."""
        return P.polyval(np.asarray(x, dtype=np.float64), self.coefficients.T)

    def derivatives(self, x) -> np.ndarray:
        """f_k'(x) for every member: x (n,) -> (K, n)."""
        return P.polyval(np.asarray(x, dtype=np.float64), P.polyder(self.coefficients.T, axis=0))

    def derivative_distances(self, n: int = GRID_SIZE) -> np.ndarray:
        """(K, K) RMS distances between members' derivatives on a dense grid."""
        return pairwise_rms(self.derivatives(dense_grid(n)))


def pairwise_rms(rows: np.ndarray) -> np.ndarray:
    """(K, n) -> (K, K) root-mean-square distance between every pair of rows."""
    sq = (rows**2).mean(1)
    d2 = sq[:, None] + sq[None, :] - 2 * rows @ rows.T / rows.shape[1]
    return np.sqrt(np.clip(d2, 0.0, None))


def _sample_power_coefficients(degree: int, sampling: str, rng: np.random.Generator) -> np.ndarray:
    """One raw polynomial of exactly `degree`, power basis (degree + 1,)."""
    if sampling == "roots":
        # Roots in [-1, 1] put every wiggle inside the domain, where the networks see it.
        return rng.choice([-1.0, 1.0]) * P.polyfromroots(rng.uniform(-1.0, 1.0, degree))
    if sampling == "chebyshev":
        c = rng.standard_normal(degree + 1)
        c[-1] = np.sign(c[-1]) * max(abs(c[-1]), 0.5)  # keep the top degree visible
        return C.cheb2poly(c)
    c = rng.standard_normal(degree + 1)  # "monomial": the naive draw, kept for comparison
    c[-1] = np.sign(c[-1]) * max(abs(c[-1]), 0.1)
    return c


def _normalise(coeffs: np.ndarray, grid: np.ndarray) -> np.ndarray | None:
    """Affinely rescale so the range on [-1, 1] is exactly [-1, 1]; None if (nearly) constant."""
    y = P.polyval(grid, coeffs)
    lo, hi = y.min(), y.max()
    if hi - lo < 1e-9:
        return None
    out = coeffs * (2.0 / (hi - lo))
    out[0] -= 1.0 + lo * 2.0 / (hi - lo)
    return out


# Measured with seed 0, distance 1, max_tries 20000 (the limit binds first through the tries):
# degrees 3-4 stop near 61 members, 3-6 give 200 (not 500), 3-8 give 500 in about 2 s.
MANY_FUNCTIONS_HINT = "e.g. degrees 3-6 give 200 and 3-8 give 500 functions at distance 1 with max_tries 20000"


def make_family(config: FamilyConfig):
    """The family that `config.kind` names: polynomials (here), sines (sines.py) or bumps in d inputs (family_nd.py)."""
    if config.kind == "sines":
        from .sines import make_sine_family  # sines.py imports this module's helpers

        return make_sine_family(config)
    if config.kind == "bumps":
        from .family_nd import make_bump_family  # family_nd.py imports this module's helpers

        return make_bump_family(config)
    return make_polynomial_family(config)


def make_polynomial_family(config: FamilyConfig) -> Family:
    """Draw K members, resampling any member too close to an earlier one in derivative (variety.py)."""
    rng = np.random.default_rng(config.seed)
    grid = dense_grid()

    def draw():
        degree = int(rng.integers(config.degree_min, config.degree_max + 1))
        c = _normalise(_sample_power_coefficients(degree, config.sampling, rng), grid)
        if c is None:
            return None
        return (degree, c), P.polyval(grid, P.polyder(c))

    def failure(found: int, closest: float) -> FamilyError:
        return FamilyError(
            f"could not draw {config.n_functions} functions whose derivatives differ by at least "
            f"{config.min_derivative_distance:g} (RMS) in {config.max_tries} tries; only {found} found "
            f"(closest rejected pair: {closest:.3g}). Lower the variety threshold (min_derivative_distance, --min-distance), ask for fewer "
            f"functions, or allow higher degrees and more tries ({MANY_FUNCTIONS_HINT})."
        )

    members = draw_distinct_members(config.n_functions, draw, config.min_derivative_distance, config.max_tries, failure)
    coefficients = np.zeros((config.n_functions, config.degree_max + 1))
    degrees = np.zeros(config.n_functions, dtype=np.int64)
    for k, (degree, c) in enumerate(members):
        coefficients[k, : degree + 1] = c
        degrees[k] = degree
    return Family(config=config, coefficients=coefficients, degrees=degrees)
