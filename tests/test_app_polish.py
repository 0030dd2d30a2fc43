"""Issue 10's polish: one plotly toolbar on every chart of every page; the Zoo table's readable headers."""

import json

import pytest

from netembed.plot_toolbar import MODEBAR_REMOVE
from netembed.plots import ZOO_HEADERS

from app_session import PAGES, fresh, visit

pytestmark = pytest.mark.usefixtures("private_runs_folder")


def test_every_chart_on_every_page_shows_the_same_toolbar():
    at = fresh()
    seen = 0
    for page in PAGES:
        visit(at, page)
        for chart in at.get("plotly_chart"):  # AppTest holds a chart as its proto: the figure's JSON spec
            modebar = json.loads(chart.proto.spec)["layout"].get("modebar", {})
            assert modebar.get("remove") == list(MODEBAR_REMOVE), (page, modebar)
            seen += 1
    assert seen >= 8, f"the demo's pages draw at least 8 charts, saw {seen}"


def test_the_zoo_table_and_its_csv_have_readable_headers_with_units():
    at = visit(fresh(), "zoo")
    table = next(d.value for d in at.dataframe if ZOO_HEADERS["fit_mse"] in d.value.columns)
    assert "fit_mse" not in table.columns and "output units²" in ZOO_HEADERS["fit_mse"]
    assert set(table.columns) <= set(ZOO_HEADERS.values())
    header = table.to_csv(index=False).splitlines()[0]  # what the table's own CSV download writes
    assert "fit MSE vs target (output units², dense grid)" in header
