"""Figure builders: each figure shows exactly the core's numbers (AppTest cannot look inside plotly charts)."""

import numpy as np
import pytest

from netembed import plots, sweep_plots
from netembed.gradients import input_gradients, line_sections


def test_family_figure_draws_every_member_and_derivative(tiny_family):
    fig = plots.family_figure(tiny_family, n_points=51)
    x = np.linspace(-1, 1, 51)
    k = tiny_family.n_functions
    assert len(fig.data) == 2 * k
    for i in range(k):
        np.testing.assert_allclose(fig.data[2 * i].y, tiny_family.values(x)[i])
        np.testing.assert_allclose(fig.data[2 * i + 1].y, tiny_family.derivatives(x)[i])
        assert fig.data[2 * i].line.color == fig.data[2 * i + 1].line.color == plots.function_colour(i)


def test_figures_leave_theme_colours_to_the_app(tiny_family):
    # no explicit template, background or text colour: streamlit's theme (light or dark) supplies them
    for fig in (plots.family_figure(tiny_family), plots.confusion_figure(np.eye(2)), plots.training_figure([1], {"loss": [1]})):
        layout = fig.to_plotly_json()["layout"]
        assert "paper_bgcolor" not in layout and "plot_bgcolor" not in layout and "color" not in layout.get("font", {})
        assert fig.layout.template == plots.go.Figure().layout.template  # whatever the default template is


def test_training_figure_puts_loss_on_log_axis_and_r2_on_the_right():
    fig = plots.training_figure([1, 2, 3], {"loss": [1.0, 0.5, 0.1], "r2": [0.1, 0.5, 0.9]})
    assert fig.layout.yaxis.type == "log"
    assert [t.yaxis for t in fig.data] == ["y", "y2"]
    assert list(fig.data[1].y) == [0.1, 0.5, 0.9]


def test_zoo_frame_and_curves(tiny_zoo):
    frame = plots.zoo_frame(tiny_zoo)
    assert len(frame) == tiny_zoo.n_models
    assert (frame.split == "train").sum() == tiny_zoo.is_train.sum()
    np.testing.assert_array_equal(frame.fit_mse, tiny_zoo.fit_mse)
    fig = plots.zoo_curves_figure(tiny_zoo)
    k0 = tiny_zoo.loss_curves[tiny_zoo.task_ids == 0]
    np.testing.assert_allclose(fig.data[0].y, np.median(k0, 0))


def test_gradient_figure_draws_exact_sections_and_sampled_points(tiny_family, tiny_zoo):
    sections = line_sections(tiny_zoo)
    sample_x = np.linspace(-0.9, 0.9, 7)
    fig = plots.gradient_figure(tiny_family, tiny_zoo, [0, 1], sections, sample_x=sample_x, n_points=101)
    edges, slopes, _ = sections.model(1)
    steps = [t for t in fig.data if t.hovertemplate and "slope" in t.hovertemplate]
    assert len(steps) == 2
    xs = np.array([v for v in steps[1].x if v is not None])
    ys = np.array([v for v in steps[1].y if v is not None])
    np.testing.assert_allclose(xs[0::2], edges[:-1])
    np.testing.assert_allclose(ys[0::2], slopes)
    points = [t for t in fig.data if t.hovertemplate and t.hovertemplate.startswith("sampled")]
    np.testing.assert_allclose(points[1].y, input_gradients(tiny_zoo, sample_x)[1], rtol=1e-5, atol=1e-6)
    breakpoints = [t for t in fig.data if t.hovertemplate and t.hovertemplate.startswith("breakpoint")]
    np.testing.assert_allclose(breakpoints[1].x, edges[1:-1])


def test_gradient_figure_without_sections_uses_a_dense_grid(tiny_family, tiny_zoo):
    fig = plots.gradient_figure(tiny_family, tiny_zoo, [2], None, n_points=64)
    x = np.linspace(-1, 1, 64)
    dense = [t for t in fig.data if t.xaxis == "x2" and t.legendgroup == "m2"]
    np.testing.assert_allclose(dense[0].y, input_gradients(tiny_zoo, x)[2], rtol=1e-5, atol=1e-6)


def test_embedding_figure_has_each_model_once_with_its_id(tiny_zoo):
    points = np.random.default_rng(0).standard_normal((tiny_zoo.n_models, 2))
    fig = plots.embedding_figure(points, tiny_zoo, selected=3)
    ids = np.concatenate([np.asarray(t.customdata)[:, 0] for t in fig.data if t.customdata is not None]).astype(int)
    assert sorted(ids) == list(range(tiny_zoo.n_models))
    for t in fig.data:
        if t.customdata is not None:
            np.testing.assert_allclose(t.x, points[np.asarray(t.customdata)[:, 0].astype(int), 0])
    assert fig.data[-1].name == "chosen" and fig.data[-1].x[0] == points[3, 0]


