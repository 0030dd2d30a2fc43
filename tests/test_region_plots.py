"""The region-map figure draws exactly the map's cells (AppTest cannot look inside plotly charts)."""

import numpy as np
import pytest
from random_nets import random_layers

from netembed.region_map import region_map
from netembed.region_plots import pattern_colour, region_map_figure


@pytest.fixture(scope="module")
def rmap():
    return region_map(random_layers(11, [2, 6, 6, 1]), "leaky_relu")


def test_one_filled_polygon_per_region_with_its_gradient_on_hover(rmap):
    fig = region_map_figure(rmap)
    assert len(fig.data) == rmap.n_cells > 5
    for c, trace in enumerate(fig.data):
        np.testing.assert_array_equal(np.column_stack([trace.x, trace.y])[:-1], rmap.vertices[c])
        assert trace.x[0] == trace.x[-1] and trace.y[0] == trace.y[-1]  # closed outline
        assert trace.fill == "toself" and trace.fillcolor == pattern_colour(rmap.patterns[c])
        assert f"{rmap.gradients[c][0]:.4g}" in trace.text and f"{rmap.gradients[c][1]:.4g}" in trace.text
        assert trace.fillpattern.shape is None  # nothing masked
    fig.to_json()  # serialisable: what streamlit's plotly_chart sends to the browser


def test_masked_regions_are_hatched_and_named(rmap):
    masked = np.zeros(rmap.n_cells, dtype=bool)
    masked[::3] = True
    fig = region_map_figure(rmap, masked=masked)
    hatched = np.array([trace.fillpattern.shape == "/" for trace in fig.data])
    np.testing.assert_array_equal(hatched, masked)
    assert all(("(masked)" in trace.text) == m for trace, m in zip(fig.data, masked))
    assert f"{int(masked.sum())} masked" in fig.layout.title.text
    with pytest.raises(ValueError, match="one bool per cell"):
        region_map_figure(rmap, masked=masked[:-1])


def test_pattern_colours_are_stable_and_tell_neighbours_apart(rmap):
    colours = [pattern_colour(p) for p in rmap.patterns]
    assert colours == [pattern_colour(p.copy()) for p in rmap.patterns]
    assert len(set(colours)) > 0.8 * rmap.n_cells  # a hash into 360 hues x 25 x 16 shades: collisions are rare
