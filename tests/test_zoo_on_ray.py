"""A zoo trained as shards from the app (jobs.sharded_zoo_job; the Zoo page's "Run on: a Ray cluster"):
the same zoo as train_zoo, a bar that counts model-steps shard by shard, a cancel that keeps nothing.

Tiny configs (3 functions x 2 seeds, width 8, 50 steps); jobs are waited for with job.wait, never timed.
The Ray tests share one 2-CPU local cluster per module, as tests/test_executor.py does; a job's
RayExecutor joins it (ray.is_initialized()) instead of starting its own.
"""

import time
from pathlib import Path

import pytest
import torch
from test_executor import assert_same_zoo

from app import cluster_ui
from app.jobs import sharded_zoo_job
from netembed.config import ZooConfig
from netembed.executor import LocalExecutor
from netembed.shards import train_zoo_sharded
from netembed.zoo import train_zoo

from app_session import SETTLE, fresh, settle, visit

REPO = Path(__file__).resolve().parent.parent
CONFIG = ZooConfig(models_per_function=2, width=8, steps=50, batch_size=32, seed=3)


@pytest.fixture(scope="module")
def ray_cluster():
    """A 2-CPU local cluster for this module (no dashboard, a 200 MB object store); its workers import netembed."""
    ray = pytest.importorskip("ray")  # .ci/run installs it (requirements-ray.txt)
    ray.init(num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})  # fmt: skip
    yield
    ray.shutdown()


def recorder(reports: list, stop_at: str | None = None):
    """A job's report function that keeps every call; from the report whose stage is `stop_at` on, it asks
    the work to stop (as a Job does once cancelled)."""

    def report(step, fraction=None, stage=None, **values):
        reports.append((step, fraction, stage))
        return stop_at is None or all(s != stop_at for _, _, s in reports)

    return report


def test_the_job_on_this_server_trains_the_zoo_train_zoo_trains_and_counts_model_steps(tiny_family):
    job = sharded_zoo_job(tiny_family, CONFIG, "local", None, None, 3, "function")
    reports = []
    zoo = job.work(recorder(reports))  # the job's work, on this thread: every report is seen
    assert_same_zoo(zoo, train_zoo_sharded(tiny_family, CONFIG, 3, LocalExecutor(), by="function"))
    whole = train_zoo(tiny_family, CONFIG)
    if whole.engine == "kernel":  # the C kernel computes each model alone: the shards' models are the zoo's
        assert_same_zoo(zoo, whole)
    else:  # autograd batches the models: equal up to float rounding (shards.py)
        for (wa, _), (wb, _) in zip(zoo.layers, whole.layers, strict=True):
            torch.testing.assert_close(wa, wb)
    per_shard = CONFIG.models_per_function * CONFIG.steps  # one function of the three per shard
    assert job.total == 3 * per_shard and job.unit == "model-step"
    assert reports == [(k * per_shard, k / 3, f"{k} of 3 shards done") for k in range(4)]  # once at the start, then per shard


def test_a_cancel_stops_the_shards_not_yet_trained_and_keeps_nothing(tiny_family, monkeypatch):
    import netembed.shards

    trained = []
    real = netembed.shards.train_shard
    monkeypatch.setattr(netembed.shards, "train_shard", lambda *a: trained.append(a[3]) or real(*a))
    job = sharded_zoo_job(tiny_family, CONFIG, "local", None, None, 3, "seed")  # 2 seeds: at most 2 shards
    with pytest.raises(ValueError, match="n_shards must be in 1..2 when splitting by seed"):
        job.work(recorder([]))

    job = cancel_at(sharded_zoo_job(tiny_family, CONFIG, "local", None, None, 3, "function"), "1 of 3 shards done")
    assert job.start().wait(SETTLE) and job.state == "cancelled"
    assert job.result is None and "a zoo with shards missing cannot be merged, so nothing was kept" in job.error
    assert trained == [[0], [1]], "the cancel lands at the next shard's report; the third never trains"


def test_the_job_on_ray_equals_the_job_here(ray_cluster, tiny_family):
    job = sharded_zoo_job(tiny_family, CONFIG, "ray", None, 2, 3, "function").start()
    assert job.wait(SETTLE) and job.state == "done", job.error
    assert job.fraction == 1.0 and job.step == job.total and job.stage == "3 of 3 shards done"
    here = sharded_zoo_job(tiny_family, CONFIG, "local", None, None, 3, "function").work(recorder([]))
    assert_same_zoo(job.result, here)  # the same cells, one torch thread each: the same numbers


def cancel_at(job, stage: str):
    """Make `job` cancel itself right after the report whose stage is `stage` (as a click would, then)."""
    work = job.work
    job.work = lambda report: work(lambda *a, **k: (report(*a, **k), k.get("stage") == stage and job.cancel())[0])
    return job


def test_a_cancel_on_ray_stops_the_running_shards_at_once_and_keeps_nothing(ray_cluster, tiny_family):
    """The cancel comes while the shards run (at the report before they start); a shard of 10^7 steps would
    take minutes here, so the job ending with no shard done and the cluster's CPUs free again shows that the
    running tasks were cancelled (RayExecutor.should_stop, asked every STOP_POLL_S), not waited for."""
    import ray

    config = ZooConfig(models_per_function=2, width=8, steps=10_000_000, batch_size=32, seed=3)
    job = cancel_at(sharded_zoo_job(tiny_family, config, "ray", None, 2, 3, "function"), "0 of 3 shards done")
    assert job.start().wait(SETTLE) and job.state == "cancelled" and job.result is None
    assert job.step == 0 and job.stage == "0 of 3 shards done", "no shard ended: they were stopped, not waited for"
    assert "nothing was kept" in job.error
    deadline = time.monotonic() + SETTLE  # a deadline for a hang, not a timing: the CPUs come back within a second
    while ray.available_resources().get("CPU", 0) < 2:
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.05)


