"""Embedder: train the cloze embedder on the current zoo live, and see what it predicts for hidden gradients."""

import math
from dataclasses import replace

import numpy as np
import streamlit as st

from app import state, widgets
from app.jobs import embedder_job
from app.jobs_ui import job_panel
from netembed.config import MASK_UNITS, ClozeConfig, ConfigError
from netembed.embedding import cloze_examples
from netembed.limits import check_pipeline
from netembed.plots import cloze_figure, training_figure

st.title("Cloze embedder")
st.caption("A set-encoder sees every sampled input x and the gradients of only some line-sections (or samples); "
           "it must predict the hidden gradients. Its bottleneck is the network's embedding.")  # fmt: skip

run = state.current_run()
if run is None:
    st.info("No run yet: train a zoo on the Zoo page first.")
    st.stop()
base = run.embedder.config if run.embedder is not None else ClozeConfig(steps=300)


def cloze_ui(base: ClozeConfig) -> ClozeConfig:
    """Widgets for the embedder's main settings -> a validated ClozeConfig (raises ConfigError)."""
    c1, c2, c3, c4, c5 = st.columns(5)
    with c1:
        bottleneck = widgets.number("Bottleneck", "emb_bottleneck", base.bottleneck, 1, base.d_model,
                                    help="embedding dimension")  # fmt: skip
    with c2:
        ratio = widgets.slider("Mask ratio", "emb_mask", float(base.mask_ratio), 0.05, 0.95, step=0.05,
                               help="share of line-sections (or samples) hidden in each example")  # fmt: skip
    with c3:
        unit = widgets.choice("Mask unit", "emb_unit", list(MASK_UNITS), base.mask_unit,
                              help="section: hide whole line-sections; sample: hide single samples")  # fmt: skip
    with c4:
        steps = widgets.number("Steps", "emb_steps", base.steps, 0, 100_000, step=50)
    with c5:
        seed = widgets.number("Seed", "emb_seed", base.seed, 0, 2**31 - 1)
    return replace(base, bottleneck=int(bottleneck), mask_ratio=round(float(ratio), 4), mask_unit=unit,
                   steps=int(steps), seed=int(seed))  # fmt: skip


with st.container(border=True):
    st.subheader("Train an embedder on this zoo")
    st.caption(f"Trains on the training seeds of the current run's {run.zoo.n_models} models, then probes the "
               "embeddings and every baseline. Runs in the background; the result becomes the current run.")  # fmt: skip
    try:
        config = cloze_ui(base)
        busy = state.job("embedder") is not None and state.job("embedder").running
        if st.button("Train embedder", type="primary", icon=":material/play_arrow:", disabled=busy):
            check_pipeline(run.family.n_functions, run.zoo.config, [config])
            family, zoo = run.family, run.zoo

            def adopt(job):
                job.result.meta["made_by"] = "app"
                state.set_made(job.result)

            state.start("embedder", embedder_job(family, zoo, config), adopt)
            st.rerun()
    except ConfigError as e:
        st.error(str(e))
    job_panel("embedder", "Embedder training")

emb = run.embedder
if emb is None:
    st.info("The current run has no embedder yet: train one above.")
    st.stop()

st.subheader(f"The embedder of {state.label(state.choice())}")
st.caption(emb.describe())
m1, m2, m3 = st.columns(3)
m1.metric("Cloze R² (held-out models)", f"{emb.cloze_r2_:.3f}" if math.isfinite(emb.cloze_r2_) else "n/a")
m2.metric("Steps", f"{emb.steps_done_} / {emb.config.steps}")
m3.metric("Training time", f"{emb.seconds_:.0f} s")
for note in emb.notes_:
    st.info(note)
if len(emb.loss_curve_):
    st.plotly_chart(training_figure(emb.log_steps_, {"loss": emb.loss_curve_, "r2 (validation)": emb.r2_curve_},
                                    title="training loss and validation R²"), key="emb_curves")  # fmt: skip

st.subheader("Masked examples")
st.caption("Held-out models: grey points are the gradients the embedder sees; circles are the hidden truth; "
           "crosses are its predictions.")  # fmt: skip
held_out = np.flatnonzero(~run.zoo.is_train)
examples_for = widgets.multi("Models", "emb_examples", held_out.tolist(),
                             [int(held_out[run.zoo.task_ids[held_out] == k][0]) for k in np.unique(run.zoo.task_ids[held_out])][:4],
                             fmt=lambda i: f"model {i} (f{run.zoo.task_ids[i]})", max_selections=6)  # fmt: skip
if examples_for:
    with st.spinner("Predicting hidden gradients..."):
        examples = state.derived("cloze_examples", lambda ids: cloze_examples(emb, run.zoo, list(ids)), tuple(examples_for))
    cols = st.columns(2)
    for j, ex in enumerate(examples):
        with cols[j % 2]:
            st.plotly_chart(cloze_figure(ex, title=f"model {ex['model']} (f{run.zoo.task_ids[ex['model']]})"),
                            key=f"cloze_{ex['model']}")  # fmt: skip
