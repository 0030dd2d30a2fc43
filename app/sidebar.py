"""The sidebar: pick the current run, watch background jobs, save, download and load runs."""

from __future__ import annotations

import os
import threading
import time

import streamlit as st

from app import state
from app.history import MAX_UNSAVED, SESSION, HistoryFull, slug
from app.jobs_ui import STAGES, counted
from netembed.archive import load_run_archive, run_archive, zip_files
from netembed.limits import max_upload_bytes
from netembed.store import RunError, run_files, run_path, save_run

# seconds the warm-up waits after the first page's script run: the browser still loads and runs plotly.js then
# (~2-3 s on 2 cores), and the warm-up takes a core for ~20 s (umap import, numba compile)
WARM_UP_DELAY_S = 5.0


@st.cache_resource(show_spinner=False)
def warm_up() -> threading.Thread | None:
    """Once per server: import torch and the core's torch modules (the first page needs neither), then umap,
    and compile its kernels in the background, so the other pages and the first UMAP are quick.

    NETEMBED_WARM_UMAP=0 turns this off (tests: numba's compiler holds the GIL for many seconds).
    """
    if os.environ.get("NETEMBED_WARM_UMAP", "1") == "0":
        return None

    def warm():
        time.sleep(WARM_UP_DELAY_S)
        try:
            import netembed.cloze_model  # noqa: F401 - torch (~1.4 s of CPU): the pages that build a run's zoo
            import netembed.gradients  # noqa: F401
            from netembed.projection import warm_umap

            warm_umap()
        except Exception:  # noqa: BLE001 - warming is an optimisation; the real call reports errors
            pass

    thread = threading.Thread(target=warm, name="netembed-warm-umap", daemon=True)
    thread.start()
    return thread


def run_picker() -> None:
    """The picker over this session's runs, the demo and the saved runs. A link's run= decides on the
    session's first draw; a run it names that is not here is said loudly, and the link is left as it is."""
    options = state.choices()
    if not options:
        st.info("No run yet: train a zoo on the Zoo page.")
        return
    wanted = st.query_params.get(state.PICKER)
    state.apply_open_next()  # a Save or an upload of the last script run asked to show a run
    if state.PICKER not in st.session_state:  # the first draw in this session: the link decides
        st.session_state[state.PICKER] = wanted if wanted in options else state.DEMO
        state.set_missing(wanted if wanted and wanted not in options else None)
    elif st.session_state[state.PICKER] not in options:  # e.g. a saved run deleted on disk meanwhile
        st.session_state[state.PICKER] = state.DEMO
    labels = {o: state.label(o) for o in options}  # a plain dict: the labels must not need the session to format
    picked = st.selectbox("Current run", options, key=state.PICKER, format_func=labels.__getitem__,
                          on_change=state.set_missing, args=(None,))  # fmt: skip
    if state.missing() is None and st.query_params.get(state.PICKER) != picked:
        st.query_params[state.PICKER] = picked  # while a link's run is missing, its URL stays as it was
    run = state.current_run()
    error = state.load_error()
    about = st.container()  # what comes and goes here never shifts the sidebar's later elements
    if error:
        about.error(error)
    if run is not None:
        z = run.zoo_config  # not run.zoo: that builds the torch zoo, which a caption does not need
        networks = f"{run.n_zoo_parts} architectures" if run.n_zoo_parts > 1 else z.activation  # a mixed zoo: several
        parts = [f"{run.family.n_functions} functions x {z.models_per_function} models, {networks}"]
        parts.append("with an embedder" if run.has_embedder else "no embedder yet")
        if picked.startswith(SESSION):
            parts.append("not saved yet")
        elif picked.startswith(state.SAVED):
            parts.append(f"saved as {picked[len(state.SAVED):]}")
        about.caption("; ".join(parts))
    with st.container():
        history_panel()


def widget_key(entry_id: str) -> str:
    """A widget key from an entry id: its hex part (keys stay plain words)."""
    return entry_id.removeprefix(SESSION)


