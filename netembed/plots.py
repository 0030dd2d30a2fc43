"""Plotly figures and tables for the dashboard: pure functions of core objects, no streamlit.

Figures set no template and no fixed background or text colours, so the app's theme
(light or dark) styles them; line and marker colours come from a palette that reads on
both. Function k always has the same colour in every figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from .divergence import failed
from .family import Family
from .plot_toolbar import toolbar

if TYPE_CHECKING:  # pandas (~0.5 s to import) and torch (~1.4 s, for gradients) come with the figures that use them
    import pandas as pd

    from .gradients import LineSections
    from .zoo import Zoo

PALETTE = qualitative.Plotly + qualitative.D3[1:] + qualitative.Dark24  # mid-tone colours: readable on white and on dark grey
NEUTRAL = "rgba(128,128,128,0.9)"  # the "truth" lines: grey shows on both themes
SPLIT_SYMBOLS = {"train": "circle", "held-out": "diamond-open"}


def function_colour(k: int) -> str:
    return PALETTE[int(k) % len(PALETTE)]


def base_layout(fig: go.Figure, title: str | None = None, height: int = 420) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=50 if title else 20, b=10),
                      legend=dict(itemsizing="constant"), hovermode="closest")  # fmt: skip
    return toolbar(fig)


# ---------------------------------------------------------------- family


def family_figure(family: Family, n_points: int = 401) -> go.Figure:
    """Every member f_k and its derivative f_k' on [-1, 1], side by side."""
    x = np.linspace(-1, 1, n_points)
    values, derivs = family.values(x), family.derivatives(x)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("members f(x)", "derivatives f'(x)"))
    for k in range(family.n_functions):
        style = dict(color=function_colour(k))
        name = f"f{k} (degree {family.degrees[k]})" if hasattr(family, "degrees") else (
            f"f{k} (" + ", ".join(f"{n} {v:.3g}" for n, v in zip(family.parameter_names, family.parameters[k])) + ")")
        fig.add_scatter(x=x, y=values[k], name=name, legendgroup=str(k), line=style, row=1, col=1)
        fig.add_scatter(x=x, y=derivs[k], name=name, legendgroup=str(k), line=style, showlegend=False, row=1, col=2)
    fig.update_xaxes(title_text="x")
    return base_layout(fig, height=440)


# ---------------------------------------------------------------- training


def training_figure(steps, series: dict[str, list[float]], title: str | None = None) -> go.Figure:
    """A live training chart: loss on a log axis, any R^2-like series (0..1) on a right-hand axis."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for i, (name, values) in enumerate(series.items()):
        right = name.lower().startswith("r2")
        fig.add_scatter(x=list(steps), y=list(values), name=name.replace("_", " "), mode="lines",
                        line=dict(color=PALETTE[i % len(PALETTE)]), secondary_y=right)  # fmt: skip
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(type="log", dtick=1, exponentformat="e", title_text="loss", secondary_y=False)  # decades only
    if any(n.lower().startswith("r2") for n in series):
        # own ticks, no grid: the right axis must not inherit the log axis's tick positions
        fig.update_yaxes(title_text="R²", tickmode="auto", showgrid=False, secondary_y=True)
    return base_layout(fig, title, height=320)


def zoo_curves_figure(zoo: Zoo) -> go.Figure:
    """Median training loss of each function's models over the steps (log axis)."""
    fig = go.Figure()
    for k in np.unique(zoo.task_ids):
        curves = zoo.loss_curves[zoo.task_ids == k]
        with np.errstate(all="ignore"):
            median = np.nanmedian(np.where(np.isfinite(curves), curves, np.nan), axis=0)
        fig.add_scatter(x=zoo.log_steps, y=median, name=f"f{k}", mode="lines", line=dict(color=function_colour(k)))
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(type="log", dtick=1, exponentformat="e", title_text="median training MSE")  # decades only, 1e-5
    return base_layout(fig, "training loss per function", height=340)


def zoo_frame(zoo: Zoo) -> pd.DataFrame:
    """One row per model: what it fits, its seed, its split and how well it fits."""
    import pandas as pd

    architecture = {"architecture": zoo.architectures} if hasattr(zoo, "architectures") else {}  # mixed zoos
    return pd.DataFrame({
        "model": np.arange(zoo.n_models),
        **architecture,
        "function": zoo.task_ids,
        "replicate": zoo.replicates,
        "init seed": zoo.seeds,
        "split": np.where(zoo.is_train, "train", "held-out"),
        "fit_mse": zoo.fit_mse,
        "failed": failed(zoo),  # divergence.failed: the one meaning of "failed"
    })  # fmt: skip


