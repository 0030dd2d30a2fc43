"""Which small study shows a mask ratio x bottleneck trade-off? Measured for the bundled demo (assets/make_demo.py).

    nice -n 10 python -m benchmarks.demo_tradeoff CANDIDATE [--steps 300] [--seeds 0]

Trains the candidate's zoo once, then one embedder per (mask ratio, bottleneck) cell per seed
(pipeline.run_sweep) and prints every score of every cell, mean over seeds: a candidate is good
when some score varies across the grid in both directions (not saturated at 1.0).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch

from netembed.config import ClozeConfig, FamilyConfig, ZooConfig
from netembed.family import make_family
from netembed.pipeline import run_sweep
from netembed.zoo import train_zoo

CANDIDATES = {
    # few distinct sines, low frequencies (small ReLU nets fit them in 1500 steps)
    "sines": (FamilyConfig(kind="sines", n_functions=12, sine_frequency_max=3.0),
              ZooConfig(models_per_function=10, steps=1500)),
    "sines_wide": (FamilyConfig(kind="sines", n_functions=12, sine_frequency_max=6.0),
                   ZooConfig(models_per_function=10, width=48, steps=2000, lr=5e-3)),
    "poly20": (FamilyConfig(n_functions=20, degree_min=3, degree_max=6, max_tries=20000),
               ZooConfig(models_per_function=8, steps=1500)),
}
SCORES = ("linear_accuracy", "knn_accuracy", "nmi", "coefficient_r2", "cloze_r2")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("candidate", choices=sorted(CANDIDATES))
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seeds", default="0")
    p.add_argument("--ratios", default="0.25,0.5,0.75")
    p.add_argument("--bottlenecks", default="2,4,8")
    a = p.parse_args()
    torch.set_num_threads(1)
    family_config, zoo_config = CANDIDATES[a.candidate]
    t = time.perf_counter()
    family = make_family(family_config)
    zoo = train_zoo(family, zoo_config)
    print(f"{a.candidate}: zoo {zoo.n_models} models in {time.perf_counter() - t:.0f} s, "
          f"fit MSE median {np.median(zoo.fit_mse):.2e}", flush=True)
    ratios = [float(r) for r in a.ratios.split(",")]
    bottlenecks = [int(b) for b in a.bottlenecks.split(",")]
    per_seed = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        base = replace(ClozeConfig(), steps=a.steps, seed=seed)
        per_seed.append(run_sweep(zoo, family, ratios, bottlenecks, base))
        print(f"seed {seed} done at {time.perf_counter() - t:.0f} s", flush=True)
    for score in SCORES:
        print(f"\n{score} (rows bottleneck, columns mask ratio {ratios}; mean over {len(per_seed)} seeds)")
        for b in bottlenecks:
            cells = []
            for r in ratios:
                vals = [row[score] for rows in per_seed for row in rows if row["mask_ratio"] == r and row["bottleneck"] == b]
                vals = [v for v in vals if v is not None]
                cells.append(f"{np.mean(vals):6.3f}" if vals else "   n/a")
            print(f"  {b:>3}: " + " ".join(cells))
    print(json.dumps({"candidate": a.candidate, "rows": per_seed})[:0])


if __name__ == "__main__":
    main()
