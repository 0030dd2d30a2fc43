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
KIND_KEY = "fam_kind"  # the name more_settings gave it before it was drawn on its own: old links keep working
SINE_FIELDS = ("sine_amplitude_min", "sine_amplitude_max", "sine_frequency_min", "sine_frequency_max", "sine_phase")
DRAWN = (*KEY, "degree_min", "degree_max", "kind")
KEYS = (*KEY.values(), DEGREE_KEY,
        *(f"fam_{s['name']}" for s in specs(FamilyConfig) if s["name"] not in (*KEY, "degree_min", "degree_max")))


@st.cache_resource(max_entries=64, show_spinner=False)
def cached_family(config: FamilyConfig) -> Family:
    """Families are immutable and cheap to share; drawing one can take a moment at tight thresholds."""
    return make_family(config)


def family_ui(base: FamilyConfig) -> FamilyConfig:
    """Widgets for every family setting, defaulting to `base` (the current run's family); returns the config.

    The kind comes first, then its own settings; the other kind's stay drawn, in an expander, so a
    link or a test that sets them works whatever the kind."""
    kind = widgets.config_choice(FamilyConfig, "kind", KIND_KEY, "Family", base, horizontal=True)
    if kind == "sines":
        k, seed, sines = sines_columns(base)
        with st.expander("Polynomial settings (used when the family is polynomials)"):
            degree, sampling, distance = polynomial_settings(base)
        with st.expander("More family settings"):
            rest = widgets.more_settings(FamilyConfig, "fam", base, (*DRAWN, *SINE_FIELDS))
    else:
        c1, c2, c3 = st.columns(3)
        with c1:
            k = widgets.config_number(FamilyConfig, "n_functions", KEY["n_functions"], "Functions K", base)
        with c2:
            seed = widgets.config_number(FamilyConfig, "seed", KEY["seed"], "Seed", base)
        degree, sampling, distance = polynomial_settings(base)
        with st.expander("More family settings"):
            rest = widgets.more_settings(FamilyConfig, "fam", base, DRAWN)  # the sines' settings among them
        sines = {name: rest.pop(name) for name in SINE_FIELDS}
    return FamilyConfig(kind=kind, n_functions=k, degree_min=degree[0], degree_max=degree[1], sampling=sampling,
                        min_derivative_distance=distance, seed=seed, **sines, **rest)  # fmt: skip


def polynomial_settings(base: FamilyConfig):
    """Degree range, sampling and variety threshold, in three columns -> ((degree_min, degree_max), sampling, distance)."""
    c1, c2, c3 = st.columns(3)
    with c1:
        degree = widgets.config_range(FamilyConfig, "degree_min", "degree_max", DEGREE_KEY, "Degree", base)
    with c2:
        sampling = widgets.config_choice(FamilyConfig, "sampling", KEY["sampling"], "Sampling", base)
    with c3:
        distance = widgets.config_number(FamilyConfig, "min_derivative_distance", KEY["min_derivative_distance"],
                                         "Variety threshold", base, step=0.1, format="%.2f")  # fmt: skip
    return degree, sampling, distance


def sines_columns(base: FamilyConfig):
    """K, seed and the sines' own settings (ranges of a and b, the shared phase c) -> (k, seed, {field: value})."""
    c1, c2, c3 = st.columns(3)
    sines = {}
    with c1:
        k = widgets.config_number(FamilyConfig, "n_functions", KEY["n_functions"], "Functions K", base)
        seed = widgets.config_number(FamilyConfig, "seed", KEY["seed"], "Seed", base)
    with c2:
        for name, label in (("sine_amplitude_min", "Amplitude a: least"), ("sine_amplitude_max", "Amplitude a: largest")):
            sines[name] = widgets.config_number(FamilyConfig, name, f"fam_{name}", label, base, step=0.5, format="%g")
    with c3:
        for name, label in (("sine_frequency_min", "Frequency b: least"), ("sine_frequency_max", "Frequency b: largest")):
            sines[name] = widgets.config_number(FamilyConfig, name, f"fam_{name}", label, base, step=0.5, format="%g")
    sines["sine_phase"] = widgets.config_number(FamilyConfig, "sine_phase", "fam_sine_phase", "Phase c (shared)", base,
                                                step=0.1, format="%g")  # fmt: skip
    return k, seed, sines


def family_setting(base: FamilyConfig) -> FamilyConfig:
    """The family chosen on the Family page (or `base` where a setting was never touched)."""
    degree = widgets.setting(DEGREE_KEY, (base.degree_min, base.degree_max), parse=parse_range)
    values = {s["name"]: widgets.config_setting(FamilyConfig, s["name"], KEY.get(s["name"], f"fam_{s['name']}"), base)
              for s in specs(FamilyConfig) if s["name"] not in ("degree_min", "degree_max")}  # fmt: skip
    return FamilyConfig(degree_min=degree[0], degree_max=degree[1], **values)


def describe(c: FamilyConfig) -> str:
    """One line naming a family's settings, e.g. for the Zoo page."""
    if c.kind == "sines":
        return (f"K = {c.n_functions} sines a·sin(b·x + {c.sine_phase:g}), a in [{c.sine_amplitude_min:g}, "
                f"{c.sine_amplitude_max:g}], b in [{c.sine_frequency_min:g}, {c.sine_frequency_max:g}], seed {c.seed}")
    return (f"K = {c.n_functions} polynomials, degree {c.degree_min}-{c.degree_max}, {c.sampling} sampling, "
            f"seed {c.seed}")
