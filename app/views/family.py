"""Family: choose the target polynomials and see every member and its derivative."""

import numpy as np
import streamlit as st

from app import family_ui, state, widgets
from netembed.config import ConfigError, FamilyConfig
from netembed.family import FamilyError
from netembed.plots import family_figure
from netembed.store import RunError


def landing_card() -> None:
    """What the demo holds, the order of the study, and one click to its result."""
    with st.container(border=True):
        st.markdown("#### netembed: embeddings of networks, learned from their input-gradients")
        try:
            demo = state.load_from_disk(state.DEMO_DIR) if state.DEMO_DIR.is_dir() else None
        except RunError:
            demo = None
        if demo is not None:
            cloze = ((demo.report or {}).get("probes") or {}).get("cloze", {})
            accuracy = f", whose linear probe names the function of {cloze['linear_accuracy']:.0%} of the held-out " \
                "models" if cloze.get("linear_accuracy") is not None else ""  # fmt: skip
            st.markdown(f"The bundled **demo run** already holds a zoo of {demo.n_models} small networks "
                        f"({demo.family.n_functions} functions × {demo.zoo_config.models_per_function} seeds), an "
                        f"embedder trained on them{accuracy}, and a sweep. Every page shows it until you pick "
                        "another run in the sidebar.")  # fmt: skip
        st.markdown("**The study, in order:** 1 Family (the target functions) → 2 Zoo (train networks on them) → "
                    "3 Gradients (what the embedder sees) → 4 Embedder (train it) → 5 Embeddings (where the "
                    "networks land, probes) → 6 Sweep (mask ratio × bottleneck); then Compare runs.")  # fmt: skip
        if st.button("See the demo's embeddings", type="primary", icon=":material/scatter_plot:", key="landing_go"):
            state.open_next(state.DEMO)  # the user's click: show the demo there
            st.switch_page("views/embeddings.py")
        st.caption("Or start at step 1 below: choose a family, then train a zoo on it.")


landing_card()
st.title("Family of target functions")
st.caption("Polynomials: K random polynomials on [-1, 1], each rescaled to the range [-1, 1]; every pair must differ "
           "in its derivative by the variety threshold (input-gradients cannot see a constant offset). Sines: "
           "a·sin(b·x + c) on x in [-π, π) (drawn here on the models' input range [-1, 1]), a and b drawn uniformly, "
           "c shared. New zoos on the Zoo page are trained on the family chosen here.")  # fmt: skip

run = state.current_run()
base = run.family.config if run is not None else FamilyConfig()
if st.button("Reset to the current run's family", icon=":material/restart_alt:"):
    widgets.forget(*family_ui.KEYS)
    st.rerun()
try:
    config = family_ui.family_ui(base)
    with st.spinner("Drawing the family..."):  # the run's own family as stored, else drawn from the settings
        family = run.family if run is not None and config == run.family.config else family_ui.cached_family(config)
except (ConfigError, FamilyError) as e:
    st.error(str(e))
    st.stop()

if run is not None and config == run.family.config:
    st.caption(f"This is the family of the current run ({state.label(state.choice())}).")
distances = family.derivative_distances()
closest = distances[np.triu_indices(family.n_functions, 1)].min() if family.n_functions > 1 else float("nan")
row = st.container(horizontal=True, gap="large")  # each metric as wide as its value: they wrap, never cut short
row.metric("Functions", family.n_functions, width="content")
if hasattr(family, "degrees"):
    row.metric("Degrees", ", ".join(str(d) for d in sorted(set(family.degrees.tolist()))), width="content")
elif family.config.kind == "sines":  # the range of each parameter actually drawn
    p = family.parameters
    row.metric("Drawn a, b", f"a {p[:, 0].min():.2g}–{p[:, 0].max():.2g}, b {p[:, 1].min():.2g}–{p[:, 1].max():.2g}",
               width="content")  # fmt: skip
else:
    row.metric("Inputs d", getattr(family, "input_dim", 1), width="content")
row.metric("Closest pair of derivatives (RMS)", f"{closest:.2f}", width="content")
if getattr(family, "input_dim", 1) > 1:  # functions of d inputs: heatmaps with gradient arrows (plots_nd.py)
    from netembed.plots_nd import family_heatmaps

    st.plotly_chart(family_heatmaps(family, range(min(family.n_functions, 9))), key="family_plot")
else:
    st.plotly_chart(family_figure(family), key="family_plot")
