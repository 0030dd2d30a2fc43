"""The dashboard on a sines run: the Family page's kind choice, the Embeddings page's protocols, the Sweep page."""

import os
from pathlib import Path

import pytest

from netembed.config import ClozeConfig, FamilyConfig, ZooConfig
from netembed.pipeline import run_pipeline, run_sweep
from netembed.store import save_run

from app_session import fresh, visit

pytestmark = pytest.mark.usefixtures("private_runs_folder")

SINES = FamilyConfig(kind="sines", n_functions=4, sine_frequency_max=2.0)
ZOO = ZooConfig(models_per_function=6, width=8, steps=60, batch_size=64)
CLOZE = ClozeConfig(bottleneck=2, steps=8, d_model=16, n_inputs=16, models_per_batch=12)


def save_sines_run(name: str, protocols=("seeds", "functions", "parameters"), sweep=True) -> None:
    run = run_pipeline(SINES, ZOO, CLOZE, projections=("pca",), protocols=protocols)
    if sweep:
        run.report["sweep"] = run_sweep(run.zoo, run.family, [0.25, 0.5], [2, 3], CLOZE)
    save_run(run, Path(os.environ["NETEMBED_RUNS_DIR"]) / name)


def table_with(at, column: str):
    """The page's dataframe with a column named `column` (or `column (n=...)`: headers carry n)."""
    found = [d.value for d in at.dataframe if any(c == column or c.startswith(column + " (n=") for c in d.value.columns)]
    assert len(found) == 1, [list(d.value.columns) for d in at.dataframe]
    return found[0]


def open_saved(name: str):
    at = fresh()
    at.selectbox(key="run").set_value(f"saved:{name}").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def test_family_page_shows_the_kind_and_draws_the_sines():
    save_sines_run("sines", protocols=("seeds",), sweep=False)
    at = visit(open_saved("sines"), "family")
    # the page keeps the family last chosen on it (the demo's, first); reset brings the current run's
    next(b for b in at.button if b.label == "Reset to the current run's family").click().run()
    assert at.radio(key="fam_kind").value == "sines"
    assert at.number_input(key="fam_sine_frequency_max").value == 2.0  # the sines' own settings are drawn
    assert not at.error and "a " in at.metric[1].value and "b " in at.metric[1].value
    at.radio(key="fam_kind").set_value("polynomials").run()
    assert not at.exception and not at.error
    assert at.metric[1].label == "Degrees"  # back to the polynomials' view


def test_embeddings_page_shows_each_protocol_from_the_report():
    save_sines_run("sines")
    at = visit(open_saved("sines"), "embeddings")
    assert at.radio(key="emb_protocol").value == "seeds"
    assert "cloze embedder" in set(table_with(at, "linear probe").description)
    at.radio(key="emb_protocol").set_value("functions").run()
    assert not at.exception and not at.error
    table = table_with(at, "retrieval@5")
    assert list(table.columns) == ["description", "retrieval@5", "NMI", "1-shot", "5-shot"]
    assert "cloze embedder" in set(table.description)
    at.radio(key="emb_protocol").set_value("parameters").run()
    table = table_with(at, "a R²")
    assert {"a R²", "a MSE", "b R²", "b MSE", "c R²"} <= set(table.columns)
    assert table["c R²"].isna().all()  # the shared phase has no R^2


def test_embeddings_page_computes_missing_protocols_in_the_background():
    save_sines_run("plain", protocols=("seeds",), sweep=False)
    at = visit(open_saved("plain"), "embeddings")
    at.radio(key="emb_protocol").set_value("functions").run()
    assert any("--protocols" in i.value for i in at.info)
    next(b for b in at.button if b.label.startswith("Compute held-out functions")).click().run()
    assert not at.exception, [e.value for e in at.exception]
    job = at.session_state["ne"]["jobs"]["protocols"]
    assert job.wait(120), "the tiny protocol job should finish within two minutes"
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(table_with(at, "retrieval@5")) == 7  # cloze and six baselines


def test_sweep_page_draws_a_sines_runs_sweep_with_coefficient_r2():
    save_sines_run("sines", protocols=("seeds",))
    at = visit(open_saved("sines"), "sweep")
    assert not at.error
    assert at.radio(key="sw_metric").value == "coefficient_r2"  # the unsaturated score first
    assert "parameter R²" in table_with(at, "mask ratio").columns  # friendly names (sweep_plots.SWEEP_COLUMNS)
