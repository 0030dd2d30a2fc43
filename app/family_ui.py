"""The family settings: drawn on the Family page, read (without widgets) by the Zoo page."""

from __future__ import annotations

import streamlit as st

from app import widgets
from netembed.config import SAMPLINGS, FamilyConfig, parse_range
from netembed.family import Family, make_family

KEYS = ("fam_k", "fam_degree", "fam_sampling", "fam_distance", "fam_seed")


@st.cache_resource(max_entries=64, show_spinner=False)
def cached_family(config: FamilyConfig) -> Family:
    """Families are immutable and cheap to share; drawing one can take a moment at tight thresholds."""
    return make_family(config)


def family_ui(base: FamilyConfig) -> FamilyConfig:
    """Widgets for every family setting, defaulting to `base` (the current run's family); returns the config."""
    c1, c2, c3 = st.columns(3)
    with c1:
        k = widgets.number("Functions K", "fam_k", base.n_functions, 1, 50, help="members of the family")
        degree = widgets.range_slider("Degree", "fam_degree", (base.degree_min, base.degree_max), 1, 8,
                                      help="each member's degree is drawn from this range")  # fmt: skip
    with c2:
        sampling = widgets.choice("Sampling", "fam_sampling", list(SAMPLINGS), base.sampling,
                                  help="roots: random roots in [-1, 1]; chebyshev: random Chebyshev "
                                  "coefficients; monomial: naive power coefficients (members look alike)")  # fmt: skip
        seed = widgets.number("Seed", "fam_seed", base.seed, 0, 2**31 - 1)
    with c3:
        distance = widgets.number("Variety threshold", "fam_distance", float(base.min_derivative_distance), 0.0,
                                  100.0, step=0.1, format="%.2f",
                                  help="least RMS distance between any two members' derivatives")  # fmt: skip
    return FamilyConfig(n_functions=int(k), degree_min=degree[0], degree_max=degree[1], sampling=sampling,
                        min_derivative_distance=float(distance), seed=int(seed))  # fmt: skip


def family_setting(base: FamilyConfig) -> FamilyConfig:
    """The family chosen on the Family page (or `base` where a setting was never touched)."""
    degree = widgets.setting("fam_degree", (base.degree_min, base.degree_max), parse=parse_range)
    return FamilyConfig(
        n_functions=int(widgets.setting("fam_k", base.n_functions)),
        degree_min=degree[0],
        degree_max=degree[1],
        sampling=widgets.setting("fam_sampling", base.sampling),
        min_derivative_distance=float(widgets.setting("fam_distance", base.min_derivative_distance)),
        seed=int(widgets.setting("fam_seed", base.seed)),
    )
