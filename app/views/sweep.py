"""Sweep: one embedder per (mask ratio, bottleneck) on the current zoo, as a heatmap of probe accuracy."""

from dataclasses import replace

import pandas as pd
import streamlit as st

from app import state, widgets
from app.jobs import sweep_job
from app.jobs_ui import job_panel
from netembed.config import SWEEP_BOTTLENECKS, SWEEP_MASK_RATIOS, ClozeConfig, ConfigError
from netembed.limits import check_pipeline
from netembed.plots import PROBE_COLUMNS, sweep_figure

# the grid one can pick from; the default grid is the command line's (config.SWEEP_*)
RATIOS = sorted({0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, *SWEEP_MASK_RATIOS})
BOTTLENECKS = sorted({1, 2, 3, 4, 6, 8, 16, *SWEEP_BOTTLENECKS})

st.title("Sweep: mask ratio x bottleneck")
run = state.current_run()
if run is None:
    st.info("No run yet: train a zoo on the Zoo page first.")
    st.stop()

with st.container(border=True):
    st.subheader("Run a sweep on this zoo")
    st.caption("Trains one embedder per grid cell on the current run's zoo (other settings as on the Embedder "
               "page) and probes each; runs in the background.")  # fmt: skip
    c1, c2, c3 = st.columns([2, 2, 1])
    embedder = run.embedder.config if run.embedder is not None else ClozeConfig()
    with c1:
        ratios = widgets.multi("Mask ratios", "sw_ratios", RATIOS, list(SWEEP_MASK_RATIOS))
    with c2:
        bottlenecks = widgets.multi("Bottlenecks", "sw_bottlenecks", BOTTLENECKS, list(SWEEP_BOTTLENECKS))
    with c3:
        steps = widgets.config_number(ClozeConfig, "steps", "sw_steps", "Steps per embedder", embedder, step=50)
    try:
        base = replace(embedder, steps=steps)
        n_cells = len(ratios) * len(bottlenecks)
        busy = state.job("sweep") is not None and state.job("sweep").running
        if st.button(f"Run sweep ({n_cells} embedders)", type="primary", icon=":material/play_arrow:",
                     disabled=busy or not n_cells):  # fmt: skip
            configs = [replace(base, mask_ratio=r, bottleneck=b) for r in ratios for b in bottlenecks]
            check_pipeline(run.family.n_functions, run.zoo.config, configs)  # validates every cell, refuses a huge grid
            key, family, zoo = state.run_key(), run.family, run.zoo

            job = sweep_job(family, zoo, sorted(ratios), sorted(bottlenecks), base)
            state.start("sweep", job, lambda job, key=key: state.keep_sweep(key, job.result))
            st.rerun()
    except ConfigError as e:
        st.error(str(e))
    job_panel("sweep", "Sweep")

rows = state.sweep_rows(state.run_key()) or (run.report or {}).get("sweep")
if not rows:
    st.info("No sweep for this run yet: run one above.")
    st.stop()
# coefficient R^2: a regression of each member's parameters (polynomial coefficients, sine a, b, c), the score that
# does not saturate where the accuracies read 1.0 everywhere (rows made before it was added lack it)
metrics = [m for m in ("linear_accuracy", "knn_accuracy", "nmi", "coefficient_r2", "cloze_r2")
           if any(row.get(m) is not None for row in rows)]  # fmt: skip
default_metric = "coefficient_r2" if "coefficient_r2" in metrics else "linear_accuracy"
metric = widgets.choice("Score", "sw_metric", metrics, default_metric, fmt=lambda m: PROBE_COLUMNS.get(m, "cloze R²"),
                        horizontal=True)  # fmt: skip
st.plotly_chart(sweep_figure(rows, metric, title=f"{PROBE_COLUMNS.get(metric, 'cloze R²')} on held-out seeds"),
                key="sweep_heatmap")  # fmt: skip
table = pd.DataFrame(rows)
st.dataframe(table, hide_index=True, key="sweep_table")
st.download_button("Sweep table (CSV)", table.to_csv(index=False), "sweep.csv", "text/csv", on_click="ignore",
                   icon=":material/download:")  # fmt: skip
