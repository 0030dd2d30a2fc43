"""The variety guarantee's one rejection-sampling loop (variety.py) draws bit-identical members to the three
per-family loops it replaced, RNG draw for draw.

The references below are those loops as they stood before the refactor (commit dac7fe8, family.py,
sines.py and family_nd.py), kept here as slow obvious references; each config is chosen so that the
loop rejects draws (a rejection that consumed the RNG differently would change every later member),
and the failure configs check the refusal message too. Two small families are also pinned as stored
arrays, recorded from the pre-refactor code: their draws are plain uniform numbers and polynomial
arithmetic (no transcendental functions), so the values are the same on every CPU.
"""

import numpy as np
import pytest
from numpy.polynomial import polynomial as P

from netembed.config import FamilyConfig
from netembed.family import (
    MANY_FUNCTIONS_HINT,
    FamilyError,
    _normalise,
    _sample_power_coefficients,
    dense_grid,
    make_family,
)
from netembed.family_nd import N_BUMPS, _bump_terms, _draw_member, sample_points


def reference_polynomials(config):
    """-> coefficients (K, degree_max + 1), degrees (K,), tries; the loop of family.make_polynomial_family."""
    rng = np.random.default_rng(config.seed)
    grid = dense_grid()
    coefficients = np.zeros((config.n_functions, config.degree_max + 1))
    degrees = np.zeros(config.n_functions, dtype=np.int64)
    derivs = np.zeros((config.n_functions, grid.size))
    tries, closest = 0, np.inf
    for k in range(config.n_functions):
        while True:
            tries += 1
            if tries > config.max_tries:
                raise FamilyError(
                    f"could not draw {config.n_functions} functions whose derivatives differ by at least "
                    f"{config.min_derivative_distance:g} (RMS) in {config.max_tries} tries; only {k} found "
                    f"(closest rejected pair: {closest:.3g}). Lower the variety threshold (min_derivative_distance, --min-distance), ask for fewer "
                    f"functions, or allow higher degrees and more tries ({MANY_FUNCTIONS_HINT})."
                )
            degree = int(rng.integers(config.degree_min, config.degree_max + 1))
            c = _normalise(_sample_power_coefficients(degree, config.sampling, rng), grid)
            if c is None:
                continue
            d = P.polyval(grid, P.polyder(c))
            if k:
                dist = np.sqrt(((derivs[:k] - d) ** 2).mean(1)).min()
                if dist < config.min_derivative_distance:
                    closest = min(closest, dist)
                    continue
            coefficients[k, : degree + 1] = c
            degrees[k] = degree
            derivs[k] = d
            break
    return coefficients, degrees, tries


def reference_sines(config):
    """-> amplitudes (K,), frequencies (K,), tries; the loop of sines.make_sine_family."""
    rng = np.random.default_rng(config.seed)
    grid = dense_grid()
    a, b = np.zeros(config.n_functions), np.zeros(config.n_functions)
    derivs = np.zeros((config.n_functions, grid.size))
    tries = 0
    for k in range(config.n_functions):
        while True:
            tries += 1
            if tries > config.max_tries:
                raise FamilyError(
                    f"could not draw {config.n_functions} sines whose derivatives differ by at least "
                    f"{config.min_derivative_distance:g} (RMS) in {config.max_tries} tries; only {k} found. "
                    "Lower min_derivative_distance, widen the amplitude/frequency ranges or ask for fewer functions."
                )
            ak = rng.uniform(config.sine_amplitude_min, config.sine_amplitude_max)
            bk = rng.uniform(config.sine_frequency_min, config.sine_frequency_max)
            d = np.pi * ak * bk * np.cos(bk * np.pi * grid + config.sine_phase)
            if k and np.sqrt(((derivs[:k] - d) ** 2).mean(1)).min() < config.min_derivative_distance:
                continue
            a[k], b[k], derivs[k] = ak, bk, d
            break
    return a, b, tries


