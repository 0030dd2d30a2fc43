"""Background jobs: progress reports, cancel keeps the partial result, errors become messages."""

import numpy as np

from netembed.config import ConfigError, ZooConfig
from netembed.divergence import DivergenceError
from netembed.jobs import Job, zoo_job


def test_zoo_job_reports_progress_and_keeps_the_zoo(tiny_family):
    job = zoo_job(tiny_family, ZooConfig(models_per_function=2, width=8, steps=40, batch_size=32)).start()
    assert job.wait(60) and job.state == "done"
    steps, series = job.history()
    assert steps[-1] == 40 and job.fraction == 1.0
    assert set(series) == {"median_loss", "worst_loss"}
    assert job.result.n_models == 2 * tiny_family.n_functions and job.result.steps_done == 40
    assert np.all(np.asarray(series["worst_loss"]) >= np.asarray(series["median_loss"]))


def test_cancel_keeps_what_was_done(tiny_family):
    job = zoo_job(tiny_family, ZooConfig(models_per_function=2, width=8, steps=100_000, batch_size=32))
    job.start()
    while job.step == 0 and job.running:
        job.wait(0.01)
    job.cancel()
    assert job.wait(60) and job.state == "cancelled"
    assert 0 < job.result.steps_done < 100_000
    assert job.result.loss_curves.shape[1] == len(job.reports)


def test_errors_become_messages():
    def bad_setting(report):
        raise ConfigError("width must be in 1..4096, got 0")

    def bug(report):
        raise KeyError("x")

    def diverged(report):  # a subclass of ConfigError is a bad setting too
        raise DivergenceError("lr 10 made training diverge")

    a, b, c = Job("a", 1, bad_setting).start(), Job("b", 1, bug).start(), Job("c", 1, diverged).start()
    assert a.wait(10) and b.wait(10) and c.wait(10)
    assert a.state == "failed" and a.error == "width must be in 1..4096, got 0" and a.result is None
    assert b.error == "KeyError: 'x'" and "Traceback" in b.detail
    assert c.error == "lr 10 made training diverge"


def test_an_embedder_cancelled_before_its_first_report_stops_at_once_and_says_where(tiny_family, tiny_zoo):
    """Issue 10, bug 2: the embedder checks the cancel at every step (not every steps // LOG_POINTS), and the
    job's step is the embedder's last step, not the step count the later stages report."""
    from netembed.config import ClozeConfig
    from netembed.jobs import embedder_job

    job = embedder_job(tiny_family, tiny_zoo, ClozeConfig(steps=5_000, models_per_batch=4, n_inputs=16))
    job.cancel()  # asked before the work starts: the first step's check must see it
    job.start()
    assert job.wait(120) and job.state == "cancelled"
    done = job.result.embedder.steps_done_
    assert done <= 1, f"the embedder ran {done} steps after the cancel (it logs every 100)"
    assert job.step == done
