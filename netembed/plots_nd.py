"""Plotly figures for functions of d >= 2 inputs: heatmaps of the (x1, x2) plane with gradient arrows.

For d > 2 the plane is the slice with every other coordinate 0. Pure functions, no streamlit;
no template is set, so the app's theme styles them (as plots.py).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .plot_toolbar import toolbar

ARROW = "rgba(20,20,20,0.8)"


def plane(d: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """An n x n grid of the (x1, x2) plane of [-1, 1]^d: axis (n,), points (n * n, d), x1 fastest."""
    axis = np.linspace(-1.0, 1.0, n)
    x1, x2 = np.meshgrid(axis, axis)
    points = np.zeros((n * n, d))
    points[:, 0], points[:, 1] = x1.ravel(), x2.ravel()
    return axis, points


def arrow_segments(points: np.ndarray, grads: np.ndarray, length: float) -> tuple[list, list]:
    """Line segments (None-separated) from each point along its gradient's (x1, x2) part, the largest `length` long."""
    g = grads[:, :2]
    scale = length / max(float(np.hypot(g[:, 0], g[:, 1]).max()), 1e-12)
    xs, ys = [], []
    for (px, py), (gx, gy) in zip(points[:, :2], g):
        xs += [px, px + gx * scale, None]
        ys += [py, py + gy * scale, None]
    return xs, ys


def _add_panel(fig, row, col, axis, z, points, grads, showscale):
    fig.add_heatmap(x=axis, y=axis, z=z, colorscale="RdBu_r", zmid=0, showscale=showscale, row=row, col=col,
                    hovertemplate="x₁ %{x:.2f}<br>x₂ %{y:.2f}<br>y %{z:.3f}<extra></extra>")  # fmt: skip
    xs, ys = arrow_segments(points, grads, 0.18)
    fig.add_scatter(x=xs, y=ys, mode="lines", line={"color": ARROW, "width": 1}, hoverinfo="skip", showlegend=False,
                    row=row, col=col)  # fmt: skip
    fig.add_scatter(x=points[:, 0], y=points[:, 1], mode="markers", marker={"size": 3, "color": ARROW},
                    hoverinfo="skip", showlegend=False, row=row, col=col)  # fmt: skip


def family_heatmaps(family, members, n: int = 61, n_arrows: int = 9, columns: int = 3) -> go.Figure:
    """Each member f_k on the (x1, x2) plane as a heatmap, with its gradient field as arrows."""
    members = list(members)
    d = family.input_dim
    axis, points = plane(d, n)
    _, coarse = plane(d, n_arrows)
    values = family.values(points).reshape(-1, n, n)
    grads = family.derivatives(coarse)  # (K, n_arrows^2, d)
    rows = -(-len(members) // columns)
    fig = make_subplots(rows, columns, subplot_titles=[f"f{k}" for k in members], horizontal_spacing=0.04,
                        vertical_spacing=0.08)  # fmt: skip
    for i, k in enumerate(members):
        _add_panel(fig, i // columns + 1, i % columns + 1, axis, values[k], coarse, grads[k], i == 0)
    fig.update_xaxes(range=[-1, 1], showticklabels=False)
    fig.update_yaxes(range=[-1, 1], showticklabels=False, scaleanchor="x", scaleratio=1)
    slice_note = "" if d == 2 else f" (the slice x₃ = ... = x{d} = 0)"
    fig.update_layout(height=300 * rows, title=f"members on the (x₁, x₂) plane{slice_note}; arrows: gradient",
                      margin={"l": 10, "r": 10, "t": 60, "b": 10})  # fmt: skip
    return toolbar(fig)


def model_vs_target_figure(zoo, family, model: int, n: int = 61, n_arrows: int = 11) -> go.Figure:
    """One model's output next to its target function, each with its gradient field as arrows."""
    from .gradients import input_gradients

    d = zoo.input_dim
    axis, points = plane(d, n)
    _, coarse = plane(d, n_arrows)
    k = int(zoo.task_ids[model])
    output = zoo.select([model])(points)[0].reshape(n, n)
    target = family.values(points)[k].reshape(n, n)
    fig = make_subplots(1, 2, subplot_titles=[f"model {model}: output", f"target f{k}"], horizontal_spacing=0.06)
    _add_panel(fig, 1, 1, axis, output, coarse, input_gradients(zoo.select([model]), coarse)[0], True)
    _add_panel(fig, 1, 2, axis, target, coarse, family.derivatives(coarse)[k], False)
    fig.update_xaxes(range=[-1, 1])
    fig.update_yaxes(range=[-1, 1], scaleanchor="x", scaleratio=1)
    fig.update_layout(height=420, margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return toolbar(fig)
