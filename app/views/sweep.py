"""Sweep: one embedder per (mask ratio, bottleneck, seed) on the current zoo, as a heatmap of a probe score."""

from dataclasses import replace

import streamlit as st

from app import mixed_ui, state, widgets
from app.history import HistoryFull, sweep_name
from app.jobs import sweep_job
from app.jobs_ui import job_panel
from netembed.config import SWEEP_BOTTLENECKS, SWEEP_MASK_RATIOS, ClozeConfig, ConfigError
from netembed.limits import check_pipeline
from netembed.store import Run
from netembed.sweep_plots import SWEEP_SCORES, cloze_settings_text, sweep_figure, sweep_frame

# the grid one can pick from; the default grid is the command line's (config.SWEEP_*)
RATIOS = sorted({0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, *SWEEP_MASK_RATIOS})
BOTTLENECKS = sorted({1, 2, 3, 4, 6, 8, 16, *SWEEP_BOTTLENECKS})
SEEDS = list(range(10))

st.title("Sweep: mask ratio x bottleneck")
run = state.current_run()
if run is None:
    st.info("No run yet: train a zoo on the Zoo page first.")
    st.stop()

with st.container(border=True):
    st.subheader("Run a sweep on this zoo")
    zoo, _ = mixed_ui.one_architecture(run.zoo, "sw_arch", "Each embedder of the sweep")  # a mixed zoo: one part
    embedder = run.embedder.config if run.embedder is not None else ClozeConfig()
    source = "the current run's embedder" if run.embedder is not None else "the default embedder (this run has none)"
    st.caption(f"Trains one embedder per cell on the current run's zoo and probes each; runs in the background "
               f"and the result joins this session's runs. Every cell uses the settings of {source} "
               f"({cloze_settings_text(embedder)}) except the mask ratio, bottleneck, seed and steps chosen "
               "here.")  # fmt: skip
    c1, c2, c3, c4 = st.columns([2, 2, 2, 1])
    with c1:
        ratios = widgets.multi("Mask ratios", "sw_ratios", RATIOS, list(SWEEP_MASK_RATIOS))
    with c2:
        bottlenecks = widgets.multi("Bottlenecks", "sw_bottlenecks", BOTTLENECKS, list(SWEEP_BOTTLENECKS))
    with c3:
        seeds = widgets.multi("Embedder seeds", "sw_seeds", SEEDS, [embedder.seed % len(SEEDS)],
                              help="one embedder per seed in every cell; two or more give each score's spread")  # fmt: skip
    with c4:
        steps = widgets.config_number(ClozeConfig, "steps", "sw_steps", "Steps per embedder", embedder, step=50)
    try:
        base = replace(embedder, steps=steps)
        n_cells = len(ratios) * len(bottlenecks) * len(seeds)
        configs = [replace(base, mask_ratio=r, bottleneck=b, seed=s) for r in ratios for b in bottlenecks for s in seeds]
        if n_cells:
            from netembed.limits import estimate_cloze

            flops = sum(estimate_cloze(zoo.n_models, c).flops for c in configs)
            st.caption(state.duration_text("sweep", flops))
        busy = state.job("sweep") is not None and state.job("sweep").running
        if st.button(f"Run sweep ({n_cells} embedders)", type="primary", icon=":material/play_arrow:",
                     disabled=busy or not n_cells):  # fmt: skip
            if steps == 0:
                raise ConfigError("Steps = 0 trains nothing: every embedder would stay at its random init; "
                                  "set at least 1 step")  # fmt: skip
            check_pipeline(run.family.n_functions, zoo.config, configs)  # validates every cell, refuses a huge grid
            source_name, family, shown = state.label(state.choice()), run.family, run

            def adopt(job, shown=shown, source_name=source_name, zoo=zoo):  # zoo: the part swept, if mixed
                new = Run(family=shown.family, zoo=zoo, embedder=shown.embedder,
                          report={**(shown.report or {}), "sweep": job.result}, meta={**shown.meta, "made_by": "app"})
                return state.add_run(new, sweep_name(source_name.removesuffix(" (unsaved)"), job.result), "sweep")

            job = sweep_job(family, zoo, sorted(ratios), sorted(bottlenecks), base, seeds=sorted(seeds))
            state.start("sweep", job, adopt, flops=flops)
            st.rerun()
    except (ConfigError, HistoryFull) as e:
        st.error(str(e))
    job_panel("sweep", "Sweep")

rows = (run.report or {}).get("sweep")
if not rows:
    st.info("No sweep for this run yet: run one above (its result is a new run holding this one and the sweep).")
    st.stop()
# coefficient R^2: a regression of each member's parameters (polynomial coefficients, sine a, b, c), the score that
# does not saturate where the accuracies read 1.0 everywhere (rows made before it was added lack it)
metrics = [m for m in SWEEP_SCORES if any(row.get(m) is not None for row in rows)]
default_metric = "coefficient_r2" if "coefficient_r2" in metrics else "linear_accuracy"
metric = widgets.choice("Score", "sw_metric", metrics, default_metric, fmt=SWEEP_SCORES.get, horizontal=True)
n_seeds = len({r.get("seed", 0) for r in rows})
spread = f", mean ± standard deviation over {n_seeds} seeds" if n_seeds > 1 else ""
n_held = rows[0].get("n_held_out")
st.plotly_chart(sweep_figure(rows, metric, title=f"{SWEEP_SCORES[metric]} on held-out seeds"
                             f"{f' (n = {n_held} models)' if n_held else ''}{spread}"), key="sweep_heatmap")  # fmt: skip
table = sweep_frame(rows)
st.dataframe(table, hide_index=True, key="sweep_table")
st.download_button("Sweep table (CSV)", table.to_csv(index=False), f"sweep-{state.file_stem()}.csv", "text/csv",
                   on_click="ignore", icon=":material/download:")  # fmt: skip
