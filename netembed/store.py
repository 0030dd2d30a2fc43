"""Run folders on disk: configs and metadata as JSON, tensors as safetensors. Never pickle.

What the files hold (tensors <-> Zoo, JSON <-> Family) is run_schema.py's; this module
names, writes, checksums and reads them.

A run folder holds:
    meta.json             format version, what the run holds, and a SHA-256 of every other file
    family.json           FamilyConfig and the exact coefficients
    zoo.json              ZooConfig, timings
    zoo.safetensors       stacked weights and per-model arrays
    embedder.json         (optional) ClozeConfig and training record
    embedder.safetensors  (optional) embedder weights and the models' embeddings
    report.json           (optional) probes, baselines and timings

Writes are atomic (atomic.py): everything goes to a hidden temporary folder beside the
target, which is renamed into place only when complete, so a crash or kill at any moment
of a save leaves the previous run, and a save never replaces a folder that is not a run.
Loads check every file against meta.json and the schema, naming the file at fault; a
file that is not JSON or safetensors is refused, never parsed, so nothing in it can run.
Reading needs numpy only; torch comes in when the zoo and embedder are built (at once, or
on first use with lazy=True).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as st_load

from . import atomic
from .config import ClozeConfig, ConfigError, from_dict
from .limits import max_run_file_bytes
from .run_schema import Run, RunError, Stored, family_from_meta, family_meta, json_safe, stored_zoo, zoo_tensors

FORMAT_VERSION = 1
ALLOWED_FILES = {
    "meta.json", "family.json", "zoo.json", "zoo.safetensors",
    "embedder.json", "embedder.safetensors", "report.json",
}  # fmt: skip
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


# ---------------------------------------------------------------- names


def run_path(runs_dir: str | Path, name: str) -> Path:
    """The folder of run `name` inside `runs_dir`; refuses names that could escape it."""
    if not isinstance(name, str) or not RUN_NAME.match(name) or ".." in name:
        raise RunError(
            f"run name {name!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    root = Path(runs_dir).resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise RunError(f"run name {name!r} resolves outside the runs folder")
    return path


def list_runs(runs_dir: str | Path) -> list[str]:
    """Names of the complete runs in `runs_dir`, newest first; never a half-written one.

    A save swaps the new folder in with one RENAME_EXCHANGE, so NAME never goes missing. Where
    that is unavailable it takes two renames: a save killed between them leaves only a hidden
    `.NAME.old-*`, which listing puts back first, and one running right now still lists NAME,
    as either NAME or its `.NAME.old-*` holds a whole version at every instant (atomic.py).
    """
    return atomic.list_folders(Path(runs_dir), RUN_NAME, _looks_like_run)


def _looks_like_run(folder: Path) -> bool:
    """A folder holding meta.json and nothing but run files: safe to replace, worth listing."""
    if not folder.is_dir() or folder.is_symlink():
        return False
    names = {p.name for p in folder.iterdir()}
    return "meta.json" in names and names <= ALLOWED_FILES


@contextlib.contextmanager
def _store_errors(name: str):
    """Turn a busy lock or a file-system failure into a RunError naming the run."""
    try:
        yield
    except atomic.FolderBusy as e:
        raise RunError(str(e)) from None
    except OSError as e:
        raise RunError(f"{name}: {e.strerror or e} ({e.filename or name})") from None


# ---------------------------------------------------------------- save


def _json_bytes(obj) -> bytes:
    return json.dumps(json_safe(obj), indent=1, allow_nan=False).encode()


def run_files(run: Run) -> dict[str, bytes]:
    """Every file of a run folder as bytes, meta.json last (it holds the others' checksums)."""
    from safetensors.torch import save as st_save  # saving needs the torch objects; reading does not

    files = {"family.json": _json_bytes(family_meta(run.family))}
    tensors, meta = zoo_tensors(run.zoo)
    files["zoo.safetensors"] = st_save(tensors)
    files["zoo.json"] = _json_bytes(meta)
    if run.embedder is not None:
        tensors, meta = run.embedder.to_state()
        files["embedder.safetensors"] = st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
        files["embedder.json"] = _json_bytes(meta)
    if run.report is not None:
        files["report.json"] = _json_bytes(run.report)
    meta = {
        "format_version": FORMAT_VERSION,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **{k: v for k, v in run.meta.items() if k not in ("format_version", "files", "saved_at")},
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    }
    files["meta.json"] = _json_bytes(meta)
    return files


def save_run(run: Run, folder: str | Path, overwrite: bool = True) -> Path:
    """Write the run atomically; a kill at any moment leaves the previous run at `folder`, whole.

    Refuses to replace anything that is not a run folder (a file, a symlink, a folder with
    other files), so a mistyped path never deletes someone's data. With overwrite=False an
    existing run is refused too (checked under the lock, so two users saving one name at
    once cannot both win): the app's shared runs folder uses that.
    """
    folder = Path(folder)
    if folder.name in ("", ".", ".."):
        raise RunError(f"{folder}: not a usable run folder name")
    files = run_files(run)  # before touching the disk: a run that cannot be stored changes nothing
    with _store_errors(folder.name):
        folder.parent.mkdir(parents=True, exist_ok=True)
        with atomic.folder_lock(folder, exclusive=True):
            atomic.restore_previous(folder, _looks_like_run)
            if folder.is_symlink() or (folder.exists() and not _looks_like_run(folder)):
                raise RunError(f"{folder}: exists and is not a run folder; refusing to replace it")
            if folder.exists() and not overwrite:
                raise RunError(f"a run named {folder.name!r} exists already; choose another name")
            atomic.replace_folder(folder, files)
    return folder


# ---------------------------------------------------------------- load


def read_run_files(folder: str | Path) -> dict[str, bytes]:
    """Every file of a run folder as bytes: one consistent version, read without any lock (atomic.py).

    Only regular files named in the run schema are read; symlinks and oversized files are refused.
    """
    try:
        return atomic.read_folder(Path(folder), ALLOWED_FILES, max_run_file_bytes())
    except atomic.FolderError as e:
        raise RunError(str(e)) from None


def _read_json(files: dict[str, bytes], name: str, expected_sha: str | None) -> dict:
    data = _read_bytes(files, name, expected_sha)
    try:
        obj = json.loads(data, parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError, RecursionError) as e:
        raise RunError(f"{name}: not valid JSON ({str(e)[:200]})") from None
    if not isinstance(obj, dict):
        raise RunError(f"{name}: expected a JSON object")
    return obj


def _no_constant(word: str):
    raise ValueError(f"{word} is not a JSON number")  # saves never write NaN/Infinity, so an edit did


def _read_bytes(files: dict[str, bytes], name: str, expected_sha: str | None) -> bytes:
    if name not in files:
        raise RunError(f"{name}: missing from the run")
    data = files[name]
    if expected_sha is not None and hashlib.sha256(data).hexdigest() != expected_sha:
        raise RunError(f"{name}: checksum does not match meta.json (the file is truncated, corrupted or edited)")
    return data


def _read_tensors(files: dict[str, bytes], name: str, expected_sha: str) -> dict[str, np.ndarray]:
    data = _read_bytes(files, name, expected_sha)
    try:
        return st_load(data)  # safetensors parses a header and raw buffers: it cannot run code; numpy, not torch
    except (SafetensorError, ValueError, RuntimeError, TypeError, KeyError) as e:
        raise RunError(f"{name}: not a valid safetensors file ({str(e)[:200]})") from None


@contextlib.contextmanager
def _file_errors(name: str):
    """Any schema slip while reading `name` becomes a RunError naming it."""
    try:
        yield
    except RunError:
        raise
    except ConfigError as e:
        raise RunError(f"{name}: its config is invalid: {e}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as e:
        raise RunError(f"{name}: does not match the run schema ({type(e).__name__}: {str(e)[:200]})") from None


def load_run(folder: str | Path, lazy: bool = False) -> Run:
    """Load and validate a run folder; any problem raises RunError naming the file.

    If a save of this run was killed between its two renames, the previous run is put back first.
    lazy=True returns before the torch objects are built (run_from_files): for showing a run.
    """
    folder = Path(folder)
    with _store_errors(folder.name):
        try:
            files = atomic.read_folder(folder, ALLOWED_FILES, max_run_file_bytes())
        except atomic.FolderMissing:
            # absent, or a save is between its two renames, or one was killed there: the lock waits out
            # a running save, then restore_previous puts back what a killed one moved aside
            with atomic.folder_lock(folder, exclusive=True):
                if not atomic.restore_previous(folder, _looks_like_run):
                    raise RunError(f"{folder}: no such run folder") from None
            files = read_run_files(folder)
        except atomic.FolderError as e:
            raise RunError(str(e)) from None
    return run_from_files(files, lazy=lazy)


def run_from_files(files: dict[str, bytes], lazy: bool = False) -> Run:
    """Parse and validate a run from its files' bytes (a folder read by read_run_files, or an upload).

    Everything is checked as JSON and numpy arrays first. The zoo and the embedder are then built as torch
    objects, which checks the embedder's weights against its config; with lazy=True that waits for the run's
    first use of `.zoo` / `.embedder` (a RunError then, naming the files as here), and showing the run's
    family, configs and report needs no torch (the app's first page).
    """
    strangers = sorted(set(files) - ALLOWED_FILES)
    if strangers:
        raise RunError(f"refusing unexpected file(s) {', '.join(strangers[:5])}; a run holds only safetensors and JSON")
    meta = _read_json(files, "meta.json", None)
    if meta.get("format_version") != FORMAT_VERSION:
        raise RunError(f"meta.json: format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
    checksums = meta.get("files")
    if (not isinstance(checksums, dict) or not set(checksums) <= ALLOWED_FILES - {"meta.json"}
            or not all(isinstance(v, str) for v in checksums.values())):  # fmt: skip
        raise RunError("meta.json: 'files' must map the run's file names to checksums")
    for name in ("family.json", "zoo.json", "zoo.safetensors"):
        if name not in checksums:
            raise RunError(f"meta.json: does not list {name}")
    unlisted = sorted(set(files) - set(checksums) - {"meta.json"})
    if unlisted:
        raise RunError(f"meta.json: does not list {', '.join(unlisted)} (added by hand?)")
    with _file_errors("family.json"):
        family = family_from_meta(_read_json(files, "family.json", checksums["family.json"]))
    with _file_errors("zoo.safetensors / zoo.json"):
        zoo = stored_zoo(
            _read_tensors(files, "zoo.safetensors", checksums["zoo.safetensors"]),
            _read_json(files, "zoo.json", checksums["zoo.json"]),
        )
    if zoo.task_ids.max(initial=0) >= family.n_functions:
        raise RunError("zoo.safetensors: task_ids point past the family's functions")
    if zoo.input_dim != getattr(family, "input_dim", 1):
        raise RunError(f"zoo.safetensors: models of {zoo.input_dim} inputs, but the family's functions take "
                       f"{getattr(family, 'input_dim', 1)}")  # fmt: skip
    embedder = None
    if "embedder.json" in checksums or "embedder.safetensors" in checksums:
        with _file_errors("embedder.safetensors / embedder.json"):
            embedder = stored_embedder(
                _read_tensors(files, "embedder.safetensors", checksums["embedder.safetensors"]),
                _read_json(files, "embedder.json", checksums["embedder.json"]),
            )
    report = _read_json(files, "report.json", checksums["report.json"]) if "report.json" in checksums else None
    run = Run(family=family, zoo=zoo, embedder=embedder, report=report, meta=meta)
    return run if lazy else run.build()


def stored_embedder(arrays: dict[str, np.ndarray], meta: dict) -> Stored:
    """The embedder's files, read: its config is checked now; its weights (names and shapes against the config)
    when it is built, on the run's first use of `.embedder` (a RunError naming the files, as at load)."""
    config = from_dict(ClozeConfig, meta.get("config"))
    input_dim = meta.get("input_dim", 1)
    embeddings = arrays.get("embeddings")
    n_models = 0 if embeddings is None or embeddings.ndim != 2 else embeddings.shape[0]

    def build():
        import torch

        from .cloze_model import Embedder  # torch: built on first use, never to show a stored run

        with _file_errors("embedder.safetensors / embedder.json"):
            return Embedder.from_state({k: torch.from_numpy(v) for k, v in arrays.items()}, meta)

    return Stored(config=config, n_models=n_models, input_dim=input_dim, task_ids=None, build=build)
