"""Baselines on the hidden units of planted-module digits networks (issue 13): what the cloze embedding must beat.

    python -m benchmarks.units_baselines [--modules 4] [--fine-tune 0,100,1000] [--seeds 0,1,2] [--out FILE.json]

For each joint fine-tuning length (the mixing curve) and seed: train the N modules, stitch and
shuffle them, fine-tune, then describe every hidden unit by each baseline (unit_baselines.py) and
score it against the planted modules: k-means NMI / ARI, and a logistic probe's accuracy on
held-out units (30% of each (layer, module), seeded). Prints mean ± std over seeds, per scope
(each hidden layer alone, all hidden units), and how mixed the blocks are (off_block_fraction).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from netembed.digits import UnitsConfig, load_digits_split, off_block_fraction, planted_modules_net
from netembed.unit_baselines import baseline_features, score_descriptions
from netembed.units import unit_modules, unit_train_split

N_FIXED = 32  # fixed test digits at which activations and gradients are read
PCA_DIM = 4  # ClozeConfig's default bottleneck: the same size as a cloze embedding
METRICS = ("nmi", "ari", "probe_accuracy")


def one_cell(modules: int, fine_tune: int, seed: int) -> dict:
    config = UnitsConfig(n_modules=modules, fine_tune_steps=fine_tune, seed=seed)
    digits = load_digits_split(config.test_fraction, seed)
    net = planted_modules_net(digits, config)
    truth = unit_modules(net)
    replicate, n_train = unit_train_split(net, 0.7, seed)
    is_train = replicate < n_train
    feats = baseline_features(net, digits.x_train, digits.x_test[:N_FIXED], is_train, PCA_DIM)
    return {"scores": score_descriptions(net, feats, truth, is_train, seed),
            "off_block_fraction": off_block_fraction(net), "subtask_accuracy": net.test_accuracy.tolist()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=4)
    parser.add_argument("--fine-tune", default="0,100,1000")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    results = {}
    for ft in [int(s) for s in args.fine_tune.split(",")]:
        cells = []
        for seed in seeds:
            start = time.perf_counter()
            cells.append(one_cell(args.modules, ft, seed))
            print(f"fine-tune {ft} seed {seed}: {time.perf_counter() - start:.1f} s, "
                  f"off-block {cells[-1]['off_block_fraction']:.4f}", file=sys.stderr, flush=True)  # fmt: skip
        results[ft] = cells
        mix = np.array([c["off_block_fraction"] for c in cells])
        acc = np.array([c["subtask_accuracy"] for c in cells])
        print(f"\n== N={args.modules} modules, fine-tune {ft} steps: off-block weight share "
              f"{mix.mean():.4f} ± {mix.std():.4f}, sub-task test accuracy {acc.mean():.3f}")  # fmt: skip
        print(f"{'description':18s} {'scope':7s} " + " ".join(f"{m:>15s}" for m in METRICS))
        for name, scopes in cells[0]["scores"].items():
            for scope in scopes:
                row = []
                for m in METRICS:
                    v = np.array([c["scores"][name][scope][m] for c in cells])
                    row.append(f"{v.mean():.3f} ± {v.std():.3f}".rjust(15))
                print(f"{name:18s} {scope:7s} " + " ".join(row))
    if args.out:
        args.out.write_text(json.dumps({"modules": args.modules, "seeds": seeds, "results": results}, indent=1))


if __name__ == "__main__":
    main()
