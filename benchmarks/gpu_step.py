"""The zoo's training step, the autograd engine against the fused ones (zoo_fused.py, zoo_triton.py), in model-steps/s.

    python -m benchmarks.gpu_step                                      # CPU: 100 and 1000 models, relu / tanh / sine
    python -m benchmarks.gpu_step --device cuda --models 16384,65536   # a GPU, the issue's target (< 3 min planned)
    python -m benchmarks.gpu_step --device cuda --models 16384 --activations relu --engines autograd,fused,fused+compile
    python -m benchmarks.gpu_step --device cuda --models 16384 --activations relu --engines triton@32x4,triton@128x8

For each activation and zoo size: the same models (1 -> 32 -> 32 -> 1, batch 256 by default) are
stepped by each engine through zoo.make_step, on inputs and targets drawn on the device beforehand
(a pool of POOL draws, cycled), interleaved in rounds; the median round counts. On CUDA the fused
engine is one CUDA graph per step, the Triton engine one kernel per step (at tl.dot precision ieee,
tf32x3 or tf32, and a block of samples x warps that may be given). Before timing, a check trains a small zoo 20 steps with both
engines from the same init on the same inputs and prints their largest weight difference.

The peak: one square float32 matmul (4096 on CUDA, 1024 on CPU), repeated, in GFLOP/s; each
engine's rate is also given as a fraction of it (FLOPs: 2 per multiply-add of the forward and
backward matmuls, as benchmarks/zoo_speed.py counts them; elementwise work and Adam not counted),
next to the rate of the hidden layer's batched matmul (n, B, W) x (n, W, W) alone, the ceiling
of any step built from torch's bmm. TF32 stays off (torch's default): float32 throughout, except in
the engines named -tf32x3 / -tf32 (the check says how far their weights move from autograd's).
With --train-zoo, also the whole train_zoo loop (draws, gathers, logging) for relu at the first size.
Writes benchmarks/results/gpu_step_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

from benchmarks.zoo_speed import flops_per_model_step, machine, sync
from netembed.config import FamilyConfig, ZooConfig
from netembed.family import make_family
from netembed.zoo import lr_at, make_step, siren_scale, train_zoo
from netembed.zoo_fused import FusedStep
from netembed.zoo_triton import TritonStep

RESULTS = Path(__file__).parent / "results"
POOL = 8  # distinct (x, y) draws cycled through the timed steps
TARGET_RATE, TARGET_MODELS = 10e6, 16384  # the GPU target: >= 10 M model-steps/s at >= 16k models
CHECK_ATOL = 1e-4  # tests/test_zoo_fused.py's tolerance (measured on the CPU over 8 seeds)


def rate_text(rate: float) -> str:
    return f"{rate / 1e6:.2f} M/s" if rate >= 1e6 else f"{rate / 1e3:.1f} k/s"


def bench_layers(config: ZooConfig, n: int, device, seed: int = 0):
    """n models drawn at once (nn.Linear's bounds; SIREN's scaling for sine): the step's speed does not depend
    on which draws, and init_layers's per-model generators take seconds at 64k models."""
    g = torch.Generator(device=device).manual_seed(seed)
    sizes = [1] + [config.width] * config.depth + [1]
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1 / math.sqrt(fan_in)
        w = (torch.rand(n, fan_in, fan_out, generator=g, device=device) * 2 - 1) * bound
        b = (torch.rand(n, 1, fan_out, generator=g, device=device) * 2 - 1) * bound
        layers.append((w, b))
    if config.activation == "sine":
        siren_scale(layers)
    return layers


def draws(config: ZooConfig, n: int, device, seed: int = 1):
    """POOL inputs (B,) on [-1, 1] and targets (n, B), drawn on the device by its own generator."""
    g = torch.Generator(device=device).manual_seed(seed)
    xs = torch.rand(POOL, config.batch_size, generator=g, device=device) * 2 - 1
    ys = torch.sin(3 * xs)[:, None] + 0.1 * torch.randn(POOL, n, config.batch_size, generator=g, device=device)
    return xs, ys


def build_step(engine: str, layers, config: ZooConfig, device):
    """make_step's engine, or "fused+compile" (the fused step with its forward and backward compiled), or
    "triton[-PRECISION][@BBxWARPS]": the Triton step at a tl.dot precision (tf32x3, the default; ieee; tf32)
    and block (samples x warps; by default zoo_triton.default_block's)."""
    if engine == "fused+compile":
        return FusedStep(layers, config, lr_at, compile=True)
    if engine.startswith("triton"):
        name, _, block = engine.partition("@")
        precision = {"precision": name.partition("-")[2]} if "-" in name else {}  # else the step's default
        blocks = tuple(int(k) for k in block.split("x")) if block else None
        return TritonStep(layers, config, lr_at, block=blocks, **precision)
    return make_step(layers, config, device, engine)[0]


