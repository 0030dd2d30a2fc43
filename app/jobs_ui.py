"""The live view of a background job: progress bar, live chart, cancel; polled with st.fragment."""

from __future__ import annotations

import streamlit as st

from app import state
from netembed.plots import training_figure

POLL_SECONDS = 1.0


def job_panel(kind: str, title: str) -> None:
    """Show the session's `kind` job, if any. While it runs, only this panel reruns, every second;
    when it ends, one full rerun hands its result to the session (the table below it updates)."""
    if state.job(kind) is None:
        return

    @st.fragment(run_every=POLL_SECONDS if state.job(kind).running else None)
    def panel():
        j = state.job(kind)
        if j.running:
            where = f" ({j.stage})" if j.stage else ""
            text = "cancelling..." if j.cancelling else f"{title}: step {j.step} of {j.total}{where}, {j.seconds:.0f} s"
            c1, c2 = st.columns([5, 1], vertical_alignment="bottom")
            c1.progress(j.fraction, text=text)
            if c2.button("Cancel", key=f"cancel_{kind}", icon=":material/stop:", disabled=j.cancelling):
                j.cancel()  # the loop stops at its next report and returns what it has
        elif j.state == "failed":
            st.error(f"{title} failed: {j.error}")
        elif j.state == "cancelled":
            st.warning(f"{title} cancelled at step {j.step} of {j.total} after {j.seconds:.1f} s; what was done is kept.")
        else:
            st.success(f"{title} finished: {j.step} steps in {j.seconds:.1f} s.")
        steps, series = j.history()
        if steps:
            st.plotly_chart(training_figure(steps, series, title=f"{title}: live training"), key=f"live_{kind}")
        if not j.running and state.pending(kind):
            st.rerun()  # the result is collected by a full run (main.py), which redraws the whole page

    panel()
