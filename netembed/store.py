"""Run folders on disk: configs and metadata as JSON, tensors as safetensors. Never pickle.

A run folder holds:
    meta.json             format version, what the run holds, and a SHA-256 of every other file
    family.json           FamilyConfig and the exact coefficients
    zoo.json              ZooConfig, timings
    zoo.safetensors       stacked weights and per-model arrays
    embedder.json         (optional) ClozeConfig and training record
    embedder.safetensors  (optional) embedder weights and the models' embeddings
    report.json           (optional) probes, baselines and timings

Writes are atomic: everything goes to a hidden temporary folder beside the target, which
is renamed into place only when complete, so a crash mid-save leaves the previous run.
Loads check every file against meta.json and the schema, naming the file at fault.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .config import ConfigError, FamilyConfig, ZooConfig, from_dict, to_dict
from .family import Family
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
    """Names of the complete runs in `runs_dir`, newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if p.is_dir() and RUN_NAME.match(p.name) and (p / "meta.json").is_file()]
    return [p.name for p in sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)]


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


def zoo_from_tensors(tensors: dict[str, torch.Tensor], meta: dict) -> Zoo:
    config = from_dict(ZooConfig, meta["config"])
    n_layers = config.depth + 1
    layers = [(tensors[f"layers.{i}.w"], tensors[f"layers.{i}.b"]) for i in range(n_layers)]
    n = len(tensors["task_ids"])
    sizes = [1] + [config.width] * config.depth + [1]
    for i, ((w, b), fi, fo) in enumerate(zip(layers, sizes[:-1], sizes[1:])):
        if tuple(w.shape) != (n, fi, fo) or tuple(b.shape) != (n, 1, fo):
            raise RunError(f"zoo.safetensors: layer {i} has shapes {tuple(w.shape)}, {tuple(b.shape)}; "
                           f"zoo.json's config needs {(n, fi, fo)}, {(n, 1, fo)}")
    arrays = {k: tensors[k].numpy() for k in ("task_ids", "replicates", "seeds", "log_steps", "loss_curves", "fit_mse")}
    for k in ("replicates", "seeds", "fit_mse"):
        if len(arrays[k]) != n:
            raise RunError(f"zoo.safetensors: '{k}' has {len(arrays[k])} rows, expected {n}")
    return Zoo(config=config, layers=layers, failed=tensors["failed"].numpy().astype(bool),
               seconds=float(meta["seconds"]), steps_done=int(meta["steps_done"]), **arrays)  # fmt: skip


def family_meta(family: Family) -> dict:
    return {"config": to_dict(family.config), "coefficients": family.coefficients.tolist(),
            "degrees": family.degrees.tolist()}  # fmt: skip


def family_from_meta(meta: dict) -> Family:
    config = from_dict(FamilyConfig, meta["config"])
    coefficients = np.asarray(meta["coefficients"], dtype=np.float64)
    degrees = np.asarray(meta["degrees"], dtype=np.int64)
    if coefficients.shape != (config.n_functions, config.degree_max + 1) or degrees.shape != (config.n_functions,):
        raise RunError(f"family.json: coefficients {coefficients.shape} do not match its config")
    if not np.isfinite(coefficients).all():
        raise RunError("family.json: coefficients hold NaN or Inf")
    return Family(config=config, coefficients=coefficients, degrees=degrees)


# ---------------------------------------------------------------- save


def _json_bytes(obj) -> bytes:
    return json.dumps(obj, indent=1, allow_nan=False, default=_json_default).encode()


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot store {type(o).__name__} in JSON")


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


def save_run(run: Run, folder: str | Path) -> Path:
    """Write the run atomically: a complete temporary folder, then one rename into place."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    files = run_files(run)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        for name, data in files.items():
            with open(tmp / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
            os.rename(folder, old / "run")  # the previous run stays whole until the new one is in
            os.rename(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


# ---------------------------------------------------------------- load


def _read_json(folder: Path, name: str, expected_sha: str | None) -> dict:
    data = _read_bytes(folder, name, expected_sha)
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{name}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise RunError(f"{name}: expected a JSON object")
    return obj


def _read_bytes(folder: Path, name: str, expected_sha: str | None) -> bytes:
    path = folder / name
    if not path.is_file():
        raise RunError(f"{name}: missing from {folder}")
    data = path.read_bytes()
    if expected_sha is not None and hashlib.sha256(data).hexdigest() != expected_sha:
        raise RunError(f"{name}: checksum does not match meta.json (the file is truncated, corrupted or edited)")
    return data


def _read_tensors(folder: Path, name: str, expected_sha: str) -> dict[str, torch.Tensor]:
    data = _read_bytes(folder, name, expected_sha)
    try:
        return st_load(data)  # safetensors parses a header and raw buffers: it cannot run code
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise RunError(f"{name}: not a valid safetensors file ({e})") from None


def load_run(folder: str | Path) -> Run:
    """Load and validate a run folder; any problem raises RunError naming the file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RunError(f"{folder}: no such run folder")
    present = {p.name for p in folder.iterdir()}
    strangers = sorted(present - ALLOWED_FILES)
    if strangers:
        raise RunError(f"{folder}: refusing unexpected file(s) {', '.join(strangers)}; "
                       "a run holds only safetensors and JSON files")  # fmt: skip
    meta = _read_json(folder, "meta.json", None)
    if meta.get("format_version") != FORMAT_VERSION:
        raise RunError(f"meta.json: format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
    checksums = meta.get("files")
    if not isinstance(checksums, dict) or not set(checksums) <= ALLOWED_FILES:
        raise RunError("meta.json: 'files' must map the run's file names to checksums")
    for name in ("family.json", "zoo.json", "zoo.safetensors"):
        if name not in checksums:
            raise RunError(f"meta.json: does not list {name}")
    try:
        family = family_from_meta(_read_json(folder, "family.json", checksums["family.json"]))
        zoo = zoo_from_tensors(
            _read_tensors(folder, "zoo.safetensors", checksums["zoo.safetensors"]),
            _read_json(folder, "zoo.json", checksums["zoo.json"]),
        )
        if zoo.task_ids.max(initial=0) >= family.n_functions:
            raise RunError("zoo.safetensors: task_ids point past the family's functions")
        embedder = None
        if "embedder.json" in checksums:
            from .cloze import Embedder  # lazily: a zoo-only run never needs the embedder code

            embedder = Embedder.from_state(
                _read_tensors(folder, "embedder.safetensors", checksums["embedder.safetensors"]),
                _read_json(folder, "embedder.json", checksums["embedder.json"]),
            )
        report = _read_json(folder, "report.json", checksums["report.json"]) if "report.json" in checksums else None
    except ConfigError as e:
        raise RunError(f"{folder.name}: a stored config is invalid: {e}") from None
    except (KeyError, TypeError) as e:
        raise RunError(f"{folder.name}: a stored file lacks or mistypes the entry {e}") from None
    return Run(family=family, zoo=zoo, embedder=embedder, report=report, meta=meta)
