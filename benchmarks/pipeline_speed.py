"""Time and peak memory of each stage of the default pipeline (10 functions x 50 seeds).

    python -m benchmarks.pipeline_speed            # stages in this process, then `python -m netembed run` end to end
    python -m benchmarks.pipeline_speed --no-end-to-end --threads 2

Stages: family, zoo, gradients (sampled dy/dx), line-sections, embedder (training and
embedding), probes (on the embeddings), baselines (features and their probes), PCA, UMAP
cold (first use in the process: import and numba compile) and warm (a second fit).
Peak memory per stage is the process's peak resident set during that stage (Linux resets
it through /proc/self/clear_refs before each stage). The end-to-end run is a fresh process,
timed from outside, with its peak RSS. The machine is shared, so times are noisy.
Writes benchmarks/results/pipeline_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from netembed.baselines import baseline_features
from netembed.cloze_training import train_embedder
from netembed.config import ClozeConfig, FamilyConfig, ZooConfig
from netembed.embedding import embed
from netembed.family import make_family
from netembed.gradients import input_gradients, line_sections
from netembed.probes import probe_all
from netembed.projection import project
from netembed.zoo import train_zoo

ROOT = Path(__file__).resolve().parents[1]

RESULTS = Path(__file__).parent / "results"
MIB = 2**20


def rss_peak_reset() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) for this process; False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def rss_peak_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB; a whole-process peak


class Stages:
    def __init__(self):
        self.rows = []

    def run(self, name, fn):
        per_stage = rss_peak_reset()
        start = time.perf_counter()
        out = fn()
        self.rows.append({"stage": name, "seconds": round(time.perf_counter() - start, 3),
                          "peak_rss_mib": round(rss_peak_mib(), 1), "peak_is_per_stage": per_stage})  # fmt: skip
        print(f"  {name:14s} {self.rows[-1]['seconds']:8.2f} s  {self.rows[-1]['peak_rss_mib']:8.0f} MiB", flush=True)
        return out


def in_process(threads: int) -> dict:
    torch.set_num_threads(threads)
    st = Stages()
    family = st.run("family", lambda: make_family(FamilyConfig()))
    zoo = st.run("zoo", lambda: train_zoo(family, ZooConfig()))
    x = np.random.default_rng(0).uniform(-1, 1, 256)
    st.run("gradients", lambda: input_gradients(zoo, x))
    st.run("line_sections", lambda: line_sections(zoo))
    embedder = st.run("embedder", lambda: train_embedder(zoo, ClozeConfig()))
    emb = st.run("embed", lambda: embed(embedder, zoo))
    st.run("probes", lambda: probe_all(emb, zoo.task_ids, zoo.is_train))
    st.run("baselines", lambda: {k: probe_all(f, zoo.task_ids, zoo.is_train) for k, f in baseline_features(zoo, family).items()})
    st.run("pca", lambda: project(emb, "pca"))
    st.run("umap_cold", lambda: project(emb, "umap"))
    st.run("umap_warm", lambda: project(emb, "umap"))
    return {"stages": st.rows, "zoo_engine": zoo.engine, "zoo_fit_mse_median": float(np.median(zoo.fit_mse)),
            "zoo_failed": int(zoo.failed.sum()), "total_seconds": round(sum(r["seconds"] for r in st.rows), 2)}  # fmt: skip


def end_to_end(threads: int) -> dict:
    """`python -m netembed run` with defaults, in a fresh process: wall time and peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "netembed", "run", "--out", str(Path(tmp) / "run"), "--threads", str(threads)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        peak = after.ru_maxrss / 1024
        report = {}
        report_path = Path(tmp) / "run" / "report.json"
        if report_path.exists():
            report = json.loads(report_path.read_text()).get("seconds", {})
    return {"command": " ".join(["python", "-m", "netembed", "run", "--out", "RUN", "--threads", str(threads)]),
            "returncode": done.returncode, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
            "peak_rss_mib": round(peak, 1),
            "stage_seconds": report, "stderr_tail": done.stderr[-500:]}  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-end-to-end", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "pipeline_speed.json"))
    args = parser.parse_args(argv)
    load = [os.getloadavg()[0]]
    result = {"threads": args.threads, "torch": torch.__version__, "cores": os.cpu_count()}
    if not args.no_end_to_end:
        print("end to end: python -m netembed run (fresh process) ...", flush=True)
        result["end_to_end"] = end_to_end(args.threads)
        load.append(os.getloadavg()[0])
    print("stages in this process:", flush=True)
    result["in_process"] = in_process(args.threads)
    load.append(os.getloadavg()[0])
    result["load_average_1min"] = load
    result["when"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    result["note"] = "shared machine: times are noisy; peak RSS per stage is the process peak during that stage"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print_table(result)


def print_table(r):
    print(f"\n{'stage':16s} {'seconds':>9s} {'peak RSS MiB':>13s}")
    for row in r["in_process"]["stages"]:
        print(f"{row['stage']:16s} {row['seconds']:9.2f} {row['peak_rss_mib']:13.0f}")
    print(f"{'sum of stages':16s} {r['in_process']['total_seconds']:9.2f}")
    e = r.get("end_to_end")
    if e:
        ok = "ok" if e["returncode"] == 0 else f"FAILED rc={e['returncode']}"
        print(f"end to end `{e['command']}`: {e['seconds']:.1f} s wall (target < 60 s), {e['cpu_seconds']:.1f} s of CPU, "
              f"peak RSS {e['peak_rss_mib']:.0f} MiB "
              f"(target < 2048 MiB), {ok}")  # fmt: skip
    print(f"zoo engine {r['in_process']['zoo_engine']}, median fit MSE {r['in_process']['zoo_fit_mse_median']:.2e}, "
          f"{r['in_process']['zoo_failed']} failed; load average {r['load_average_1min']}")  # fmt: skip
    print(r["note"])


if __name__ == "__main__":
    main()
