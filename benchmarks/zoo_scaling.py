"""How zoo-training time and memory grow with the number of models (2 to 2000) and the width.

    python -m benchmarks.zoo_scaling                 # writes results/zoo_scaling.json and .png
    python -m benchmarks.zoo_scaling --threads 2

Each point trains a fresh zoo (batch 256, depth 2) in its own process, so its peak resident
memory is its own: reported as the peak minus the process's RSS before training (torch
and the family already loaded), and as the peak of anonymous memory sampled every 5 ms
(RSS also counts library code paged in on first use). Steps per point shrink as the work grows (at least 5), and
time is reported per step. The machine is shared: times are noisy, and CPU seconds (less
sensitive to other processes) are reported beside wall seconds. The plot needs matplotlib
(requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
MODEL_COUNTS = (2, 10, 100, 500, 1000, 2000)  # a zoo has at least 2 seeds per function
WIDTHS = (8, 16, 32, 64, 128, 256)
WORK_PER_POINT = 4e11  # FLOPs a point may take (about 5-10 s here); fewer steps beyond that


def rss_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def point(n_models: int, width: int, threads: int) -> dict:
    """Train one zoo in this process; returns its time per step and extra peak memory."""
    import torch

    from benchmarks.zoo_speed import flops_per_model_step
    from netembed.config import FamilyConfig, ZooConfig
    from netembed.family import make_family
    from netembed.zoo import train_zoo

    torch.set_num_threads(threads)
    k = 1 if n_models < 20 else 10
    family = make_family(FamilyConfig(n_functions=k, seed=0))
    probe = ZooConfig(models_per_function=max(2, n_models // k), width=width, steps=1)
    n = k * probe.models_per_function
    steps = int(max(5, min(100, WORK_PER_POINT / (flops_per_model_step(probe) * n))))
    config = ZooConfig(models_per_function=probe.models_per_function, width=width, steps=steps)
    train_zoo(make_family(FamilyConfig(n_functions=1, seed=0)), ZooConfig(width=width, steps=1, models_per_function=2))  # build the kernel
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark
    before, anon_before = rss_mib("VmRSS"), rss_mib("RssAnon")
    anon_peak, done = [anon_before], threading.Event()

    def sample():  # anonymous memory only: RSS also counts library code paged in on first use
        while not done.wait(0.005):
            anon_peak[0] = max(anon_peak[0], rss_mib("RssAnon"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu = time.process_time()
    zoo = train_zoo(family, config)
    cpu = time.process_time() - cpu
    done.set()
    sampler.join()
    return {"models": n, "width": width, "steps": steps, "engine": zoo.engine, "threads": threads,
            "seconds_per_step": zoo.seconds / steps, "cpu_seconds_per_step": cpu / steps,
            "model_steps_per_s": n * steps / zoo.seconds, "extra_peak_rss_mib": rss_mib("VmHWM") - before,
            "extra_peak_anon_mib": max(anon_peak[0], rss_mib("RssAnon")) - anon_before,
            "gflops": n * steps * flops_per_model_step(config) / zoo.seconds / 1e9}  # fmt: skip


def run_point(n_models, width, threads) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.zoo_scaling", "--point", str(n_models), str(width), "--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise RuntimeError(f"point {n_models} x {width} failed: {done.stderr[-800:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {result['models']:5d} models, width {width:4d}: {1e3 * result['seconds_per_step']:9.2f} ms/step, "
          f"{result['model_steps_per_s']:9.0f} model-steps/s, +{result['extra_peak_anon_mib']:7.1f} MiB anonymous "
          f"(+{result['extra_peak_rss_mib']:.1f} MiB RSS) ({result['engine']})", flush=True)  # fmt: skip
    return result


def plot(result, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    by_n, by_w = result["by_models"], result["by_width"]
    ns = [r["models"] for r in by_n]
    axes[0].loglog(ns, [r["seconds_per_step"] * 1e3 for r in by_n], "o-", label="wall")
    axes[0].loglog(ns, [r["cpu_seconds_per_step"] * 1e3 for r in by_n], "s--", label="CPU")
    axes[0].loglog(ns, [by_n[-1]["cpu_seconds_per_step"] * 1e3 * n / ns[-1] for n in ns], ":", color="gray", label="linear")
    axes[0].set(xlabel="models", ylabel="ms per training step", title="time vs models (width 32)")
    axes[1].loglog(ns, [max(r["extra_peak_anon_mib"], 0.1) for r in by_n], "o-", label="extra peak, anonymous")
    axes[1].loglog(ns, [max(r["extra_peak_rss_mib"], 0.1) for r in by_n], "s--", label="extra peak RSS")
    axes[1].loglog(ns, [by_n[-1]["extra_peak_anon_mib"] * n / ns[-1] for n in ns], ":", color="gray", label="linear")
    axes[1].set(xlabel="models", ylabel="MiB", title="memory vs models (width 32)")
    ws = [r["width"] for r in by_w]
    axes[2].loglog(ws, [r["model_steps_per_s"] for r in by_w], "o-", label="model-steps/s")
    axes[2].set(xlabel="width", ylabel="model-steps / s", title=f"throughput vs width ({by_w[0]['models']} models)")
    flops = axes[2].twinx()  # the same runs in matmul FLOP/s: how well each width uses the machine
    flops.semilogx(ws, [r["gflops"] for r in by_w], "s--", color="tab:orange")
    flops.set_ylabel("GFLOP/s (orange, dashed)")
    flops.set_ylim(0, None)
    for ax in axes:
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"netembed zoo training, {result['threads']} thread(s), batch 256, depth 2 ({result['when']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--point", nargs=2, type=int, metavar=("MODELS", "WIDTH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.point:
        print(json.dumps(point(*args.point, args.threads)))
        return
    print("models (width 32):")
    by_models = [run_point(n, 32, args.threads) for n in MODEL_COUNTS]
    print("width (100 models):")
    by_width = [run_point(100, w, args.threads) for w in WIDTHS]
    first, last = by_models[1], by_models[-1]  # 10 and 2000 models: memory growth exponent between them
    ratio = (last["extra_peak_anon_mib"] / max(first["extra_peak_anon_mib"], 1e-3)) / (last["models"] / first["models"])
    result = {"threads": args.threads, "by_models": by_models, "by_width": by_width,
              "memory_growth_vs_linear_10_to_2000": ratio,
              "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "note": "shared machine: wall times are noisy; CPU seconds are steadier"}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "zoo_scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    try:
        plot(result, RESULTS / "zoo_scaling.png")
        print(f"plot: {RESULTS / 'zoo_scaling.png'}")
    except ImportError:
        print("matplotlib is missing (pip install -r requirements-dev.txt): no plot, JSON only")
    print(f"memory 10 -> 2000 models grew {ratio:.2f}x as fast as linear (<= 1: no faster than linear)")


if __name__ == "__main__":
    main()
