"""Inside a network: the hidden units of a digits classifier as points of their cloze embedding.

Train a digits network (planted modules with a ground truth, or the plain 10-class MLP) and a
cloze embedder on its units, in the background; see the units projected, coloured by planted
module (or by a k-means group of their embeddings); click a unit for its mean gradient over the
digits (8x8), the digits that drive it most and its nearest units. This page keeps its result in
st.session_state["inside"] (not the shared run: a units study is not a zoo run).
"""

import numpy as np
import streamlit as st

from app import state, widgets
from app.jobs import Job
from app.jobs_ui import job_panel
from netembed.config import ClozeConfig, ConfigError
from netembed.digits import UnitsConfig, load_digits_split
from netembed.projection import project
from netembed.unit_cloze import UnitEmbedConfig
from netembed.unit_plots import image_grid, unit_groups_figure, units_figure
from netembed.units import driving_digits, mean_unit_gradients, unit_layers
from netembed.units_pipeline import unit_features_for_plot

KEY = "inside"  # this page's result in st.session_state: {"run": UnitsRun, "images": (n_units, 64)}
NAMES = {"cloze": "cloze embedding", "incoming_weights": "incoming weights", "incoming_magnitudes": "|incoming weights|",
         "outgoing_magnitudes": "|outgoing weights|", "activation_stats": "activation statistics",
         "activations": "activations at fixed digits", "gradients": "gradients at fixed digits",
         "gradients_pca": "gradients, PCA"}  # fmt: skip

st.title("Inside a network")
st.caption("The hidden units of a digits classifier (scikit-learn's 8x8 digits) described by a cloze embedder: "
           "each unit is read as a function of the previous layer's activations along one previous unit at a "
           "time, and the embedder's answers say which units it is wired to. With planted modules (small "
           "networks trained on separate sub-tasks, stitched and shuffled) the modules are the ground truth.")  # fmt: skip


def units_job(network: str, units: UnitsConfig, embed: UnitEmbedConfig, cloze: ClozeConfig) -> Job:
    from netembed.units_pipeline import run_units

    def work(report):
        def progress(stage, fraction, info):
            overall = {"network": 0.2 * fraction, "embedder": 0.2 + 0.7 * fraction, "scores": 0.9 + 0.1 * fraction}
            step = round(fraction * cloze.steps) if stage == "embedder" else (cloze.steps if stage == "scores" else 0)
            values = {k: info[k] for k in ("loss", "r2") if k in info}
            return report(step, fraction=overall[stage], stage=stage, **values)

        run = run_units(network, units, embed, cloze, progress=progress)
        digits = load_digits_split(units.test_fraction, units.seed)
        return {"run": run, "images": mean_unit_gradients(run.net, digits.x_train), "digits": digits}

    return Job(name="units", total=cloze.steps, work=work)


with st.container(border=True):
    st.subheader("Train a network and the embedder on its units")
    c1, c2, c3, c4 = st.columns(4)
    network = c1.radio("Network", ["planted", "plain"], key="inside_network", horizontal=True,
                       format_func={"planted": "planted modules", "plain": "plain 10-class MLP"}.get)  # fmt: skip
    with c1:
        n_modules = widgets.config_number(UnitsConfig, "n_modules", "inside_modules", "Modules",
                                          disabled=network == "plain")  # fmt: skip
        width = widgets.config_number(UnitsConfig, "module_width", "inside_width", "Units per module and layer",
                                      disabled=network == "plain")  # fmt: skip
    with c2:
        plain_width = widgets.config_number(UnitsConfig, "plain_width", "inside_plain_width", "Plain MLP width",
                                            disabled=network == "planted")  # fmt: skip
        fine_tune = widgets.config_number(UnitsConfig, "fine_tune_steps", "inside_ft", "Joint fine-tuning steps",
                                          disabled=network == "plain")  # fmt: skip
        net_steps = widgets.config_number(UnitsConfig, "steps", "inside_net_steps", "Network training steps")
    with c3:
        embed_steps = widgets.config_number(ClozeConfig, "steps", "inside_embed_steps", "Embedder steps",
                                            base=ClozeConfig(steps=300, d_model=32))  # fmt: skip
        d_model = widgets.config_number(ClozeConfig, "d_model", "inside_d_model", "Embedder width",
                                        base=ClozeConfig(d_model=32))  # fmt: skip
    with c4:
        seed = widgets.config_number(UnitsConfig, "seed", "inside_seed", "Seed")
        unit_input = widgets.config_choice(UnitEmbedConfig, "unit_input", "inside_unit_input", "A unit is a function of")
    busy = state.job("units") is not None and state.job("units").running
    if st.button("Train network and embedder", type="primary", icon=":material/play_arrow:", disabled=busy,
                 key="inside_train"):  # fmt: skip
        try:
            units = UnitsConfig(n_modules=n_modules, module_width=width, plain_width=plain_width,
                                fine_tune_steps=fine_tune, steps=net_steps, seed=seed)  # fmt: skip
            embed = UnitEmbedConfig(unit_input=unit_input)
            cloze = ClozeConfig(steps=embed_steps, d_model=d_model, n_heads=2, mask_unit="sample", seed=seed)

            def adopt(job):
                st.session_state[KEY] = job.result

            state.start("units", units_job(network, units, embed, cloze), adopt)
            st.rerun()
        except ConfigError as e:
            st.error(str(e))
    job_panel("units", "Units study")

