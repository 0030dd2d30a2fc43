"""Issue 11's cross-architecture target: embedder trained on 1-32-32-1 ReLU models only, sibling retrieval
among models of other widths, depths and activations fitting the same functions.

    nice -n 10 python -m benchmarks.cross_arch [--functions 10] [--models-per-function 10] [--seeds 0,1,2]
        [--architectures 32x2:relu,16x2:relu,...] [--train 32x2:relu] [--set key=value ...] [--zoo-set key=value ...]

Trains the mixed zoo once (cached under --cache, keyed by the configs), then one embedder per
seed on the training architecture's models; prints retrieval@5 per held-out architecture
(its models as queries, every other architecture's models as the pool) and over all models,
mean ± std over the embedder seeds, for the cloze embedding and every baseline, and writes
benchmarks/results/cross_arch.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from netembed.config import ClozeConfig, FamilyConfig, ZooConfig, to_dict
from netembed.cross_architecture import cross_architecture_study
from netembed.family import make_family
from netembed.mixed_zoo import train_mixed_zoo
from netembed.store import Run, load_run, save_run

RESULTS = Path(__file__).resolve().parent / "results"
ARCHITECTURES = "32x2:relu,16x2:relu,64x2:relu,32x1:relu,32x3:relu,32x2:tanh"


def parse_sets(items, cls):
    """['bottleneck=8', ...] -> {name: value typed as cls's default}."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = type(getattr(cls(), key))(value)
    return out


def mixed_zoo(family_config, zoo_config, architectures, cache: Path):
    key = hashlib.sha256(json.dumps([to_dict(family_config), to_dict(zoo_config), architectures]).encode()).hexdigest()
    folder = cache / f"cross-{key[:16]}"
    if folder.exists():
        run = load_run(folder)
        return run.family, run.zoo
    family = make_family(family_config)
    zoo = train_mixed_zoo(family, zoo_config, architectures)
    save_run(Run(family=family, zoo=zoo), folder)
    return family, zoo


def fmt(values) -> str:
    if isinstance(values[0], str):
        return "n/a"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--functions", type=int, default=10)
    p.add_argument("--models-per-function", type=int, default=10)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--architectures", default=ARCHITECTURES)
    p.add_argument("--train", default="32x2:relu")
    p.add_argument("--set", nargs="*", default=[], help="ClozeConfig key=value")
    p.add_argument("--zoo-set", nargs="*", default=[], help="ZooConfig key=value")
    p.add_argument("--cache", default="/tmp/netembed-study-zoos")
    p.add_argument("--out", default=str(RESULTS / "cross_arch.json"))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    family_config = FamilyConfig(n_functions=a.functions)
    zoo_config = ZooConfig(models_per_function=a.models_per_function, **parse_sets(a.zoo_set, ZooConfig))
    start = time.perf_counter()
    family, zoo = mixed_zoo(family_config, zoo_config, a.architectures, Path(a.cache))
    print(f"zoo: {zoo.n_models} models ({zoo.engine}), {time.perf_counter() - start:.0f} s; "
          f"failed {int(zoo.failed.sum())}, fit MSE median per part "
          + ", ".join(f"{lab} {np.median(p.fit_mse):.1e}" for lab, p in zip(zoo.labels, zoo.parts)), file=sys.stderr)
    base = ClozeConfig(**parse_sets(a.set, ClozeConfig))
    runs = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        t = time.perf_counter()
        result = cross_architecture_study(zoo, replace(base, seed=seed), a.train, random_state=seed)
        result.pop("embeddings")
        runs.append(result)
        print(f"seed {seed}: cloze all {result['retrieval']['cloze']['all']:.3f}, R^2 {result['cloze_r2']:.3f}, "
              f"{time.perf_counter() - t:.0f} s", file=sys.stderr)
    columns = [lab for lab in zoo.labels if lab != a.train] + ["all"]
    print(f"\nretrieval@5 across architectures (embedder trained on {a.train} only; "
          f"{a.functions} functions x {a.models_per_function} seeds per architecture; mean ± std over seeds {a.seeds})\n")
    print("| description | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name in runs[0]["retrieval"]:
        cells = runs[0]["retrieval"][name]
        if isinstance(cells, str):
            print(f"| {name} | " + " | ".join(["n/a"] * len(columns)) + f" |  ({cells})")
            continue
        print(f"| {name} | " + " | ".join(fmt([r["retrieval"][name][c] for r in runs]) for c in columns) + " |")
    Path(a.out).write_text(json.dumps({"command": " ".join(sys.argv), "family": to_dict(family_config),
                                       "zoo": to_dict(zoo_config), "architectures": a.architectures,
                                       "train": a.train, "cloze": to_dict(base), "runs": runs}, indent=1))  # fmt: skip
    print(f"\nwrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
