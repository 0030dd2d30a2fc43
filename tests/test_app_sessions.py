"""Several users at once: each browser session keeps its own runs and jobs; only a saved run is shared.

Two AppTest sessions in one process share what a real server shares (st.cache_resource,
the runs folder) and nothing else, so they stand in for two browsers.
"""

import threading

import pytest
from streamlit.testing.v1 import AppTest

import netembed.zoo as zoo_module

from app_session import fresh, visit

pytestmark = pytest.mark.usefixtures("private_runs_folder")
WAIT_S = 120  # generous: a loaded machine must not fail a test, a hung job must not hang the suite


def start_zoo(at: AppTest, n_functions: int, steps: int = 60):
    """Set K on the Family page, click Train zoo on the Zoo page; returns the session's job (not waited for)."""
    visit(at, "family")
    at.number_input(key="fam_k").set_value(n_functions).run()
    visit(at, "zoo")
    at.number_input(key="zoo_m").set_value(3)
    at.number_input(key="zoo_width").set_value(8)
    at.number_input(key="zoo_steps").set_value(steps).run()
    next(b for b in at.button if b.label == "Train zoo").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at.session_state["ne"]["jobs"]["zoo"]


def open_new_run(at: AppTest) -> AppTest:
    """Run the script (the ended job's run joins the history) and click its Open button in the sidebar."""
    at.run()
    next(x for x in at.sidebar.button if x.label == "Open run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown_run(at: AppTest):
    return at.session_state["ne"]["history"].get(at.selectbox(key="run").value).run


def zoo_table(at: AppTest):
    visit(at, "zoo")
    return at.dataframe[0].value


def gate_training_of(n_models: int, monkeypatch) -> tuple[threading.Event, threading.Event]:
    """Make any zoo of `n_models` models stop before its first step until the test says so.

    Returns (entered, release): `entered` is set once such a zoo is inside its training loop,
    and it stays there until `release` is set. The overlap of two jobs is then a fact the test
    arranges, not a race between a training of a second or so and the test's own pace.
    """
    entered, release = threading.Event(), threading.Event()
    real_make_step = zoo_module.make_step

    def gated_make_step(layers, *args, **kwargs):
        train_step, engine = real_make_step(layers, *args, **kwargs)
        if layers[0][0].shape[0] != n_models:  # (n_models, fan_in, fan_out): another zoo trains freely
            return train_step, engine

        def gated_step(*step_args, **step_kwargs):
            entered.set()
            assert release.wait(WAIT_S), "the test never released the gated zoo"
            return train_step(*step_args, **step_kwargs)

        return gated_step, engine

    monkeypatch.setattr(zoo_module, "make_step", gated_make_step)
    return entered, release


def test_two_sessions_training_at_once_keep_their_own_zoos(monkeypatch):
    entered, release = gate_training_of(2 * 3, monkeypatch)  # A's zoo: 2 functions x 3 models
    a, b = fresh(), fresh()
    job_a = start_zoo(a, 2)
    try:
        assert entered.wait(WAIT_S), "A's zoo never started training"
        job_b = start_zoo(b, 3)  # B trains to the end while A is held inside its training loop
        assert job_b.wait(WAIT_S) and job_b.state == "done", job_b.error
        assert job_a.running, "A's job is held at its first step, so it must still be running"
        assert job_a is not job_b
    finally:
        release.set()
    assert job_a.wait(WAIT_S) and job_a.state == "done", job_a.error
    a, b = open_new_run(a), open_new_run(b)
    table_a, table_b = zoo_table(a), zoo_table(b)
    assert len(table_a) == 2 * 3 and set(table_a["target function"]) == {0, 1}
    assert len(table_b) == 3 * 3 and set(table_b["target function"]) == {0, 1, 2}
    made_a, made_b = shown_run(a), shown_run(b)
    assert made_a is not made_b and made_a.zoo.n_models == 6 and made_b.zoo.n_models == 9
    assert a.session_state["ne"]["jobs"]["zoo"] is job_a and b.session_state["ne"]["jobs"]["zoo"] is job_b


def test_a_run_reaches_another_session_only_once_saved_and_loaded(private_runs_folder):
    a, b = fresh(), fresh()
    assert start_zoo(a, 2).wait(WAIT_S)
    open_new_run(a)
    b.run()
    assert not b.session_state["ne"]["history"].entries  # A's unsaved run is nowhere in B
    assert b.selectbox(key="run").value == "demo" and len(b.selectbox(key="run").options) == 1
    a.sidebar.text_input(key="save_name").set_value("from-a").run()
    next(x for x in a.sidebar.button if x.label == "Save to the runs folder").click().run()
    assert (private_runs_folder / "from-a" / "meta.json").is_file()
    b.run()
    assert b.selectbox(key="run").value == "demo"  # listed for B now, but not forced on B
    assert len(b.selectbox(key="run").options) == 2
    b.selectbox(key="run").set_value("saved:from-a").run()
    assert len(zoo_table(b)) == 6
    assert start_zoo(a, 3).wait(WAIT_S)  # A carries on, unsaved: B keeps what was saved
    open_new_run(a)
    b.run()
    assert len(zoo_table(a)) == 9 and len(zoo_table(b)) == 6
    assert not b.session_state["ne"]["history"].entries


def test_a_saved_run_survives_a_server_restart(private_runs_folder):
    import streamlit as st

    a = fresh()
    assert start_zoo(a, 2).wait(WAIT_S)
    open_new_run(a)
    a.sidebar.text_input(key="save_name").set_value("kept").run()
    next(x for x in a.sidebar.button if x.label == "Save to the runs folder").click().run()
    st.cache_resource.clear()  # what a restart loses: every in-memory object (sessions are new AppTests)
    st.cache_data.clear()
    later = fresh()
    later.selectbox(key="run").set_value("saved:kept").run()
    assert not later.exception and len(zoo_table(later)) == 6