def time_steps(step, xs, ys, first: int, steps: int, device) -> tuple[float, float]:
    """(wall, process CPU) seconds of `steps` calls of `step`, numbered from `first`."""
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(steps):
        step(xs[i % POOL], ys[i % POOL], first + i)
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def check_agreement(activation: str, device, engines, n: int = 64, steps: int = 20) -> dict:
    """Each engine's largest |w - w_autograd| after `steps` steps from the same init on the same inputs."""
    config = ZooConfig(activation=activation, steps=steps)
    results = []
    for engine in engines:
        layers = [(w.clone(), b.clone()) for w, b in bench_layers(config, n, device, seed=5)]
        step = build_step(engine, layers, config, device)
        xs, ys = draws(config, n, device, seed=6)
        time_steps(step, xs, ys, 1, steps, device)
        results.append([p.detach() for layer in layers for p in layer])
    return {e: max((a - b).abs().max().item() for a, b in zip(results[0], r)) for e, r in zip(engines[1:], results[1:])}


def matmul_gflops(device, size: int, seconds: float = 1.0) -> float:
    """Square float32 matmul rate, GFLOP/s, best of 3 bursts of about `seconds` / 3."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    out = torch.empty(size, size, device=device)
    torch.mm(a, b, out=out)
    sync(device)
    start = time.perf_counter()
    torch.mm(a, b, out=out)
    sync(device)
    reps = max(1, round(seconds / 3 / max(time.perf_counter() - start, 1e-6)))
    best = 0.0
    for _ in range(3):
        sync(device)
        start = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=out)
        sync(device)
        best = max(best, 2 * size**3 * reps / (time.perf_counter() - start) / 1e9)
    return best


def hidden_bmm_gflops(config: ZooConfig, n: int, device, reps: int = 5) -> float:
    """The zoo's hidden-layer batched matmul (n, B, W) x (n, W, W) alone, GFLOP/s."""
    W, B = config.width, config.batch_size
    a, w, out = (
        torch.randn(n, B, W, device=device),
        torch.randn(n, W, W, device=device),
        torch.empty(n, B, W, device=device),
    )
    torch.bmm(a, w, out=out)
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        torch.bmm(a, w, out=out)
    sync(device)
    return 2 * n * B * W * W * reps / (time.perf_counter() - start) / 1e9


def bench_one(config: ZooConfig, n: int, device, engines, steps: int, rounds: int) -> dict:
    """Model-steps/s of each engine (median round, wall clock), its CPU-time rate and peak GPU memory."""
    xs, ys = draws(config, n, device)
    stepped, rates, cpu_rates, memory = {}, {e: [] for e in engines}, {e: [] for e in engines}, {}
    for engine in engines:
        if device.type == "cuda":  # each engine's own peak: the engines built before it stay allocated
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        step = build_step(engine, bench_layers(config, n, device), config, device)  # fused: captures the graph
        time_steps(step, xs, ys, 1, 3, device)  # warm up (allocations, autograd's first backward)
        stepped[engine] = [step, 4]
        if device.type == "cuda":
            memory[engine] = (torch.cuda.max_memory_allocated() - base) / 2**30
    for _ in range(rounds):
        for engine in engines:
            step, first = stepped[engine]
            wall, cpu = time_steps(step, xs, ys, first, steps, device)
            stepped[engine][1] += steps
            rates[engine].append(n * steps / wall)
            cpu_rates[engine].append(n * steps / max(cpu, 1e-9))
    del stepped
    return {
        "model_steps_per_s": {e: statistics.median(r) for e, r in rates.items()},
        "model_steps_per_cpu_s": {e: statistics.median(r) for e, r in cpu_rates.items()},
        "all_rounds": rates,
        "steps_per_round": steps,
        "peak_gib": memory,
    }


