"""Figures of a digits network's hidden units: the units as points, 8x8 pictures, units grouped.

Plain plotly figures built from arrays, so they are tested without a browser (the app only
draws them).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .plot_toolbar import toolbar

PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D",
           "#BAB0AC")  # fmt: skip
SYMBOLS = ("circle", "diamond", "square", "x", "triangle-up", "cross", "star", "pentagon")


def units_figure(points: np.ndarray, layers: np.ndarray, colour_by: np.ndarray | None, colour_names: list[str],
                 selected: int | None = None, title: str = "") -> go.Figure:  # fmt: skip
    """Units as points: points (n_units, 2), layers (n_units,) as marker symbols, colour_by (n_units,)
    a group index into colour_names (the planted module, or a cluster) or None. Each point's
    customdata is [unit index, layer], for click handling."""
    points, layers = np.asarray(points), np.asarray(layers)
    groups = np.zeros(len(points), dtype=int) if colour_by is None else np.asarray(colour_by)
    fig = go.Figure()
    for g in np.unique(groups):
        for layer in np.unique(layers):
            idx = np.flatnonzero((groups == g) & (layers == layer))
            if not len(idx):
                continue
            name = f"{colour_names[g] if colour_by is not None else 'units'}, layer {layer}"
            fig.add_trace(go.Scattergl(
                x=points[idx, 0], y=points[idx, 1], mode="markers", name=name,
                marker={"color": PALETTE[g % len(PALETTE)], "symbol": SYMBOLS[layer % len(SYMBOLS)], "size": 9,
                        "line": {"width": 0.5, "color": "white"}},
                customdata=np.column_stack([idx, layers[idx]]),
                hovertemplate="unit %{customdata[0]} (layer %{customdata[1]})<extra>" + name + "</extra>"))  # fmt: skip
    if selected is not None:
        fig.add_trace(go.Scattergl(x=[points[selected, 0]], y=[points[selected, 1]], mode="markers",
                                   name=f"unit {selected}", hoverinfo="skip",
                                   marker={"size": 18, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "black"}}))  # fmt: skip
    fig.update_layout(title=title, height=460, margin={"l": 10, "r": 10, "t": 40, "b": 10}, clickmode="event+select",
                      legend={"font": {"size": 10}})  # fmt: skip
    return toolbar(fig)


def _limit(images: np.ndarray) -> float:
    m = float(np.abs(images).max()) if np.size(images) else 0.0
    return m if m > 0 else 1.0


def image_grid(images: np.ndarray, titles: list[str], cols: int = 6, signed: bool = True, title: str = "",
               row_labels: list[str] | None = None) -> go.Figure:  # fmt: skip
    """8x8 pictures (n, 64) in a grid, row-major, one shared colour scale: signed (red-blue, centred on 0,
    for gradients) or not (greys, for digits)."""
    images = np.asarray(images, dtype=np.float64).reshape(-1, 8, 8)
    n = max(1, len(images))
    rows = (n + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles[:n] + [""] * (rows * cols - n),
                        horizontal_spacing=0.01, vertical_spacing=0.06 if rows > 1 else 0.0)  # fmt: skip
    lim = _limit(images)
    scale = "RdBu_r" if signed else "Greys"
    zmin, zmax = (-lim, lim) if signed else (0.0, lim)
    for i, img in enumerate(images):
        fig.add_trace(go.Heatmap(z=img[::-1], zmin=zmin, zmax=zmax, colorscale=scale, showscale=i == 0,
                                 hovertemplate="pixel (%{x}, %{y}): %{z:.3f}<extra></extra>"),
                      row=i // cols + 1, col=i % cols + 1)  # fmt: skip
    fig.update_xaxes(visible=False, scaleanchor=None)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=10)
    left = 130 if row_labels else 10  # room for the row labels
    fig.update_layout(title=title, height=max(140, 110 * rows + 50), margin={"l": left, "r": 10, "t": 50, "b": 10})
    if row_labels:
        for r, label in enumerate(row_labels[:rows]):
            fig.add_annotation(text=label, xref="paper", yref="paper", x=-0.005, xanchor="right", showarrow=False,
                               y=1 - (r + 0.5) / rows, font={"size": 10})  # fmt: skip
    return toolbar(fig)


def grouped_units(groups: np.ndarray, scores: np.ndarray, per_group: int) -> list[np.ndarray]:
    """Units grouped: for each group id (sorted), its units ordered by `scores` (highest first), at most per_group."""
    groups, scores = np.asarray(groups), np.asarray(scores)
    out = []
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        out.append(members[np.argsort(-scores[members], kind="stable")][:per_group])
    return out


def unit_groups_figure(images: np.ndarray, groups: np.ndarray, scores: np.ndarray, per_group: int = 8,
                       title: str = "", group_names: list[str] | None = None) -> go.Figure:  # fmt: skip
    """The researcher's view: one row per group of units (a cluster of their embeddings), each unit's
    mean gradient as an 8x8 picture, the most active units first. images (n_units, 64)."""
    rows = grouped_units(groups, scores, per_group)
    cells, titles, labels = [], [], []
    for r, members in enumerate(rows):
        name = group_names[r] if group_names else f"group {r}"
        labels.append(f"{name} ({int(np.sum(np.asarray(groups) == np.unique(groups)[r]))})")
        for c in range(per_group):
            if c < len(members):
                cells.append(images[members[c]])
                titles.append(f"unit {members[c]}")
            else:
                cells.append(np.zeros(64))
                titles.append("")
    return image_grid(np.array(cells), titles, cols=per_group, signed=True, title=title, row_labels=labels)
