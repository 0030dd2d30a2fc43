"""What a run holds, and its parts as file contents: tensors <-> Zoo, JSON <-> Family, JSON-safe values.

A `Run` is a family, its zoo, and optionally a trained embedder and a report. Its parts
become safetensors tensors and JSON objects here, and are rebuilt from them with every
name, dtype, shape and range checked against the stored config (a `RunError` names what is
wrong). store.py writes these contents as a run folder, checksums them and reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .config import FamilyConfig, ZooConfig, from_dict, to_dict
from .family import Family
from .zoo import Zoo


class RunError(ValueError):
    """A run folder that is missing, corrupted, hand-edited or otherwise not loadable."""


@dataclass
class Run:
    """One study: the family, its zoo, optionally the trained embedder and the report of probes and timings."""

    family: Family
    zoo: Zoo
    embedder: Any = None  # cloze_model.Embedder, with .to_state() -> (tensors, meta) and Embedder.from_state
    report: dict | None = None
    meta: dict = field(default_factory=dict)


def zoo_tensors(zoo: Zoo) -> tuple[dict[str, torch.Tensor], dict]:
    from .mixed_zoo import MixedZoo

    if isinstance(zoo, MixedZoo):  # each part's tensors under parts.J., its zoo.json object in "parts"
        tensors, metas = {}, []
        for j, part in enumerate(zoo.parts):
            part_tensors, part_meta = zoo_tensors(part)
            tensors.update({f"parts.{j}.{k}": v for k, v in part_tensors.items()})
            metas.append(part_meta)
        return tensors, {"parts": metas}
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
    if zoo.input_dim > 1:  # 1D zoos keep their zoo.json as it was
        meta["input_dim"] = zoo.input_dim
    return tensors, meta


ZOO_ARRAYS = {  # name -> (dtype, per model?) of zoo.safetensors' non-layer tensors
    "task_ids": (torch.int64, True), "replicates": (torch.int64, True), "seeds": (torch.int64, True),
    "fit_mse": (torch.float64, True), "failed": (torch.uint8, True),
    "log_steps": (torch.int64, False), "loss_curves": (torch.float32, True),
}  # fmt: skip


def zoo_from_tensors(tensors: dict[str, torch.Tensor], meta: dict) -> Zoo:
    """Rebuild a Zoo, checking every tensor's name, dtype, shape and range against zoo.json's config.

    A zoo.json with "parts" is a mixed zoo (mixed_zoo.py): each part is checked the same way."""
    if "parts" in meta:
        return mixed_zoo_from_tensors(tensors, meta)
    config = from_dict(ZooConfig, current_zoo_config(meta.get("config")))
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
    input_dim = meta.get("input_dim", 1)
    if isinstance(input_dim, bool) or not isinstance(input_dim, int) or input_dim < 1:
        raise RunError(f"zoo.json: 'input_dim' must be a whole number >= 1, got {input_dim!r}")
    sizes = [input_dim] + [config.width] * config.depth + [1]
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


def current_zoo_config(data):
    """A saved zoo config as ZooConfig reads it now. Runs saved before the failed flag became relative hold
    `fail_mse`, an absolute MSE: it is dropped (fail_relative_mse takes its default) and the run's saved
    `failed` flags stay as they were computed."""
    if isinstance(data, dict) and "fail_mse" in data and "fail_relative_mse" not in data:
        return {k: v for k, v in data.items() if k != "fail_mse"}
    return data


def mixed_zoo_from_tensors(tensors: dict[str, torch.Tensor], meta: dict):
    from .mixed_zoo import MixedZoo

    metas = meta["parts"]
    if not isinstance(metas, list) or not metas or set(meta) != {"parts"}:
        raise RunError("zoo.json: 'parts' must be a non-empty list of part objects, and nothing beside it")
    strays = [k for k in tensors if not any(k.startswith(f"parts.{j}.") for j in range(len(metas)))]
    if strays:
        raise RunError(f"zoo.safetensors: tensors {sorted(strays)[:5]} belong to no part of zoo.json")
    parts = []
    for j, part_meta in enumerate(metas):
        prefix = f"parts.{j}."
        part = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if not isinstance(part_meta, dict) or "parts" in part_meta:
            raise RunError(f"zoo.json: part {j} must be a zoo object")
        parts.append(zoo_from_tensors(part, part_meta))
    try:
        return MixedZoo(parts)
    except ValueError as e:
        raise RunError(f"zoo.json: {e}") from None


def family_meta(family) -> dict:
    if family.config.kind == "bumps":  # family_nd.py
        return {"config": to_dict(family.config), "amplitudes": family.amplitudes.tolist(),
                "centres": family.centres.tolist(), "widths": family.widths.tolist(),
                "offsets": family.offsets.tolist()}  # fmt: skip
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


def bump_family_from_meta(config: FamilyConfig, meta: dict):
    from .family_nd import BumpFamily

    try:
        arrays = {k: np.asarray(meta[k], dtype=np.float64) for k in ("amplitudes", "centres", "widths", "offsets")}
    except (KeyError, ValueError, TypeError, OverflowError):
        raise RunError("family.json: 'amplitudes', 'centres', 'widths' and 'offsets' must be arrays of numbers") from None
    k, d = config.n_functions, config.input_dim
    a, c, w, o = arrays["amplitudes"], arrays["centres"], arrays["widths"], arrays["offsets"]
    if a.ndim != 2 or a.shape[0] != k or c.shape != (*a.shape, d) or w.shape != a.shape or o.shape != (k,):
        raise RunError(f"family.json: bump arrays {a.shape}, {c.shape}, {w.shape}, {o.shape} do not match its config "
                       f"({k} functions of {d} inputs)")  # fmt: skip
    if not all(np.isfinite(v).all() for v in arrays.values()) or (w <= 0).any():
        raise RunError("family.json: bump arrays hold NaN or Inf, or a width <= 0")
    return BumpFamily(config=config, amplitudes=a, centres=c, widths=w, offsets=o)


def family_from_meta(meta: dict):
    config = from_dict(FamilyConfig, meta.get("config"))
    if config.kind == "bumps":
        return bump_family_from_meta(config, meta)
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
