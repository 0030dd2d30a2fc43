"""What a run holds, and its parts as file contents: tensors <-> Zoo, JSON <-> Family, JSON-safe values.

A `Run` is a family, its zoo, and optionally a trained embedder and a report. Its parts
become safetensors tensors and JSON objects here, and are rebuilt from them with every
name, dtype, shape and range checked against the stored config (a `RunError` names what is
wrong). store.py writes these contents as a run folder, checksums them and reads them back.

Reading needs no torch: the zoo's arrays are checked as numpy arrays and kept as a `Stored`
part; the torch Zoo is built from them on first use of `run.zoo` (see Run). The app's first
page shows a stored run's family, configs and report without importing torch (~1.4 s of CPU).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import FamilyConfig, ZooConfig, from_dict, to_dict
from .family import Family

if TYPE_CHECKING:  # torch is imported where a zoo is built or saved, never to read or show a stored run
    import torch

    from .zoo import Zoo


class RunError(ValueError):
    """A run folder that is missing, corrupted, hand-edited or otherwise not loadable."""


@dataclass(frozen=True)
class Stored:
    """A run's zoo or embedder as read from disk and checked, still numpy: what a page shows without torch
    (config, model count, inputs, task ids: the names Zoo and MixedZoo use too) and `build()` for the torch
    object (the Zoo, MixedZoo or cloze_model.Embedder)."""

    config: Any  # ZooConfig (a mixed zoo's first part's, as MixedZoo.config) or ClozeConfig
    n_models: int
    input_dim: int
    task_ids: np.ndarray | None  # (n_models,) for a zoo; None for an embedder
    build: Callable[[], Any]
    n_parts: int = 1  # architectures of a mixed zoo (mixed_zoo.py); 1 for a plain zoo or an embedder


_BUILD = threading.Lock()  # one build of a stored part at a time: a loaded run is shared by the app's sessions


class Run:
    """One study: the family, its zoo, optionally the trained embedder and the report of probes and timings.

    `zoo` and `embedder` may be given as `Stored` parts (store.py does): each is built on its first
    access, once, and kept. `zoo_config`, `n_models` and `has_embedder` answer without building
    anything, so whatever only shows a stored run never imports torch.
    """

    def __init__(self, family: Family, zoo, embedder=None, report: dict | None = None, meta: dict | None = None):
        self.family = family
        self.report = report
        self.meta = {} if meta is None else meta
        self._parts = {"zoo": zoo, "embedder": embedder}  # embedder: cloze_model.Embedder, Stored or None

    def _built(self, name: str):
        part = self._parts[name]
        if isinstance(part, Stored):
            with _BUILD:
                part = self._parts[name]
                if isinstance(part, Stored):  # not built by another thread meanwhile
                    part = self._parts[name] = part.build()
        return part

    @property
    def zoo(self) -> Zoo:
        return self._built("zoo")

    @zoo.setter
    def zoo(self, value) -> None:
        self._parts["zoo"] = value

    @property
    def embedder(self):
        """The trained cloze_model.Embedder (with .to_state() -> (tensors, meta) and Embedder.from_state), or None."""
        return self._built("embedder")

    @embedder.setter
    def embedder(self, value) -> None:
        self._parts["embedder"] = value

    @property
    def zoo_config(self) -> ZooConfig:
        return self._parts["zoo"].config

    @property
    def n_models(self) -> int:
        return self._parts["zoo"].n_models

    @property
    def n_zoo_parts(self) -> int:
        """How many architectures the zoo holds (a mixed zoo's parts; 1 for a plain zoo), without building it."""
        part = self._parts["zoo"]
        return part.n_parts if isinstance(part, Stored) else len(getattr(part, "parts", [part]))

    @property
    def has_embedder(self) -> bool:
        return self._parts["embedder"] is not None

    def build(self) -> "Run":
        """Build the stored parts now (the embedder's weights are checked against its config then)."""
        self._built("zoo")
        self._built("embedder")
        return self

    def __repr__(self) -> str:
        return f"Run({self.family.config}, {self.n_models} models, embedder: {self.has_embedder}, meta={self.meta})"


def zoo_tensors(zoo: Zoo) -> tuple[dict[str, torch.Tensor], dict]:
    import torch

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
    "task_ids": (np.int64, True), "replicates": (np.int64, True), "seeds": (np.int64, True),
    "fit_mse": (np.float64, True), "failed": (np.uint8, True),
    "log_steps": (np.int64, False), "loss_curves": (np.float32, True),
}  # fmt: skip


