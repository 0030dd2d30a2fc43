"""Embeddings: where the models land, how well probes read their function off, and who their neighbours are."""

import numpy as np
import pandas as pd
import streamlit as st

from app import state, widgets
from app.jobs_ui import job_panel
from netembed.embedding import EMBED_SEED
from netembed.gradients import NoExactSections, line_sections
from netembed.pipeline import projection
from netembed.plots import (
    add_imported_points,
    confusion_figure,
    embedding_figure,
    embeddings_frame,
    gradient_figure,
    probe_frame,
)
from netembed.probes import nearest_models
from netembed.projection import METHODS, project

NAMES = {"cloze": "cloze embedder", "raw_gradients": "raw gradients", "outputs": "raw outputs",
         "weights": "flat weights", "weight_stats": "weight statistics", "supervised": "supervised (upper bound)"}  # fmt: skip

PROTOCOL_NAMES = {"seeds": "held-out seeds", "functions": "held-out functions", "parameters": "parameter regression"}


def protocol_scores(run) -> dict | None:
    """The run's held-out-function and parameter-regression scores: its report's, or computed in this session."""
    return (run.report or {}).get("protocols") or st.session_state.get("emb_protocol_scores", {}).get(state.run_key())


def protocols_job(family, zoo, config):
    """Train an embedder on the seen functions and score every description on the unseen ones, in the background."""
    from app.jobs import Job
    from netembed.protocols import function_protocols

    def work(report):
        def progress(step, loss, r2):
            return report(step, stage="embedder on the seen functions", loss=loss, r2=r2)

        return function_protocols(zoo, family, config, random_state=config.seed, progress=progress)

    return Job(name="protocols", total=config.steps, work=work)


def keep_protocol_scores(key, job):
    st.session_state.setdefault("emb_protocol_scores", {})[key] = job.result


def protocol_tables(run, protocol: str) -> None:
    """The table of one protocol; where the run has none, a button computes it in the background."""
    scores = protocol_scores(run)
    if scores is None or protocol not in scores:
        st.info("This run's report has no held-out-function scores (made with `python -m netembed run --protocols "
                "seeds,functions,parameters`, or computed here: an embedder trained on two thirds of the functions, "
                "about the Embedder page's training time).")  # fmt: skip
        from netembed.protocols import check_protocol_zoo, default_unseen

        try:
            check_protocol_zoo(run.family.n_functions, run.zoo.config.models_per_function, default_unseen(run.family.n_functions))
        except ValueError as e:
            st.warning(str(e))
            return
        busy = state.job("protocols") is not None and state.job("protocols").running
        if st.button("Compute held-out functions and parameter regression", icon=":material/play_arrow:", disabled=busy):
            key = state.run_key()
            state.start("protocols", protocols_job(run.family, run.zoo, run.embedder.config),
                        lambda job, key=key: keep_protocol_scores(key, job))  # fmt: skip
            st.rerun()
        job_panel("protocols", "Held-out functions")
        return
    split = scores["split"]
    st.caption(f"Embedder trained on the models of {len(split['seen'])} functions; scores on the models of the "
               f"{len(split['unseen'])} functions it never saw (f{', f'.join(map(str, split['unseen']))}).")  # fmt: skip
    if protocol == "functions":
        table = pd.DataFrame([{"description": NAMES.get(k, k), "retrieval@5": v["retrieval_at_5"], "NMI": v["nmi"],
                               "1-shot": v["one_shot"], "5-shot": v["five_shot"]} for k, v in scores["functions"].items()])  # fmt: skip
        st.caption("retrieval@5: share of a model's 5 nearest neighbours (among unseen-function models) that fit "
                   "the same function; NMI: k-means against the true functions; k-shot: logistic regression on k "
                   "seeds per unseen function, accuracy on the rest. Empty: not enough seeds.")  # fmt: skip
    else:
        rows = []
        for k, per_param in scores["parameters"].items():
            row = {"description": NAMES.get(k, k)}
            for name, v in per_param.items():
                row[f"{name} R²"], row[f"{name} MSE"] = v["r2"], v["mse"]
            rows.append(row)
        table = pd.DataFrame(rows)
        st.caption("Ridge regression from each description to the members' parameters (supervised_mlp: an MLP "
                   "regressor on the grid gradients, a ceiling), fitted on the seen functions' models; R² and MSE on "
                   "the unseen ones. Empty: the parameter is the same for every member (no R²).")  # fmt: skip
    st.dataframe(table, hide_index=True, key=f"protocol_table_{protocol}",
                 column_config={c: st.column_config.NumberColumn(format="%.3f") for c in table.columns[1:]})  # fmt: skip


