"""Home: what netembed does, what the bundled demo holds, the study's steps in order, one click to the demo's result.

The first page a user sees draws no chart: Streamlit and plotly's 4.7 MB chunk alone take ~2.7 s of a cold start
on a 2-core machine (README: where the cold start goes); the charts load on the page that shows them.
"""

import streamlit as st

from app import state
from netembed.store import RunError

STEPS = [  # (page, label, what it is for)
    ("views/family.py", "1 Family", "the target functions"),
    ("views/zoo.py", "2 Zoo", "train networks on them"),
    ("views/gradients.py", "3 Gradients", "what the embedder sees"),
    ("views/embedder.py", "4 Embedder", "train it"),
    ("views/embeddings.py", "5 Embeddings", "where the networks land, probes"),
    ("views/sweep.py", "6 Sweep", "mask ratio x bottleneck"),
    ("views/compare.py", "Compare runs", "side by side"),
]


def demo_summary() -> None:
    """What the bundled demo holds, with its headline probe scores, and one click to its embeddings."""
    try:
        demo = state.load_from_disk(state.DEMO_DIR) if state.DEMO_DIR.is_dir() else None
    except RunError:
        demo = None
    if demo is None:
        st.info("The bundled demo run is not there: start at step 1, choose a family, then train a zoo on it.")
        return
    probes = (demo.report or {}).get("probes") or {}
    cloze = probes.get("cloze", {})
    st.markdown(f"The bundled **demo run** holds a zoo of {demo.n_models} small networks "
                f"({demo.family.n_functions} functions × {demo.zoo_config.models_per_function} seeds), an embedder "
                "trained on their input-gradients, and a sweep. Every page shows it until you pick another run in "
                "the sidebar.")  # fmt: skip
    row = st.container(horizontal=True, gap="large")
    row.metric("Networks", demo.n_models, width="content")
    if cloze.get("linear_accuracy") is not None:
        row.metric("Linear probe, held-out networks", f"{cloze['linear_accuracy']:.0%}",
                   f"chance {cloze['chance']:.0%}" if cloze.get("chance") else None, delta_color="off",
                   delta_arrow="off", width="content")  # fmt: skip
    if cloze.get("coefficient_r2") is not None:
        row.metric("Parameter R², held-out networks", f"{cloze['coefficient_r2']:.2f}", width="content")
    if st.button("See the demo's embeddings", type="primary", icon=":material/scatter_plot:", key="landing_go"):
        state.open_next(state.DEMO)  # the user's click: show the demo there
        st.switch_page("views/embeddings.py")


st.title("netembed")
st.markdown("#### Embeddings of networks, learned from their input-gradients")
st.caption("A network is described by what it computes: an embedder reads a trained network's input-gradients at "
           "random inputs and learns a vector for the whole network, which probes then read the network's "
           "function off.")  # fmt: skip
with st.container(border=True):
    demo_summary()
st.markdown("**The study, in order:**")
for page, label, what in STEPS:
    st.page_link(page, label=f"{label}: {what}")