def stored_zoo(arrays: dict[str, np.ndarray], meta: dict) -> Stored:
    """Check zoo.safetensors' arrays (read as numpy) against zoo.json's config: every name, dtype, shape and
    range. The Zoo is built from them on first use (build() imports torch).

    A zoo.json with "parts" is a mixed zoo (mixed_zoo.py): each part is checked the same way."""
    if "parts" in meta:
        return stored_mixed_zoo(arrays, meta)
    config = from_dict(ZooConfig, current_zoo_config(meta.get("config")))
    n_layers = config.depth + 1
    expected = set(ZOO_ARRAYS) | {f"layers.{i}.{p}" for i in range(n_layers) for p in "wb"}
    if set(arrays) != expected:
        missing, extra = sorted(expected - set(arrays)), sorted(set(arrays) - expected)
        raise RunError(f"zoo.safetensors: tensors do not match zoo.json's config (missing {missing}, unexpected {extra})")
    n = arrays["task_ids"].shape[0] if arrays["task_ids"].ndim == 1 else -1
    if n < 1:
        raise RunError("zoo.safetensors: 'task_ids' must be a non-empty vector")
    for name, (dtype, per_model) in ZOO_ARRAYS.items():
        a = arrays[name]
        if a.dtype != dtype or (per_model and a.shape[0] != n) or a.ndim != (2 if name == "loss_curves" else 1):
            raise RunError(f"zoo.safetensors: '{name}' is {a.dtype} {a.shape}, expected {np.dtype(dtype)} with {n} rows")
    if arrays["loss_curves"].shape[1] != arrays["log_steps"].shape[0]:
        raise RunError("zoo.safetensors: 'loss_curves' columns do not match 'log_steps'")
    if not ((arrays["replicates"] >= 0) & (arrays["replicates"] < config.models_per_function)).all():
        raise RunError("zoo.safetensors: 'replicates' outside 0..models_per_function-1")
    if (arrays["task_ids"] < 0).any() or arrays["failed"].max() > 1:
        raise RunError("zoo.safetensors: negative 'task_ids' or a 'failed' flag other than 0/1")
    layers = [(arrays[f"layers.{i}.w"], arrays[f"layers.{i}.b"]) for i in range(n_layers)]
    input_dim = meta.get("input_dim", 1)
    if isinstance(input_dim, bool) or not isinstance(input_dim, int) or input_dim < 1:
        raise RunError(f"zoo.json: 'input_dim' must be a whole number >= 1, got {input_dim!r}")
    sizes = [input_dim] + [config.width] * config.depth + [1]
    for i, ((w, b), fi, fo) in enumerate(zip(layers, sizes[:-1], sizes[1:])):
        if w.shape != (n, fi, fo) or b.shape != (n, 1, fo):
            raise RunError(f"zoo.safetensors: layer {i} has shapes {w.shape}, {b.shape}; "
                           f"zoo.json's config needs {(n, fi, fo)}, {(n, 1, fo)}")
        if w.dtype not in (np.float32, np.float64) or b.dtype != w.dtype or w.dtype != layers[0][0].dtype:
            raise RunError(f"zoo.safetensors: layer {i} has dtypes {w.dtype}, {b.dtype}; expected float32 or float64")
    seconds, steps_done = meta.get("seconds"), meta.get("steps_done")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not np.isfinite(seconds):
        raise RunError(f"zoo.json: 'seconds' must be a finite number, got {seconds!r}")
    if isinstance(steps_done, bool) or not isinstance(steps_done, int) or not 0 <= steps_done <= config.steps:
        raise RunError(f"zoo.json: 'steps_done' must be a whole number in 0..{config.steps}, got {steps_done!r}")
    per_model = {k: arrays[k] for k in ("task_ids", "replicates", "seeds", "log_steps", "loss_curves", "fit_mse")}

    def build() -> Zoo:
        import torch

        from .zoo import Zoo

        return Zoo(config=config, layers=[(torch.from_numpy(w), torch.from_numpy(b)) for w, b in layers],
                   failed=arrays["failed"].astype(bool), seconds=float(seconds), steps_done=steps_done, **per_model)  # fmt: skip

    return Stored(config=config, n_models=n, input_dim=input_dim, task_ids=arrays["task_ids"], build=build)


def current_zoo_config(data):
    """A saved zoo config as ZooConfig reads it now. Runs saved before the failed flag became relative hold
    `fail_mse`, an absolute MSE: it is dropped (fail_relative_mse takes its default) and the run's saved
    `failed` flags stay as they were computed."""
    if isinstance(data, dict) and "fail_mse" in data and "fail_relative_mse" not in data:
        return {k: v for k, v in data.items() if k != "fail_mse"}
    return data


def stored_mixed_zoo(arrays: dict[str, np.ndarray], meta: dict) -> Stored:
    metas = meta["parts"]
    if not isinstance(metas, list) or not metas or set(meta) != {"parts"}:
        raise RunError("zoo.json: 'parts' must be a non-empty list of part objects, and nothing beside it")
    strays = [k for k in arrays if not any(k.startswith(f"parts.{j}.") for j in range(len(metas)))]
    if strays:
        raise RunError(f"zoo.safetensors: tensors {sorted(strays)[:5]} belong to no part of zoo.json")
    parts = []
    for j, part_meta in enumerate(metas):
        prefix = f"parts.{j}."
        part = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        if not isinstance(part_meta, dict) or "parts" in part_meta:
            raise RunError(f"zoo.json: part {j} must be a zoo object")
        parts.append(stored_zoo(part, part_meta))
    if len({(p.config.models_per_function, p.config.train_fraction) for p in parts}) != 1:  # MixedZoo's own rule
        raise RunError("zoo.json: a mixed zoo needs at least one part, all with the same seeds per function and split")

    def build():
        from .mixed_zoo import MixedZoo

        return MixedZoo([p.build() for p in parts])

    return Stored(config=parts[0].config, n_models=sum(p.n_models for p in parts), input_dim=parts[0].input_dim,
                  task_ids=np.concatenate([p.task_ids for p in parts]), build=build, n_parts=len(parts))  # fmt: skip


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