# zoo_frame's columns as a reader (and the CSV download) sees them: what each is, with its units
ZOO_HEADERS = {"model": "model id", "architecture": "architecture (width x depth: activation)",
               "function": "target function", "replicate": "seed index", "init seed": "init seed",
               "split": "split", "fit_mse": "fit MSE vs target (output units², dense grid)",
               "failed": "failed (over fail MSE or diverged)"}  # fmt: skip


def architecture_frame(zoo) -> pd.DataFrame:
    """One row per architecture of a mixed zoo (mixed_zoo.py): its models, how many failed, its fit, steps, time."""
    import pandas as pd

    rows = []
    for part in zoo.parts:
        mse, bad = part.fit_mse, failed(part)
        finite = mse[np.isfinite(mse)]
        rows.append({
            "architecture": f"{part.config.width}x{part.config.depth}:{part.config.activation}",
            "models": part.n_models,
            "failed": int(bad.sum()),
            "median fit MSE (output units²)": float(np.median(finite)) if finite.size else float("nan"),
            "worst fit MSE (output units²)": float(finite.max()) if finite.size else float("nan"),
            "steps done": f"{part.steps_done}/{part.config.steps}",
            "train seconds": round(float(part.seconds), 1),
        })  # fmt: skip
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- gradients


def _step_trace(edges: np.ndarray, slopes: np.ndarray) -> tuple[list, list]:
    """A piecewise-constant gradient as horizontal segments with gaps at the breakpoints."""
    xs, ys = [], []
    for lo, hi, s in zip(edges[:-1], edges[1:], slopes):
        xs += [lo, hi, None]
        ys += [s, s, None]
    return xs, ys


def gradient_figure(
    family: Family,
    zoo: Zoo,
    models,
    sections: LineSections | None = None,
    sample_x=None,
    n_points: int = 801,
) -> go.Figure:
    """Output vs target (top) and gradient vs true derivative (bottom) for some models.

    With `sections` the gradient is drawn exactly, one flat segment per line-section, and
    the breakpoints are marked; without (smooth activations) it is drawn from a dense grid.
    `sample_x` adds the gradients at those inputs as points, as the embedder sees them.
    """
    from .gradients import input_gradients  # torch: only the figures that differentiate import it

    models = [int(i) for i in models]
    x = np.linspace(-1, 1, n_points)
    tasks = sorted({int(zoo.task_ids[i]) for i in models})
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("model output vs target", "gradient dy/dx vs true derivative"))  # fmt: skip
    targets, derivs = family.values(x), family.derivatives(x)
    for k in tasks:
        truth = dict(color=NEUTRAL, dash="dash", width=3)
        fig.add_scatter(x=x, y=targets[k], name=f"target f{k}", line=truth, legendgroup="truth", row=1, col=1)
        fig.add_scatter(x=x, y=derivs[k], name=f"true f{k}'", line=truth, legendgroup="truth", row=2, col=1)
    outputs = zoo(x)[models]
    dense = input_gradients(zoo, x)[models] if sections is None else None
    samples = input_gradients(zoo, sample_x)[models] if sample_x is not None else None
    for j, i in enumerate(models):
        colour = PALETTE[(j + 1) % len(PALETTE)] if len(tasks) == 1 else function_colour(zoo.task_ids[i])
        name = f"model {i} (f{zoo.task_ids[i]}, replicate {zoo.replicates[i]})"
        group = dict(legendgroup=f"m{i}", line=dict(color=colour, width=1.5))
        fig.add_scatter(x=x, y=outputs[j], name=name, row=1, col=1, **group)
        if sections is not None:
            edges, slopes, _ = sections.model(i)
            xs, ys = _step_trace(edges, slopes)
            fig.add_scatter(x=xs, y=ys, mode="lines", showlegend=False, row=2, col=1,
                            hovertemplate="slope %{y:.3f}<extra>" + name + "</extra>", **group)  # fmt: skip
            if len(models) <= 2:  # with more models the breakpoint ticks only add clutter
                fig.add_scatter(x=edges[1:-1], y=(slopes[:-1] + slopes[1:]) / 2, mode="markers", showlegend=False,
                                marker=dict(symbol="line-ns-open", size=10, color=colour), row=2, col=1,
                                hovertemplate="breakpoint x=%{x:.3f}<extra>" + name + "</extra>")  # fmt: skip
        else:
            fig.add_scatter(x=x, y=dense[j], showlegend=False, row=2, col=1, **group)
        if samples is not None:
            fig.add_scatter(x=np.asarray(sample_x), y=samples[j], mode="markers", showlegend=False,
                            marker=dict(color=colour, size=5), legendgroup=f"m{i}", row=2, col=1,
                            hovertemplate="sampled x=%{x:.3f}, dy/dx=%{y:.3f}<extra></extra>")  # fmt: skip
    fig.update_xaxes(title_text="x", row=2, col=1)
    return base_layout(fig, height=640)


