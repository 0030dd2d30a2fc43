"""Issue 10's bugs, each reproduced in AppTest: no run is lost, links say what they show, quality in view.

Written against the app before the fixes (each failed there); the steps follow the issue's
reproductions with tiny configs. Jobs are waited for with job.wait, never timed.
"""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from netembed.archive import run_archive
from netembed.store import load_run

from app_session import MAIN, SETTLE, TIMEOUT, fresh, settle, visit

pytestmark = pytest.mark.usefixtures("private_runs_folder")
ROOT = Path(__file__).resolve().parents[1]


def click(at: AppTest, label: str, where=None) -> AppTest:
    buttons = (where or at).button
    next(b for b in buttons if b.label.startswith(label)).click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def start_zoo(at: AppTest, k: int = 2, steps: int = 60, **more) -> object:
    """Family K on the Family page, a tiny zoo on the Zoo page; returns the job (not waited for)."""
    visit(at, "family")
    at.number_input(key="fam_k").set_value(k).run()
    visit(at, "zoo")
    at.number_input(key="zoo_m").set_value(3)
    at.number_input(key="zoo_width").set_value(8)
    for key, value in more.items():
        at.number_input(key=key).set_value(value)
    at.number_input(key="zoo_steps").set_value(steps).run()
    click(at, "Train zoo")
    return at.session_state["ne"]["jobs"]["zoo"]


def unsaved_options(at: AppTest) -> list[str]:
    """The run picker's entries that are neither the demo nor a saved run."""
    picker = at.selectbox(key="run")
    return [o for o in picker.options if not o.startswith("saved") and o != "demo run (bundled)"]


def cancel_when_started(at: AppTest, kind: str):
    job = at.session_state["ne"]["jobs"][kind]
    while job.step == 0 and job.running:
        job.wait(0.05)
    at.button(key=f"cancel_{kind}").click().run()
    assert job.wait(SETTLE) and job.state == "cancelled"
    at.run()
    return job


# ---------------------------------------------------------------- bug 1: an unsaved run is replaced silently


def test_bug1_a_cancelled_zoo_never_replaces_the_finished_one_and_the_picker_stays():
    at = fresh()
    settle(at, start_zoo(at, k=2))
    assert at.selectbox(key="run").value == "demo", "the picker never moves by itself"
    assert len(unsaved_options(at)) == 1
    at.number_input(key="zoo_steps").set_value(1_000_000).run()
    click(at, "Train zoo")
    job = cancel_when_started(at, "zoo")
    assert 0 < job.result.steps_done < 1_000_000
    assert at.selectbox(key="run").value == "demo"
    assert len(unsaved_options(at)) == 2, "the finished zoo and the cancelled one both stay"
    # the first run is still whole: 60 steps, 6 models
    picker = at.selectbox(key="run")
    picker.select_index(next(i for i, v in enumerate(picker.options) if "60 steps" in v)).run()
    assert len(at.dataframe[0].value) == 6
    assert any("60/60 steps" in str(m.value) or "60/60 steps" in str(m.delta) for m in at.metric)


def test_bug1_a_finished_job_offers_its_run_and_the_upload_is_a_new_entry():
    at = fresh()
    job = start_zoo(at, k=2)
    visit(at, "embeddings")  # the user looks at the demo's embeddings while the zoo trains
    settle(at, job)
    assert at.selectbox(key="run").value == "demo" and not any("no embedder" in i.value for i in at.info)
    assert any(c.value.startswith("New:") for c in at.sidebar.caption)  # and a toast said so when it ended
    click(at, "Open run", at.sidebar)  # the explicit action that moves the picker
    assert at.selectbox(key="run").value != "demo"
    opened = at.selectbox(key="run").value
    at.sidebar.file_uploader(key="upload").upload("from-a-colleague.zip", run_archive(ROOT / "assets" / "demo_run"),
                                                  "application/zip").run()  # fmt: skip
    assert not at.exception
    assert at.selectbox(key="run").value == opened, "an upload does not replace or switch the shown run"
    assert len(unsaved_options(at)) == 2 and any("from-a-colleague" in o for o in unsaved_options(at))


