"""The dashboard under streamlit.testing.v1.AppTest: every page renders, training adds to the session.

AppTest sees plotly charts only as unknown elements; the figures themselves are tested in
test_plots.py. Pages import torch, so the timeout is raised well above AppTest's 3 s.
"""

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from netembed.zoo import fit_errors

from app_session import MAIN, PAGES, TIMEOUT, fresh, visit
from random_zoo import with_nan_model

pytestmark = pytest.mark.usefixtures("private_runs_folder")


def texts(at: AppTest) -> str:
    return " ".join(str(e.value) for kind in ("title", "subheader", "caption", "markdown", "info", "success")
                    for e in getattr(at, kind))  # fmt: skip


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_the_demo_from_a_fresh_start(page):
    at = visit(fresh(), page)
    assert not at.error, [e.value for e in at.error]
    assert at.title, "every page has a title"
    assert at.selectbox(key="run").value == "demo"


def train_tiny_zoo(at: AppTest) -> AppTest:
    visit(at, "family")
    at.number_input(key="fam_k").set_value(2).run()
    visit(at, "zoo")
    at.number_input(key="zoo_m").set_value(3)
    at.number_input(key="zoo_width").set_value(8)
    at.number_input(key="zoo_steps").set_value(60).run()
    next(b for b in at.button if b.label == "Train zoo").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = at.session_state["ne"]["jobs"]["zoo"]
    assert job.wait(60), "the tiny zoo should train within a minute"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return open_new_run(at)


def open_new_run(at: AppTest) -> AppTest:
    """Click the sidebar's Open button of the run a job just added (the view never moves by itself)."""
    next(b for b in at.sidebar.button if b.label == "Open run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="run").value.startswith("session:")
    return at


def test_training_a_zoo_adds_a_run_that_the_user_opens():
    at = visit(fresh(), "zoo")
    assert len(at.dataframe[0].value) == 120  # the demo's 12 x 10 models
    train_tiny_zoo(at)
    table = at.dataframe[0].value
    assert len(table) == 2 * 3 and set(table["target function"]) == {0, 1}  # plots.ZOO_HEADERS: readable headers
    assert any("Zoo training finished" in s.value for s in [*at.success, *at.warning])  # 60 steps: most fail to fit
    for page in PAGES:  # every page now shows the new run
        visit(at, page)
        assert not at.error, (page, [e.value for e in at.error])


def test_bad_settings_show_a_message_not_a_traceback():
    at = visit(fresh(), "family")
    at.radio(key="fam_kind").set_value("polynomials")  # the demo is sines: the variety threshold is the polynomials'
    at.number_input(key="fam_k").set_value(50)
    at.number_input(key="fam_distance").set_value(5.0).run()
    assert not at.exception
    assert len(at.error) == 1 and "could not draw 50 functions" in at.error[0].value


def test_two_sessions_keep_separate_runs():
    a, b = fresh(), fresh()
    train_tiny_zoo(a)
    b.run()
    assert a.selectbox(key="run").value.startswith("session:")
    assert b.selectbox(key="run").value == "demo" and b.selectbox(key="run").options == ["demo run (bundled)"]


def test_settings_come_from_the_url():
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT)
    at.query_params["fam_k"] = "3"
    at.query_params["fam_sampling"] = "chebyshev"
    at.query_params["fam_seed"] = "not a number"  # a hand-edited link falls back to the default
    at.run()
    assert not at.exception
    assert at.number_input(key="fam_k").value == 3
    assert at.selectbox(key="fam_sampling").value == "chebyshev"
    assert at.number_input(key="fam_seed").value == 0
    at.number_input(key="fam_seed").set_value(7).run()
    assert at.query_params["fam_seed"] == ["7"] or at.query_params["fam_seed"] == "7"


def finish(at: AppTest, kind: str) -> AppTest:
    job = at.session_state["ne"]["jobs"][kind]
    assert job.wait(120), f"the tiny {kind} job should end within two minutes"
    assert job.error is None, job.error
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_training_an_embedder_then_a_sweep_shows_probes_and_a_heatmap():
    at = train_tiny_zoo(fresh())
    visit(at, "embeddings")
    assert any("no embedder" in i.value for i in at.info)
    visit(at, "embedder")
    at.number_input(key="emb_steps").set_value(20).run()
    next(b for b in at.button if b.label == "Train embedder").click().run()
    assert not at.error, [e.value for e in at.error]
    finish(at, "embedder")
    assert any("Embedder training finished" in s.value for s in at.success)
    open_new_run(at)
    assert at.metric[0].label.startswith("Cloze R")
    visit(at, "embeddings")
    probe_table = next(d.value for d in at.dataframe if "description" in d.value.columns)
    assert probe_table.description.tolist()[0] == "cloze embedder" and len(probe_table) >= 5
    assert probe_table["linear probe (n=2)"].between(0, 1).all()  # 2 functions x 1 held-out seed
    visit(at, "sweep")
    assert any("No sweep for this run" in i.value for i in at.info)
    at.multiselect(key="sw_ratios").set_value([0.5])
    at.multiselect(key="sw_bottlenecks").set_value([2])
    at.number_input(key="sw_steps").set_value(10).run()
    next(b for b in at.button if b.label.startswith("Run sweep")).click().run()
    finish(at, "sweep")
    open_new_run(at)
    sweep = next(d.value for d in at.dataframe if "mask ratio" in d.value.columns)
    assert sweep[["mask ratio", "bottleneck"]].values.tolist() == [[0.5, 2]]