def test_probe_frame_confusion_and_sweep():
    probes = {"embedder": {"linear_accuracy": 0.9, "knn_accuracy": 0.8, "kmeans_ari": 0.5, "nmi": 0.6},
              "raw gradients": {"linear_accuracy": 1.0, "knn_accuracy": 1.0, "nmi": 0.9}}
    frame = plots.probe_frame(probes)
    assert list(frame.description) == ["embedder", "raw gradients"]
    assert frame.loc[0, "linear probe"] == 0.9 and np.isnan(frame.loc[1, "k-means ARI"])
    m = np.array([[3, 1], [0, 4]])
    np.testing.assert_array_equal(plots.confusion_figure(m).data[0].z, m)
    rows = [{"mask_ratio": r, "bottleneck": b, "linear_accuracy": r + b} for r in (0.25, 0.5) for b in (2, 4, 8)]
    fig = sweep_plots.sweep_figure(rows)
    z = np.asarray(fig.data[0].z)
    assert z.shape == (3, 2) and z[2, 1] == pytest.approx(8.5)
    assert fig.data[0].texttemplate and fig.data[0].text[2][1] == "8.50"  # numbers in the cells
    assert (fig.data[0].zmin, fig.data[0].zmax) == (2.25, 8.5)  # the colour scale spans the data


def test_cloze_figure_splits_visible_and_hidden():
    x = np.linspace(-1, 1, 10)
    masked = np.arange(10) % 3 == 0
    fig = plots.cloze_figure({"x": x[::-1], "gradient": x[::-1] * 2, "masked": masked[::-1], "predicted": x[::-1]})
    visible, hidden, predicted = fig.data
    assert len(visible.x) == 10 - masked.sum() and len(hidden.x) == masked.sum()
    np.testing.assert_allclose(hidden.y, 2 * np.asarray(hidden.x))
    np.testing.assert_allclose(predicted.y, predicted.x)


def test_gradient_figure_with_many_models_keeps_samples_but_drops_breakpoint_ticks(tiny_family, tiny_zoo):
    sections = line_sections(tiny_zoo)
    fig = plots.gradient_figure(tiny_family, tiny_zoo, [0, 1, 2, 3], sections, sample_x=np.zeros(3), n_points=21)
    hovers = [t.hovertemplate or "" for t in fig.data]
    assert sum(h.startswith("sampled") for h in hovers) == 4
    assert not any(h.startswith("breakpoint") for h in hovers)


def test_sweep_with_several_seeds_writes_mean_and_spread_and_friendly_headers():
    rows = [{"mask_ratio": 0.5, "bottleneck": 2, "seed": s, "linear_accuracy": a, "n_held_out": 40}
            for s, a in enumerate([0.6, 0.8])] + [{"mask_ratio": 0.5, "bottleneck": 4, "seed": 0,
                                                    "linear_accuracy": 0.9, "n_held_out": 40}]  # fmt: skip
    fig = sweep_plots.sweep_figure(rows)
    z = np.asarray(fig.data[0].z)
    assert z[0, 0] == pytest.approx(0.7) and fig.data[0].text[0][0] == f"0.70 ± {np.std([0.6, 0.8], ddof=1):.2f}"
    assert fig.data[0].colorbar.title.text == "linear probe accuracy"
    frame = sweep_plots.sweep_frame(rows)
    assert list(frame.columns) == ["mask ratio", "bottleneck", "seed", "linear probe accuracy", "held-out models (n)"]


def test_probe_tables_carry_n_and_compare_runs_column_by_column():
    probes = {"cloze": {"linear_accuracy": 0.9, "nmi": 0.5}, "raw_gradients": {"linear_accuracy": 1.0}}
    frame = plots.probe_frame(probes, n_held_out=40, n_models=100)
    assert list(frame.description) == ["cloze embedder", "raw gradients"]
    assert "linear probe (n=40)" in frame.columns and "NMI (n=100)" in frame.columns
    runs = {"a": {"probes": probes, "n_held_out": 40, "n_models": 100},
            "b": {"probes": {"cloze": {"linear_accuracy": 0.4}}, "n_held_out": 8, "n_models": 20}}
    table = plots.compare_probe_frame(runs, "linear_accuracy")
    assert list(table.columns) == ["description", "a (n=40)", "b (n=8)"]
    assert table.iloc[0, 1:].tolist() == [0.9, 0.4] and np.isnan(table.iloc[1, 2])  # b has no raw gradients


def test_compare_figure_has_a_panel_per_run_and_each_legend_entry_once(tiny_zoo):
    points = np.random.default_rng(0).normal(size=(tiny_zoo.n_models, 2))
    fig = plots.compare_embeddings_figure([("a", points, tiny_zoo), ("b", points + 1, tiny_zoo)])
    assert [a.text for a in fig.layout.annotations] == ["a", "b"]
    shown = [t.name for t in fig.data if t.showlegend]
    assert len(shown) == len(set(shown)) == len({t.name for t in fig.data})
    assert {t.xaxis for t in fig.data} == {"x", "x2"}


def test_log_axes_show_decades_only(tiny_zoo):
    for fig in (plots.training_figure([1, 2], {"loss": [1.0, 0.01]}), plots.zoo_curves_figure(tiny_zoo)):
        assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.dtick == 1  # 1e-3, 1e-2, ...: no 2 and 5 between