result = st.session_state.get(KEY)
if result is None:
    st.info("Nothing trained yet on this page: press the button above (planted modules with the defaults take "
            "a few minutes on a shared 2-core machine).")  # fmt: skip
    st.stop()

run, images, digits = result["run"], result["images"], result["digits"]
net, report = run.net, run.report
layers = unit_layers(net)
planted = net.unit_modules is not None
features = unit_features_for_plot(run)
accuracy = ", ".join(f"{n} {a:.2f}" for n, a in zip(net.task_names, net.test_accuracy)) if planted else \
    f"{net.test_accuracy[0]:.3f}"  # fmt: skip
st.caption(f"{'Planted modules' if planted else 'Plain MLP'} 64 -> {' -> '.join(map(str, net.widths))} -> "
           f"{len(net.task_names)}; test accuracy {accuracy}"
           + (f"; off-block weight share {report['network']['off_block_fraction']:.3f}" if planted else "")
           + f"; embedder cloze R² {report['embedder']['cloze_r2'] or float('nan'):.3f}.")  # fmt: skip

if planted:
    colour_by, colour_names = np.concatenate(net.unit_modules), [f"module {k}: {n}" for k, n in enumerate(net.task_names)]
else:  # no ground truth: colour by k-means groups of the units' embeddings (the groups below)
    from sklearn.cluster import KMeans

    k = min(8, len(features) - 1)
    colour_by = KMeans(k, n_init=4, random_state=0).fit_predict(features)
    colour_names = [f"group {g}" for g in range(k)]

# A click on the scatter chooses a unit; read it before the picker is drawn so the picker follows.
event = st.session_state.get("inside_scatter")
points_clicked = ((event or {}).get("selection") or {}).get("points") or []
if points_clicked:
    custom = points_clicked[0].get("customdata")
    if isinstance(custom, dict):
        custom = [custom[k] for k in sorted(custom, key=int)]
    try:
        clicked = int(custom[0])
    except (TypeError, ValueError, IndexError, KeyError):
        clicked = None
    if clicked is not None and 0 <= clicked < len(layers) and st.session_state.get("inside_last_click") != clicked:
        st.session_state["inside_last_click"] = clicked
        st.session_state["inside_unit"] = clicked

c1, c2 = st.columns([1, 3])
with c1:
    method = st.radio("Projection", ["pca", "umap"], key="inside_method", horizontal=True, format_func=str.upper)
    unit = st.selectbox("Unit", list(range(len(layers))), key="inside_unit", help="or click a point",
                        format_func=lambda u: f"unit {u} (layer {layers[u]}"
                        + (f", module {colour_by[u]})" if planted else ")"))  # fmt: skip
    n_near = st.slider("Nearest units", 1, 12, 6, key="inside_near")
with c2:
    with st.spinner("Projecting..."):
        points = project(features, method, random_state=0)
    st.plotly_chart(units_figure(points, layers, colour_by, colour_names, selected=unit,
                                 title=f"{method.upper()} of the units' cloze descriptions: colour = "
                                 f"{'planted module' if planted else 'k-means group'}, symbol = layer"),
                    key="inside_scatter", on_select="rerun", selection_mode="points")  # fmt: skip

same_layer = np.flatnonzero(layers == layers[unit])
d = np.linalg.norm(features[same_layer] - features[unit], axis=1)
near = same_layer[np.argsort(d, kind="stable")][1 : n_near + 1]  # within its layer: descriptions compare there
top = driving_digits(net, digits.x_train, unit, 6)
st.subheader(f"Unit {unit} (layer {layers[unit]})")
g1, g2 = st.columns([1, 2])
g1.plotly_chart(image_grid(images[[unit]], [f"mean gradient of unit {unit}"], cols=1, title=""), key="inside_grad")
g2.plotly_chart(image_grid(digits.x_train[top].numpy(), [f"digit {int(digits.y_train[i])}" for i in top], cols=6,
                           signed=False, title="the digits that drive it most"), key="inside_digits")  # fmt: skip
st.plotly_chart(image_grid(images[near], [f"unit {u}" + (f" (m{colour_by[u]})" if planted else "") for u in near],
                           cols=max(1, len(near)), title="its nearest units in the embedding (same layer): mean gradients"),
                key="inside_near_grads")  # fmt: skip

st.subheader("The units grouped")
layer_pick = st.radio("Layer", sorted(set(layers.tolist())), key="inside_group_layer", horizontal=True)
here = np.flatnonzero(layers == layer_pick)
activity = np.abs(images[here]).sum(1)
st.plotly_chart(unit_groups_figure(images[here], colour_by[here], activity, per_group=8,
                                   group_names=[colour_names[g] for g in np.unique(colour_by[here])],
                                   title=f"layer {layer_pick}: one row per {'planted module' if planted else 'group'}, "
                                   "each unit's mean gradient over the digits (red: brighter pixels raise it)"),
                key="inside_groups")  # fmt: skip

if planted:
    st.subheader("How well each description finds the planted modules")
    rows = [{"description": NAMES.get(name, name), "NMI": m["nmi"], "ARI": m["ari"], "probe accuracy": m["probe_accuracy"],
             **{f"NMI {k}": v["nmi"] for k, v in m["layers"].items()}} for name, m in report["modules"].items()]  # fmt: skip
    st.caption("k-means with as many clusters as modules, within each hidden layer (NMI, ARI: mean over layers); "
               "probe: logistic regression trained on 70% of each module's units, accuracy on the rest.")  # fmt: skip
    st.dataframe(rows, hide_index=True, key="inside_scores")
