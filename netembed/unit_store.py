"""A units study on disk: JSON and safetensors only (never pickle), written atomically like a run folder.

A units folder holds:
    meta.json              format version, kind "units", and a SHA-256 of every other file
    units.json             the three configs, the network kind, the network's task names and test accuracy
    network.safetensors    the digits network's layers (layers.i.w, layers.i.b) and, for planted
                           modules, each hidden layer's module ids (modules.i)
    embedder.json          ClozeConfig and the embedder's training record
    embedder.safetensors   the embedder's weights
    units.safetensors      each hidden layer's cloze description (features.i), the layers' line
                           responses (responses.i), every line model's embedding, the unit split
    report.json            what `python -m netembed units` reports (units_pipeline.py)

Writes go through atomic.py (a hidden temporary folder renamed into place), so a kill leaves the
previous folder whole; loads check every file against meta.json's checksums.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from . import atomic
from .cloze_model import Embedder
from .config import from_dict, to_dict
from .digits import DigitsNet, UnitsConfig
from .limits import max_run_file_bytes
from .run_schema import RunError, json_safe
from .unit_cloze import UnitCloze, UnitEmbedConfig
from .units_pipeline import UnitsRun

FORMAT_VERSION = 1
FILES = {"meta.json", "units.json", "network.safetensors", "embedder.json", "embedder.safetensors",
         "units.safetensors", "report.json"}  # fmt: skip


def _json(obj) -> bytes:
    return json.dumps(json_safe(obj), indent=1, allow_nan=False).encode()


def _f32(a) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32))


def units_files(run: UnitsRun) -> dict[str, bytes]:
    """Every file of a units folder as bytes, meta.json last (it holds the others' checksums)."""
    net = run.net
    tensors = {}
    for i, (w, b) in enumerate(net.layers):
        tensors[f"layers.{i}.w"], tensors[f"layers.{i}.b"] = w.contiguous(), b.contiguous()
    for i, ids in enumerate(net.unit_modules or []):
        tensors[f"modules.{i}"] = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    desc = {f"features.{i}": _f32(f) for i, f in enumerate(run.cloze.features)}
    desc.update({f"responses.{i}": _f32(r) for i, r in enumerate(run.cloze.responses)})
    desc["line_embeddings"] = _f32(run.cloze.line_embeddings)
    desc["is_train"] = torch.as_tensor(run.is_train.astype(np.uint8))
    emb_tensors, emb_meta = run.cloze.embedder.to_state()
    files = {
        "units.json": _json({"network": run.network, "units": to_dict(run.units_config),
                             "embed": to_dict(run.embed_config), "task_names": list(net.task_names),
                             "test_accuracy": [float(a) for a in net.test_accuracy]}),  # fmt: skip
        "network.safetensors": st_save(tensors),
        "embedder.json": _json(emb_meta),
        "embedder.safetensors": st_save({k: v.detach().cpu().contiguous() for k, v in emb_tensors.items()}),
        "units.safetensors": st_save(desc),
        "report.json": _json(run.report),
    }
    files["meta.json"] = _json({"format_version": FORMAT_VERSION, "kind": "units",
                                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                "files": {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}})  # fmt: skip
    return files


def _is_units_folder(folder: Path) -> bool:
    if not folder.is_dir() or folder.is_symlink():
        return False
    names = {p.name for p in folder.iterdir()}
    return "meta.json" in names and names <= FILES


def save_units(run: UnitsRun, folder: str | Path) -> Path:
    """Write the study atomically; refuses to replace anything that is not a units folder."""
    folder = Path(folder)
    files = units_files(run)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with atomic.folder_lock(folder, exclusive=True):
            atomic.restore_previous(folder, _is_units_folder)
            if folder.is_symlink() or (folder.exists() and not _is_units_folder(folder)):
                raise RunError(f"{folder}: exists and is not a units folder; refusing to replace it")
            atomic.replace_folder(folder, files)
    except atomic.FolderBusy as e:
        raise RunError(str(e)) from None
    except OSError as e:
        raise RunError(f"{folder}: {e.strerror or e}") from None
    return folder


def load_units(folder: str | Path) -> UnitsRun:
    """Read and check a units folder -> UnitsRun; any problem raises RunError naming the file."""
    try:
        files = atomic.read_folder(Path(folder), FILES, max_run_file_bytes())
    except atomic.FolderError as e:
        raise RunError(str(e)) from None
    meta = _load_json(files, "meta.json")
    if meta.get("format_version") != FORMAT_VERSION or meta.get("kind") != "units":
        raise RunError(f"{folder}: meta.json is not a units folder of format {FORMAT_VERSION}")
    for name in FILES - {"meta.json"}:
        if name not in files:
            raise RunError(f"{name}: missing")
        if hashlib.sha256(files[name]).hexdigest() != meta["files"].get(name):
            raise RunError(f"{name}: checksum does not match meta.json (changed or damaged)")
    info = _load_json(files, "units.json")
    try:
        net_t, desc = st_load(files["network.safetensors"]), st_load(files["units.safetensors"])
        emb_t = st_load(files["embedder.safetensors"])
        n_layers = sum(1 for k in net_t if k.startswith("layers.") and k.endswith(".w"))
        layers = [(net_t[f"layers.{i}.w"], net_t[f"layers.{i}.b"]) for i in range(n_layers)]
        modules = [net_t[f"modules.{i}"].numpy() for i in range(n_layers - 1)] if "modules.0" in net_t else None
        net = DigitsNet(layers, modules, tuple(info["task_names"]), np.asarray(info["test_accuracy"]))
        features = [desc[f"features.{i}"].double().numpy() for i in range(n_layers - 1)]
        responses = [desc[f"responses.{i}"].double().numpy() for i in range(n_layers - 2) if f"responses.{i}" in desc]
        embedder = Embedder.from_state(emb_t, _load_json(files, "embedder.json"))
        cloze = UnitCloze(embedder, features, responses, desc["line_embeddings"].double().numpy())
        units_config = from_dict(UnitsConfig, info["units"])
        embed_config = from_dict(UnitEmbedConfig, info["embed"])
        is_train = desc["is_train"].numpy().astype(bool)
    except (KeyError, ValueError, TypeError) as e:
        raise RunError(f"{folder}: a file does not hold what its schema says ({str(e)[:200]})") from None
    return UnitsRun(info["network"], units_config, embed_config, embedder.config, net, cloze, is_train,
                    _load_json(files, "report.json"))  # fmt: skip


def _load_json(files: dict[str, bytes], name: str) -> dict:
    try:
        obj = json.loads(files[name])
    except (KeyError, ValueError):
        raise RunError(f"{name}: missing or not JSON") from None
    if not isinstance(obj, dict):
        raise RunError(f"{name}: must be a JSON object")
    return obj
