"""Zoo: train K x M small MLPs live (off the script thread), then browse every model's fit."""

import numpy as np
import streamlit as st

from app import family_ui, state, widgets
from app.history import HistoryFull, zoo_name
from app.jobs import zoo_job
from app.jobs_ui import job_panel
from netembed.config import ConfigError, FamilyConfig, ZooConfig
from netembed.divergence import mostly_failed, quality_note, zoo_report
from netembed.family import FamilyError
from netembed.limits import check_zoo, estimate_zoo
from netembed.plots import zoo_curves_figure, zoo_frame
from netembed.run_schema import Run

st.title("Zoo of trained networks")
run = state.current_run()
base = run.zoo.config if run is not None else ZooConfig()
DRAWN = ("models_per_function", "width", "depth", "activation", "steps", "lr", "seed")


def zoo_ui(base: ZooConfig) -> ZooConfig:
    """Widgets for the zoo's settings -> a validated ZooConfig (raises ConfigError)."""
    c1, c2, c3, c4 = st.columns(4)
    with c1:
        m = widgets.config_number(ZooConfig, "models_per_function", "zoo_m", "Models per function M", base)
        width = widgets.config_number(ZooConfig, "width", "zoo_width", "Width", base)
    with c2:
        depth = widgets.config_number(ZooConfig, "depth", "zoo_depth", "Depth", base)
        activation = widgets.config_choice(ZooConfig, "activation", "zoo_act", "Activation", base)
    with c3:
        steps = widgets.config_number(ZooConfig, "steps", "zoo_steps", "Steps", base, step=100)
        lr = widgets.config_number(ZooConfig, "lr", "zoo_lr", "Learning rate", base, step=1e-3, format="%.1e")
    with c4:
        seed = widgets.config_number(ZooConfig, "seed", "zoo_seed", "Seed", base)
    with st.expander("More zoo settings"):
        rest = widgets.more_settings(ZooConfig, "zoo", base, DRAWN)
    return ZooConfig(models_per_function=m, width=width, depth=depth, activation=activation, steps=steps, lr=lr,
                     seed=seed, **rest)  # fmt: skip


def zoo_verdict(job) -> str | None:
    """The job panel's warning instead of a green banner when most of the new zoo failed."""
    return quality_note(job.result) if job.result is not None and mostly_failed(job.result) else None


with st.container(border=True):
    st.subheader("Train a new zoo")
    fam_base = run.family.config if run is not None else FamilyConfig()
    try:
        fam_config = family_ui.family_setting(fam_base)
        st.caption(f"On the family from the Family page: {family_ui.describe(fam_config)}. Training runs in the "
                   "background: change pages freely; the result joins this session's runs (the sidebar offers to "
                   "open it).")  # fmt: skip
        config = zoo_ui(base)
        st.caption(state.duration_text("zoo", estimate_zoo(fam_config.n_functions, config).flops))
        busy = state.job("zoo") is not None and state.job("zoo").running
        if st.button("Train zoo", type="primary", icon=":material/play_arrow:", disabled=busy):
            if config.steps == 0:
                raise ConfigError("Steps = 0 trains nothing: every model would stay at its random init; "
                                  "set at least 1 step")  # fmt: skip
            family = family_ui.cached_family(fam_config)
            estimate = check_zoo(family.n_functions, config)  # refuse a zoo too large for this machine

            def adopt(job, family=family):
                new = Run(family=family, zoo=job.result, meta={"made_by": "app"})
                return state.add_run(new, zoo_name(new), "zoo")

            state.start("zoo", zoo_job(family, config), adopt, flops=estimate.flops)
            st.rerun()  # redraw with the live panel polling
    except (ConfigError, FamilyError, HistoryFull) as e:
        st.error(str(e))
    job_panel("zoo", "Zoo training", verdict=zoo_verdict)

if run is None:
    st.info("No run to show yet: train a zoo above.")
    st.stop()

zoo = run.zoo
st.subheader(f"The zoo of {state.label(state.choice())}")
c = zoo.config
health = zoo_report(zoo)
m1, m2, m3, m4 = st.columns(4)
m1.metric("Models", f"{zoo.n_models}", f"{run.family.n_functions} functions x {c.models_per_function}",
          delta_color="off", delta_arrow="off")  # fmt: skip
if hasattr(zoo, "architectures"):  # a mixed zoo (mixed_zoo.py): its architectures, the table says whose is whose
    m2.metric("Networks", f"{len(zoo.parts)} architectures", ", ".join(zoo.labels), delta_color="off", delta_arrow="off")
else:
    m2.metric("Network", f"1-{'-'.join([str(c.width)] * c.depth)}-1", c.activation, delta_color="off", delta_arrow="off")
m3.metric("Median fit MSE", "n/a" if health["fit_mse_median"] is None else f"{health['fit_mse_median']:.2e}")
m4.metric("Failed", f"{health['n_failed']}", f"{zoo.steps_done}/{c.steps} steps", delta_color="off",
          delta_arrow="off", help=f"fit MSE over {c.fail_relative_mse:g} of the target's variance on the dense grid, or diverged")  # fmt: skip
note = quality_note(zoo)
if note and (mostly_failed(zoo) or health["n_diverged"]):
    st.warning(note)
elif note:
    st.info(note)
if zoo.loss_curves.shape[1]:
    st.plotly_chart(zoo_curves_figure(zoo), key="zoo_curves")

table = zoo_frame(zoo)
f1, f2, f3 = st.columns([3, 2, 1], vertical_alignment="bottom")
with f1:
    functions = widgets.multi("Functions", "zoo_filter_functions", sorted(set(table.function.tolist())), [],
                              fmt=lambda k: f"f{k}", placeholder="all functions")  # fmt: skip
with f2:
    split = widgets.choice("Split", "zoo_filter_split", ["all", "train", "held-out"], "all", horizontal=True)
with f3:
    failed_only = widgets.toggle("Failed only", "zoo_filter_failed", False)
keep = np.ones(len(table), dtype=bool)
if functions:
    keep &= table.function.isin(functions).to_numpy()
if split != "all":
    keep &= (table.split == split).to_numpy()
if failed_only:
    keep &= table.failed.to_numpy()
shown = table[keep]
st.dataframe(shown, hide_index=True, key="zoo_table",
             column_config={"fit_mse": st.column_config.NumberColumn("fit MSE", format="%.2e"),
                            "function": st.column_config.NumberColumn("function", format="f%d")})  # fmt: skip
st.caption(f"{len(shown)} of {len(table)} models shown.")
