"""The Gradients page for models of d >= 2 inputs: output against target with gradient arrows, and the
exact region map (2D) with the regions one cloze example hides hatched: the seed's "unique gradients"."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from app import state, widgets
from netembed.cloze_task import GradientSource, draw_inputs, region_mask
from netembed.plots_nd import model_vs_target_figure
from netembed.region_map import region_map
from netembed.region_plots import region_map_figure
from netembed.regions import NotPiecewiseLinear

EXAMPLE_SEED = 0  # the cloze example's draw of inputs and mask
DEFAULT_RATIO = 0.25  # the mask ratio when the run has no embedder (ClozeConfig's default)


def masked_example(zoo, model: int, n_inputs: int, ratio: float):
    """One cloze example of this model: inputs x (N, d) and which are hidden (N,), whole regions at a time."""
    gen = torch.Generator().manual_seed(EXAMPLE_SEED)
    source = GradientSource(zoo.select([model]), "section")
    x = draw_inputs(n_inputs, gen, input_dim=zoo.input_dim)
    masked = region_mask(source.section_ids(torch.arange(1), x), ratio, gen, zoo.input_dim)[0]
    return x.numpy(), masked.numpy()


def show_nd(run) -> None:
    zoo, family = run.zoo, run.family
    st.caption(f"These models take d = {zoo.input_dim} inputs; the plots show the (x₁, x₂) plane"
               + ("" if zoo.input_dim == 2 else " with every other input 0") + ".")  # fmt: skip
    model = widgets.choice("Model", "grad_nd_model", list(range(zoo.n_models)), 0,
                           fmt=lambda i: f"model {i} (f{zoo.task_ids[i]}, seed #{zoo.replicates[i]})")  # fmt: skip
    st.plotly_chart(model_vs_target_figure(zoo, family, model), key="grad_nd_output")
    if zoo.input_dim != 2:
        st.info("The exact region map is drawn for d = 2 only.")
        return
    try:
        rmap = state.derived("region_map", lambda i: region_map(zoo.layers, zoo.config.activation, i), model)
    except NotPiecewiseLinear as e:
        st.info(str(e))
        return
    config = run.embedder.config if run.embedder is not None else None
    n_inputs = config.n_inputs if config is not None else 64
    ratio = config.mask_ratio if config is not None else DEFAULT_RATIO
    x, masked = masked_example(zoo, model, n_inputs, ratio)
    cells = rmap.locate(x)
    hidden = np.isin(np.arange(rmap.n_cells), cells[masked & (cells >= 0)])
    fig = region_map_figure(rmap, masked=hidden)
    for name, rows, symbol in (("shown samples", ~masked, "circle"), ("hidden samples", masked, "x")):
        fig.add_scatter(x=x[rows, 0], y=x[rows, 1], mode="markers", name=name,
                        marker={"symbol": symbol, "size": 7, "color": "black", "line": {"width": 1, "color": "white"}})  # fmt: skip
    st.plotly_chart(fig, key="grad_nd_regions")
    st.caption(f"{rmap.n_cells} linear regions, each with one constant gradient; one cloze example of {n_inputs} "
               f"inputs hides {int(hidden.sum())} of the {len(np.unique(cells))} regions its samples hit (hatched), "
               "every sample inside them with it.")  # fmt: skip
