"""Make the bundled demo run (assets/demo_run) with the real pipeline: `python -m assets.make_demo`.

Small on purpose (5 functions x 20 seeds, a short embedder and a 2 x 2 sweep, a few MB,
a few minutes on 2 CPU cores) so the dashboard opens on real content with no training.
The sweep's rows are kept in the report under "sweep" for the Sweep page.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/netembed-numba-cache")

import torch  # noqa: E402

from netembed.config import ClozeConfig, FamilyConfig, ZooConfig  # noqa: E402
from netembed.pipeline import run_pipeline, run_sweep  # noqa: E402
from netembed.store import save_run  # noqa: E402

# Every setting spelled out, so the script keeps making the bundled run when the core's defaults move.
FAMILY = FamilyConfig(n_functions=5, degree_min=3, degree_max=4, sampling="roots", min_derivative_distance=1.0, seed=0)
ZOO = ZooConfig(models_per_function=20, width=32, depth=2, activation="relu", steps=1500, batch_size=256, lr=1e-2,
                seed=0, train_fraction=0.8, fail_mse=1e-2)  # fmt: skip
CLOZE = ClozeConfig(bottleneck=4, mask_ratio=0.5, mask_unit="section", n_inputs=64, d_model=64, n_heads=4, n_layers=2,
                    steps=800, models_per_batch=64, lr=2e-3, seed=0)  # fmt: skip
SWEEP = dict(mask_ratios=(0.25, 0.5), bottlenecks=(2, 4), steps=120)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "assets" / "demo_run"), help="run folder to write")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    last = [0.0]

    def progress(stage, fraction, info):
        if time.perf_counter() - last[0] > 5 or fraction >= 1.0:
            last[0] = time.perf_counter()
            print(f"{time.perf_counter() - start:6.0f} s  {stage:11s} {fraction:4.0%}  {info}", flush=True)

    run = run_pipeline(FAMILY, ZOO, CLOZE, progress=progress)
    base = ClozeConfig(**{**CLOZE.__dict__, "steps": SWEEP["steps"]})
    run.report["sweep"] = run_sweep(run.zoo, run.family, SWEEP["mask_ratios"], SWEEP["bottlenecks"], base,
                                    progress=progress)  # fmt: skip
    run.meta["kind"] = "demo"
    folder = save_run(run, args.out)
    size = sum(f.stat().st_size for f in folder.iterdir())
    cloze = run.report["probes"]["cloze"]
    print(f"demo run saved to {folder} ({size / 2**20:.1f} MiB) in {time.perf_counter() - start:.0f} s; "
          f"cloze R^2 {run.report['embedder']['cloze_r2']:.3f}, linear probe {cloze['linear_accuracy']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