# ---------------------------------------------------------------- embedder


def cloze_figure(example: dict, title: str | None = None) -> go.Figure:
    """One cloze example: visible gradients, the hidden truth, and the embedder's predictions."""
    x = np.asarray(example["x"], dtype=float)
    g = np.asarray(example["gradient"], dtype=float)
    masked = np.asarray(example["masked"], dtype=bool)
    pred = np.asarray(example["predicted"], dtype=float)
    order = np.argsort(x)
    x, g, masked, pred = x[order], g[order], masked[order], pred[order]
    fig = go.Figure()
    fig.add_scatter(x=x[~masked], y=g[~masked], mode="markers", name="visible gradient",
                    marker=dict(color=NEUTRAL, size=6))  # fmt: skip
    fig.add_scatter(x=x[masked], y=g[masked], mode="markers", name="hidden truth",
                    marker=dict(color=PALETTE[0], size=9, symbol="circle-open", line=dict(width=2)))  # fmt: skip
    fig.add_scatter(x=x[masked], y=pred[masked] if pred.shape == g.shape else pred, mode="markers",
                    name="predicted", marker=dict(color=PALETTE[1], size=8, symbol="x"))  # fmt: skip
    fig.update_xaxes(title_text="x", range=[-1.05, 1.05])
    fig.update_yaxes(title_text="dy/dx")
    return base_layout(fig, title, height=300)


# ---------------------------------------------------------------- embeddings


def embedding_figure(points: np.ndarray, zoo: Zoo, selected: int | None = None, title: str | None = None) -> go.Figure:
    """2D projection of the models: colour = function, symbol = split, hover = function, seed, fit error.

    Each point's customdata[0] is its model index, so a chart selection maps back to a model.
    """
    split = np.where(zoo.is_train, "train", "held-out")
    fig = go.Figure()
    for k in np.unique(zoo.task_ids):
        for s, symbol in SPLIT_SYMBOLS.items():
            idx = np.flatnonzero((zoo.task_ids == k) & (split == s))
            if not idx.size:
                continue
            custom = np.stack([idx, zoo.task_ids[idx], zoo.replicates[idx], zoo.seeds[idx], zoo.fit_mse[idx]], 1)
            fig.add_scatter(
                x=points[idx, 0], y=points[idx, 1], mode="markers", name=f"f{k} {s}", legendgroup=str(k),
                marker=dict(color=function_colour(k), symbol=symbol, size=9, line=dict(width=1.5, color=function_colour(k))),
                customdata=custom.tolist(),  # plain lists: a chart selection hands them back as they are
                hovertemplate="model %{customdata[0]:.0f}<br>function f%{customdata[1]:.0f}<br>"
                "replicate %{customdata[2]:.0f} (init seed %{customdata[3]:.0f})<br>fit MSE %{customdata[4]:.2e}"
                f"<br>{s}<extra></extra>",
            )  # fmt: skip
    if selected is not None:
        fig.add_scatter(x=[points[selected, 0]], y=[points[selected, 1]], mode="markers", name="chosen",
                        marker=dict(size=20, symbol="circle-open", color=NEUTRAL, line=dict(width=3)),
                        hoverinfo="skip")  # fmt: skip
    fig.update_xaxes(title_text="component 1")
    fig.update_yaxes(title_text="component 2")
    return base_layout(fig, title, height=520)


def add_imported_points(fig: go.Figure, points: np.ndarray, names: list[str], functions: list[int],
                        neighbours: list[list[int]]) -> go.Figure:
    """Networks trained elsewhere (imported.py) on an embedding figure: large stars in their predicted function's
    colour, outlined black so they stand out, hover = file, predicted function and nearest zoo models.

    points (u, 2): where each lands in the figure's projection."""
    for (x, y), name, k, near in zip(points, names, functions, neighbours):
        fig.add_scatter(x=[x], y=[y], mode="markers", name=f"{name} (f{k})", legendgroup="imported",
                        marker=dict(symbol="star", size=20, color=function_colour(k), line=dict(width=2, color="black")),
                        hovertemplate=f"{name}<br>predicted f{k}<br>nearest models {near[:5]}<extra>imported</extra>")  # fmt: skip
    return fig


def embeddings_frame(features: np.ndarray, zoo: Zoo) -> pd.DataFrame:
    """The models' table with one column per embedding dimension, for CSV download."""
    import pandas as pd

    dims = pd.DataFrame(np.asarray(features), columns=[f"e{j}" for j in range(np.shape(features)[1])])
    return pd.concat([zoo_frame(zoo), dims], axis=1)


