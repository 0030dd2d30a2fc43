"""Make the bundled demo run (assets/demo_run) with the real pipeline: `python -m assets.make_demo`.

Small on purpose (12 sines x 10 seeds, a short embedder and a 3 x 3 sweep, about 1 MB,
about ten minutes on 2 busy CPU cores) so the dashboard opens on real content with no training.
The sweep's rows are kept in the report under "sweep" for the Sweep page.

The study was chosen by measurement (benchmarks/demo_tradeoff.py sines): on 5 polynomials every
score of every sweep cell read 1.00; on 12 sines a*sin(b*x) with b <= 3 the regression of (a, b)
from the embedding (coefficient R^2 on the held-out seeds) grows with the bottleneck (about 0.5
at 2, 0.6 at 4, 0.85-0.98 at 8) and at bottleneck 8 peaks at mask ratio 0.5, so the heatmap shows
the trade-off between how much is hidden and how much the bottleneck can carry. The report also
holds the held-out-function and parameter-regression protocols for the Embeddings page.
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
from netembed.executor import make_executor  # noqa: E402
from netembed.pipeline import run_pipeline, run_sweep  # noqa: E402
from netembed.store import save_run  # noqa: E402

# Every setting spelled out, so the script keeps making the bundled run when the core's defaults move.
FAMILY = FamilyConfig(kind="sines", n_functions=12, seed=0, sine_amplitude_min=0.5, sine_amplitude_max=10.0,
                      sine_frequency_min=0.5, sine_frequency_max=3.0, sine_phase=0.0)  # fmt: skip
ZOO = ZooConfig(models_per_function=10, width=32, depth=2, activation="relu", steps=1500, batch_size=256, lr=1e-2,
                seed=0, train_fraction=0.8, fail_relative_mse=0.05)  # fmt: skip
CLOZE = ClozeConfig(bottleneck=8, mask_ratio=0.5, mask_unit="section", n_inputs=64, n_freqs=8, d_model=64, n_heads=4,
                    n_layers=1, steps=600, models_per_batch=48, lr=3e-3, seed=0)  # fmt: skip
SWEEP = dict(mask_ratios=(0.25, 0.5, 0.75), bottlenecks=(2, 4, 8), steps=300)
PROTOCOLS = ("seeds", "functions", "parameters")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "assets" / "demo_run"), help="run folder to write")
    p.add_argument("--workers", type=int, default=1, help="run the sweep's cells as this many Ray tasks at once "
                   "(the same numbers as one after another; executor.py)")  # fmt: skip
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    last = [0.0]

    def progress(stage, fraction, info):
        if time.perf_counter() - last[0] > 5 or fraction >= 1.0:
            last[0] = time.perf_counter()
            print(f"{time.perf_counter() - start:6.0f} s  {stage:11s} {fraction:4.0%}  {info}", flush=True)

    run = run_pipeline(FAMILY, ZOO, CLOZE, progress=progress, protocols=PROTOCOLS)
    base = ClozeConfig(**{**CLOZE.__dict__, "steps": SWEEP["steps"]})
    with make_executor("ray" if args.workers > 1 else "local", workers=args.workers) as executor:
        run.report["sweep"] = run_sweep(run.zoo, run.family, SWEEP["mask_ratios"], SWEEP["bottlenecks"], base,
                                        progress=progress, executor=executor)  # fmt: skip
    run.meta["kind"] = "demo"
    folder = save_run(run, args.out)
    size = sum(f.stat().st_size for f in folder.iterdir())
    cloze = run.report["probes"]["cloze"]
    print(f"demo run saved to {folder} ({size / 2**20:.1f} MiB) in {time.perf_counter() - start:.0f} s; "
          f"cloze R^2 {run.report['embedder']['cloze_r2']:.3f}, linear probe {cloze['linear_accuracy']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
