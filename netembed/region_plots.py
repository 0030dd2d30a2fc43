"""The 2D region map as a plotly figure: one filled polygon per linear region, coloured by its pattern.

Pure function of a region_map.RegionMap, no streamlit. Like plots.py, no template or background is
set, so the app's theme styles the figure; fills are mid-tone colours that read on light and dark.
"""

from __future__ import annotations

import zlib

import numpy as np
import plotly.graph_objects as go

from .plot_toolbar import toolbar
from .region_map import RegionMap

EDGE = "rgba(128,128,128,0.7)"  # cell outlines: grey shows on both themes
HATCH = "rgba(20,20,20,0.75)"  # the masked cells' hatching, drawn over their fill


def pattern_colour(pattern: np.ndarray) -> str:
    """A stable colour per activation pattern (hash of its bits -> hue), so neighbours (one bit apart) differ."""
    h = zlib.crc32(np.packbits(np.asarray(pattern, dtype=bool)).tobytes())
    return f"hsl({h % 360},{50 + (h >> 9) % 25}%,{48 + (h >> 17) % 16}%)"


def region_map_figure(rmap: RegionMap, masked: np.ndarray | None = None, title: str | None = None, height: int = 520) -> go.Figure:
    """Every cell of the map as a filled polygon; hover shows the cell's gradient vector.

    masked: optional (n_cells,) bool, the cells a cloze example hides (hatched), e.g.
    np.isin(np.arange(rmap.n_cells), rmap.locate(points[mask])) for sample points and their mask.
    """
    if masked is not None:
        masked = np.asarray(masked, dtype=bool)
        if masked.shape != (rmap.n_cells,):
            raise ValueError(f"masked must be one bool per cell ({rmap.n_cells},); got shape {masked.shape}")
    n_hidden = rmap.patterns.shape[1]
    fig = go.Figure()
    for c, vertices in enumerate(rmap.vertices):
        closed = np.concatenate([vertices, vertices[:1]])  # (k + 1, 2): back to the first vertex
        gx, gy = rmap.gradients[c]
        hidden = masked is not None and bool(masked[c])
        text = (f"region {c}{' (masked)' if hidden else ''}<br>∇y = ({gx:.4g}, {gy:.4g}), |∇y| = {np.hypot(gx, gy):.3g}"
                f"<br>units on: {int(rmap.patterns[c].sum())} / {n_hidden}")  # fmt: skip
        fig.add_scatter(
            x=closed[:, 0], y=closed[:, 1], mode="lines", fill="toself",
            fillcolor=pattern_colour(rmap.patterns[c]), line={"color": EDGE, "width": 0.5},
            fillpattern={"shape": "/", "fgcolor": HATCH, "size": 6, "solidity": 0.3} if hidden else None,
            hoveron="fills", hoverinfo="text", text=text, name=f"region {c}", showlegend=False,
        )  # fmt: skip
    fig.update_xaxes(range=[-1, 1], title_text="x₁", constrain="domain")
    fig.update_yaxes(range=[-1, 1], title_text="x₂", scaleanchor="x", scaleratio=1)
    if title is None:
        title = f"{rmap.n_cells} linear regions" + (f", {int(masked.sum())} masked (hatched)" if masked is not None else "")
    fig.update_layout(title=title, height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10}, hovermode="closest")
    return toolbar(fig)
