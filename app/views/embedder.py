"""Embedder: train the cloze embedder on the current zoo live, and see what it predicts for hidden gradients."""

import math

import numpy as np
import streamlit as st

from app import mixed_ui, state, widgets
from app.history import HistoryFull, embedder_name
from app.jobs import embedder_job
from app.jobs_ui import job_panel
from netembed.config import ClozeConfig, ConfigError
from netembed.divergence import mostly_failed, quality_note
from netembed.embedding import cloze_examples
from netembed.limits import check_pipeline, estimate_cloze
from netembed.plots import cloze_figure, training_figure

st.title("Cloze embedder")
st.caption("A set-encoder sees every sampled input x and the gradients of only some line-sections (or samples); "
           "it must predict the hidden gradients. Its bottleneck is the network's embedding.")  # fmt: skip

run = state.current_run()
if run is None:
    st.info("No run yet: train a zoo on the Zoo page first.")
    st.stop()
base = run.embedder.config if run.embedder is not None else ClozeConfig()
DRAWN = ("bottleneck", "mask_ratio", "mask_unit", "steps", "seed")


def cloze_ui(base: ClozeConfig) -> ClozeConfig:
    """Widgets for the embedder's settings -> a validated ClozeConfig (raises ConfigError)."""
    c1, c2, c3, c4, c5 = st.columns(5)
    with c1:  # at most d_model: the config says so if not
        bottleneck = widgets.config_number(ClozeConfig, "bottleneck", "emb_bottleneck", "Bottleneck", base)
    with c2:
        ratio = widgets.config_number(ClozeConfig, "mask_ratio", "emb_mask", "Mask ratio", base, slider=True,
                                      step=0.05)  # fmt: skip
    with c3:
        unit = widgets.config_choice(ClozeConfig, "mask_unit", "emb_unit", "Mask unit", base)
    with c4:
        steps = widgets.config_number(ClozeConfig, "steps", "emb_steps", "Steps", base, step=50)
    with c5:
        seed = widgets.config_number(ClozeConfig, "seed", "emb_seed", "Seed", base)
    with st.expander("More embedder settings"):
        rest = widgets.more_settings(ClozeConfig, "emb", base, DRAWN)
    return ClozeConfig(bottleneck=bottleneck, mask_ratio=round(ratio, 4), mask_unit=unit, steps=steps, seed=seed,
                       **rest)  # fmt: skip


with st.container(border=True):
    st.subheader("Train an embedder on this zoo")
    zoo, _ = mixed_ui.one_architecture(run.zoo, "emb_arch", "An embedder")  # a mixed zoo: one of its parts
    st.caption(f"Trains on the training seeds of the current run's {zoo.n_models} models, then probes the "
               "embeddings and every baseline. Runs in the background; the result joins this session's runs "
               "(the sidebar offers to open it).")  # fmt: skip
    if mostly_failed(zoo):
        st.warning(f"{quality_note(zoo)} An embedder trained on this zoo learns from networks that do not "
                   "compute their functions.")  # fmt: skip
    try:
        config = cloze_ui(base)
        st.caption(state.duration_text("embedder", estimate_cloze(zoo.n_models, config).flops))
        busy = state.job("embedder") is not None and state.job("embedder").running
        if st.button("Train embedder", type="primary", icon=":material/play_arrow:", disabled=busy):
            if config.steps == 0:
                raise ConfigError("Steps = 0 trains nothing: the embedder would stay at its random init; "
                                  "set at least 1 step")  # fmt: skip
            check_pipeline(run.family.n_functions, zoo.config, [config])
            family = run.family

            def adopt(job):
                job.result.meta["made_by"] = "app"
                return state.add_run(job.result, embedder_name(job.result), "embedder")

            state.start("embedder", embedder_job(family, zoo, config), adopt,
                        flops=estimate_cloze(zoo.n_models, config).flops)  # fmt: skip
            st.rerun()
    except (ConfigError, HistoryFull) as e:
        st.error(str(e))
    job_panel("embedder", "Embedder training")

emb = run.embedder
if emb is None:
    st.info("The current run has no embedder yet: train one above.")
    st.stop()

st.subheader(f"The embedder of {state.label(state.choice())}")
st.caption(emb.describe())
m1, m2, m3 = st.columns(3)
m1.metric(f"Cloze R² ({int((~run.zoo.is_train).sum())} held-out models)",
          f"{emb.cloze_r2_:.3f}" if math.isfinite(emb.cloze_r2_) else "n/a")
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
if examples_for and run.zoo.input_dim > 1:
    st.info("Masked examples of 2D models are drawn on the Gradients page (region map, masked regions hatched).")
elif examples_for:
    with st.spinner("Predicting hidden gradients..."):
        examples = state.derived("cloze_examples", lambda ids: cloze_examples(emb, run.zoo, list(ids)), tuple(examples_for))
    cols = st.columns(2)
    for j, ex in enumerate(examples):
        with cols[j % 2]:
            st.plotly_chart(cloze_figure(ex, title=f"model {ex['model']} (f{run.zoo.task_ids[ex['model']]})"),
                            key=f"cloze_{ex['model']}")  # fmt: skip