# ---------------------------------------------------------------- bug 2: cancelling the embedder


def test_bug2_cancelling_the_embedder_reports_the_step_it_reached():
    at = fresh()
    visit(at, "embedder")
    at.number_input(key="emb_steps").set_value(20_000).run()
    click(at, "Train embedder")
    job = cancel_when_started(at, "embedder")
    done = job.result.embedder.steps_done_
    assert 0 < done < 20_000 and job.step == done
    assert any(f"cancelled at step {done} of 20000" in w.value for w in at.warning), [w.value for w in at.warning]


# ---------------------------------------------------------------- bug 3: links to a run that is not here


@pytest.mark.parametrize("wanted", ["saved:nope", "current", "session:0123abcd"])
def test_bug3_a_link_to_a_missing_run_says_so_and_keeps_its_url(wanted):
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT)
    at.query_params["run"] = wanted
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("not" in e and "showing the demo" in e for e in errors), errors
    assert at.selectbox(key="run").value == "demo"
    assert at.query_params["run"] in (wanted, [wanted]), "the link is never rewritten silently"
    visit(at, "sweep")
    assert any("showing the demo" in e.value for e in at.error), "every page says it"


# ---------------------------------------------------------------- bug 4: the URL keeps every setting


def test_bug4_a_link_copied_on_the_zoo_page_keeps_the_family():
    at = visit(fresh(), "family")
    at.number_input(key="fam_k").set_value(7)
    at.number_input(key="fam_seed").set_value(5).run()
    at.query_params.clear()  # what the browser does on a page change: the new page's URL has no query
    visit(at, "zoo")
    link = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert link.get("fam_k") == "7" and link.get("fam_seed") == "5", link
    other = AppTest.from_file(MAIN, default_timeout=TIMEOUT)  # a colleague opens the link
    for k, v in link.items():
        other.query_params[k] = v
    other.run()
    visit(other, "zoo")
    assert any("K = 7" in c.value and "seed 5" in c.value for c in other.caption), [c.value for c in other.caption]


def test_bug4_the_zoo_tables_filters_are_in_the_url():
    at = visit(fresh(), "zoo")
    at.radio(key="zoo_filter_split").set_value("held-out").run()
    at.toggle(key="zoo_filter_failed").set_value(True).run()
    assert at.query_params.get("zoo_filter_split") in ("held-out", ["held-out"])
    assert at.query_params.get("zoo_filter_failed") in ("1", ["1"])


# ---------------------------------------------------------------- bug 5: stale sidebar after Save


def test_bug5_save_updates_the_sidebar_at_once(private_runs_folder):
    at = fresh()
    settle(at, start_zoo(at, k=2))
    click(at, "Open run", at.sidebar) if any(b.label == "Open run" for b in at.sidebar.button) else None
    at.sidebar.text_input(key="save_name").set_value("kept-now").run()
    click(at, "Save to the runs folder", at.sidebar)  # one script run, no extra rerun by the test
    assert (private_runs_folder / "kept-now" / "meta.json").is_file()
    assert any("kept-now" in o for o in at.selectbox(key="run").options)
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "not saved yet" not in captions and "kept-now" in captions


# ---------------------------------------------------------------- bug 6: one meaning of "failed"


def test_bug6_most_models_failing_to_fit_is_a_warning_not_a_success():
    at = fresh()
    job = start_zoo(at, k=2, zoo_fail_relative_mse=1e-9)  # no model fits this well in 60 steps: every one fails
    settle(at, job)
    assert not any("finished" in s.value for s in at.success), "no green banner over a zoo that failed"
    warnings = " ".join(w.value for w in at.warning)
    assert "6 of 6 models failed to fit" in warnings, warnings