def history_panel() -> None:
    """This session's unsaved runs: rename or discard the shown one; open the ones jobs just added."""
    # one container for every notice: the elements after it keep their place when notices come and go (a
    # shifting expander was seen drawn twice in the browser, the stale copy beside the new one)
    box = st.container()
    for new in reversed(state.notices()):  # newest first
        box.caption(f"New: **{new.name}**")
        c2, c3 = box.columns(2)
        # "Open run", not "Open": the run picker's dropdown toggle is a button named "Open" for screen readers
        if c2.button("Open run", key=f"open_{widget_key(new.id)}", type="primary"):
            state.open_next(new.id)
            st.rerun()
        if c3.button("Hide", key=f"hide_{widget_key(new.id)}", help="the run stays in this session's runs; only this notice goes"):
            state.dismiss(new.id)
            st.rerun()
    entries = state.history().newest_first()
    if not entries:
        return
    with st.expander(f"Unsaved runs ({len(entries)} of at most {MAX_UNSAVED})", icon=":material/history:"):
        for e in entries:
            st.caption(f"{'▶ ' if e.id == state.choice() else ''}{e.name} · {e.made_by} · not saved")
        shown = state.entry()
        if shown is not None:
            key = f"rename_{widget_key(shown.id)}"
            st.text_input("Rename the shown run", value=shown.name, max_chars=80, key=key,
                          on_change=lambda: state.history().rename(shown.id, st.session_state[key]))
            if st.button("Discard the shown run", icon=":material/delete:", key="discard_run",
                         help="drops it from this session; nothing on disk changes"):  # fmt: skip
                state.open_next(state.DEMO)
                state.discard(shown.id)
                st.rerun()


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
            stage = f" · {STAGES.get(j.stage, j.stage)}" if j.stage else ""
            st.progress(j.fraction, text=f"{j.name}: {counted(j)}{stage}")

    poll()


def _download_bytes(run, choice: str) -> bytes:
    """A zip of the run's files: read from its folder for saved runs, serialised for the session's runs."""
    if choice == state.DEMO:
        return run_archive(state.DEMO_DIR)
    if choice.startswith(state.SAVED):
        return run_archive(run_path(state.runs_dir(), choice[len(state.SAVED):]))
    return zip_files(run_files(run))


def download_name(choice: str) -> str:
    """netembed-<the run's name, with its settings>.zip"""
    entry = state.history().get(choice)
    name = entry.name if entry else choice.replace(state.SAVED, "")
    return f"netembed-{slug(name)}.zip"


def save_and_load() -> None:
    run, choice = state.current_run(), state.choice()
    flash = st.session_state.pop("ne_flash", None)  # what the last Save said, kept across its rerun
    with st.expander("Save, download, load", icon=":material/save:", expanded=flash is not None):
        if flash is not None:
            st.success(flash)
        entry = state.entry()
        if run is not None and entry is not None:
            if st.session_state.get("save_name_for") != (entry.id, entry.name):  # another run or a new name
                st.session_state["save_name"], st.session_state["save_name_for"] = slug(entry.name), (entry.id, entry.name)
            name = st.text_input("Save as", max_chars=64, key="save_name", help="letters, digits, '.', '_' or '-'")
            if st.button("Save to the runs folder", icon=":material/save:"):
                try:
                    with st.spinner("Saving..."):
                        # overwrite=False: two users saving under one name must not replace each other's run
                        folder = save_run(run, run_path(state.runs_dir(), name), overwrite=False)
                except RunError as e:
                    st.error(str(e))
                else:  # the saved run replaces its unsaved entry; the picker shows it on the rerun
                    state.history().discard(entry.id)
                    state.open_next(state.SAVED + name)
                    st.session_state["ne_flash"] = f"Saved {entry.name!r} to {folder}"
                    st.rerun()
        if run is not None:
            st.download_button("Download this run (.zip)", data=lambda: _download_bytes(run, choice),
                               file_name=download_name(choice), mime="application/zip", on_click="ignore",
                               icon=":material/download:")  # fmt: skip
        limit_mb = max_upload_bytes() // 2**20  # NETEMBED_MAX_UPLOAD_MB, shared with the archive check
        upload = st.file_uploader("Load a run (.zip)", type=["zip"], key="upload", max_upload_size=limit_mb,
                                  help=f"a run folder zipped, as downloaded here; at most {limit_mb} MB; it joins "
                                  "this session's runs")  # fmt: skip
        if upload is not None and st.session_state.get("upload_done", (None,))[0] != upload.file_id:
            try:  # each upload is checked once, not on every rerun; its verdict stays beside it
                state.history().check_room(coming=len(state.running_jobs()))
                with st.spinner(f"Checking and loading {upload.name}..."):
                    loaded = load_run_archive(upload.getvalue())
            except (RunError, HistoryFull) as e:
                st.session_state["upload_done"] = (upload.file_id, f"Could not load {upload.name}: {e}")
            else:
                st.session_state["upload_done"] = (upload.file_id, None)
                loaded.meta["uploaded_from"] = upload.name
                state.add_run(loaded, upload.name.removesuffix(".zip"), "upload")  # an Open button offers it
                st.rerun()  # the picker is drawn already: list the new entry
        verdict = st.session_state.get("upload_done", (None, None))
        if upload is not None and verdict[0] == upload.file_id and verdict[1]:
            st.error(verdict[1])
