"""The live view of a background job: progress bar, live chart, cancel; polled with st.fragment."""

from __future__ import annotations

import streamlit as st

from app import state
from netembed.plots import training_figure

POLL_SECONDS = 1.0
STAGES = {"embedder": "training the embedder", "probes": "probing the embeddings",
          "baselines": "probing the baselines", "projections": "projecting to 2D"}  # fmt: skip


def counted(j) -> str:
    """The job's count: "step 40 of 100", or in its own unit ("1,200 of 4,000 model-steps")."""
    return f"step {j.step} of {j.total}" if j.unit == "step" else f"{j.step:,} of {j.total:,} {j.unit}s"


def _open_button(j, kind: str) -> None:
    """The job's run joined the history; the view moves only when the user asks."""
    entry_id = getattr(j, "entry_id", None)
    new = state.history().get(entry_id) if entry_id else None
    if new is not None and state.choice() != new.id:
        if st.button(f"Open {new.name}", key=f"open_job_{kind}", icon=":material/open_in_new:"):
            state.open_next(new.id)  # the picker is drawn outside this fragment: a full run shows the run
            st.rerun(scope="app")


def job_panel(kind: str, title: str, verdict=None) -> None:
    """Show the session's `kind` job, if any. While it runs, only this panel reruns, every second;
    when it ends, one full rerun hands its result to the session (the history gains an entry).
    `verdict(job)` may return a warning shown instead of the green "finished" (e.g. most models failed)."""
    if state.job(kind) is None:
        return

    @st.fragment(run_every=POLL_SECONDS if state.job(kind).running else None)
    def panel():
        j = state.job(kind)
        if j.running:
            stage = STAGES.get(j.stage, j.stage)
            where = f" · {stage}" if stage else ""
            text = ("cancelling..." if j.cancelling else
                    f"{title}: {counted(j)}{where} · {j.seconds:.0f} s")  # fmt: skip
            c1, c2 = st.columns([5, 1], vertical_alignment="bottom")
            c1.progress(j.fraction, text=text)
            if c2.button("Cancel", key=f"cancel_{kind}", icon=":material/stop:", disabled=j.cancelling):
                j.cancel()  # the loop stops at its next step and returns what it has
            steps, series = j.history()
            if steps:  # live only: the finished run's own page draws the final curves
                st.plotly_chart(training_figure(steps, series, title=f"{title}: live"), key=f"live_{kind}")
        elif j.state == "failed":
            st.error(f"{title} failed: {j.error}")
        elif j.state == "cancelled" and j.result is None:  # work that keeps nothing when cut short says why
            st.warning(f"{title} {j.error} ({j.seconds:.1f} s).")
        elif j.state == "cancelled":
            st.warning(f"{title} cancelled at step {j.step} of {j.total} after {j.seconds:.1f} s; what was done "
                       "is kept as a new run.")  # fmt: skip
        else:
            warning = verdict(j) if verdict is not None else None
            if warning:
                st.warning(f"{title} finished in {j.seconds:.1f} s, but: {warning}")
            else:
                st.success(f"{title} finished: {j.step:,} {j.unit}s in {j.seconds:.1f} s.")
        if not j.running:
            _open_button(j, kind)
        if not j.running and state.pending(kind):
            st.rerun()  # the result is collected by a full run (main.py), which redraws the whole page

    panel()
