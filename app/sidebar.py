"""The sidebar: pick the current run, watch background jobs, save, download and load runs."""

from __future__ import annotations

import os
import threading

import streamlit as st

from app import state, widgets
from netembed.archive import load_run_archive, run_archive, zip_files
from netembed.limits import max_upload_bytes
from netembed.store import RunError, run_files, run_path, save_run


@st.cache_resource
def warm_up() -> threading.Thread | None:
    """Once per server: import umap and compile its kernels in the background, so the first UMAP is quick.

    NETEMBED_WARM_UMAP=0 turns this off (tests: numba's compiler holds the GIL for many seconds).
    """
    if os.environ.get("NETEMBED_WARM_UMAP", "1") == "0":
        return None

    def warm():
        from netembed.projection import warm_umap

        try:
            warm_umap()
        except Exception:  # noqa: BLE001 - warming is an optimisation; the real call reports errors
            pass

    thread = threading.Thread(target=warm, name="netembed-warm-umap", daemon=True)
    thread.start()
    return thread


def run_picker() -> None:
    options = state.choices()
    if not options:
        st.info("No run yet: train a zoo on the Zoo page.")
        return
    picked = widgets.choice("Current run", "run", options, state.choice(), fmt=state.label)
    state.choose(picked)
    run = state.current_run()
    error = state.load_error()
    if error:
        st.error(error)
    if run is not None:
        z = run.zoo
        parts = [f"{run.family.n_functions} functions x {z.config.models_per_function} models, {z.config.activation}"]
        parts.append("with an embedder" if run.embedder is not None else "no embedder yet")
        if picked == state.CURRENT:
            parts.append(f"saved as {state.saved_as()}" if state.saved_as() else "not saved yet")
        st.caption("; ".join(parts))


def jobs_panel() -> None:
    """Background jobs' progress, polled while any runs (on every page, so results arrive anywhere)."""
    if not state.running_jobs():
        return

    @st.fragment(run_every=2.0)
    def poll():
        jobs = state.running_jobs()
        if not jobs:
            st.rerun()  # a job ended: a full run collects its result
        for j in jobs:
            st.progress(j.fraction, text=f"{j.name}: step {j.step}/{j.total}")

    poll()


def _download_bytes(run, choice: str) -> bytes:
    """A zip of the run's files: read from its folder for saved runs, serialised for the run made now."""
    if choice == state.DEMO:
        return run_archive(state.DEMO_DIR)
    if choice.startswith(state.SAVED):
        return run_archive(run_path(state.runs_dir(), choice[len(state.SAVED):]))
    return zip_files(run_files(run))


def save_and_load() -> None:
    run, choice = state.current_run(), state.choice()
    with st.expander("Save, download, load", icon=":material/save:"):
        if run is not None and choice == state.CURRENT:
            name = st.text_input("Run name", value="my-run", max_chars=64, key="save_name",
                                 help="letters, digits, '.', '_' or '-'")  # fmt: skip
            if st.button("Save to the runs folder", icon=":material/save:"):
                try:
                    with st.spinner("Saving..."):
                        # overwrite=False: two users saving under one name must not replace each other's run
                        folder = save_run(run, run_path(state.runs_dir(), name), overwrite=False)
                    state.mark_saved(name)
                    st.success(f"Saved to {folder}")
                except RunError as e:
                    st.error(str(e))
        if run is not None:
            st.download_button("Download this run (.zip)", data=lambda: _download_bytes(run, choice),
                               file_name=f"netembed-{state.run_key().replace(':', '-').replace('#', '-')}.zip",
                               mime="application/zip", on_click="ignore", icon=":material/download:")  # fmt: skip
        limit_mb = max_upload_bytes() // 2**20  # NETEMBED_MAX_UPLOAD_MB, shared with the archive check
        upload = st.file_uploader("Load a run (.zip)", type=["zip"], key="upload", max_upload_size=limit_mb,
                                  help=f"a run folder zipped, as downloaded here; at most {limit_mb} MB")  # fmt: skip
        if upload is not None and st.session_state.get("upload_done", (None,))[0] != upload.file_id:
            try:  # each upload is checked once, not on every rerun; its verdict stays beside it
                with st.spinner(f"Checking and loading {upload.name}..."):
                    loaded = load_run_archive(upload.getvalue())
            except RunError as e:
                st.session_state["upload_done"] = (upload.file_id, f"Could not load {upload.name}: {e}")
            else:
                st.session_state["upload_done"] = (upload.file_id, None)
                loaded.meta["uploaded_from"] = upload.name
                state.adopt_next_run(loaded)  # the run picker is already drawn: adopt on a fresh run
                st.rerun()
        verdict = st.session_state.get("upload_done", (None, None))
        if upload is not None and verdict[0] == upload.file_id and verdict[1]:
            st.error(verdict[1])
