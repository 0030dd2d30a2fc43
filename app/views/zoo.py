"""Zoo: train K x M small MLPs live (off the script thread), then browse every model's fit."""

import numpy as np
import streamlit as st

from app import cluster_ui, family_ui, state, widgets
from app.history import HistoryFull, zoo_name
from app.jobs import mixed_zoo_job, sharded_zoo_job, zoo_job
from app.jobs_ui import job_panel
from netembed.config import ACTIVATIONS, ConfigError, FamilyConfig, MixedZooConfig, ZooConfig
from netembed.divergence import mostly_failed, quality_note, zoo_report
from netembed.family import FamilyError
from netembed.limits import check, estimate_sharded_zoo, estimate_zoo
from netembed.plots import ZOO_HEADERS, architecture_frame, zoo_curves_figure, zoo_frame
from netembed.run_schema import Run

st.title("Zoo of trained networks")
run = state.current_run()
base = run.zoo.config if run is not None else ZooConfig()
DRAWN = ("models_per_function", "width", "depth", "activation", "steps", "lr", "seed")
# a mixed zoo's architectures: every width x depth x activation chosen (the command line takes any list:
# `zoo --architectures`); the numbers offered, within ZooConfig's declared bounds
WIDTHS, DEPTHS = (4, 8, 16, 32, 64, 128, 256), (1, 2, 3, 4, 5, 6)


def architectures_ui(shown) -> str:
    """Widgets for a mixed zoo's architectures -> the `--architectures` text (every combination chosen);
    defaults: the shown run's architectures if it is a mixed zoo, else two widths x relu and sine."""
    parts = [p.config for p in shown.parts] if shown is not None and hasattr(shown, "parts") else []
    widths = sorted({c.width for c in parts}) or [16, 32]
    depths = sorted({c.depth for c in parts}) or [2]
    activations = sorted({c.activation for c in parts}) or ["relu", "sine"]
    widths = widgets.config_multi(ZooConfig, "width", "zoo_widths", "Widths", widths, WIDTHS)
    depths = widgets.config_multi(ZooConfig, "depth", "zoo_depths", "Depths", depths, DEPTHS)
    activations = widgets.config_multi(ZooConfig, "activation", "zoo_acts", "Activations", activations)
    for name, chosen in (("width", widths), ("depth", depths), ("activation", activations)):
        if not chosen:
            raise ConfigError(f"choose at least one {name} for the mixed zoo")
    activations = [a for a in ACTIVATIONS if a in activations]  # the declared order, whatever order they were picked
    text = ",".join(f"{w}x{d}:{a}" for w in sorted(widths) for d in sorted(depths) for a in activations)
    return MixedZooConfig(architectures=text).architectures  # checked as the command line checks it


def zoo_ui(base: ZooConfig, mixed: bool) -> ZooConfig:
    """Widgets for the zoo's settings -> a validated ZooConfig (raises ConfigError). A mixed zoo's
    width, depth and activation come from its architectures, so those three are drawn only for one."""
    c1, c2, c3, c4 = st.columns(4)
    width, depth, activation = base.width, base.depth, base.activation
    with c1:
        m = widgets.config_number(ZooConfig, "models_per_function", "zoo_m", "Models per function M", base)
        if not mixed:
            width = widgets.config_number(ZooConfig, "width", "zoo_width", "Width", base)
    if not mixed:
        with c2:
            depth = widgets.config_number(ZooConfig, "depth", "zoo_depth", "Depth", base)
            activation = widgets.config_choice(ZooConfig, "activation", "zoo_act", "Activation", base)
    with c3 if not mixed else c2:  # a mixed zoo has no width, depth or activation here: no empty column
        steps = widgets.config_number(ZooConfig, "steps", "zoo_steps", "Steps", base, step=100)
    with c3:
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
        mixed = widgets.toggle("Several architectures (a mixed zoo)", "zoo_mixed", hasattr(run.zoo, "parts")
                               if run is not None else False,
                               help="Train every chosen width x depth x activation on the same functions and seeds, "
                                    "one part after another, as `python -m netembed zoo --architectures` does; "
                                    "stored as one run.")  # fmt: skip
        architectures = architectures_ui(run.zoo if run is not None else None) if mixed else ""
        config = zoo_ui(base, mixed)
        on_ray = cluster_ui.run_on_ui(fam_config.n_functions, config, mixed)  # None: train on this server
        device = cluster_ui.device_ui() if on_ray is None else "cpu"  # a cluster's shards run on its CPUs
        if mixed:
            from netembed.mixed_zoo import part_configs  # the architectures' configs, checked one by one

            parts = part_configs(config, architectures)
        else:
            parts = [config]
        if mixed:
            st.caption(f"{len(parts)} architectures x {fam_config.n_functions} functions x "
                       f"{config.models_per_function} seeds = {len(parts) * fam_config.n_functions * config.models_per_function}"
                       f" models; the command line: `--architectures {architectures}`.")  # fmt: skip
        st.caption(state.duration_text("zoo", sum(estimate_zoo(fam_config.n_functions, p).flops for p in parts)))
        busy = state.job("zoo") is not None and state.job("zoo").running
        if st.button("Train zoo", type="primary", icon=":material/play_arrow:", disabled=busy):
            if config.steps == 0:
                raise ConfigError("Steps = 0 trains nothing: every model would stay at its random init; "
                                  "set at least 1 step")  # fmt: skip
            family = family_ui.cached_family(fam_config)
            # refuse a zoo too large for this machine (a mixed zoo's parts train one after another)
            if on_ray is None:
                flops = sum(check(estimate_zoo(family.n_functions, p, device)).flops for p in parts)
            else:  # sized per shard, as the CLI sizes `--shards`: each shard trains in its own worker
                shards = estimate_sharded_zoo(family.n_functions, config, on_ray.n_shards, on_ray.by)
                flops = check(shards).flops

            def adopt(job, family=family):
                new = Run(family=family, zoo=job.result, meta={"made_by": "app"})
                return state.add_run(new, zoo_name(new), "zoo")

            if mixed:
                job = mixed_zoo_job(family, config, architectures, device=device)
            elif on_ray is not None:
                job = sharded_zoo_job(family, config, "ray", on_ray.address, on_ray.workers, on_ray.n_shards, on_ray.by)
            else:
                job = zoo_job(family, config, device=device)
            state.start("zoo", job, adopt, flops=flops)
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
row = st.container(horizontal=True, gap="large")  # each metric as wide as its value: they wrap, never cut short
row.metric("Models", f"{zoo.n_models}", f"{run.family.n_functions} functions x {c.models_per_function}",
           delta_color="off", delta_arrow="off", width="content")  # fmt: skip
