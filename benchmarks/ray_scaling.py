"""One zoo trained by the local executor and by 1- and 2-worker local Ray clusters, as 2 or 4 shards.

    python -m benchmarks.ray_scaling                  # 10 functions x 50 seeds, 1000 steps; results/ray_scaling.json
    python -m benchmarks.ray_scaling --steps 300      # quicker

Every variant must give the same zoo bit for bit (checked). Times: `job` is the wall time of
train_zoo_sharded once the cluster is up and its workers have imported netembed (a warm-up
task each); `start` is ray.init plus that warm-up, paid once per cluster; `compute` is the
shards' own training time summed (zoo.seconds). Ratios are the local, unsharded time over
each variant's job time. The machine may be shared: CPU seconds of this process are given
for the local runs, and the load average before and after is printed, so a loaded run shows.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from netembed.config import FamilyConfig, ZooConfig
from netembed.executor import LocalExecutor, RayExecutor
from netembed.family import make_family
from netembed.shards import train_shard, train_zoo_sharded
from netembed.zoo import train_zoo

RESULTS = Path(__file__).parent / "results"


def warm_up(family, config) -> float:
    """Import netembed and build the zoo kernel in a worker, then hold it a moment so each worker gets one."""
    train_shard(family, config, "cpu", [0], [0, 1])
    time.sleep(1.0)
    return os.getpid()


def same(a, b) -> bool:
    return all(torch.equal(x, y) for la, lb in zip(a.layers, b.layers) for x, y in zip(la, lb)) and (
        (a.fit_mse == b.fit_mse).all() and (a.loss_curves == b.loss_curves).all()
    )


def timed(fn):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--functions", type=int, default=10)
    p.add_argument("--models-per-function", type=int, default=50)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--shards", default="2,4")
    p.add_argument("--workers", default="1,2")
    a = p.parse_args()
    torch.set_num_threads(1)
    family = make_family(FamilyConfig(n_functions=a.functions, seed=0))
    config = ZooConfig(models_per_function=a.models_per_function, steps=a.steps)
    shard_counts = [int(s) for s in a.shards.split(",")]
    print(f"zoo {a.functions} x {a.models_per_function} = {a.functions * a.models_per_function} models, "
          f"{a.steps} steps, width {config.width}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip

    rows = []
    train_zoo(family, ZooConfig(models_per_function=2, steps=1))  # build the kernel before timing
    reference, wall, cpu = timed(lambda: train_zoo(family, config))
    rows.append({"executor": "local", "workers": 1, "shards": 1, "job_s": wall, "cpu_s": cpu, "compute_s": reference.seconds})
    for n in shard_counts:
        zoo, wall, cpu = timed(lambda n=n: train_zoo_sharded(family, config, n, LocalExecutor()))
        assert same(zoo, reference), "local shards differ from the whole zoo"
        rows.append({"executor": "local", "workers": 1, "shards": n, "job_s": wall, "cpu_s": cpu, "compute_s": zoo.seconds})
    for workers in (int(w) for w in a.workers.split(",")):
        t = time.perf_counter()
        with RayExecutor(workers=workers) as ex:
            pids = ex.map(warm_up, [()] * workers, shared=(family, config))
            start = time.perf_counter() - t
            for n in shard_counts:
                zoo, wall, _ = timed(lambda n=n: train_zoo_sharded(family, config, n, ex))
                assert same(zoo, reference), "Ray shards differ from the whole zoo"
                rows.append({"executor": "ray", "workers": workers, "shards": n, "job_s": wall, "start_s": start,
                             "compute_s": zoo.seconds, "warm_workers": len(set(pids))})  # fmt: skip
    base = rows[0]["job_s"]
    print(f"{'executor':>8} {'workers':>7} {'shards':>6} {'job s':>7} {'compute s':>9} {'start s':>7}  local/this")
    for r in rows:
        r["speedup"] = base / r["job_s"]
        start = f"{r['start_s']:7.1f}" if "start_s" in r else f"{'':>7}"
        print(f"{r['executor']:>8} {r['workers']:>7} {r['shards']:>6} {r['job_s']:7.2f} {r['compute_s']:9.2f} {start}  "
              f"{r['speedup']:.2f}x")  # fmt: skip
    print(f"every variant gave the same zoo bit for bit; load average now {os.getloadavg()[0]:.1f}")
    RESULTS.mkdir(exist_ok=True)
    out = {"zoo": {"functions": a.functions, "models_per_function": a.models_per_function, "steps": a.steps},
           "cpu": os.cpu_count(), "load_average_end": os.getloadavg(), "rows": rows}  # fmt: skip
    (RESULTS / "ray_scaling.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
