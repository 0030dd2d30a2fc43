"""How fast a zoo job's cancel lands: the trainer asked at its logged steps only (before) vs every step (now).

    python -m benchmarks.zoo_cancel                     # 10 functions x 50 models 1->32->32->1, 1,000,000 steps
    python -m benchmarks.zoo_cancel --steps 20000 --trials 5

Each trial starts the app's zoo job (app/jobs.py) on a thread, lets it run `--run-for` seconds,
cancels it and measures the seconds until the job has ended and the steps trained after the
cancel. "logged only" is the job as it was (train_zoo's progress, asked every steps // 500
steps); "every step" is zoo_job now (train_zoo's should_stop after every step). The two are
interleaved trial by trial on the same machine; the steps per second before the cancel show
(steps done / training seconds) what asking every step costs. Writes benchmarks/results/zoo_cancel.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from app.jobs import Job, _loss_report, zoo_job
from netembed.config import FamilyConfig, ZooConfig
from netembed.family import make_family
from netembed.zoo import train_zoo

RESULTS = Path(__file__).parent / "results"


def logged_only_job(family, config) -> Job:
    """The zoo job before should_stop: the cancel is seen only when train_zoo calls progress."""

    def work(report):
        return train_zoo(family, config, progress=lambda step, losses: _loss_report(report, step, losses))

    return Job(name="zoo", total=config.steps, work=work)


def trial(job: Job, run_for: float) -> dict:
    job.start()
    deadline = time.monotonic() + 120
    while job.step == 0 and job.running:  # started training (the first step may compile / warm up)
        if time.monotonic() > deadline:
            raise RuntimeError("the job never reported a step")
        job.wait(0.01)
    time.sleep(run_for)
    asked = time.perf_counter()
    job.cancel()
    at_cancel = job.step  # read after the cancel: every later report sees it
    if not job.wait(600):
        raise RuntimeError("the job did not end within 10 minutes of its cancel")
    return {"seconds_to_stop": job.finished - asked, "steps_after_cancel": job.result.steps_done - at_cancel,
            "steps_per_second": job.result.steps_done / job.result.seconds, "state": job.state}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--functions", type=int, default=10)
    p.add_argument("--models-per-function", type=int, default=50)
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--run-for", type=float, default=2.0, help="seconds of training before each cancel")
    a = p.parse_args()
    family = make_family(FamilyConfig(n_functions=a.functions))
    config = ZooConfig(models_per_function=a.models_per_function, steps=a.steps)
    modes = {"logged only": logged_only_job, "every step": zoo_job}
    results = {name: [] for name in modes}
    for i in range(a.trials):
        for name, make in modes.items():
            results[name].append(trial(make(family, config), a.run_for))
            print(f"trial {i} {name}: {results[name][-1]}", flush=True)
    summary = {name: {k: statistics.median(r[k] for r in rows) for k in ("seconds_to_stop", "steps_after_cancel",
                                                                        "steps_per_second")}
               for name, rows in results.items()}  # fmt: skip
    out = {"config": {**vars(a), "log_every": max(1, a.steps // 500)}, "machine": platform.processor() or
           platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "trials": results,
           "medians": summary}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "zoo_cancel.json").write_text(json.dumps(out, indent=1))
    for name, s in summary.items():
        print(f"{name:>12}: {s['seconds_to_stop']:.3f} s and {s['steps_after_cancel']:.0f} steps after the cancel; "
              f"{s['steps_per_second']:.0f} steps/s before it")  # fmt: skip


if __name__ == "__main__":
    main()
