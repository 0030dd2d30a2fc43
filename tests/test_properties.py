"""Property-based tests (hypothesis): families keep their variety promise; line-sections are exact.

Zoos here are built straight from random weights (no training), so each example costs
milliseconds; max_examples stays modest so the file runs in seconds.
"""

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netembed.config import SAMPLINGS, ConfigError, FamilyConfig
from netembed.family import FamilyError, dense_grid, make_family
from netembed.gradients import input_gradients, line_sections
from netembed.zoo import Zoo

from random_zoo import random_zoo

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- families


@st.composite
def family_settings(draw):
    lo = draw(st.integers(1, 8))
    return dict(
        n_functions=draw(st.integers(1, 8)),
        degree_min=lo,
        degree_max=draw(st.integers(lo, 8)),
        sampling=draw(st.sampled_from(SAMPLINGS)),
        min_derivative_distance=draw(st.floats(0.0, 6.0, allow_nan=False)),
        seed=draw(st.integers(0, 2**31 - 1)),
        max_tries=draw(st.integers(1, 200)),
    )


@FAST
@given(family_settings())
def test_any_valid_family_config_gives_its_variety_or_a_clear_error(kwargs):
    try:
        config = FamilyConfig(**kwargs)
    except ConfigError as e:  # refused where it is built: only the variety bound can say no here
        assert "n_functions" in str(e) and "at most" in str(e)
        return
    try:
        family = make_family(config)
    except FamilyError as e:
        assert f"could not draw {config.n_functions} functions" in str(e) and "min_derivative_distance" in str(e)
        return
    assert family.n_functions == config.n_functions
    assert ((family.degrees >= config.degree_min) & (family.degrees <= config.degree_max)).all()
    values = family.values(dense_grid())
    np.testing.assert_allclose(values.min(1), -1.0, atol=1e-9)  # each member spans exactly [-1, 1]
    np.testing.assert_allclose(values.max(1), 1.0, atol=1e-9)
    d = family.derivative_distances()
    off_diagonal = d[~np.eye(len(d), dtype=bool)]
    assert (off_diagonal >= config.min_derivative_distance - 1e-9).all()  # the variety promise


# ---------------------------------------------------------------- line-sections


def in_float64(zoo: Zoo) -> Zoo:
    return Zoo(**{**zoo.__dict__, "layers": [(w.double(), b.double()) for w, b in zoo.layers]})


@st.composite
def random_nets(draw):
    zoo = random_zoo(
        n_functions=1,
        models_per_function=draw(st.integers(2, 4)),
        width=draw(st.integers(1, 12)),
        depth=draw(st.integers(1, 3)),
        activation=draw(st.sampled_from(["relu", "leaky_relu"])),
        seed=draw(st.integers(0, 2**31 - 1)),
        scale=draw(st.sampled_from([0.3, 1.0, 3.0])),
    )
    sparsity = draw(st.sampled_from([0.0, 0.0, 0.5]))  # zeroed weights: dead and constant neurons
    if sparsity:
        g = torch.Generator().manual_seed(draw(st.integers(0, 1000)))
        for w, _ in zoo.layers:
            w.mul_((torch.rand(w.shape, generator=g) > sparsity).float())
    return in_float64(zoo)


@FAST
@given(random_nets(), st.integers(0, 1000))
def test_line_sections_reproduce_random_relu_nets_exactly(zoo, seed):
    sections = line_sections(zoo)
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.linspace(-1, 1, 2001), rng.uniform(-1, 1, 500), [-1.0, 1.0]])
    y = zoo(x)
    np.testing.assert_allclose(sections.evaluate(x), y, rtol=1e-9, atol=1e-9 * (1 + np.abs(y).max()))
    for i in range(zoo.n_models):
        edges, slopes, _ = sections.model(i)
        assert edges[0] == -1.0 and edges[-1] == 1.0 and (np.diff(edges) > 0).all()
        assert np.isfinite(slopes).all() and len(slopes) == sections.n_sections[i] >= 1


@FAST
@given(random_nets(), st.integers(0, 1000))
def test_line_section_slopes_are_the_autograd_gradients_away_from_kinks(zoo, seed):
    sections = line_sections(zoo)
    x = np.random.default_rng(seed).uniform(-1, 1, 400)
    g = input_gradients(zoo, x)
    s = sections.gradient(x)
    for i in range(zoo.n_models):
        edges = sections.model(i)[0]
        far = np.ones_like(x, bool) if len(edges) == 2 else np.abs(x[:, None] - edges[None, 1:-1]).min(1) > 1e-6
        np.testing.assert_allclose(s[i, far], g[i, far], rtol=1e-9, atol=1e-9 * (1 + np.abs(g[i]).max()))
        assert far.sum() > 300  # kinks are few: almost every point is checked


@FAST
@given(random_nets())
def test_every_kink_is_a_real_change_of_slope_or_harmless(zoo):
    """Sections are a partition: consecutive pieces meet (the network is continuous) at every edge."""
    sections = line_sections(zoo)
    for i in range(zoo.n_models):
        edges, slopes, intercepts = sections.model(i)
        inner = edges[1:-1]
        left = slopes[:-1] * inner + intercepts[:-1]
        right = slopes[1:] * inner + intercepts[1:]
        np.testing.assert_allclose(left, right, rtol=1e-8, atol=1e-8 * (1 + np.abs(intercepts).max()))


def test_hypothesis_examples_are_really_varied():
    """Guard against a strategy that collapses: the drawn nets differ in section counts."""
    counts = set()

    @settings(max_examples=30, deadline=None, database=None)
    @given(random_nets())
    def collect(zoo):
        counts.update(line_sections(zoo).n_sections.tolist())

    collect()
    assert len(counts) >= 5