def reference_bumps(config):
    """-> amplitudes (K, B), centres (K, B, d), widths (K, B), offsets (K,), tries; the loop of make_bump_family."""
    d, k_total = config.input_dim, config.n_functions
    rng = np.random.default_rng(config.seed)
    points = sample_points(d)
    amps, cents, wids = np.zeros((k_total, N_BUMPS)), np.zeros((k_total, N_BUMPS, d)), np.zeros((k_total, N_BUMPS))
    offsets = np.zeros(k_total)
    grads = np.zeros((k_total, len(points), d))
    tries, closest = 0, np.inf
    for k in range(k_total):
        while True:
            tries += 1
            if tries > config.max_tries:
                raise FamilyError(
                    f"could not draw {k_total} bump functions whose gradient fields differ by at least "
                    f"{config.min_derivative_distance:g} (RMS) in {config.max_tries} tries; only {k} found (closest "
                    f"rejected pair: {closest:.3g}). Lower min_derivative_distance or ask for fewer functions."
                )
            a, c, s = _draw_member(d, rng)
            value, disp = _bump_terms(points, a[None], c[None], s[None])
            y = value.sum(1)[0]
            lo, hi = y.min(), y.max()
            if hi - lo < 1e-9:
                continue
            scale = 2.0 / (hi - lo)
            g = -(value[..., None] * disp).sum(1)[0] * scale  # (n, d)
            if k:
                dist = np.sqrt(((grads[:k] - g) ** 2).sum(-1).mean(1)).min()
                if dist < config.min_derivative_distance:
                    closest = min(closest, dist)
                    continue
            amps[k], cents[k], wids[k], offsets[k], grads[k] = a * scale, c, s, -1.0 - lo * scale, g
            break
    return amps, cents, wids, offsets, tries


POLYNOMIALS = [
    dict(n_functions=12, degree_min=3, degree_max=4, min_derivative_distance=2.0, seed=0),
    dict(n_functions=8, degree_min=2, degree_max=5, sampling="chebyshev", min_derivative_distance=1.5, seed=7),
    dict(n_functions=6, degree_min=3, degree_max=3, sampling="monomial", min_derivative_distance=1.0, seed=3),
    dict(n_functions=30, degree_min=3, degree_max=6, min_derivative_distance=1.0, seed=11),
]
SINES = [
    dict(kind="sines", n_functions=12, min_derivative_distance=40.0, seed=1),
    dict(kind="sines", n_functions=6, min_derivative_distance=5.0, seed=5, sine_amplitude_max=3.0,
         sine_frequency_max=3.0, sine_phase=0.7),
]  # fmt: skip
BUMPS = [
    dict(kind="bumps", input_dim=1, n_functions=8, min_derivative_distance=2.0, seed=2),
    dict(kind="bumps", input_dim=2, n_functions=6, min_derivative_distance=1.5, seed=4),
    dict(kind="bumps", input_dim=3, n_functions=4, min_derivative_distance=1.5, seed=9),
]
FAILING = [
    dict(n_functions=20, degree_min=3, degree_max=3, min_derivative_distance=2.0, max_tries=300, seed=1),
    dict(kind="sines", n_functions=3, min_derivative_distance=5.0, max_tries=50, seed=2, sine_amplitude_max=1.0,
         sine_frequency_max=1.0),  # |f'| <= pi: no two members 5 apart
    dict(kind="bumps", input_dim=2, n_functions=10, min_derivative_distance=3.0, max_tries=100, seed=3),
]


@pytest.mark.parametrize("kwargs", POLYNOMIALS)
def test_polynomials_are_the_pre_refactor_members(kwargs):
    config = FamilyConfig(**kwargs)
    coefficients, degrees, tries = reference_polynomials(config)
    assert tries > config.n_functions  # some draws were rejected: the rejection path is covered
    family = make_family(config)
    np.testing.assert_array_equal(family.coefficients, coefficients)
    np.testing.assert_array_equal(family.degrees, degrees)


