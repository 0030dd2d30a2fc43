"""Background jobs: one long computation (train_zoo, train_embedder, run_sweep) on its own thread.

The dashboard must not train on its script thread: a widget click stops a running script,
and the user should be free to change pages while a zoo trains. A `Job` runs the work on
a daemon thread, records every progress report, turns a cancel request into the
`progress(...) -> False` answer the core's training loops understand, and keeps the
result (also of a cancelled run: the loops return what was done) or the error message.

Nothing here knows about streamlit; the app keeps one Job per user in its session state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netembed.errors import USER_ERRORS  # shown as their message alone; anything else is a bug and keeps its type

# torch threads inside a job. The server shares 2 cores with its users' jobs; 2-thread kernels were measured
# many times slower when the other core is busy. (OpenMP keeps the count per thread, but torch also hands it to
# threads it starts later, so in practice the whole server then runs 1-thread kernels.)
JOB_THREADS = 1
log = logging.getLogger(__name__)


class Cancelled(Exception):
    """Raised by a job's work that cannot keep a partial result (a sharded zoo with shards missing): the job
    ends cancelled, with no result and this message (shown in place of "what was done is kept")."""


@dataclass
class Report:
    """One progress report: the step reached and the numbers worth plotting (loss, R^2, ...)."""

    step: int
    values: dict[str, float]
    at: float  # seconds since the job started


@dataclass
class Job:
    """A computation running on a thread: `work(report)` -> result, where `report(step, **values)`
    returns False once a cancel was asked for (pass that straight back to the core's loop)."""

    name: str
    total: int  # steps expected, for the progress fraction
    work: Callable[[Callable[..., bool]], Any]
    reports: list[Report] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    state: str = "new"  # new -> running -> done | cancelled | failed
    stage: str = ""  # what the work is doing now, when it has several parts (e.g. "probes")
    unit: str = "step"  # what `step` and `total` count (a sharded zoo counts model-steps: models x steps)
    started: float = 0.0
    finished: float = 0.0
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _step: int = 0
    _fraction: float | None = None

    def start(self) -> "Job":
        self.state, self.started = "running", time.perf_counter()
        self._thread = threading.Thread(target=self._run, name=f"netembed-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        import torch

        torch.set_num_threads(JOB_THREADS)
        try:
            result = self.work(self._report)
            with self._lock:
                self.result = result
                self.state = "cancelled" if self._cancel.is_set() else "done"
        except Cancelled as e:
            with self._lock:
                self.error, self.state = str(e), "cancelled"  # no result: nothing joins the session's runs
        except Exception as e:  # noqa: BLE001 - the job must always end in a state the UI can show
            with self._lock:
                self.error = str(e) if isinstance(e, USER_ERRORS) else f"{type(e).__name__}: {e}"
                self.state = "failed"
            if not isinstance(e, USER_ERRORS):  # a bug: its traceback goes to the server's log
                log.exception("job %s failed", self.name)
        finally:
            self.finished = time.perf_counter()

    def _report(self, step: int, fraction: float | None = None, stage: str | None = None, **values: float) -> bool:
        """Record progress; `values` (loss, r2, ...) join the history only when given. False = please stop."""
        with self._lock:
            self._step = int(step)
            if fraction is not None:
                self._fraction = float(fraction)
            if stage is not None:
                self.stage = stage
            if values:
                at = time.perf_counter() - self.started
                self.reports.append(Report(int(step), {k: float(v) for k, v in values.items()}, at))
        return not self._cancel.is_set()

    def cancel(self) -> None:
        """Ask the work to stop at its next progress report; it keeps what it has done."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (for tests and scripts); True if it ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def cancelling(self) -> bool:
        return self.running and self._cancel.is_set()

    @property
    def step(self) -> int:
        return self._step

    @property
    def fraction(self) -> float:
        """Share of the work done: as reported, else step / total."""
        if self._fraction is not None:
            return min(1.0, max(0.0, self._fraction))
        return min(1.0, self.step / self.total) if self.total else 1.0

    @property
    def seconds(self) -> float:
        end = self.finished if not self.running else time.perf_counter()
        return end - self.started if self.started else 0.0

    def history(self) -> tuple[list[int], dict[str, list[float]]]:
        """Steps and each reported value as lists, for a live chart (a copy: safe while running)."""
        with self._lock:
            reports = list(self.reports)
        keys = sorted({k for r in reports for k in r.values})
        return [r.step for r in reports], {k: [r.values.get(k, float("nan")) for r in reports] for k in keys}


# ---------------------------------------------------------------- the core's long computations as jobs


def _loss_report(report, step, losses, **more) -> bool:
    """Report a zoo's median (and worst finite) training loss of the models at `step`."""
    import numpy as np

    from netembed.divergence import finite_median

    finite = losses[np.isfinite(losses)]
    worst = float(finite.max()) if finite.size else float("nan")
    return report(step, median_loss=finite_median(losses), worst_loss=worst, **more)


def zoo_job(family, config, device: str = "cpu") -> Job:
    """Train a zoo on a thread; reports the median (and worst finite) training loss of the models.
    The trainer asks should_stop after every step, so a cancel lands at the next step (not the next log)."""
    from netembed.zoo import train_zoo

    def work(report):
        return train_zoo(family, config, progress=lambda step, losses: _loss_report(report, step, losses),
                         device=device, should_stop=lambda step: not report(step)).to("cpu")  # fmt: skip

    return Job(name="zoo", total=config.steps, work=work)


def mixed_zoo_job(family, config, architectures: str, device: str = "cpu") -> Job:
    """Train a zoo of several architectures (mixed_zoo.train_mixed_zoo, as `zoo --architectures` does), one
    part after another; the job's step counts through all parts (part j's step s is j * steps + s)."""
    from netembed.mixed_zoo import parse_architectures, train_mixed_zoo

    labels = [f"{w}x{d}:{a}" for w, d, a in parse_architectures(architectures)]

    def overall(label, step):  # the step through every part, and which part, for the progress text
        j = labels.index(label)
        return j * config.steps + step, f"{label} ({j + 1} of {len(labels)})"

    def work(report):
        def progress(label, step, losses):
            done, stage = overall(label, step)
            return _loss_report(report, done, losses, stage=stage)

        def should_stop(label, step):
            done, stage = overall(label, step)
            return not report(done, stage=stage)

        return train_mixed_zoo(family, config, architectures, progress=progress, device=device,
                               should_stop=should_stop)  # fmt: skip

    return Job(name="zoo", total=config.steps * len(labels), work=work)


def embedder_job(family, zoo, config, device: str = "cpu") -> Job:
    """Train a cloze embedder on an existing zoo, then probe it and every baseline: the pipeline's
    later stages (run_pipeline with the zoo given), so the result is a complete Run with a report.
    The progress fraction is the pipeline's own "overall" share of that work."""
    from netembed.pipeline import run_pipeline, stage_teller

    # the pipeline's own share of its work done, for the steps between its logged progress reports
    overall_at = stage_teller(lambda stage, fraction, info: info["overall"], skipped=("family", "zoo"))
    reached = [0]  # the embedder's last step: the job's step through the later stages (probes, ...)

    def work(report):
        def progress(stage, fraction, info):
            overall = info["overall"]
            if stage == "embedder" and "step" in info:
                reached[0] = info["step"]
                return report(info["step"], fraction=overall, stage=stage, loss=info["loss"], r2=info["r2"])
            return report(reached[0], fraction=overall, stage=stage)

        def should_stop(step):  # every embedder step: the bar moves from step 1 and a cancel lands at once
            reached[0] = step
            return not report(step, fraction=overall_at("embedder", step / max(1, config.steps)))

        return run_pipeline(family.config, zoo.config, config, device=device, progress=progress,
                            projections=("pca",), family=family, zoo=zoo, should_stop=should_stop)  # fmt: skip

    return Job(name="embedder", total=config.steps, work=work)


def sweep_job(family, zoo, mask_ratios, bottlenecks, base_config, seeds=None) -> Job:
    """One embedder per (mask ratio, bottleneck, seed) on the zoo; the live chart shows every embedder's loss."""
    from netembed.pipeline import run_sweep

    total = len(mask_ratios) * len(bottlenecks) * len(seeds or [0]) * base_config.steps

    def work(report):
        def progress(stage, fraction, info):
            step = round(fraction * total)
            if "loss" not in info:
                return report(step, fraction=fraction)
            where = f"mask ratio {info['mask_ratio']:g}, bottleneck {info['bottleneck']}, seed {info['seed']}"
            return report(step, fraction=fraction, stage=where, loss=info["loss"], r2=info["r2"])

        def should_stop(cell, step):  # every step of every cell: a cancel ends the whole sweep at once
            done = cell * base_config.steps + step
            return not report(done, fraction=done / max(1, total))

        return run_sweep(zoo, family, mask_ratios, bottlenecks, base_config, progress=progress, seeds=seeds,
                         should_stop=should_stop)  # fmt: skip

    return Job(name="sweep", total=total, work=work)


# Ray keeps one connection per process: two Ray jobs of one server (two users) would share it, and the first to end
# would shut a local cluster down under the other, or the second would join the first's cluster whatever its
# address; so a server's Ray jobs take turns.
_RAY_TURN = threading.Lock()


def sharded_zoo_job(family, config, executor_kind: str, address: str | None, workers: int | None, n_shards: int,
                    by: str, device: str = "cpu") -> Job:  # fmt: skip
    """Train a zoo as `n_shards` independent shards split by function or seed (shards.train_zoo_sharded, as
    `zoo --executor KIND --shards N --shard-by BY` does): here ("local"), or as Ray tasks ("ray") on a local
    cluster of `workers` CPUs started for the job, or on the running cluster at `address`. The merged zoo is
    the zoo train_zoo trains (bit for bit with the C kernel: every model is computed alone).

    The job counts model-steps (models x steps), reported as each shard arrives, so the bar moves once per
    shard. A cancel stops the shards still queued or running, within STOP_POLL_S on Ray (RayExecutor.should_stop)
    and when the running shard ends here; a zoo with shards missing cannot be merged, so nothing is kept."""
    from netembed.executor import Stopped, make_executor
    from netembed.shards import train_zoo_sharded

    on_ray = executor_kind == "ray"
    where = f"the Ray cluster at {address}" if address else "a local Ray cluster" if on_ray else "this server"
    why = f"cancelled on {where}: a zoo with shards missing cannot be merged, so nothing was kept"

    def work(report):
        reached = [0]  # model-steps reported so far

        def progress(done: int, n: int, info: dict) -> None:
            loaded = f" ({info['loaded']} loaded)" if info["loaded"] else ""
            fraction = info["model_steps"] / max(1, info["model_steps_total"])
            reached[0] = info["model_steps"]
            if not report(info["model_steps"], fraction=fraction, stage=f"{done} of {n} shards done{loaded}"):
                raise Cancelled(why)  # from the executor's on_done: it cancels the pending shards

        if not on_ray:
            with make_executor(executor_kind) as ex:
                return train_zoo_sharded(family, config, n_shards, ex, by=by, device=device, progress=progress)
        while not _RAY_TURN.acquire(timeout=0.25):  # another job of this server is on Ray
            if not report(0, fraction=0.0, stage="waiting for this server's other Ray job to end"):
                raise Cancelled(why)
        try:
            report(0, fraction=0.0, stage=f"joining {where}" if address else "starting the Ray cluster")
            with make_executor("ray", address, workers) as ex:
                ex.should_stop = lambda: not report(reached[0])  # asked while the shards run: a cancel lands at once
                return train_zoo_sharded(family, config, n_shards, ex, by=by, device=device, progress=progress)
        except Stopped:
            raise Cancelled(why) from None
        finally:
            _RAY_TURN.release()

    total = family.n_functions * config.models_per_function * config.steps
    return Job(name="zoo", total=total, work=work, unit="model-step")
