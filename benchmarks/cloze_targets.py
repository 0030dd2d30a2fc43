"""The research targets of issue 3: held-out linear-probe accuracy of the cloze embedding, over embedder seeds.

    python -m benchmarks.cloze_targets --zoo RUN_DIR [--seeds 0,1,2] [--set bottleneck=8 steps=800 ...]

RUN_DIR is a run folder holding a trained zoo (e.g. from `python -m netembed zoo --out RUN_DIR`,
or `--functions 50` for the second target). Every seed trains a fresh embedder on the same
zoo's training seeds and probes the held-out seeds. Prints one row per seed and mean ± std.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch

from netembed.cloze_training import train_embedder
from netembed.config import ClozeConfig
from netembed.embedding import EMBED_SEED, embed
from netembed.probes import probe_all
from netembed.store import load_run


def parse_settings(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        default = getattr(ClozeConfig(), key)
        out[key] = type(default)(value)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zoo", required=True, help="run folder with a trained zoo")
    p.add_argument("--seeds", default="0,1,2", help="embedder seeds")
    p.add_argument("--set", nargs="*", default=[], help="ClozeConfig overrides, key=value")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    run = load_run(a.zoo)
    zoo = run.zoo
    base = replace(ClozeConfig(), **parse_settings(a.set))
    print(f"zoo: {run.family.n_functions} functions x {zoo.config.models_per_function} seeds, "
          f"{int(zoo.is_train.sum())} training / {int((~zoo.is_train).sum())} held-out models; {base}")  # fmt: skip
    rows = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        t, cpu = time.perf_counter(), time.process_time()
        emb = train_embedder(zoo, replace(base, seed=seed))
        cpu = time.process_time() - cpu  # CPU seconds: comparable on a shared machine, unlike wall time
        pr = probe_all(embed(emb, zoo, seed=EMBED_SEED), zoo.task_ids, zoo.is_train, seed)
        row = {"seed": seed, "linear": pr["linear_accuracy"], "knn": pr["knn_accuracy"], "nmi": pr["nmi"],
               "cloze_r2": emb.cloze_r2_, "train_s": emb.seconds_, "train_cpu_s": cpu,
               "total_s": time.perf_counter() - t}  # fmt: skip
        rows.append(row)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    for key in ("linear", "knn", "nmi", "cloze_r2", "train_s", "train_cpu_s"):
        v = np.array([r[key] for r in rows])
        print(f"{key:>9}: {v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.4f}")


if __name__ == "__main__":
    main()
