"""The Sweep page's figure and table: a mask ratio x bottleneck heatmap of one score, the rows with readable
names, and the embedder settings a sweep keeps, in words. Pure functions, no streamlit (as plots.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from .plots import base_layout

if TYPE_CHECKING:  # pandas (~0.5 s to import) comes with the functions that use it
    import pandas as pd

SWEEP_SCORES = {"linear_accuracy": "linear probe accuracy", "knn_accuracy": "kNN accuracy", "nmi": "NMI",
                "coefficient_r2": "parameter R²", "cloze_r2": "cloze R²"}  # fmt: skip
SWEEP_COLUMNS = {"mask_ratio": "mask ratio", "bottleneck": "bottleneck", "seed": "seed", **SWEEP_SCORES,
                 "n_held_out": "held-out models (n)", "seconds": "seconds"}  # fmt: skip


def sweep_figure(rows: list[dict], metric: str = "linear_accuracy", title: str | None = None) -> go.Figure:
    """Mask ratio x bottleneck heatmap of one score: the mean over seeds, written in each cell (± the standard
    deviation when a cell has several seeds). The colour scale spans the data, so differences show."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    mean = frame.pivot_table(index="bottleneck", columns="mask_ratio", values=metric, aggfunc="mean", dropna=False)
    std = frame.pivot_table(index="bottleneck", columns="mask_ratio", values=metric, aggfunc="std", dropna=False)
    std = std.reindex(index=mean.index, columns=mean.columns)
    z = mean.values.astype(float)
    finite = z[np.isfinite(z)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi - lo < 1e-9:  # one value (or all equal): a small span around it, so the colour is mid-scale
        lo, hi = lo - 0.05, hi + 0.05
    several = "seed" in frame and frame.groupby(["mask_ratio", "bottleneck"]).size().max() > 1
    text = [[("" if not np.isfinite(m) else f"{m:.2f}" + (f" ± {d:.2f}" if several and np.isfinite(d) else ""))
             for m, d in zip(mr, dr)] for mr, dr in zip(z, std.values.astype(float))]  # fmt: skip
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"{c:g}" for c in mean.columns], y=[str(r) for r in mean.index], text=text,
        colorscale="Viridis", zmin=lo, zmax=hi, texttemplate="%{text}",
        colorbar=dict(title=SWEEP_SCORES.get(metric, metric)),
        hovertemplate="mask ratio %{x}, bottleneck %{y}: %{text}<extra></extra>",
    ))  # fmt: skip
    fig.update_xaxes(title_text="mask ratio", type="category")
    fig.update_yaxes(title_text="bottleneck", type="category")
    return base_layout(fig, title, height=380)


def sweep_frame(rows: list[dict]) -> pd.DataFrame:
    """The sweep's rows with readable column names (the table and its CSV)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    return frame[[c for c in SWEEP_COLUMNS if c in frame]].rename(columns=SWEEP_COLUMNS)


def cloze_settings_text(config) -> str:
    """The embedder settings a sweep keeps from its base config, in words."""
    return (f"mask unit {config.mask_unit}, d_model {config.d_model}, {config.n_layers} attention block(s), "
            f"{config.n_inputs} inputs, {config.models_per_batch} models per batch, lr {config.lr:.1e}, "
            f"seed {config.seed}")  # fmt: skip
