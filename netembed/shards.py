"""Zoo generation split into independent shards (by function or by seed range), run anywhere, merged into one zoo.

A model's init seed depends only on (zoo seed, function, replicate), and every model of a zoo
sees the same input draws and its own function's targets, so a model trained in a shard is
the model of the whole zoo: bit for bit with the C kernel (each model is computed alone),
up to float rounding with the autograd engine. Shards can run on different machines:

    for shard in plan_shards(family.n_functions, config, n_shards=4, by="seed"):
        zoo = train_zoo(family, config, **shard)                 # anywhere; save_run(...) each
    zoo = merge_zoos([load_run(p).zoo for p in folders], family.n_functions)

`train_zoo_sharded` does all of that through an executor (executor.py: here, or on Ray) and
keeps each finished shard as a run folder in `shard_folder(out)`, a hidden sibling of the
run folder `out`, written atomically (store.save_run) as soon as it arrives. A job killed at
any moment and started again loads the shards that are there and whole (checksums, and the
same family, config, models and device) and trains only the rest; `discard_shards(out)`
removes them once the run itself is saved. They sit beside the run, not inside it, because
a run folder holds only run files (store.py refuses to replace a folder with anything else).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .config import ZooConfig
from .family import Family
from .store import Run, RunError, load_run, save_run
from .zoo import PER_MODEL, Zoo, train_zoo

# progress(shards done, shards in all, {"model_steps": done, "model_steps_total": all, "loaded": shards from disk})
ShardProgress = Callable[[int, int, dict], None]


def plan_shards(n_functions: int, config: ZooConfig, n_shards: int, by: str = "function") -> list[dict]:
    """`n_shards` disjoint shards covering the zoo, as train_zoo keyword arguments {tasks, replicates}."""
    if by not in ("function", "seed"):
        raise ValueError(f"shards split by 'function' or 'seed', got {by!r}")
    n_split = n_functions if by == "function" else config.models_per_function
    if not 1 <= n_shards <= n_split:
        raise ValueError(f"n_shards must be in 1..{n_split} when splitting by {by}, got {n_shards}")
    parts = np.array_split(np.arange(n_split), n_shards)  # contiguous ranges, sizes differ by at most one
    everything = {"function": list(range(config.models_per_function)), "seed": list(range(n_functions))}[by]
    if by == "function":
        return [{"tasks": p.tolist(), "replicates": everything} for p in parts]
    return [{"tasks": everything, "replicates": p.tolist()} for p in parts]


def merge_zoos(zoos: list[Zoo], n_functions: int | None = None) -> Zoo:
    """One zoo from shards of the same config, in function-major order; with `n_functions`, it must be complete."""
    if not zoos:
        raise ValueError("merge_zoos needs at least one shard")
    first = zoos[0]
    for z in zoos[1:]:
        if z.config != first.config:
            raise ValueError(f"shards were trained with different configs: {first.config} vs {z.config}")
        if z.steps_done != first.steps_done or not np.array_equal(z.log_steps, first.log_steps):
            raise ValueError("shards stopped at different steps or logged different steps; retrain the short one")
    task_ids = np.concatenate([z.task_ids for z in zoos])
    replicates = np.concatenate([z.replicates for z in zoos])
    order = np.lexsort((replicates, task_ids))  # function-major, then seed
    pairs = set(zip(task_ids.tolist(), replicates.tolist()))
    if len(pairs) != len(task_ids):
        raise ValueError("shards overlap: some (function, seed) model appears twice")
    if n_functions is not None:
        missing = n_functions * first.config.models_per_function - len(pairs)
        if missing or task_ids.max() >= n_functions:
            raise ValueError(f"shards do not cover the zoo: {missing} of {n_functions} x "
                             f"{first.config.models_per_function} models missing")  # fmt: skip
    layers = [(torch.cat([z.layers[i][0].cpu() for z in zoos]), torch.cat([z.layers[i][1].cpu() for z in zoos]))
              for i in range(len(first.layers))]  # fmt: skip
    engines = {z.engine for z in zoos}
    every = Zoo(
        **{k: np.concatenate([getattr(z, k) for z in zoos]) for k in PER_MODEL},
        config=first.config,
        layers=layers,
        log_steps=first.log_steps.copy(),
        seconds=float(sum(z.seconds for z in zoos)),  # compute time over all shards
        steps_done=first.steps_done,
        engine=engines.pop() if len(engines) == 1 else "mixed",
    )
    return every.select(order)  # function-major, then seed


# ---------------------------------------------------------------- running shards, keeping them on disk


def train_shard(family: Family, config: ZooConfig, device: str, tasks: list, replicates: list) -> Zoo:
    """One shard, as a task for an executor: the models (tasks x replicates) of the whole zoo, on the CPU after."""
    return train_zoo(family, config, device=device, tasks=tasks, replicates=replicates).to("cpu")


def shard_folder(out: str | Path) -> Path:
    """Where the finished shards of the run folder `out` are kept until the run is saved: `.NAME.shards` beside it."""
    out = Path(out)
    return out.parent / f".{out.name}.shards"


def discard_shards(out: str | Path) -> None:
    """Remove the kept shards of `out` (after the run is saved: they are in it now)."""
    folder = shard_folder(out)
    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder)


def train_zoo_sharded(
    family: Family,
    config: ZooConfig,
    n_shards: int,
    executor,
    by: str = "function",
    device: str = "cpu",
    keep_in: str | Path | None = None,
    progress: ShardProgress | None = None,
) -> Zoo:
    """The whole zoo as `n_shards` shards run by `executor` (executor.py), merged.

    keep_in: a shard folder (see shard_folder): finished shards are saved there as they arrive,
    and shards already there and valid are loaded instead of trained. progress(done, total, info)
    is called once at the start (with the loaded shards) and after every shard.
    """
    plan = plan_shards(family.n_functions, config, n_shards, by=by)
    tags = [{"by": by, "index": i, "n_shards": n_shards} for i in range(n_shards)]
    folders = [None if keep_in is None else Path(keep_in) / f"{by}.{i:04d}-of-{n_shards:04d}" for i in range(n_shards)]
    zoos = [None if f is None else _load_kept(f, family, config, device, tags[i], plan[i]) for i, f in enumerate(folders)]
    todo = [i for i, z in enumerate(zoos) if z is None]
    total = family.n_functions * config.models_per_function * config.steps
    loaded = n_shards - len(todo)

    def tell():
        if progress is not None:
            done = [z for z in zoos if z is not None]
            steps = sum(z.n_models * z.steps_done for z in done)
            progress(len(done), n_shards, {"model_steps": steps, "model_steps_total": total, "loaded": loaded})

    def keep(j: int, zoo: Zoo) -> None:
        i = todo[j]
        zoos[i] = zoo
        if folders[i] is not None:
            meta = {"kind": "zoo-shard", "shard": tags[i], "device": device, "engine": zoo.engine}
            save_run(Run(family=family, zoo=zoo, meta=meta), folders[i])
        tell()

    tell()
    items = [(device, plan[i]["tasks"], plan[i]["replicates"]) for i in todo]
    executor.map(train_shard, items, shared=(family, config), on_done=keep, uses_gpu=device.startswith("cuda"))
    return merge_zoos(zoos, family.n_functions)


def _load_kept(folder: Path, family: Family, config: ZooConfig, device: str, tag: dict, shard: dict) -> Zoo | None:
    """The shard kept at `folder` if it is whole and is exactly this shard of this job; else None (train it)."""
    if not folder.is_dir():
        return None
    try:
        run = load_run(folder)  # checks every file against its checksum
    except RunError:
        return None
    zoo = run.zoo
    same = (
        run.meta.get("kind") == "zoo-shard" and run.meta.get("shard") == tag and run.meta.get("device") == device
        and run.family.config == family.config and np.array_equal(run.family.coefficients, family.coefficients)
        and zoo.config == config and zoo.steps_done == config.steps
        and np.array_equal(zoo.task_ids, np.repeat(shard["tasks"], len(shard["replicates"])))
        and np.array_equal(zoo.replicates, np.tile(shard["replicates"], len(shard["tasks"])))
    )  # fmt: skip
    if not same:
        return None
    zoo.engine = str(run.meta.get("engine", ""))
    return zoo
