"""Cloze embeddings of hidden units against planted modules, beside the baselines, over seeds and joint fine-tuning (issue 13).

    python -m benchmarks.units_cloze [--modules 4] [--fine-tune 0,100,300,1000] [--seeds 0,1,2]
        [--fine-tune-lr 0.01] [--unit-input previous_layer] [--unit-value pre] [--embed-steps 300] [--d-model 32] [--out FILE.json]

Each cell is `python -m netembed units --modules N --fine-tune-steps S --seed S` with the given
settings (units_pipeline.run_units): train the modules, stitch, shuffle, fine-tune jointly
(objective subtasks+digits, lr --fine-tune-lr), train the cloze embedder on the units' lines, score the
cloze descriptions and every baseline per hidden layer (k-means NMI / ARI, held-out probe).
Prints mean ± std over seeds of the mean over layers, each layer's NMI, and the off-block share.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from netembed.config import ClozeConfig
from netembed.digits import UnitsConfig
from netembed.unit_cloze import UnitEmbedConfig
from netembed.units_pipeline import METRICS, run_units


def pm(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.2f} ± {v.std():.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modules", type=int, default=4)
    p.add_argument("--fine-tune", default="0,100,300,1000")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--unit-input", default="previous_layer")
    p.add_argument("--unit-value", default="pre")
    p.add_argument("--fine-tune-lr", type=float, default=1e-2)
    p.add_argument("--embed-steps", type=int, default=300)
    p.add_argument("--d-model", type=int, default=32)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in a.seeds.split(",")]
    results = {}
    for ft in [int(s) for s in a.fine_tune.split(",")]:
        cells = []
        for seed in seeds:
            start = time.perf_counter()
            run = run_units("planted", UnitsConfig(n_modules=a.modules, fine_tune_steps=ft, fine_tune_lr=a.fine_tune_lr, seed=seed),
                            UnitEmbedConfig(unit_input=a.unit_input, unit_value=a.unit_value),
                            ClozeConfig(steps=a.embed_steps, d_model=a.d_model, mask_unit="sample", seed=seed))  # fmt: skip
            cells.append(run.report)
            print(f"fine-tune {ft} seed {seed}: {time.perf_counter() - start:.0f} s, cloze NMI "
                  f"{run.report['modules']['cloze']['nmi']:.3f}", file=sys.stderr, flush=True)  # fmt: skip
        results[ft] = cells
        mix = [c["network"]["off_block_fraction"] for c in cells]
        acc = [np.mean(c["network"]["test_accuracy"]) for c in cells]
        r2 = [c["embedder"]["cloze_r2"] for c in cells]
        print(f"\n== N={a.modules}, fine-tune {ft} steps: off-block share {pm(mix)}, sub-task accuracy {pm(acc)}, "
              f"cloze R2 {pm(r2)} ({a.unit_input}, {a.unit_value})")  # fmt: skip
        names = list(cells[0]["modules"])
        layers = list(cells[0]["modules"]["cloze"]["layers"])
        print(f"{'description':20s} " + " ".join(f"{m:>13s}" for m in METRICS) + " " +
              " ".join(f"{'NMI ' + layer:>13s}" for layer in layers))  # fmt: skip
        for name in names:
            row = [pm([c["modules"][name][m] for c in cells]) for m in METRICS]
            row += [pm([c["modules"][name]["layers"][layer]["nmi"] for c in cells]) for layer in layers]
            print(f"{name:20s} " + " ".join(f"{r:>13s}" for r in row), flush=True)
    if a.out:
        a.out.write_text(json.dumps({"args": vars(a) | {"out": str(a.out)}, "results": results}, indent=1))


if __name__ == "__main__":
    main()
