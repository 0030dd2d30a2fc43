"""The family settings: drawn on the Family page, read (without widgets) by the Zoo page."""

from __future__ import annotations

import streamlit as st

from app import widgets
from netembed.config import FamilyConfig, parse_range, specs
from netembed.family import Family, make_family

# field -> URL key of the settings drawn by hand (links made before keep working); the rest are fam_<field>
KEY = {"n_functions": "fam_k", "sampling": "fam_sampling", "min_derivative_distance": "fam_distance",
       "seed": "fam_seed"}  # fmt: skip
DEGREE_KEY = "fam_degree"  # degree_min and degree_max, one range slider
DRAWN = (*KEY, "degree_min", "degree_max")
KEYS = (*KEY.values(), DEGREE_KEY, *(f"fam_{s['name']}" for s in specs(FamilyConfig) if s["name"] not in DRAWN))


@st.cache_resource(max_entries=64, show_spinner=False)
def cached_family(config: FamilyConfig) -> Family:
    """Families are immutable and cheap to share; drawing one can take a moment at tight thresholds."""
    return make_family(config)


def family_ui(base: FamilyConfig) -> FamilyConfig:
    """Widgets for every family setting, defaulting to `base` (the current run's family); returns the config."""
    c1, c2, c3 = st.columns(3)
    with c1:
        k = widgets.config_number(FamilyConfig, "n_functions", KEY["n_functions"], "Functions K", base)
        degree = widgets.config_range(FamilyConfig, "degree_min", "degree_max", DEGREE_KEY, "Degree", base)
    with c2:
        sampling = widgets.config_choice(FamilyConfig, "sampling", KEY["sampling"], "Sampling", base)
        seed = widgets.config_number(FamilyConfig, "seed", KEY["seed"], "Seed", base)
    with c3:
        distance = widgets.config_number(FamilyConfig, "min_derivative_distance", KEY["min_derivative_distance"],
                                         "Variety threshold", base, step=0.1, format="%.2f")  # fmt: skip
    with st.expander("More family settings"):
        rest = widgets.more_settings(FamilyConfig, "fam", base, DRAWN)
    return FamilyConfig(n_functions=k, degree_min=degree[0], degree_max=degree[1], sampling=sampling,
                        min_derivative_distance=distance, seed=seed, **rest)  # fmt: skip


def family_setting(base: FamilyConfig) -> FamilyConfig:
    """The family chosen on the Family page (or `base` where a setting was never touched)."""
    degree = widgets.setting(DEGREE_KEY, (base.degree_min, base.degree_max), parse=parse_range)
    values = {s["name"]: widgets.config_setting(FamilyConfig, s["name"], KEY.get(s["name"], f"fam_{s['name']}"), base)
              for s in specs(FamilyConfig) if s["name"] not in ("degree_min", "degree_max")}  # fmt: skip
    return FamilyConfig(degree_min=degree[0], degree_max=degree[1], **values)