st.title("Embeddings")
run = state.current_run()
if run is None or run.embedder is None:
    st.info("The current run has no embedder: train one on the Embedder page (or pick the demo run).")
    st.stop()
zoo, family = run.zoo, run.family


def features_of(run):
    """The stored embeddings; a run saved without them is embedded now with the pipeline's input draw."""
    if run.embedder.embeddings_ is not None:
        return run.embedder.embeddings_
    from netembed.embedding import embed

    return embed(run.embedder, run.zoo, seed=EMBED_SEED)


features = state.derived("features", lambda: features_of(run))
stored = run.embedder.embeddings_ is not None  # then stored projections match the embeddings


def networks_trained_elsewhere() -> list:
    """Upload safetensors nn.Sequential MLPs (1 -> 1): each is embedded and its neighbours and function predicted.

    Returns imported.Prediction objects for the files that loaded; a file that does not is named in an error.
    Each file is read once per (upload, activation, range): its verdict is kept in the session."""
    from netembed.config import ACTIVATIONS
    from netembed.imported import ImportedNetworkError, load_network, parse_input_range, predict
    from netembed.limits import max_upload_bytes

    with st.expander("Networks trained elsewhere"):
        limit_mb = max_upload_bytes() // 2**20
        files = st.file_uploader("safetensors state_dicts of nn.Sequential MLPs, 1 input -> 1 output",
                                 type=["safetensors"], accept_multiple_files=True, key="emb_imported",
                                 max_upload_size=limit_mb, help=f"at most {limit_mb} MB each; pickles (.pt) are "
                                 "refused, never loaded")  # fmt: skip
        activation = st.selectbox("Their activation", ACTIVATIONS, key="emb_imported_act")
        input_range = st.text_input("Interval they were trained on (LO,HI)", "-1,1", key="emb_imported_range")
    cache = st.session_state.setdefault("emb_imported_done", {})
    out = []
    for f in files or []:
        key = (state.run_key(), f.file_id, activation, input_range)
        if key not in cache:
            try:
                zoo_one = load_network(f.getvalue(), f.name, activation, parse_input_range(input_range))
                cache[key] = predict(run, [(f.name, zoo_one)])[0]
            except ImportedNetworkError as e:
                cache[key] = str(e)
        if isinstance(cache[key], str):
            st.error(cache[key])
        else:
            out.append(cache[key])
    return out



def clicked_model(event) -> int | None:
    """The model index of the point clicked in the scatter (its customdata[0]), if any."""
    points = ((event or {}).get("selection") or {}).get("points") or []
    custom = points[0].get("customdata") if points else None
    if isinstance(custom, dict):  # a typed array may come back keyed by position
        custom = [custom[k] for k in sorted(custom, key=int)]
    try:
        model = int(custom[0])
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    return model if 0 <= model < zoo.n_models else None


# A click on the scatter chooses a model: read it before the model picker is drawn, so the picker follows.
chosen_by_click = clicked_model(st.session_state.get("emb_scatter"))
if chosen_by_click is not None and st.session_state.get("emb_last_click") != chosen_by_click:
    st.session_state["emb_last_click"] = chosen_by_click
    widgets.put("emb_model", chosen_by_click)

c1, c2 = st.columns([1, 3])
uploads = st.container()  # under the scatter, full width: the upload's drop zone is cut short in a narrow column
with c1:
    method = widgets.choice("Projection", "emb_method", list(METHODS), "pca", fmt=str.upper, horizontal=True)
    model = widgets.choice("Model", "emb_model", list(range(zoo.n_models)), 0,
                           fmt=lambda i: f"model {i} (f{zoo.task_ids[i]}, replicate {zoo.replicates[i]})",
                           help="or click a point in the scatter")  # fmt: skip
    n_neighbours = widgets.slider("Neighbours", "emb_k", 4, 1, 12)
with uploads:  # read before the scatter is drawn: the uploaded networks are points in it
    imported = networks_trained_elsewhere()
