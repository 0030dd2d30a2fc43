"""The plotly toolbar (modebar) every chart shows: one set of buttons, set in each figure's layout.

Kept: download as PNG, zoom, pan, reset axes. Removed: the buttons that repeat these (zoom in /
zoom out steps, autoscale beside reset axes) or do nothing useful on these charts: box and lasso
select (the app's selectable charts select by clicking a point, selection_mode="points"), the
hover-mode and spike-line toggles. Being part of the layout, the choice travels with the figure
(to Streamlit, to an exported HTML file) and needs no per-call config.
"""

from __future__ import annotations

import plotly.graph_objects as go

MODEBAR_REMOVE = ("zoomIn2d", "zoomOut2d", "autoScale2d", "select2d", "lasso2d", "hoverClosestCartesian",
                  "hoverCompareCartesian", "toggleSpikelines", "toggleHover", "resetViews", "hoverClosestGl2d",
                  "hoverClosestPie", "resetViewMapbox", "resetViewMap")  # fmt: skip


def toolbar(fig: go.Figure) -> go.Figure:
    """The one toolbar: PNG download, zoom, pan and reset axes (see the module's note)."""
    fig.update_layout(modebar={"remove": list(MODEBAR_REMOVE)})
    return fig