@pytest.mark.parametrize("kwargs", SINES)
def test_sines_are_the_pre_refactor_members(kwargs):
    config = FamilyConfig(**kwargs)
    a, b, tries = reference_sines(config)
    assert tries > config.n_functions
    family = make_family(config)
    np.testing.assert_array_equal(family.amplitudes, a)
    np.testing.assert_array_equal(family.frequencies, b)


@pytest.mark.parametrize("kwargs", BUMPS)
def test_bumps_are_the_pre_refactor_members(kwargs):
    config = FamilyConfig(**kwargs)
    amps, cents, wids, offsets, tries = reference_bumps(config)
    assert tries > config.n_functions
    family = make_family(config)
    for got, want in zip((family.amplitudes, family.centres, family.widths, family.offsets), (amps, cents, wids, offsets)):
        np.testing.assert_array_equal(got, want)


REFERENCES = {"polynomials": reference_polynomials, "sines": reference_sines, "bumps": reference_bumps}


@pytest.mark.parametrize("kwargs", FAILING)
def test_a_family_that_cannot_be_drawn_is_refused_with_the_pre_refactor_message(kwargs):
    config = FamilyConfig(**kwargs)
    with pytest.raises(FamilyError) as want:
        REFERENCES[config.kind](config)
    with pytest.raises(FamilyError) as got:
        make_family(config)
    assert str(got.value) == str(want.value)


# Recorded from the pre-refactor code (commit dac7fe8) with repr(); both draws reject members on the way
# (9 tries for 4 sines, 27 for 3 polynomials), so a changed draw order or rejection rule changes them.
SINES_SEED_0 = dict(kind="sines", n_functions=4, min_derivative_distance=80.0, seed=0)
SINES_SEED_0_A = [6.551136029553816, 8.226067272402588, 6.263039869788209, 8.700199762323923]
SINES_SEED_0_B = [3.062973780756768, 9.171177984138357, 7.430217329347985, 5.643881592366371]
POLYNOMIALS_SEED_0 = dict(n_functions=3, degree_min=3, degree_max=3, min_derivative_distance=2.5, seed=0)
POLYNOMIALS_SEED_0_COEFFICIENTS = [
    [-0.8461075435511353, 0.635370020889917, 0.8488290079551853, 0.361908514706033],
    [0.4928453672151431, -0.009577348962312743, -0.49284536721514305, -0.9904226510376872],
    [0.5935149206519201, -1.9228554311338435, -1.470878297844596, 2.045492053941168],
]


def test_two_small_families_are_the_recorded_ones():
    sines = make_family(FamilyConfig(**SINES_SEED_0))
    np.testing.assert_array_equal(sines.amplitudes, SINES_SEED_0_A)
    np.testing.assert_array_equal(sines.frequencies, SINES_SEED_0_B)
    polynomials = make_family(FamilyConfig(**POLYNOMIALS_SEED_0))
    np.testing.assert_array_equal(polynomials.coefficients, POLYNOMIALS_SEED_0_COEFFICIENTS)


def test_the_loops_distance_is_each_familys_pairwise_distance():
    """gradient_distances against the families' own pairwise distances (pairwise_rms, gradient_field_distances)."""
    from netembed.family import pairwise_rms
    from netembed.family_nd import gradient_field_distances
    from netembed.variety import gradient_distances

    rng = np.random.default_rng(0)
    rows = rng.standard_normal((5, 64))  # 1D derivatives (K, n)
    np.testing.assert_allclose(gradient_distances(rows[:4], rows[4]), pairwise_rms(rows)[4, :4], rtol=1e-12)
    fields = rng.standard_normal((5, 64, 3))  # gradient fields (K, n, d)
    np.testing.assert_allclose(gradient_distances(fields[:4], fields[4]), gradient_field_distances(fields)[4, :4], rtol=1e-12)