with c2:
    spinner = "Computing UMAP (the first time in a server, numba compiles it: up to ~30 s)..." if method == "umap" else "Projecting..."
    with st.spinner(spinner):
        points = state.derived("projection", lambda m: projection(run, m) if stored else project(features, m), method)
    figure = embedding_figure(points, zoo, selected=model, title=f"{method.upper()} of the embeddings: "
                              "colour = function, symbol = split (circle train, diamond held-out)")  # fmt: skip
    if imported:  # placed at the mean of their nearest models' points: any projection, no refit
        spots = np.stack([points[r.neighbours].mean(0) for r in imported])
        add_imported_points(figure, spots, [r.file for r in imported], [r.predicted_function for r in imported],
                            [r.neighbours for r in imported])  # fmt: skip
    st.plotly_chart(figure, key="emb_scatter", on_select="rerun", selection_mode="points")
if imported:
    st.caption("Stars: uploaded networks, placed at the mean of their 5 nearest models in the projection.")
    st.dataframe([{"file": r.file, "predicted function": f"f{r.predicted_function}",
                   **{k: round(v, 4) for k, v in r.predicted_parameters.items()},
                   "nearest models": ", ".join(map(str, r.neighbours))} for r in imported],
                 hide_index=True, key="emb_imported_table")  # fmt: skip

st.subheader(f"Model {model} and its nearest neighbours in embedding space")
neighbours = nearest_models(features, model, n_neighbours)
same = int((zoo.task_ids[neighbours] == zoo.task_ids[model]).sum())
st.caption(f"{same} of {len(neighbours)} neighbours fit the same function (f{zoo.task_ids[model]}).")
try:
    sections = state.derived("line_sections", lambda: line_sections(zoo) if zoo.input_dim == 1 else None)
except NoExactSections:
    sections = None
if zoo.input_dim > 1:
    from netembed.plots_nd import model_vs_target_figure

    for i in [model, *neighbours.tolist()][:3]:
        st.plotly_chart(model_vs_target_figure(zoo, family, i), key=f"emb_neighbour_{i}")
else:
    st.plotly_chart(gradient_figure(family, zoo, [model, *neighbours.tolist()], sections), key="emb_neighbours")

probes = (run.report or {}).get("probes")
st.subheader("Probes: how well each description of the models names their function")
protocol = widgets.choice("Protocol", "emb_protocol", list(PROTOCOL_NAMES), "seeds", fmt=PROTOCOL_NAMES.get,
                          horizontal=True, help="held-out seeds: probes trained on every function's training seeds, "
                          "scored on its held-out seeds; held-out functions: an embedder trained on two thirds of the "
                          "functions, scored on the models of the functions it never saw; parameter regression: ridge "
                          "regression of the members' parameters, fitted on the seen functions, scored on the unseen")  # fmt: skip
if protocol != "seeds":
    protocol_tables(run, protocol)
elif not probes:
    st.info("This run's report holds no probe results.")
else:
    n_held = int((~zoo.is_train).sum())
    table = probe_frame(probes, n_held_out=n_held, n_models=zoo.n_models)
    st.caption("Linear probe and kNN: accuracy on the held-out seeds after training on the training seeds; "
               "k-means ARI and NMI: clustering agreement with the true functions (unsupervised); coefficient R²: "
               "ridge regression from the description to the members' parameters (polynomial coefficients, or sine a, b, c; held-out seeds). "
               f"n: the models each score is measured on ({n_held} held-out, {zoo.n_models} for k-means). "
               f"Chance: {probes['cloze'].get('chance', 1 / family.n_functions):.2f}.")  # fmt: skip
    st.dataframe(table, hide_index=True, key="probe_table",
                 column_config={c: st.column_config.NumberColumn(format="%.3f") for c in table.columns[1:]})  # fmt: skip
    d1, d2 = st.columns(2)
    d1.download_button("Probe table (CSV)", table.to_csv(index=False), f"probes-{state.file_stem()}.csv", "text/csv",
                       on_click="ignore", icon=":material/download:")  # fmt: skip
    d2.download_button("Embeddings (CSV)", embeddings_frame(features, zoo).to_csv(index=False),
                       f"embeddings-{state.file_stem()}.csv",
                       "text/csv", on_click="ignore", icon=":material/download:")  # fmt: skip
    confusion = probes.get("cloze", {}).get("confusion")
    if confusion is not None:
        st.plotly_chart(confusion_figure(confusion, title="linear probe on the cloze embedding: held-out confusion"),
                        key="emb_confusion")  # fmt: skip
