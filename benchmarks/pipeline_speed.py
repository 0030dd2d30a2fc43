"""Time and peak memory of each stage of the default pipeline (10 functions x 50 seeds).

    python -m benchmarks.pipeline_speed            # stages in this process, then `python -m netembed run` end to end
    python -m benchmarks.pipeline_speed --no-end-to-end --threads 2
    python -m benchmarks.pipeline_speed --compare 4a6edbe --rounds 2 --no-stages   # before/after in one run

--compare REV runs `python -m netembed run` end to end with git revision REV's code (exported
with `git archive` to a temporary folder) and with this tree's, interleaved over --rounds,
and prints both runs' wall and CPU time, stage seconds and held-out probe scores, and the
ratios: the CPU time (user + system of the child) is the steady number on a shared machine.

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
from threadpoolctl import threadpool_limits

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
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        self.rows.append({"stage": name, "seconds": round(time.perf_counter() - start, 3),
                          "cpu_seconds": round(time.process_time() - cpu, 3),
                          "peak_rss_mib": round(rss_peak_mib(), 1), "peak_is_per_stage": per_stage})  # fmt: skip
        row = self.rows[-1]
        print(f"  {name:14s} {row['seconds']:8.2f} s  {row['cpu_seconds']:8.2f} s CPU  {row['peak_rss_mib']:8.0f} MiB",
              flush=True)  # fmt: skip
        return out


def in_process(threads: int) -> dict:
    torch.set_num_threads(threads)
    threadpool_limits(threads)  # scikit-learn's BLAS and OpenMP pools too, as run_pipeline does for its probes
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
            "zoo_failed": int(zoo.failed.sum()), "total_seconds": round(sum(r["seconds"] for r in st.rows), 2),
            "total_cpu_seconds": round(sum(r["cpu_seconds"] for r in st.rows), 2)}  # fmt: skip


PROBE_SCORES = ("linear_accuracy", "knn_accuracy", "nmi", "coefficient_r2")


def end_to_end(threads: int, code: Path = ROOT) -> dict:
    """`python -m netembed run` with defaults, in a fresh process with `code`'s package: wall and CPU time, peak RSS.

    ru_maxrss of RUSAGE_CHILDREN is the largest child so far, so the peak is exact for the first
    run and a bound after; the CPU time is this child's own (a difference of the children's totals).
    """
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "netembed", "run", "--out", str(Path(tmp) / "run"), "--threads", str(threads)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=code, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(code)})
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        peak = after.ru_maxrss / 1024
        report = {}
        report_path = Path(tmp) / "run" / "report.json"
        if report_path.exists():
            report = json.loads(report_path.read_text())
    probes = {name: {k: p.get(k) for k in PROBE_SCORES} for name, p in report.get("probes", {}).items()}
    return {"command": " ".join(["python", "-m", "netembed", "run", "--out", "RUN", "--threads", str(threads)]),
            "returncode": done.returncode, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
            "peak_rss_mib": round(peak, 1), "stage_seconds": report.get("seconds", {}), "probes": probes,
            "cloze_r2": report.get("embedder", {}).get("cloze_r2"), "stderr_tail": done.stderr[-500:]}  # fmt: skip


def compare(rev: str, threads: int, rounds: int) -> dict:
    """End to end with revision `rev`'s code and with this tree's, interleaved: both runs and their ratios."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        runs = {"before": [], "after": []}
        for i in range(rounds):
            for name, code in (("before", Path(tmp)), ("after", ROOT)):
                print(f"round {i + 1}/{rounds}: {name} ({rev if name == 'before' else 'this tree'}) ...", flush=True)
                runs[name].append(end_to_end(threads, code))
                r = runs[name][-1]
                print(f"  {r['seconds']:.1f} s wall, {r['cpu_seconds']:.1f} s CPU, rc {r['returncode']}", flush=True)
    best = {name: min(rs, key=lambda r: r["cpu_seconds"]) for name, rs in runs.items()}  # least disturbed
    return {"rev": rev, "runs": runs,
            "cpu_ratio": round(best["before"]["cpu_seconds"] / best["after"]["cpu_seconds"], 2),
            "wall_ratio": round(best["before"]["seconds"] / best["after"]["seconds"], 2)}  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-end-to-end", action="store_true")
    parser.add_argument("--no-stages", action="store_true", help="skip the in-process stages")
    parser.add_argument("--compare", metavar="REV", help="also run end to end with git revision REV's code")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved before/after rounds of --compare")
    parser.add_argument("--out", default=str(RESULTS / "pipeline_speed.json"))
    args = parser.parse_args(argv)
    load = [os.getloadavg()[0]]
    result = {"threads": args.threads, "torch": torch.__version__, "cores": os.cpu_count()}
    if not args.no_end_to_end:
        print("end to end: python -m netembed run (fresh process) ...", flush=True)
        result["end_to_end"] = end_to_end(args.threads)
        load.append(os.getloadavg()[0])
    if args.compare:
        result["compare"] = compare(args.compare, args.threads, args.rounds)
        load.append(os.getloadavg()[0])
    if not args.no_stages:
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
    p = r.get("in_process")
    if p:
        print(f"\n{'stage':16s} {'seconds':>9s} {'CPU s':>9s} {'peak RSS MiB':>13s}")
        for row in p["stages"]:
            print(f"{row['stage']:16s} {row['seconds']:9.2f} {row['cpu_seconds']:9.2f} {row['peak_rss_mib']:13.0f}")
        print(f"{'sum of stages':16s} {p['total_seconds']:9.2f} {p['total_cpu_seconds']:9.2f}")
        print(f"zoo engine {p['zoo_engine']}, median fit MSE {p['zoo_fit_mse_median']:.2e}, {p['zoo_failed']} failed")
    if r.get("compare"):
        print_compare(r["compare"])
    e = r.get("end_to_end")
    if e:
        ok = "ok" if e["returncode"] == 0 else f"FAILED rc={e['returncode']}"
        print(f"end to end `{e['command']}`: {e['seconds']:.1f} s wall (target < 60 s), {e['cpu_seconds']:.1f} s of CPU, "
              f"peak RSS {e['peak_rss_mib']:.0f} MiB "
              f"(target < 2048 MiB), {ok}")  # fmt: skip
    print(f"load average {r['load_average_1min']}")
    print(r["note"])