@pytest.mark.parametrize("page, key, button", [("zoo", "zoo_steps", "Train zoo"),
                                               ("embedder", "emb_steps", "Train embedder")])
def test_bug6_zero_steps_is_refused(page, key, button):
    at = visit(fresh(), page)
    at.number_input(key=key).set_value(0).run()
    click(at, button)
    assert any("Steps = 0" in e.value for e in at.error), [e.value for e in at.error]
    assert page not in at.session_state["ne"]["jobs"] and "embedder" not in at.session_state["ne"]["jobs"]


# ---------------------------------------------------------------- bug 7: the Gradients page empties itself


def test_bug7_the_gradients_page_keeps_models_when_the_function_changes():
    at = visit(fresh(), "gradients")
    at.selectbox(key="grad_f").set_value(2).run()
    assert not any("Choose at least one model" in i.value for i in at.info)
    assert at.multiselect(key="grad_models").value, "models of the new function are shown"
    at.toggle(key="grad_all").set_value(True).run()
    assert not any(m.disabled and not m.value for m in at.multiselect), "no empty disabled picker"
    assert not any("Choose at least one model" in i.value for i in at.info)


# ---------------------------------------------------------------- bug 8: the Sweep caption


def test_bug8_the_sweep_caption_names_the_settings_it_uses():
    at = visit(fresh(), "sweep")
    captions = " ".join(c.value for c in at.caption)
    assert "as on the Embedder page" not in captions
    base = load_run(ROOT / "assets" / "demo_run").embedder.config  # every cell's base: the run's own embedder
    assert f"mask unit {base.mask_unit}" in captions and f"seed {base.seed}" in captions, captions


# ---------------------------------------------------------------- the new views: landing card, compare, rename


def test_the_landing_card_leads_to_the_demos_embeddings_in_one_click():
    at = fresh()
    text = " ".join(m.value for m in at.markdown)
    assert "1 Family" in text and "6 Sweep" in text and "demo run" in text
    click(at, "See the demo's embeddings")
    assert at.title[0].value == "Embeddings" and at.selectbox(key="run").value == "demo"


def test_compare_two_runs_shows_one_probe_column_per_run():
    at = fresh()
    demo = load_run(ROOT / "assets" / "demo_run")
    at.session_state["ne"]["history"].add(demo, "a copy of the demo", "upload")
    visit(at, "compare")
    assert not at.error and not at.info, [e.value for e in [*at.error, *at.info]]
    table = at.dataframe[0].value
    n = int((~demo.zoo.is_train).sum())
    assert list(table.columns) == ["description", f"demo run (bundled) (n={n})", f"a copy of the demo (unsaved) (n={n})"]
    assert table.iloc[0, 1] == table.iloc[0, 2]  # the same run twice: the same scores
    assert at.query_params.get("cmp_runs") is not None  # the comparison is in the link


def test_a_run_is_renamed_and_its_csv_names_carry_the_name():
    at = fresh()
    settle(at, start_zoo(at, k=2))
    click(at, "Open run", at.sidebar)
    shown = at.selectbox(key="run").value
    at.sidebar.text_input(key=f"rename_{shown.removeprefix('session:')}").set_value("my first zoo").run()
    assert "my first zoo (unsaved)" in at.selectbox(key="run").options
    assert at.sidebar.text_input(key="save_name").value == "my-first-zoo"


def test_the_history_is_bounded_by_refusing_new_jobs_never_by_dropping():
    from app.history import MAX_UNSAVED

    at = visit(fresh(), "zoo")
    demo = load_run(ROOT / "assets" / "demo_run")
    for i in range(MAX_UNSAVED):
        at.session_state["ne"]["history"].add(demo, f"copy {i}", "upload")
    at.run()
    click(at, "Train zoo")
    assert any(f"at most {MAX_UNSAVED}" in e.value for e in at.error), [e.value for e in at.error]
    assert "zoo" not in at.session_state["ne"]["jobs"]
    assert len(at.session_state["ne"]["history"].entries) == MAX_UNSAVED
