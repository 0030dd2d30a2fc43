"""Gradients: each model's exact line-sections against the true derivative, and seed-to-seed differences."""

import numpy as np
import streamlit as st

from app import state, widgets
from netembed.divergence import failed as failed_models
from netembed.gradients import NoExactSections, line_sections
from netembed.plots import gradient_figure

st.title("Gradients and line-sections")
st.caption("A ReLU network is piecewise linear, so its input-gradient is piecewise constant: one slope per "
           "line-section, computed exactly from the weights. Dashed grey: the target and its true derivative; "
           "points: gradients at sampled inputs, as the embedder sees them.")  # fmt: skip

run = state.current_run()
if run is None:
    st.info("No run to show yet: train a zoo on the Zoo page.")
    st.stop()
zoo, family = run.zoo, run.family
architecture = None
if hasattr(zoo, "parts"):  # a mixed zoo (mixed_zoo.py): one architecture at a time, its models numbered within it
    architecture = widgets.choice("Architecture", "grad_arch", zoo.labels, zoo.labels[0], horizontal=True)
    zoo = zoo.part_of(architecture)
if zoo.input_dim > 1:
    from app.gradients_nd import show_nd

    show_nd(run)
    st.stop()


def exact_sections(zoo):
    try:
        return line_sections(zoo)
    except NoExactSections:
        return None


with st.spinner("Computing line-sections..."):
    sections = state.derived("line_sections", lambda *_: exact_sections(zoo), *([architecture] if architecture else []))
if sections is None:
    st.info(f"This zoo uses {zoo.config.activation}, a smooth activation: there are no line-sections, so the "
            "gradient is drawn from a dense grid instead.")  # fmt: skip

failed = state.derived("failed", lambda: failed_models(zoo))  # divergence.failed: one meaning everywhere
c1, c2 = st.columns([1, 3])
below = st.container(horizontal=True, gap="large", vertical_alignment="bottom")  # under the pickers: fits 1024 px
with c1:
    k = widgets.choice("Function", "grad_f", list(range(family.n_functions)), 0, fmt=lambda k: f"f{k}")
with below:
    overlay = widgets.toggle("All replicates", "grad_all", False, width="content",
                             help="overlay every model of this function (each trained from its own init seed), to see replicate-to-replicate differences")  # fmt: skip
members = np.flatnonzero(zoo.task_ids == k).tolist()
with c2:
    if overlay:  # every model is drawn: a picker would only read "Choose options"
        st.caption(f"All {len(members)} models of f{k} are drawn (turn off **All replicates** to pick some).")
        models = members
    else:  # a kept choice from another function or run falls back to this function's first models
        models = widgets.multi("Models", "grad_models", members, members[:2],
                               fmt=lambda i: f"model {i} (replicate {zoo.replicates[i]}{', failed' if failed[i] else ''})")  # fmt: skip
with below:
    n_samples = widgets.slider("Sampled inputs", "grad_n", 32, 0, 256, help="random x where gradients are sampled")
if not models:
    st.info("Choose at least one model.")
    st.stop()

sample_x = np.sort(np.random.default_rng(0).uniform(-1, 1, n_samples)) if n_samples else None
st.plotly_chart(gradient_figure(family, zoo, models, sections, sample_x=sample_x), key="gradient_plot")
if sections is not None:
    counts = ", ".join(f"model {i}: {int(sections.n_sections[i])}" for i in models[:12])
    st.caption(f"Line-sections on [-1, 1]: {counts}{' ...' if len(models) > 12 else ''}.")