if hasattr(zoo, "architectures"):  # a mixed zoo (mixed_zoo.py): its architectures, the table says whose is whose
    row.metric("Networks", f"{len(zoo.parts)} architectures", ", ".join(zoo.labels), delta_color="off",
               delta_arrow="off", width="content")  # fmt: skip
else:
    row.metric("Network", f"1-{'-'.join([str(c.width)] * c.depth)}-1", c.activation, delta_color="off",
               delta_arrow="off", width="content")  # fmt: skip
row.metric("Median fit MSE", "n/a" if health["fit_mse_median"] is None else f"{health['fit_mse_median']:.2e}",
           width="content")  # fmt: skip
row.metric("Failed", f"{health['n_failed']}", f"{zoo.steps_done}/{c.steps} steps", delta_color="off",
           delta_arrow="off", help=f"fit MSE over {c.fail_relative_mse:g} of the target's variance on the dense grid, or diverged", width="content")  # fmt: skip
note = quality_note(zoo)
if note and (mostly_failed(zoo) or health["n_diverged"]):
    st.warning(note)
elif note:
    st.info(note)
if zoo.loss_curves.shape[1]:
    st.plotly_chart(zoo_curves_figure(zoo), key="zoo_curves")

if hasattr(zoo, "parts"):  # a mixed zoo: the fit of each architecture, then every model with its architecture
    st.markdown("**Fit per architecture**")
    st.dataframe(architecture_frame(zoo), hide_index=True, key="zoo_arch_table",
                 column_config={name: st.column_config.NumberColumn(format="%.2e")
                                for name in ("median fit MSE (output units²)", "worst fit MSE (output units²)")})  # fmt: skip

table = zoo_frame(zoo)
mixed_run = "architecture" in table
f1, f2 = st.columns(2) if mixed_run else (st.container(), None)  # pickers; split and failed-only below them
if mixed_run:
    with f2:
        architectures = widgets.multi("Architectures", "zoo_filter_arch", list(zoo.labels), [],
                                      placeholder="all architectures")  # fmt: skip
with f1:
    functions = widgets.multi("Functions", "zoo_filter_functions", sorted(set(table.function.tolist())), [],
                              fmt=lambda k: f"f{k}", placeholder="all functions")  # fmt: skip
with st.container(horizontal=True, gap="large", vertical_alignment="bottom"):
    split = widgets.choice("Split", "zoo_filter_split", ["all", "train", "held-out"], "all", horizontal=True,
                           width="content")  # fmt: skip
    failed_only = widgets.toggle("Failed only", "zoo_filter_failed", False, width="content")
keep = np.ones(len(table), dtype=bool)
if mixed_run and architectures:
    keep &= table.architecture.isin(architectures).to_numpy()
if functions:
    keep &= table.function.isin(functions).to_numpy()
if split != "all":
    keep &= (table.split == split).to_numpy()
if failed_only:
    keep &= table.failed.to_numpy()
shown = table[keep].rename(columns=ZOO_HEADERS)  # readable headers, also in the table's CSV download
st.dataframe(shown, hide_index=True, key="zoo_table",
             column_config={ZOO_HEADERS["fit_mse"]: st.column_config.NumberColumn(format="%.2e"),
                            ZOO_HEADERS["function"]: st.column_config.NumberColumn(format="f%d")})  # fmt: skip
st.caption(f"{len(shown)} of {len(table)} models shown.")
