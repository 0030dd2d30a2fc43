"""A family of K sines a*sin(b*t + c) on t in [-pi, pi), as in DWSNets' sine-wave INR benchmark.

The networks of this project see inputs x in [-1, 1], so a member is fed t = pi * x:

    f(x)  = a * sin(b * pi * x + c)          # (K, n): the amplitude a is NOT rescaled
    f'(x) = pi * a * b * cos(b * pi * x + c) # derivative with respect to the networks' input x

Parameters are reported in DWSNets' units (a the amplitude, b the frequency in radians per
unit of t, i.e. b periods on [-pi, pi); c the phase), so a regression of (a, b) reads the
same as there; gradients are always taken with respect to the project's input x, which is
what the zoo's networks (and every gradient description) differentiate by.

DWSNets draws a, b ~ U[0, 10]; here the lower ends are settings with a small positive
default (0.5), because near a = 0 every member is the flat zero function, and near b = 0
a*sin(b*t) ~ a*b*t, a line whose slope shows only the product a*b: neither parameter is
recoverable there from any description of the function, learned or not. c is one setting
shared by every member (0 by default, as in DWSNets). Like the polynomials, every pair of
members must differ in derivative by at least `min_derivative_distance` (RMS on the dense
grid); at the defaults the derivatives are tens of units apart, so the check rarely binds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import FamilyConfig
from .family import GRID_SIZE, FamilyError, dense_grid, pairwise_rms
from .variety import draw_distinct_members

PARAMETER_NAMES = ("a", "b", "c")


@dataclass(frozen=True)
class SineFamily:
    config: FamilyConfig
    amplitudes: np.ndarray  # (K,) a
    frequencies: np.ndarray  # (K,) b, periods on [-pi, pi)

    @property
    def n_functions(self) -> int:
        return len(self.amplitudes)

    @property
    def labels(self) -> np.ndarray:
        return np.arange(self.n_functions)

    @property
    def phases(self) -> np.ndarray:
        return np.full(self.n_functions, float(self.config.sine_phase))

    @property
    def parameters(self) -> np.ndarray:
        """(K, 3) columns a, b, c."""
        return np.stack([self.amplitudes, self.frequencies, self.phases], 1)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return PARAMETER_NAMES

    def _angle(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return self.frequencies[:, None] * np.pi * x[None, :] + self.phases[:, None]  # (K, n)

    def values(self, x) -> np.ndarray:
        """f_k(x) for every member: x (n,) in [-1, 1] -> (K, n)."""
        return self.amplitudes[:, None] * np.sin(self._angle(x))

    def derivatives(self, x) -> np.ndarray:
        """df_k/dx with respect to the networks' input x (n,) -> (K, n)."""
        return (np.pi * self.amplitudes * self.frequencies)[:, None] * np.cos(self._angle(x))

    def derivative_distances(self, n: int = GRID_SIZE) -> np.ndarray:
        return pairwise_rms(self.derivatives(dense_grid(n)))


def make_sine_family(config: FamilyConfig) -> SineFamily:
    """Draw K (a, b) pairs uniformly, resampling a member too close to an earlier one in derivative (variety.py)."""
    rng = np.random.default_rng(config.seed)
    grid = dense_grid()

    def draw():
        ak = rng.uniform(config.sine_amplitude_min, config.sine_amplitude_max)
        bk = rng.uniform(config.sine_frequency_min, config.sine_frequency_max)
        return (ak, bk), np.pi * ak * bk * np.cos(bk * np.pi * grid + config.sine_phase)

    def failure(found: int, closest: float) -> FamilyError:
        return FamilyError(
            f"could not draw {config.n_functions} sines whose derivatives differ by at least "
            f"{config.min_derivative_distance:g} (RMS) in {config.max_tries} tries; only {found} found. "
            "Lower min_derivative_distance, widen the amplitude/frequency ranges or ask for fewer functions."
        )

    members = draw_distinct_members(config.n_functions, draw, config.min_derivative_distance, config.max_tries, failure)
    a, b = np.array(members, dtype=np.float64).reshape(-1, 2).T  # (K,) each
    return SineFamily(config=config, amplitudes=a, frequencies=b)