def train_zoo_rates(n: int, device, steps: int) -> dict:
    """The whole train_zoo loop, relu, 16 functions x n/16 seeds: model-steps/s of its training loop per engine."""
    family = make_family(FamilyConfig(n_functions=16, seed=0))
    config = ZooConfig(models_per_function=max(2, n // 16), steps=steps)
    out = {}
    for engine in ("autograd", "fused") + (("triton",) if torch.device(device).type == "cuda" else ()):
        zoo = train_zoo(family, config, device=str(device), engine=engine)
        out[engine] = zoo.n_models * zoo.steps_done / zoo.seconds
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--models", default=None, help="comma-separated zoo sizes (CPU default 100,1000; CUDA 16384,65536)"
    )
    parser.add_argument("--activations", default="relu,tanh,sine")
    parser.add_argument(
        "--engines",
        default=None,
        help="autograd, fused, fused+compile (torch.compile, slow to build), triton[-ieee|-tf32x3|-tf32][@BBxWARPS] "
        "(default: autograd,fused on the CPU; autograd,fused,triton,triton-ieee on CUDA)",
    )
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument(
        "--model-steps", type=float, default=None, help="per engine per round (CPU default 2e4, CUDA 2e6)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--train-zoo", action="store_true", help="also time the whole train_zoo loop (relu, first size)"
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sizes = [int(s) for s in (args.models or ("16384,65536" if cuda else "100,1000")).split(",")]
    budget = args.model_steps or (2e6 if cuda else 2e4)
    engines = (args.engines or ("autograd,fused,triton,triton-ieee" if cuda else "autograd,fused")).split(",")
    peak = matmul_gflops(device, 4096 if cuda else 1024)
    info = machine()
    print(f"device {device} ({info.get('gpu', info['cpu'])}), torch {torch.__version__}, {args.threads} CPU thread(s)")
    print(f"matmul peak (float32 square {4096 if cuda else 1024}): {peak:.0f} GFLOP/s")
    others = [e for e in engines if e != "autograd"]
    checks = {a: check_agreement(a, device, ["autograd"] + others) for a in args.activations.split(",")}
    for a, errs in checks.items():
        for e, err in errs.items():
            verdict = "within" if err <= CHECK_ATOL else "OVER"
            print(f"check {a}: max |w_{e} - w_autograd| after 20 steps = {err:.2e} ({verdict} {CHECK_ATOL})")
    rows = []
    for activation in args.activations.split(","):
        config = ZooConfig(width=args.width, depth=args.depth, batch_size=args.batch, activation=activation)
        flops = flops_per_model_step(config)
        for n in sizes:
            steps = max(5, round(budget / n))
            r = bench_one(config, n, device, engines, steps, args.rounds)
            r.update(activation=activation, models=n, hidden_bmm_gflops=hidden_bmm_gflops(config, n, device))
            r["fraction_of_peak"] = {e: rate * flops / 1e9 / peak for e, rate in r["model_steps_per_s"].items()}
            rows.append(r)
            rates = r["model_steps_per_s"]
            line = ", ".join(
                f"{e} {rate_text(rates[e])} ({100 * r['fraction_of_peak'][e]:.1f}% of peak)" for e in engines
            )
            ratio = "".join(
                f"; {e} / autograd {rates[e] / rates['autograd']:.2f}x" for e in engines if e != "autograd" and "autograd" in rates
            )
            mem = f"; peak {', '.join(f'{e} {g:.1f} GiB' for e, g in r['peak_gib'].items())}" if r["peak_gib"] else ""
            print(f"{activation:10s} {n:6d} models, {steps} steps x {args.rounds} rounds: {line}{ratio}{mem}; "
                  f"hidden bmm alone {r['hidden_bmm_gflops']:.0f} GFLOP/s", flush=True)  # fmt: skip
    target = [r for r in rows if r["activation"] == "relu" and r["models"] >= TARGET_MODELS]
    for engine in [e for e in engines if e != "autograd"] if cuda and target else []:
        best = max(r["model_steps_per_s"][engine] for r in target)
        print(f"target >= {TARGET_RATE / 1e6:.0f} M model-steps/s at >= {TARGET_MODELS} models (relu), {engine}: "
              f"{best / 1e6:.2f} M/s, {'met' if best >= TARGET_RATE else 'not met'}")  # fmt: skip
    whole = None
    if args.train_zoo:
        whole = train_zoo_rates(sizes[0], device, steps=max(20, round(budget / sizes[0])))
        print(
            f"train_zoo loop, relu, {sizes[0]} models, model-steps: "
            + ", ".join(f"{e} {rate_text(v)}" for e, v in whole.items())
        )
    result = {
        "device": str(device), "machine": info, "threads": args.threads, "matmul_peak_gflops": peak,
        "zoo": {"width": args.width, "depth": args.depth, "batch": args.batch,
                "flops_per_model_step": flops_per_model_step(ZooConfig(width=args.width, depth=args.depth, batch_size=args.batch))},
        "check_max_weight_difference": checks, "rows": rows, "train_zoo_model_steps_per_s": whole,
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }  # fmt: skip
    out = Path(args.out or RESULTS / f"gpu_step_{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