def test_cancel_keeps_the_models_trained_so_far():
    at = visit(fresh(), "zoo")
    at.number_input(key="zoo_m").set_value(2)
    at.number_input(key="zoo_width").set_value(4)
    at.number_input(key="zoo_steps").set_value(1_000_000).run()
    next(b for b in at.button if b.label == "Train zoo").click().run()
    job = at.session_state["ne"]["jobs"]["zoo"]
    while job.step == 0 and job.running:
        job.wait(0.05)
    at.button(key="cancel_zoo").click().run()  # the button lives in the polling fragment
    assert job.wait(60) and job.state == "cancelled"
    at.run()
    assert not at.exception
    assert any("cancelled at step" in w.value for w in at.warning)
    open_new_run(at)
    assert len(at.dataframe[0].value) == 12 * 2 and 0 < job.result.steps_done < 1_000_000  # the demo family: 12 sines


def test_save_the_run_made_now_under_a_checked_name(tmp_path):
    at = train_tiny_zoo(fresh())
    runs = Path(os.environ["NETEMBED_RUNS_DIR"])
    at.sidebar.text_input(key="save_name").set_value("../evil").run()
    next(b for b in at.sidebar.button if b.label == "Save to the runs folder").click().run()
    assert any("not allowed" in e.value for e in at.sidebar.error)
    assert not runs.exists() or not any(runs.iterdir())  # nothing written, inside or outside the runs folder
    assert not (runs.parent / "evil").exists()
    at.sidebar.text_input(key="save_name").set_value("tiny-zoo").run()
    next(b for b in at.sidebar.button if b.label == "Save to the runs folder").click().run()
    assert (runs / "tiny-zoo" / "meta.json").is_file()
    assert any("saved as tiny-zoo" in c.value for c in at.sidebar.caption)  # at once (issue 10, bug 5)
    assert at.selectbox(key="run").value == "saved:tiny-zoo"  # the saved run replaced its unsaved entry
    before = (runs / "tiny-zoo" / "meta.json").read_bytes()
    train_tiny_zoo(at)  # another unsaved run, saved under the same name
    at.sidebar.text_input(key="save_name").set_value("tiny-zoo").run()
    next(b for b in at.sidebar.button if b.label == "Save to the runs folder").click().run()
    assert any("exists already" in e.value for e in at.sidebar.error)  # another user's run is never replaced
    assert (runs / "tiny-zoo" / "meta.json").read_bytes() == before
    at.selectbox(key="run").set_value("saved:tiny-zoo").run()
    visit(at, "zoo")
    assert len(at.dataframe[0].value) == 6


def test_family_reset_returns_to_the_current_runs_family():
    at = visit(fresh(), "family")
    at.number_input(key="fam_k").set_value(3).run()
    assert at.metric[0].value == "3"
    next(b for b in at.button if b.label == "Reset to the current run's family").click().run()
    assert not at.exception
    assert at.number_input(key="fam_k").value == 12 and at.metric[0].value == "12"  # the demo's 12 functions


def test_a_corrupted_saved_run_gives_one_clear_message():
    at = train_tiny_zoo(fresh())
    at.sidebar.text_input(key="save_name").set_value("broken").run()
    next(b for b in at.sidebar.button if b.label == "Save to the runs folder").click().run()
    folder = Path(os.environ["NETEMBED_RUNS_DIR"]) / "broken"
    (folder / "zoo.safetensors").write_bytes(b"garbage")  # hand-edited after saving
    at.run()
    at.selectbox(key="run").set_value("saved:broken").run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "zoo.safetensors" in errors[0] and "checksum" in errors[0]
    visit(at, "embeddings")
    assert len(at.error) == 1
    at.selectbox(key="run").set_value("demo").run()
    assert not at.error  # the message went with the broken run


def test_models_that_diverged_are_reported_on_the_zoo_page():
    at = train_tiny_zoo(fresh())
    assert not any("diverged" in w.value for w in at.warning)  # a healthy zoo says nothing
    made = at.session_state["ne"]["history"].get(at.selectbox(key="run").value).run
    poisoned = with_nan_model(made.zoo, 0)
    poisoned.fit_mse, poisoned.failed = fit_errors(poisoned, made.family)
    made.zoo = poisoned  # as if model 0 had blown up in training
    at.run()
    assert any(f"of {poisoned.n_models} models failed to fit" in w.value and "1 of them diverged" in w.value
               for w in at.warning)  # fmt: skip
    assert not at.exception
