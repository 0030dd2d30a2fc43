"""Background jobs: progress reports, cancel keeps the partial result, errors become messages."""

import time

import numpy as np

from app.jobs import Job, embedder_job, zoo_job
from netembed.config import ClozeConfig, ConfigError, ZooConfig
from netembed.divergence import DivergenceError


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
    deadline = time.monotonic() + 120  # generous: only a hung job takes this long to report its first step
    while job.step == 0 and job.running:
        assert time.monotonic() < deadline, "the job never reported a step"
        job.wait(0.01)
    job.cancel()
    assert job.wait(60) and job.state == "cancelled"
    assert 0 < job.result.steps_done < 100_000
    assert job.result.loss_curves.shape[1] == len(job.reports)


def test_a_zoo_cancelled_before_its_first_report_stops_at_once():
    """Issue 10's polish: the zoo trainer asks should_stop after every step, not only at its logged steps
    (every steps // 500 = 200 here, where the cancel used to land), and logs the partial window."""
    from netembed.config import FamilyConfig
    from netembed.family import make_family

    family = make_family(FamilyConfig(n_functions=2, seed=1))
    job = zoo_job(family, ZooConfig(models_per_function=2, width=8, steps=100_000, batch_size=32))
    job.cancel()  # asked before the work starts: the first step's check must see it
    job.start()
    assert job.wait(60) and job.state == "cancelled"
    assert job.result.steps_done == 1 and job.step == 1
    assert list(job.result.log_steps) == [1] and len(job.reports) == 1


def test_errors_become_messages(caplog):
    def bad_setting(report):
        raise ConfigError("width must be in 1..4096, got 0")

    def bug(report):
        raise KeyError("x")

    def diverged(report):  # a subclass of ConfigError is a bad setting too
        raise DivergenceError("lr 10 made training diverge")

    a, b, c = Job("a", 1, bad_setting).start(), Job("b", 1, bug).start(), Job("c", 1, diverged).start()
    assert a.wait(10) and b.wait(10) and c.wait(10)
    assert a.state == "failed" and a.error == "width must be in 1..4096, got 0" and a.result is None
    assert b.error == "KeyError: 'x'"
    logged = [r for r in caplog.records if r.name == "app.jobs"]  # only the bug's traceback reaches the log
    assert len(logged) == 1 and logged[0].exc_info[0] is KeyError and "job b failed" in logged[0].getMessage()
    assert c.error == "lr 10 made training diverge"


def test_embedder_job_progress_counts_only_its_own_work(tiny_family, tiny_zoo):
    """The pipeline's "overall" share, with the given family and zoo weighing nothing: 0 at the start, then up to 1."""
    config = ClozeConfig(steps=20, d_model=16, n_heads=2, n_inputs=24, models_per_batch=8)
    fractions = []

    def report(step, fraction=None, stage=None, **values):
        fractions.append(fraction)
        return True

    run = embedder_job(tiny_family, tiny_zoo, config).work(report)  # the job's work, on this thread
    assert run.embedder.steps_done_ == 20
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert 0.0 < fractions[len(fractions) // 2] < 1.0


def test_an_embedder_cancelled_before_its_first_report_stops_at_once_and_says_where(tiny_family, tiny_zoo):
    """Issue 10, bug 2: the embedder checks the cancel at every step (not every steps // LOG_POINTS), and the
    job's step is the embedder's last step, not the step count the later stages report."""
    from netembed.config import ClozeConfig

    job = embedder_job(tiny_family, tiny_zoo, ClozeConfig(steps=5_000, models_per_batch=4, n_inputs=16))
    job.cancel()  # asked before the work starts: the first step's check must see it
    job.start()
    assert job.wait(120) and job.state == "cancelled"
    done = job.result.embedder.steps_done_
    assert done <= 1, f"the embedder ran {done} steps after the cancel (it logs every 100)"
    assert job.step == done
