"""Run folders on disk: configs and metadata as JSON, tensors as safetensors. Never pickle.

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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from . import atomic
from .config import ConfigError, FamilyConfig, ZooConfig, from_dict, to_dict
from .family import Family
from .limits import max_run_file_bytes
from .zoo import Zoo

FORMAT_VERSION = 1
ALLOWED_FILES = {
    "meta.json", "family.json", "zoo.json", "zoo.safetensors",
    "embedder.json", "embedder.safetensors", "report.json",
}  # fmt: skip
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class RunError(ValueError):
    """A run folder that is missing, corrupted, hand-edited or otherwise not loadable."""


@dataclass
class Run:
    family: Family
    zoo: Zoo
    embedder: Any = None  # cloze.Embedder, with .to_state() -> (tensors, meta) and Embedder.from_state
    report: dict | None = None
    meta: dict = field(default_factory=dict)


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


# ---------------------------------------------------------------- tensors <-> objects


def zoo_tensors(zoo: Zoo) -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {}
    for i, (w, b) in enumerate(zoo.layers):
        tensors[f"layers.{i}.w"] = w.detach().cpu().contiguous()
        tensors[f"layers.{i}.b"] = b.detach().cpu().contiguous()
    for name in ("task_ids", "replicates", "seeds", "log_steps"):
        tensors[name] = torch.as_tensor(np.ascontiguousarray(getattr(zoo, name), dtype=np.int64))
    tensors["loss_curves"] = torch.as_tensor(np.ascontiguousarray(zoo.loss_curves, dtype=np.float32))
    tensors["fit_mse"] = torch.as_tensor(np.ascontiguousarray(zoo.fit_mse, dtype=np.float64))
    tensors["failed"] = torch.as_tensor(zoo.failed.astype(np.uint8))
    meta = {"config": to_dict(zoo.config), "seconds": zoo.seconds, "steps_done": zoo.steps_done}
    return tensors, meta


ZOO_ARRAYS = {  # name -> (dtype, per model?) of zoo.safetensors' non-layer tensors
    "task_ids": (torch.int64, True), "replicates": (torch.int64, True), "seeds": (torch.int64, True),
    "fit_mse": (torch.float64, True), "failed": (torch.uint8, True),
    "log_steps": (torch.int64, False), "loss_curves": (torch.float32, True),
}  # fmt: skip


def zoo_from_tensors(tensors: dict[str, torch.Tensor], meta: dict) -> Zoo:
    """Rebuild a Zoo, checking every tensor's name, dtype, shape and range against zoo.json's config."""
    config = from_dict(ZooConfig, meta.get("config"))
    n_layers = config.depth + 1
    expected = set(ZOO_ARRAYS) | {f"layers.{i}.{p}" for i in range(n_layers) for p in "wb"}
    if set(tensors) != expected:
        missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        raise RunError(f"zoo.safetensors: tensors do not match zoo.json's config (missing {missing}, unexpected {extra})")
    n = tensors["task_ids"].shape[0] if tensors["task_ids"].dim() == 1 else -1
    if n < 1:
        raise RunError("zoo.safetensors: 'task_ids' must be a non-empty vector")
    for name, (dtype, per_model) in ZOO_ARRAYS.items():
        t = tensors[name]
        if t.dtype != dtype or (per_model and t.shape[0] != n) or t.dim() != (2 if name == "loss_curves" else 1):
            raise RunError(f"zoo.safetensors: '{name}' is {t.dtype} {tuple(t.shape)}, expected {dtype} with {n} rows")
    if tensors["loss_curves"].shape[1] != tensors["log_steps"].shape[0]:
        raise RunError("zoo.safetensors: 'loss_curves' columns do not match 'log_steps'")
    if not ((tensors["replicates"] >= 0) & (tensors["replicates"] < config.models_per_function)).all():
        raise RunError("zoo.safetensors: 'replicates' outside 0..models_per_function-1")
    if (tensors["task_ids"] < 0).any() or tensors["failed"].max() > 1:
        raise RunError("zoo.safetensors: negative 'task_ids' or a 'failed' flag other than 0/1")
    layers = [(tensors[f"layers.{i}.w"], tensors[f"layers.{i}.b"]) for i in range(n_layers)]
    sizes = [1] + [config.width] * config.depth + [1]
    for i, ((w, b), fi, fo) in enumerate(zip(layers, sizes[:-1], sizes[1:])):
        if tuple(w.shape) != (n, fi, fo) or tuple(b.shape) != (n, 1, fo):
            raise RunError(f"zoo.safetensors: layer {i} has shapes {tuple(w.shape)}, {tuple(b.shape)}; "
                           f"zoo.json's config needs {(n, fi, fo)}, {(n, 1, fo)}")
        if w.dtype not in (torch.float32, torch.float64) or b.dtype != w.dtype or w.dtype != layers[0][0].dtype:
            raise RunError(f"zoo.safetensors: layer {i} has dtypes {w.dtype}, {b.dtype}; expected float32 or float64")
    arrays = {k: tensors[k].numpy() for k in ("task_ids", "replicates", "seeds", "log_steps", "loss_curves", "fit_mse")}
    seconds, steps_done = meta.get("seconds"), meta.get("steps_done")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not np.isfinite(seconds):
        raise RunError(f"zoo.json: 'seconds' must be a finite number, got {seconds!r}")
    if isinstance(steps_done, bool) or not isinstance(steps_done, int) or not 0 <= steps_done <= config.steps:
        raise RunError(f"zoo.json: 'steps_done' must be a whole number in 0..{config.steps}, got {steps_done!r}")
    return Zoo(config=config, layers=layers, failed=tensors["failed"].numpy().astype(bool),
               seconds=float(seconds), steps_done=steps_done, **arrays)  # fmt: skip


def family_meta(family) -> dict:
    if family.config.kind == "sines":  # a and b (c is the config's); see sines.py
        return {"config": to_dict(family.config), "amplitudes": family.amplitudes.tolist(),
                "frequencies": family.frequencies.tolist()}  # fmt: skip
    return {"config": to_dict(family.config), "coefficients": family.coefficients.tolist(),
            "degrees": family.degrees.tolist()}  # fmt: skip


def sine_family_from_meta(config: FamilyConfig, meta: dict):
    from .sines import SineFamily

    try:
        a, b = (np.asarray(meta[k], dtype=np.float64) for k in ("amplitudes", "frequencies"))
    except (KeyError, ValueError, TypeError, OverflowError):
        raise RunError("family.json: 'amplitudes' and 'frequencies' must be arrays of numbers") from None
    if a.shape != (config.n_functions,) or b.shape != (config.n_functions,):
        raise RunError(f"family.json: amplitudes {a.shape} / frequencies {b.shape} do not match its config")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise RunError("family.json: amplitudes or frequencies hold NaN or Inf")
    return SineFamily(config=config, amplitudes=a, frequencies=b)


def family_from_meta(meta: dict):
    config = from_dict(FamilyConfig, meta.get("config"))
    if config.kind == "sines":
        return sine_family_from_meta(config, meta)
    try:
        coefficients = np.asarray(meta["coefficients"], dtype=np.float64)
        degrees = np.asarray(meta["degrees"], dtype=np.int64)
    except (ValueError, TypeError, OverflowError):
        raise RunError("family.json: 'coefficients' and 'degrees' must be arrays of numbers") from None
    if coefficients.shape != (config.n_functions, config.degree_max + 1) or degrees.shape != (config.n_functions,):
        raise RunError(f"family.json: coefficients {coefficients.shape} do not match its config")
    if not np.isfinite(coefficients).all():
        raise RunError("family.json: coefficients hold NaN or Inf")
    if ((degrees < config.degree_min) | (degrees > config.degree_max)).any():
        raise RunError(f"family.json: 'degrees' outside {config.degree_min}..{config.degree_max}")
    return Family(config=config, coefficients=coefficients, degrees=degrees)


# ---------------------------------------------------------------- save


def _json_bytes(obj) -> bytes:
    return json.dumps(json_safe(obj), indent=1, allow_nan=False).encode()


def json_safe(obj):
    """Numpy values become plain ones and NaN/Inf become null: strict JSON has no such numbers, and
    one NaN metric must not block a save."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


