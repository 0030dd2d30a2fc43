"""One user's state: which run is shown, the runs this session made (a history), and its background jobs.

Everything a user owns lives in st.session_state (never st.cache_resource, which every
session shares). Runs read from disk (the demo, saved runs) never change, so those alone
are loaded once per file version with st.cache_resource and shared read-only.

The shown run changes only by the user's hand (the picker, an Open button, Save, Discard):
a finished job adds an entry to the history and says so, it never switches the view.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from app.history import SESSION, Entry, History, HistoryFull  # noqa: F401 - HistoryFull is raised to pages
from app.jobs import Job
from netembed.store import Run, RunError, list_runs, load_run, run_path

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = ROOT / "assets" / "demo_run"
DEMO, SAVED = "demo", "saved:"
PICKER = "run"  # the run picker's widget key and URL key


def runs_dir() -> Path:
    """Where runs are saved: $NETEMBED_RUNS_DIR, else ./runs."""
    return Path(os.environ.get("NETEMBED_RUNS_DIR") or "runs")


def _session() -> dict:
    ss = st.session_state
    if "ne" not in ss:
        # history: this session's unsaved runs; jobs: kind -> Job; pending: kind -> what to do with the job's
        # result; derived: (run key, name, args) -> value computed from a run; notices: ids of runs that jobs
        # added and the user has not opened yet; missing: a run a link asked for that is not here
        ss["ne"] = {"history": History(), "jobs": {}, "derived": {}, "pending": {}, "notices": [], "missing": None}
    return ss["ne"]


def history() -> History:
    return _session()["history"]


@st.cache_resource(show_spinner="Loading run...", max_entries=8)
def _load_shared(path: str, mtime_ns: int) -> Run:
    """A run folder on disk, loaded once per version and shared read-only by every session. Lazily: its torch
    objects are built when a page first uses run.zoo / run.embedder (pages that only show it never import torch)."""
    return load_run(path, lazy=True)


def load_from_disk(path: Path) -> Run:
    """The run in `path`, reloaded when any of its files changed (a file edited by hand is checked again)."""
    try:
        version = max((p.stat().st_mtime_ns for p in Path(path).iterdir()), default=0)
    except OSError:
        version = 0  # missing: load_run names the problem
    return _load_shared(str(path), version)


# ---------------------------------------------------------------- the shown run


def choices() -> list[str]:
    """The runs one can pick: this session's (newest first), the demo, then the saved runs."""
    out = [e.id for e in history().newest_first()]
    out += [DEMO] if DEMO_DIR.is_dir() else []
    try:
        out += [SAVED + name for name in list_runs(runs_dir())]
    except (RunError, OSError):
        pass  # an unreadable runs folder only hides the saved runs
    return out


def label(choice: str) -> str:
    if choice.startswith(SESSION):
        entry = history().get(choice)
        return f"{entry.name} (unsaved)" if entry else choice
    if choice == DEMO:
        return "demo run (bundled)"
    return f"saved: {choice[len(SAVED):]}"


def choice() -> str:
    """The picked run: the picker's value (seeded by sidebar.run_picker from the link)."""
    value = st.session_state.get(PICKER, DEMO)
    return value if value in choices() else DEMO


def open_run(value: str) -> None:
    """Show `value` (an Open button, Save, Discard: always the user's action). Call from a callback or before
    the picker is drawn."""
    st.session_state[PICKER] = value
    _session()["missing"] = None
    s = _session()
    s["notices"] = [n for n in s["notices"] if n != value]


def open_next(value: str) -> None:
    """Show `value` from the next script run on (for actions taken after the picker was drawn; then st.rerun)."""
    _session()["open_next"] = value


def apply_open_next() -> None:
    value = _session().pop("open_next", None)
    if value is not None:
        open_run(value)


def entry() -> Entry | None:
    """The shown run's history entry, if it is one of this session's unsaved runs."""
    return history().get(choice())


def file_stem() -> str:
    """The shown run's name with its settings, for download file names: 'poly-K10_b4_m0.25_s0'."""
    from app.history import slug

    shown = entry()
    c = choice()
    return slug(shown.name if shown else ("demo" if c == DEMO else c[len(SAVED):]))


def run_key() -> str:
    """Identifies the shown run's content, for caches of things derived from it (entry ids are never reused)."""
    return choice()


def missing() -> str | None:
    """A run a link asked for that this session cannot show (the demo is shown instead)."""
    return _session()["missing"]


def set_missing(value: str | None) -> None:
    _session()["missing"] = value


def missing_message(value: str) -> str:
    shown = value if len(value) <= 60 else value[:57] + "..."
    if value.startswith(SESSION) or value == "current":
        return (f"Run {shown!r} not found: it was an unsaved run of another browser session (or of this one "
                "before a reload), and unsaved runs live only in their session (save a run to share it) — "
                "showing the demo.")  # fmt: skip
    if value.startswith(SAVED):
        return f"Run {value[len(SAVED):][:60]!r} not found in the runs folder — showing the demo."
    return f"Run {shown!r} not found — showing the demo."


