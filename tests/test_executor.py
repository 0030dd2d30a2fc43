"""Executors (executor.py) and sharded zoos kept on disk (shards.py): Ray equals local, bit for bit;
a dying worker is retried; a killed driver resumes from the shards it kept."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from netembed.cli import main
from netembed.config import ClozeConfig, ZooConfig
from netembed.executor import RAY_MISSING, ExecutorError, LocalExecutor, RayExecutor, make_executor
from netembed.pipeline import run_sweep
from netembed.shards import discard_shards, merge_zoos, plan_shards, shard_folder, train_zoo_sharded
from netembed.store import load_run
from netembed.zoo import train_zoo

REPO = Path(__file__).resolve().parent.parent
CONFIG = ZooConfig(models_per_function=4, width=8, steps=25, batch_size=32, seed=3)


@pytest.fixture(scope="module")
def ray_cluster():
    """A 2-CPU local cluster for this module; its workers import netembed and this test file (the dying task).
    It declares one logical GPU (no GPU is needed) so that GPU requests can be checked."""
    ray = pytest.importorskip("ray")  # .ci/run installs it (requirements-ray.txt)
    path = os.pathsep.join([str(REPO), str(REPO / "tests")])
    ray.init(num_cpus=2, num_gpus=1, object_store_memory=200 * 1024**2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": path}})  # fmt: skip
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def assert_same_zoo(a, b):
    """Bit for bit: weights, every per-model array, logged steps."""
    for (wa, ba), (wb, bb) in zip(a.layers, b.layers, strict=True):
        assert torch.equal(wa, wb) and torch.equal(ba, bb)
    for name in ("task_ids", "replicates", "seeds", "loss_curves", "fit_mse", "failed", "log_steps"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_shards_on_ray_equal_local_and_the_whole_zoo(ray_cluster, tiny_family, tmp_path):
    with RayExecutor() as ex:  # joins the fixture's cluster
        on_ray = train_zoo_sharded(tiny_family, CONFIG, 3, ex, by="seed", keep_in=tmp_path / "kept")
    on_here = train_zoo_sharded(tiny_family, CONFIG, 3, LocalExecutor(), by="seed")
    assert_same_zoo(on_ray, on_here)  # same cells, one thread each: the same numbers
    assert len(list((tmp_path / "kept").iterdir())) == 3
    whole = train_zoo(tiny_family, CONFIG)
    if whole.engine == "kernel":  # the C kernel computes each model alone; autograd is equal up to rounding
        assert_same_zoo(on_ray, whole)


def train_shard_dying_once(marker_dir, family, config, tasks, replicates):
    """A shard whose worker process dies half-way through training on its first attempt (as a killed or
    out-of-memory worker would); the marker file tells the retry that the first attempt happened."""
    marker = Path(marker_dir) / f"died-{tasks[0]}"

    def die_half_way(step, losses):
        if tasks[0] == 0 and step >= config.steps // 2 and not marker.exists():  # the first shard only
            marker.touch()
            os._exit(1)

    return train_zoo(family, config, progress=die_half_way, log_every=1, tasks=tasks, replicates=replicates)


def test_a_worker_killed_mid_shard_is_retried(ray_cluster, tiny_family, tmp_path):
    plan = plan_shards(tiny_family.n_functions, CONFIG, 2, by="function")
    items = [(s["tasks"], s["replicates"]) for s in plan]
    with RayExecutor(max_retries=2) as ex:
        shards = ex.map(train_shard_dying_once, items, shared=(str(tmp_path), tiny_family, CONFIG))
    assert [p.name for p in tmp_path.glob("died-*")] == ["died-0"]  # the first shard's worker did die
    here = [train_zoo(tiny_family, CONFIG, log_every=1, **s) for s in plan]
    assert_same_zoo(merge_zoos(shards, tiny_family.n_functions), merge_zoos(here, tiny_family.n_functions))


def test_sweep_cells_on_ray_equal_local(ray_cluster, tiny_zoo, tiny_family):
    base = ClozeConfig(steps=4, d_model=16, n_heads=2, n_layers=1, n_inputs=16)
    seen = []
    with RayExecutor() as ex:
        on_ray = run_sweep(tiny_zoo, tiny_family, [0.25, 0.5], [2], base, executor=ex, progress=lambda s, f, i: seen.append(f))
    here = run_sweep(tiny_zoo, tiny_family, [0.25, 0.5], [2], base)
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(on_ray) == drop(here)
    assert seen == [0.5, 1.0, 1.0]  # once per finished cell, then done


class CountingExecutor(LocalExecutor):
    """The local executor, counting the cells it runs; with `stop_after`, the driver 'dies' after that many."""

    def __init__(self, stop_after=None):
        self.cells, self.stop_after = 0, stop_after

    def map(self, fn, items, shared=(), on_done=None, uses_gpu=False):
        def counted(i, result):
            self.cells += 1
            on_done(i, result)
            if self.cells == self.stop_after:
                raise KeyboardInterrupt  # after the shard was kept, as a Ctrl-C or kill would land

        return super().map(fn, items, shared, counted, uses_gpu)


def test_resume_trains_only_the_shards_not_kept_whole(tiny_family, tmp_path):
    keep = shard_folder(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        train_zoo_sharded(tiny_family, CONFIG, 4, CountingExecutor(stop_after=2), by="seed", keep_in=keep)
    kept = sorted(keep.iterdir())
    assert len(kept) == 2
    data = bytearray((kept[0] / "zoo.safetensors").read_bytes())
    data[-1] ^= 1  # a shard damaged on disk must be trained again, not trusted
    (kept[0] / "zoo.safetensors").write_bytes(bytes(data))
    counting, reports = CountingExecutor(), []
    zoo = train_zoo_sharded(tiny_family, CONFIG, 4, counting, by="seed", keep_in=keep,
                            progress=lambda d, t, info: reports.append((d, info["loaded"])))  # fmt: skip
    assert counting.cells == 3 and reports[0] == (1, 1)  # 4 shards, 1 kept whole
    assert_same_zoo(zoo, train_zoo_sharded(tiny_family, CONFIG, 4, LocalExecutor(), by="seed"))
    other = ZooConfig(**{**CONFIG.__dict__, "lr": 0.02})  # another job's shards are never mixed in
    counting = CountingExecutor()
    train_zoo_sharded(tiny_family, other, 4, counting, by="seed", keep_in=keep)
    assert counting.cells == 4
    discard_shards(tmp_path / "run")
    assert not keep.exists()


ZOO_FLAGS = ["--functions", "8", "--models-per-function", "4", "--width", "16", "--steps", "2000", "--shards", "8",
             "--executor", "ray"]  # 8 shards of ~0.2 s each on 2 workers: about a second to kill the driver in  # fmt: skip


def kept_shards(folder: Path) -> list[Path]:
    """Shards saved whole; not a hidden `.NAME.tmp-*` folder that a save is still writing (pathlib's * matches it)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and (p / "meta.json").is_file())


def test_resume_after_the_driver_is_killed(ray_cluster, tmp_path, capsys):
    out, keep = tmp_path / "zoo", shard_folder(tmp_path / "zoo")
    command = [sys.executable, "-m", "netembed", "zoo", *ZOO_FLAGS, "--ray-address", ray_cluster, "--out", str(out)]
    driver = subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120  # generous for a busy machine; the wait ends as soon as a shard is kept
    while not kept_shards(keep) and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert driver.poll() is None, f"the job ended before it could be killed: {driver.communicate()[1][-500:]}"
    driver.send_signal(signal.SIGKILL)  # no chance to clean up: the shards on disk are all that is left
    driver.communicate()
    kept = kept_shards(keep)
    assert 1 <= len(kept) < 8 and not out.exists()
    # the same command again, here (it joins this process's cluster instead of starting a driver process)
    assert main(["zoo", *ZOO_FLAGS, "--out", str(out)]) == 0
    assert f"resuming: {len(kept)} of 8 shards loaded from disk" in capsys.readouterr().err
    assert not keep.exists()  # cleaned up once the run is saved
    run = load_run(out)
    uninterrupted = train_zoo_sharded(run.family, run.zoo.config, 8, LocalExecutor())
    assert_same_zoo(run.zoo, uninterrupted)


def test_without_ray_the_error_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ExecutorError, match="pip install -r requirements-ray.txt"):
        make_executor("ray")
    assert main(["zoo", "--functions", "3", "--executor", "ray", "--out", str(tmp_path / "z")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {RAY_MISSING}\n" and not (tmp_path / "z").exists()


def test_an_address_nothing_answers_on_is_one_line(tmp_path, capsys):
    pytest.importorskip("ray")
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["zoo", "--functions", "3", "--ray-address", f"127.0.0.1:{port}", "--out", str(tmp_path / "z")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: no Ray cluster answers at 127.0.0.1:{port}")


def gpus_given():
    import ray

    return ray.get_gpu_ids()


def test_tasks_ask_for_gpus_only_when_the_cell_uses_one(ray_cluster):
    with RayExecutor(gpus_per_task=0.5) as ex:  # last in the file: Ray starts a fresh worker for GPU tasks
        assert ex.map(gpus_given, [()]) == [[]]  # a CPU cell never holds one
        assert ex.map(gpus_given, [()], uses_gpu=True) == [[0]]  # a cuda shard: Ray hands it the GPU
