"""Where independent cells of work run: here, one after another (local), or as Ray tasks (ray).

A cell is `fn(*shared, *item)` for one item: a zoo shard (shards.py), a sweep cell
(pipeline.py). Cells share nothing while they run, so the two executors compute the same
numbers: both run every cell with ONE torch thread (thread count can change float
reduction order, and on a shared machine more threads than cores is slower anyway).

    with make_executor("ray", workers=4) as ex:            # or "local": no Ray needed
        results = ex.map(train_shard, items, shared=(family, config), on_done=save_it)

`map` returns the results in item order and calls `on_done(index, result)` in the driver
as each cell finishes (in finishing order), so a caller can keep finished work on disk
while the rest runs. Ray is imported only when a RayExecutor is made; without Ray, asking
for one raises ExecutorError with the line to install it.

Ray specifics: every task declares num_cpus=1 and, when the caller says the cell uses the
GPU, `gpus_per_task` GPUs (a fraction such as 0.25 packs four cells on one card). A task
whose worker process dies (killed, out of memory, node lost) is retried up to
`max_retries` times; an exception raised by the cell itself is a bug and is not retried.
With `address` the executor joins a running cluster (`ray start --head` and friends), and
netembed must be importable on every node (a shared file system, or installed there);
without it, it starts a local cluster of `workers` CPUs with no dashboard and a capped
object store, and stops it again on exit.
"""

from __future__ import annotations

import copy
import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RAY_MISSING = "--executor ray needs Ray, which is not installed: pip install -r requirements-ray.txt"
OBJECT_STORE_BYTES = 512 * 1024**2  # a local cluster's shared memory; a 10k-model shard is ~50 MB
MAX_RETRIES = 3  # retries of a task whose worker died
STOP_POLL_S = 0.25  # how often a RayExecutor with should_stop asks it while its tasks run
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)  # the folder holding netembed/, for local workers

OnDone = Callable[[int, Any], None]


class ExecutorError(RuntimeError):
    """The executor cannot run: Ray missing, a cluster that cannot be reached, a bad setting."""


class Stopped(Exception):
    """A RayExecutor's `should_stop()` said yes while its tasks ran: the pending ones were cancelled."""


def ray_cell(fn, *args):
    """A cell in a Ray worker, on its own copy of its arguments: Ray hands numpy arrays over as read-only views
    of its shared object store, and a torch tensor made from one could write into that store."""
    return in_one_thread(fn, *copy.deepcopy(args))


def in_one_thread(fn, *args):
    """fn(*args) with torch limited to one thread, restored afterwards (the local executor shares the process)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(before)


class LocalExecutor:
    """Every cell in this process, one after another, in item order."""

    name = "local"

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def map(self, fn, items: Sequence[tuple], shared: tuple = (), on_done: OnDone | None = None,
            uses_gpu: bool = False) -> list:  # fmt: skip
        results = []
        for i, item in enumerate(items):
            results.append(in_one_thread(fn, *shared, *item))
            if on_done is not None:
                on_done(i, results[-1])
        return results


class RayExecutor:
    """Every cell as a Ray task, on a local cluster or the one at `address`."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, gpus_per_task: float = 1.0,
                 max_retries: int = MAX_RETRIES, object_store_bytes: int = OBJECT_STORE_BYTES):  # fmt: skip
        try:
            import ray
        except ImportError:
            raise ExecutorError(RAY_MISSING) from None
        if workers is not None and workers < 1:
            raise ExecutorError(f"workers must be >= 1, got {workers}")
        if not 0 < gpus_per_task:
            raise ExecutorError(f"gpus_per_task must be > 0, got {gpus_per_task}")
        self.ray = ray
        self.address, self.workers, self.gpus_per_task = address, workers, gpus_per_task
        self.max_retries, self.object_store_bytes = max_retries, object_store_bytes
        self.started = False  # True when this executor started the cluster (and so stops it)
        # set by a caller that must stop within a second, not when the next cell ends (the app's cancel):
        # map asks it every STOP_POLL_S while it waits, and raises Stopped (cancelling the rest) on True
        self.should_stop: Callable[[], bool] | None = None

    def __enter__(self) -> "RayExecutor":
        if self.address is not None:
            _check_reachable(self.address)
        if self.ray.is_initialized():
            return self  # a cluster this process joined already (a test's fixture, a notebook): reuse it
        try:
            # workers import netembed from where this driver found it (a shared file system on a cluster)
            runtime_env = {"env_vars": {"PYTHONPATH": _pythonpath()}}
            if self.address is not None:
                self.ray.init(address=self.address, logging_level="WARNING", runtime_env=runtime_env)
            else:
                self.ray.init(num_cpus=self.workers or os.cpu_count(), include_dashboard=False,
                              object_store_memory=self.object_store_bytes, logging_level="WARNING",
                              runtime_env=runtime_env)  # fmt: skip
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray cluster"
            raise ExecutorError(f"could not start or join {where}: {' '.join(str(e).split())[:300]}") from None
        self.started = True
        return self

    def __exit__(self, *exc) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False

    def map(self, fn, items: Sequence[tuple], shared: tuple = (), on_done: OnDone | None = None,
            uses_gpu: bool = False) -> list:  # fmt: skip
        ray = self.ray
        task = ray.remote(num_cpus=1, num_gpus=self.gpus_per_task if uses_gpu else 0,
                          max_retries=self.max_retries, retry_exceptions=False)(ray_cell)  # fmt: skip
        shared_refs = [ray.put(s) for s in shared]  # stored once, read by every task (a zoo, a family)
        refs = [task.remote(fn, *shared_refs, *item) for item in items]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list = [None] * len(refs)
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=STOP_POLL_S if self.should_stop else None)
                if not ready:  # only with should_stop: nothing ended within STOP_POLL_S
                    if self.should_stop():
                        raise Stopped(f"stopped with {len(pending)} of {len(refs)} cells not done")
                    continue
                i = index[ready[0]]
                results[i] = copy.deepcopy(ray.get(ready[0]))  # writable arrays; a cell's own exception re-raises here
                if on_done is not None:
                    on_done(i, results[i])
        finally:
            for ref in pending:  # an error or an interrupt: stop the rest instead of leaving them running
                ray.cancel(ref, force=True)
        return results


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Refuse a host:port nothing answers on at once: ray.init would retry it for many minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and friends: Ray finds the cluster itself, and says so quickly when there is none
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ExecutorError(f"no Ray cluster answers at {address} ({e.strerror or e}); start one with "
                            f"`ray start --head --port={port}` or check the address") from None  # fmt: skip


def _pythonpath() -> str:
    """netembed's folder first, then the driver's own PYTHONPATH: workers import what the driver imports."""
    return os.pathsep.join(p for p in (PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")) if p)


def make_executor(kind: str = "local", address: str | None = None, workers: int | None = None,
                  gpus_per_task: float = 1.0) -> LocalExecutor | RayExecutor:  # fmt: skip
    """The executor named `kind`; `address`, `workers` and `gpus_per_task` are Ray's (the local one runs in this process)."""
    if kind == "local":
        if address is not None:
            raise ExecutorError("--ray-address needs --executor ray")
        return LocalExecutor()
    if kind == "ray":
        return RayExecutor(address=address, workers=workers, gpus_per_task=gpus_per_task)
    raise ExecutorError(f"executor must be local or ray, got {kind!r}")