def print_compare(c):
    """Both sides' least-disturbed run (lowest CPU time): times, stage seconds, probe scores."""
    best = {name: min(rs, key=lambda x: x["cpu_seconds"]) for name, rs in c["runs"].items()}
    b, a = best["before"], best["after"]
    print(f"\nend to end, {c['rev']} (before) vs this tree (after), best of {len(c['runs']['after'])} by CPU time:")
    print(f"{'':22s} {'before':>9s} {'after':>9s} {'ratio':>7s}")
    for label, key in (("wall s", "seconds"), ("CPU s", "cpu_seconds")):
        print(f"{label:22s} {b[key]:9.2f} {a[key]:9.2f} {b[key] / max(a[key], 1e-9):7.2f}")
    for stage in a["stage_seconds"]:
        x, y = b["stage_seconds"].get(stage, float("nan")), a["stage_seconds"][stage]
        print(f"  {stage:20s} {x:9.2f} {y:9.2f} {x / max(y, 1e-9):7.2f}")
    print(f"held-out probes ({', '.join(PROBE_SCORES)}), before -> after; cloze R2 {b['cloze_r2']:.3f} -> {a['cloze_r2']:.3f}")
    for name in a["probes"]:
        cells = [f"{_num(b['probes'].get(name, {}).get(k))}->{_num(a['probes'][name].get(k))}" for k in PROBE_SCORES]
        print(f"  {name:18s} " + "  ".join(cells))


def _num(v):
    return "n/a" if v is None else f"{v:.3f}"


if __name__ == "__main__":
    main()