def run_files(run: Run) -> dict[str, bytes]:
    """Every file of a run folder as bytes, meta.json last (it holds the others' checksums)."""
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


def _read_tensors(files: dict[str, bytes], name: str, expected_sha: str) -> dict[str, torch.Tensor]:
    data = _read_bytes(files, name, expected_sha)
    try:
        return st_load(data)  # safetensors parses a header and raw buffers: it cannot run code
    except (SafetensorError, ValueError, RuntimeError, TypeError) as e:
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


def load_run(folder: str | Path) -> Run:
    """Load and validate a run folder; any problem raises RunError naming the file.

    If a save of this run was killed between its two renames, the previous run is put back first.
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
    return run_from_files(files)


def run_from_files(files: dict[str, bytes]) -> Run:
    """Parse and validate a run from its files' bytes (a folder read by read_run_files, or an upload)."""
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
        zoo = zoo_from_tensors(
            _read_tensors(files, "zoo.safetensors", checksums["zoo.safetensors"]),
            _read_json(files, "zoo.json", checksums["zoo.json"]),
        )
    if zoo.task_ids.max(initial=0) >= family.n_functions:
        raise RunError("zoo.safetensors: task_ids point past the family's functions")
    embedder = None
    if "embedder.json" in checksums or "embedder.safetensors" in checksums:
        with _file_errors("embedder.safetensors / embedder.json"):
            from .cloze import Embedder  # lazily: a zoo-only run never needs the embedder code

            embedder = Embedder.from_state(
                _read_tensors(files, "embedder.safetensors", checksums["embedder.safetensors"]),
                _read_json(files, "embedder.json", checksums["embedder.json"]),
            )
    report = _read_json(files, "report.json", checksums["report.json"]) if "report.json" in checksums else None
    return Run(family=family, zoo=zoo, embedder=embedder, report=report, meta=meta)