PROBE_COLUMNS = {"linear_accuracy": "linear probe", "knn_accuracy": "kNN", "kmeans_ari": "k-means ARI", "nmi": "NMI",
                 "coefficient_r2": "coefficient R²"}  # fmt: skip


DESCRIPTIONS = {"cloze": "cloze embedder", "raw_gradients": "raw gradients", "raw_gradients_pca": "raw gradients (PCA)",
                "outputs": "raw outputs", "weights": "flat weights", "weight_stats": "weight statistics",
                "supervised": "supervised (upper bound)"}  # fmt: skip
UNSUPERVISED = ("kmeans_ari", "nmi")  # scored on every model; the others on the held-out seeds


def description_name(key: str) -> str:
    return DESCRIPTIONS.get(key, key.replace("_", " "))


def probe_header(key: str, n_held_out: int | None = None, n_models: int | None = None) -> str:
    """A score's column name with its n: 'linear probe (n=40)'; k-means scores count every model."""
    n = n_models if key in UNSUPERVISED else n_held_out
    return PROBE_COLUMNS[key] if n is None else f"{PROBE_COLUMNS[key]} (n={n})"


def probe_frame(probes: dict[str, dict], n_held_out: int | None = None, n_models: int | None = None) -> pd.DataFrame:
    """Probe results of several descriptions (embedder, baselines) as one table, one row each; with the counts
    given, every score's header says how many models it was measured on."""
    import pandas as pd

    headers = {key: probe_header(key, n_held_out, n_models) for key in PROBE_COLUMNS}
    rows = [{"description": description_name(name), **{headers[k]: p.get(k, np.nan) for k in PROBE_COLUMNS}}
            for name, p in probes.items()]  # fmt: skip
    return pd.DataFrame(rows, columns=["description", *headers.values()])


def compare_probe_frame(runs: dict[str, dict], metric: str = "linear_accuracy") -> pd.DataFrame:
    """One probe score across runs: a row per description, a column per run ('name (n=…)' from each run's
    held-out count). `runs`: run name -> {"probes": {description: scores}, "n_held_out": int}."""
    import pandas as pd

    names = []
    for run in runs.values():
        names += [d for d in run["probes"] if d not in names]
    out = pd.DataFrame({"description": [description_name(d) for d in names]})
    for name, run in runs.items():
        n = run.get("n_models") if metric in UNSUPERVISED else run.get("n_held_out")
        column = name if n is None else f"{name} (n={n})"
        out[column] = [run["probes"].get(d, {}).get(metric, np.nan) for d in names]
    return out


def compare_embeddings_figure(panels: list[tuple[str, np.ndarray, Zoo]], title: str | None = None) -> go.Figure:
    """Runs side by side: one 2D projection per run (name, (n, 2) points, zoo), coloured by function.
    Each function appears once in the legend (its first panel); panels share the legend by function."""
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[name for name, _, _ in panels],
                        horizontal_spacing=0.04)  # fmt: skip
    in_legend = set()
    for col, (name, points, zoo) in enumerate(panels, start=1):
        split = np.where(zoo.is_train, "train", "held-out")
        for k in np.unique(zoo.task_ids):
            for s, symbol in SPLIT_SYMBOLS.items():
                idx = np.flatnonzero((zoo.task_ids == k) & (split == s))
                if not idx.size:
                    continue
                fig.add_scatter(x=points[idx, 0], y=points[idx, 1], mode="markers", name=f"f{k} {s}",
                                legendgroup=f"{k}{s}", showlegend=(k, s) not in in_legend,
                                marker=dict(color=function_colour(k), symbol=symbol, size=7,
                                            line=dict(width=1, color=function_colour(k))),
                                hovertemplate=f"{name}<br>model %{{customdata}}<br>f{k}, {s}<extra></extra>",
                                customdata=idx.tolist(), row=1, col=col)  # fmt: skip
                in_legend.add((k, s))
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return base_layout(fig, title, height=420)


def confusion_figure(confusion, title: str | None = None) -> go.Figure:
    """Held-out confusion matrix of the linear probe: rows = true function, columns = predicted."""
    m = np.asarray(confusion)
    labels = [f"f{k}" for k in range(m.shape[0])]
    fig = go.Figure(go.Heatmap(z=m, x=labels, y=labels, colorscale="Blues", texttemplate="%{z}",
                               hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>"))  # fmt: skip
    fig.update_xaxes(title_text="predicted", side="bottom")
    fig.update_yaxes(title_text="true", autorange="reversed", scaleanchor="x")
    return base_layout(fig, title, height=420)
