"""One user's state: which run is current, the runs this session made, and its background jobs.

Everything a user owns lives in st.session_state (never st.cache_resource, which every
session shares). Runs read from disk (the demo, saved runs) never change, so those alone
are loaded once per file version with st.cache_resource and shared read-only.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from app import widgets
from app.jobs import Job
from netembed.store import Run, RunError, list_runs, load_run, run_path

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = ROOT / "assets" / "demo_run"
DEMO, CURRENT, SAVED = "demo", "current", "saved:"


def runs_dir() -> Path:
    """Where runs are saved: $NETEMBED_RUNS_DIR, else ./runs."""
    return Path(os.environ.get("NETEMBED_RUNS_DIR") or "runs")


def _session() -> dict:
    ss = st.session_state
    if "ne" not in ss:
        # choice: which run is current; made: the run this session is making; jobs: kind -> Job;
        # pending: kind -> what to do with the job's result; derived: (run key, name, args) -> value computed from
        # a run; serial: makes run keys unique; sweeps: run key -> sweep rows
        ss["ne"] = {"choice": DEMO, "made": None, "jobs": {}, "derived": {}, "serial": 0, "sweeps": {}, "pending": {}}
    return ss["ne"]


@st.cache_resource(show_spinner="Loading run...", max_entries=8)
def _load_shared(path: str, mtime_ns: int) -> Run:
    """A run folder on disk, loaded once per version and shared read-only by every session."""
    return load_run(path)


def load_from_disk(path: Path) -> Run:
    meta = Path(path) / "meta.json"
    return _load_shared(str(path), meta.stat().st_mtime_ns if meta.exists() else 0)


# ---------------------------------------------------------------- the current run


def choices() -> list[str]:
    """The runs one can pick: the one being made (if any), the demo, then the saved runs."""
    out = [CURRENT] if _session()["made"] is not None else []
    out += [DEMO] if DEMO_DIR.is_dir() else []
    try:
        out += [SAVED + name for name in list_runs(runs_dir())]
    except (RunError, OSError):
        pass  # an unreadable runs folder only hides the saved runs
    return out


def label(choice: str) -> str:
    if choice == CURRENT:
        return "the run made now"
    if choice == DEMO:
        return "demo run (bundled)"
    return f"saved: {choice[len(SAVED):]}"


def choice() -> str:
    return _session()["choice"]


def choose(value: str) -> None:
    _session()["choice"] = value


def run_key() -> str:
    """Identifies the current run's content, for caches of things derived from it."""
    s = _session()
    return f"current#{s['serial']}" if s["choice"] == CURRENT else s["choice"]


def current_run() -> Run | None:
    """The run the pages show; None (the reason kept for load_error()) if it cannot be loaded."""
    s = _session()
    c = s["choice"]
    s.pop("load_error", None)  # only this call's verdict counts
    try:
        if c == CURRENT and s["made"] is not None:
            return s["made"]
        if c.startswith(SAVED):
            return load_from_disk(run_path(runs_dir(), c[len(SAVED):]))
        if DEMO_DIR.is_dir():
            s["choice"] = DEMO
            return load_from_disk(DEMO_DIR)
    except RunError as e:
        s["load_error"] = f"Could not load {label(c)}: {e}"  # shown once, under the run picker
    return None


def load_error() -> str | None:
    """Why the chosen run could not be loaded in this script run, if it could not."""
    return _session().pop("load_error", None)


def set_made(run: Run) -> None:
    """Make `run` this session's run-in-progress and show it."""
    s = _session()
    s["made"], s["choice"], s["saved_as"] = run, CURRENT, None
    s["serial"] += 1
    s["derived"] = {k: v for k, v in s["derived"].items() if not k[0].startswith("current#")}
    widgets.put("run", CURRENT)  # the sidebar's run picker follows


def mark_saved(name: str) -> None:
    """The run made now was saved under `name` (the sidebar says so until another run is made)."""
    _session()["saved_as"] = name


def saved_as() -> str | None:
    """The name the run made now was last saved under, if it was."""
    return _session().get("saved_as")


def derived(name: str, compute, *args):
    """compute(*args) once per (current run, name, args), kept in this session."""
    cache = _session()["derived"]
    key = (run_key(), name, args)
    if key not in cache:
        if len(cache) > 64:  # a session that browses many runs should not keep all their projections
            cache.clear()
        cache[key] = compute(*args)
    return cache[key]


# ---------------------------------------------------------------- background jobs


def job(kind: str) -> Job | None:
    return _session()["jobs"].get(kind)


def start(kind: str, new: Job, on_done) -> Job:
    """Start `new` unless a job of this kind is running; `on_done(job)` runs once, on a script run, when it ends."""
    s = _session()
    old = s["jobs"].get(kind)
    if old is not None and old.running:
        return old
    s["jobs"][kind] = new.start()
    s["pending"][kind] = on_done
    return new


def pending(kind: str) -> bool:
    """True while a job's result has not yet been handed to the session."""
    return kind in _session()["pending"]


def running_jobs() -> list[Job]:
    return [j for j in _session()["jobs"].values() if j.running]


def adopt_next_run(run: Run) -> None:
    """Make `run` the run-in-progress at the start of the next script run (e.g. an upload)."""
    _session()["incoming"] = run


def collect_finished() -> bool:
    """Adopt an uploaded run, and hand every job that ended since the last script run to its on_done;
    call before any widget is drawn (the run picker follows). True if anything changed."""
    s = _session()
    incoming = s.pop("incoming", None)
    if incoming is not None:
        set_made(incoming)
    done = [kind for kind in s["pending"] if not s["jobs"][kind].running]
    for kind in done:
        on_done = s["pending"].pop(kind)
        j = s["jobs"][kind]
        if j.result is not None:  # a failed job has no result; its error stays on the job
            on_done(j)
    return bool(done) or incoming is not None


def sweep_rows(key: str) -> list | None:
    """Sweep rows this session made for the run with this key."""
    return _session()["sweeps"].get(key)


def keep_sweep(key: str, rows: list) -> None:
    """Keep a sweep's rows; on the run made now they also join its report, so saving keeps them."""
    s = _session()
    s["sweeps"][key] = rows
    if key == f"current#{s['serial']}" and s["made"] is not None:
        s["made"].report = {**(s["made"].report or {}), "sweep": rows}
