"""Zoo generation split into independent shards (by function or by seed range), merged into one zoo.

A model's init seed depends only on (zoo seed, function, replicate), and every model of a zoo
sees the same input draws and its own function's targets, so a model trained in a shard is
the model of the whole zoo: bit for bit with the C kernel (each model is computed alone),
up to float rounding with the autograd engine. Shards can run on different machines:

    for shard in plan_shards(family.n_functions, config, n_shards=4, by="seed"):
        zoo = train_zoo(family, config, **shard)                 # anywhere; save_run(...) each
    zoo = merge_zoos([load_run(p).zoo for p in folders], family.n_functions)
"""

from __future__ import annotations

import numpy as np
import torch

from .config import ZooConfig
from .zoo import PER_MODEL, Zoo


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