def run_for(value: str) -> Run | None:
    """The run a picker value names (raises RunError for a saved run that does not load)."""
    if value.startswith(SESSION):
        found = history().get(value)
        return found.run if found else None
    if value.startswith(SAVED):
        return load_from_disk(run_path(runs_dir(), value[len(SAVED):]))
    return load_from_disk(DEMO_DIR) if DEMO_DIR.is_dir() else None


def current_run() -> Run | None:
    """The run the pages show; None (the reason kept for load_error()) if it cannot be loaded."""
    s = _session()
    c = choice()
    s.pop("load_error", None)  # only this call's verdict counts
    try:
        return run_for(c)
    except RunError as e:
        s["load_error"] = f"Could not load {label(c)}: {e}"  # shown once, under the run picker
    return None


def load_error() -> str | None:
    """Why the chosen run could not be loaded in this script run, if it could not."""
    return _session().pop("load_error", None)


def add_run(run: Run, name: str, made_by: str, notify: bool = True) -> Entry:
    """A new history entry; the view stays where it is, and a notice offers to open it."""
    new = history().add(run, name, made_by)
    if notify:
        _session()["notices"].append(new.id)
    return new


def notices() -> list[Entry]:
    """Runs that jobs added and the user has not opened or dismissed, oldest first."""
    s = _session()
    s["notices"] = [n for n in s["notices"] if history().get(n) is not None]
    return [history().get(n) for n in s["notices"]]


def dismiss(entry_id: str) -> None:
    s = _session()
    s["notices"] = [n for n in s["notices"] if n != entry_id]


def discard(entry_id: str) -> None:
    """Drop an unsaved run (the user asked); the view goes to the demo if it showed that run."""
    history().discard(entry_id)
    dismiss(entry_id)
    s = _session()
    s["derived"] = {k: v for k, v in s["derived"].items() if k[0] != entry_id}


def derived(name: str, compute, *args):
    """compute(*args) once per (shown run, name, args), kept in this session."""
    cache = _session()["derived"]
    key = (run_key(), name, args)
    if key not in cache:
        if len(cache) > 64:  # a session that browses many runs should not keep all their projections
            cache.clear()
        cache[key] = compute(*args)
    return cache[key]


# ---------------------------------------------------------------- background jobs


def estimated_seconds(kind: str, flops: float) -> tuple[float, str]:
    """(seconds, how it was estimated): from the rate the last finished job of this kind reached in this
    session, else from limits.py's assumed rate (NETEMBED_GFLOPS)."""
    from netembed.limits import Limits

    rate = _session().get("rates", {}).get(kind)
    if rate:
        return flops / rate, f"at the rate your last {kind} job reached"
    gflops = Limits.from_env().gflops
    return flops / (gflops * 1e9), f"rough: {gflops:g} GFLOP/s assumed until a job here is measured"


def duration_text(kind: str, flops: float) -> str:
    seconds, how = estimated_seconds(kind, flops)
    if seconds < 90:
        amount = f"{max(1, round(seconds))} s"
    elif seconds < 5400:
        amount = f"{seconds / 60:.0f} min"
    else:
        amount = f"{seconds / 3600:.1f} h"
    return f"Estimated duration: about {amount} ({how})."


def job(kind: str) -> Job | None:
    return _session()["jobs"].get(kind)


def start(kind: str, new: Job, on_done, flops: float | None = None) -> Job:
    """Start `new` unless a job of this kind is running; `on_done(job)` runs once, on a script run, when it ends.
    `flops` (limits.py's estimate) lets the next estimate of this kind use the rate this job reached.
    Raises HistoryFull when the history has no room for the run the job will add."""
    s = _session()
    old = s["jobs"].get(kind)
    if old is not None and old.running:
        return old
    history().check_room(coming=len(s["pending"]))
    new.flops = flops
    s["jobs"][kind] = new.start()
    s["pending"][kind] = on_done
    return new


def pending(kind: str) -> bool:
    """True while a job's result has not yet been handed to the session."""
    return kind in _session()["pending"]


def running_jobs() -> list[Job]:
    return [j for j in _session()["jobs"].values() if j.running]


def collect_finished() -> list[Entry]:
    """Hand every job that ended since the last script run to its on_done (which adds a history entry);
    call before any widget is drawn. Returns the entries added, for a toast."""
    s = _session()
    added = []
    for kind in [k for k in s["pending"] if not s["jobs"][k].running]:
        on_done = s["pending"].pop(kind)
        j = s["jobs"][kind]
        if j.state == "done" and getattr(j, "flops", None) and j.seconds > 0.5:
            s.setdefault("rates", {})[kind] = j.flops / j.seconds  # FLOP/s this session's jobs of this kind reached
        if j.result is not None:  # a failed job has no result; its error stays on the job
            new = on_done(j)
            if isinstance(new, Entry):
                j.entry_id = new.id  # the job panel's Open button
                added.append(new)
    return added