# ---------------------------------------------------------------- the Zoo page


def choose_ray(at, address: str = "", shards: int = 2):
    """Family K = 2; on the Zoo page: 2 seeds, 50 steps, run on a Ray cluster at `address` (blank: local)."""
    visit(at, "family")
    at.number_input(key="fam_k").set_value(2).run()
    visit(at, "zoo")
    at.number_input(key="zoo_m").set_value(2)
    at.number_input(key="zoo_steps").set_value(50)
    at.radio(key="zoo_run_on").set_value("ray").run()
    at.text_input(key="zoo_ray_address").input(address)
    at.number_input(key="zoo_shards").set_value(shards).run()
    return at


def train(at):
    next(b for b in at.button if b.label.startswith("Train zoo")).click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at.session_state["ne"]["jobs"]["zoo"]


def test_an_address_nothing_answers_on_shows_one_line_in_the_panel(private_runs_folder):
    pytest.importorskip("ray")
    at = choose_ray(fresh(), "127.0.0.1:1")
    assert not at.error, [e.value for e in at.error]
    assert any("`--ray-address 127.0.0.1:1 --shards 2 --shard-by function`" in c.value for c in at.caption)
    job = train(at)
    settle(at, job)
    assert job.state == "failed" and job.error.startswith("no Ray cluster answers at 127.0.0.1:1")
    assert [e.value for e in at.error] == [f"Zoo training failed: {job.error}"] and "\n" not in job.error


def test_settings_the_job_would_refuse_are_explained_before_it_starts(private_runs_folder, monkeypatch):
    at = choose_ray(fresh(), "not an address", shards=3)
    assert [e.value for e in at.error] == [
        "the cluster address must be host:port, ray://host:port or auto, got 'not an address'"]  # fmt: skip
    at.text_input(key="zoo_ray_address").input("").run()
    assert [e.value for e in at.error] == ["shards must be in 1..2 when splitting by function (2 functions x 2 seeds), got 3"]
    assert not any(b.label.startswith("Train zoo") for b in at.button)
    monkeypatch.setattr(cluster_ui, "ray_installed", lambda: False)
    at.run()
    assert [e.value for e in at.error] == [cluster_ui.ray_missing()]
    assert "pip install -r requirements-ray.txt" in cluster_ui.ray_missing()
    at.radio(key="zoo_run_on").set_value("here").run()
    assert not at.error and any(b.label.startswith("Train zoo") for b in at.button)
    at.radio(key="zoo_run_on").set_value("ray")
    at.toggle(key="zoo_mixed").set_value(True).run()  # a mixed zoo trains here, whatever was chosen: said so
    assert not at.error and not [r for r in at.radio if r.key == "zoo_run_on"]
    assert any(c.value.startswith("A mixed zoo trains on this server") for c in at.caption)


def test_a_ray_job_is_sized_per_shard_as_the_command_line_sizes_it(private_runs_folder, monkeypatch):
    """The resource check before a Ray job sizes the largest shard (limits.estimate_sharded_zoo, as `--shards` does
    on the command line), not the whole zoo in one process: a limit too small for either says which it sized."""
    at = choose_ray(fresh(), "127.0.0.1:1")
    monkeypatch.setenv("NETEMBED_MAX_MEMORY_MB", "1")
    next(b for b in at.button if b.label.startswith("Train zoo")).click().run()
    assert len(at.error) == 1 and "in 2 shards of up to 2 models needs about" in at.error[0].value, at.error
    assert "zoo" not in at.session_state["ne"]["jobs"]  # refused before any job started


def test_a_zoo_trained_on_ray_from_the_page_joins_the_sessions_runs(ray_cluster, private_runs_folder):
    at = choose_ray(fresh())
    job = train(at)
    settle(at, job)
    assert job.state == "done", job.error
    assert any(f"Zoo training finished: {job.total:,} model-steps" in s.value for s in at.success)
    entry = at.session_state["ne"]["history"].newest_first()[0]
    assert entry.run.zoo is job.result and entry.run.zoo.n_models == 2 * 2


def test_a_job_waits_its_turn_on_ray_and_a_cancel_keeps_nothing(private_runs_folder):
    """The server's other Ray job holds the turn (here: the test), so this one waits; its cancel ends it at once."""
    from app import jobs

    at = choose_ray(fresh())
    with jobs._RAY_TURN:
        job = train(at)
        while job.stage != "waiting for this server's other Ray job to end":
            assert job.running, job.error
            job.wait(0.05)
        at.run()
        bars = [p.proto.text for p in at.get("progress")]
        waiting = "0 of 200 model-steps · waiting for this server's other Ray job to end"  # 2 functions x 2 seeds x 50
        assert len(bars) == 2 and bars[0].startswith(f"Zoo training: {waiting} · "), bars  # the panel (then seconds)
        assert bars[1] == f"zoo: {waiting}", bars  # the sidebar's
        at.button(key="cancel_zoo").click().run()
        assert job.wait(SETTLE) and job.state == "cancelled" and job.result is None
    settle(at, job)
    assert [w.value for w in at.warning] == [
        f"Zoo training cancelled on a local Ray cluster: a zoo with shards missing cannot be merged, so nothing was "
        f"kept ({job.seconds:.1f} s)."]  # fmt: skip
    assert not at.session_state["ne"]["history"].newest_first(), "no run joins the session"
