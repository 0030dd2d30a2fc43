"""Compare runs: two or more runs side by side, their embeddings' scatters and one probe table."""

import numpy as np
import streamlit as st

from app import state, widgets
from netembed.pipeline import projection
from netembed.plots import PROBE_COLUMNS, compare_embeddings_figure, compare_probe_frame
from netembed.projection import project
from netembed.store import RunError

st.title("Compare runs")
st.caption("Runs side by side, as TensorBoard compares runs: where each run's embedder puts the models (PCA of "
           "its embeddings; colour = function, symbol = split) and one probe score per description, a column "
           "per run. Only runs with an embedder can be compared.")  # fmt: skip

options = []
for value in state.choices():
    try:
        run = state.run_for(value)
    except RunError:
        continue  # a broken saved run: the picker says why when it is chosen
    if run is not None and run.embedder is not None:
        options.append(value)
if len(options) < 2:
    st.info("Comparing needs two runs with an embedder: train an embedder on the Embedder page (or save one).")
    st.stop()
labels = {o: state.label(o) for o in options}
default = list(dict.fromkeys([state.choice(), *options]))[:2] if state.choice() in options else options[:2]
chosen = widgets.multi("Runs", "cmp_runs", options, default, fmt=labels.__getitem__, max_selections=4,
                       help="two to four runs; in the URL as their ids (unsaved runs only work in this session)")  # fmt: skip
metric = widgets.choice("Score", "cmp_metric", list(PROBE_COLUMNS), "linear_accuracy", fmt=PROBE_COLUMNS.get,
                        horizontal=True)  # fmt: skip
if len(chosen) < 2:
    st.info("Choose at least two runs.")
    st.stop()


def pca_points(value: str, run) -> np.ndarray:
    """The run's stored PCA, else one computed now (kept in this session per run)."""
    if (run.report or {}).get("projections", {}).get("pca") is not None:
        return projection(run, "pca")
    key = ("compare_pca", value)
    cache = st.session_state.setdefault("ne_compare", {})
    if key not in cache:
        from netembed.embedding import EMBED_SEED, embed

        features = run.embedder.embeddings_ if run.embedder.embeddings_ is not None else embed(run.embedder, run.zoo,
                                                                                               seed=EMBED_SEED)
        cache[key] = project(features, "pca")
    return cache[key]


runs = {value: state.run_for(value) for value in chosen}
names = {value: labels[value] for value in chosen}
with st.spinner("Projecting..."):
    panels = [(names[v], pca_points(v, r), r.zoo) for v, r in runs.items()]
st.plotly_chart(compare_embeddings_figure(panels, title="PCA of each run's embeddings"), key="cmp_scatter")
table = compare_probe_frame({names[v]: {"probes": (r.report or {}).get("probes") or {},
                                        "n_held_out": int((~r.zoo.is_train).sum()), "n_models": r.zoo.n_models}
                             for v, r in runs.items()}, metric)  # fmt: skip
st.subheader(f"{PROBE_COLUMNS[metric]}, one column per run")
st.caption("n: the models each score is measured on (held-out seeds; every model for k-means scores).")
st.dataframe(table, hide_index=True, key="cmp_table",
             column_config={c: st.column_config.NumberColumn(format="%.3f") for c in table.columns[1:]})  # fmt: skip
st.download_button("Comparison (CSV)", table.to_csv(index=False), f"compare-{metric}.csv", "text/csv",
                   on_click="ignore", icon=":material/download:")  # fmt: skip
