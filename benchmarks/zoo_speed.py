"""Zoo training speed: the same zoo trained three ways in one run, and a matmul for the peak.

    python -m benchmarks.zoo_speed                      # 100 models 1->32->32->1, batch 256, 300 steps
    python -m benchmarks.zoo_speed --threads 2 --device cuda
    python -m benchmarks.zoo_speed --compare-cflags=-mno-avx512f   # also the kernel without AVX-512

1. loop: one nn.Sequential per model with its own torch.optim.Adam, stepped in a Python
   loop (what a notebook does), with the same inits, inputs, targets and lr schedule;
2. vectorised: netembed's train_zoo (engine "auto": the fused C kernel on the CPU) and,
   for reference, its plain autograd engine; with --compare-cflags, also the kernel built with
   those extra compiler flags ($NETEMBED_KERNEL_CFLAGS, e.g. -mno-avx512f), in the same rounds;
3. matmul: one square float32 matmul repeated for the same total FLOPs as the zoo run,
   the machine's reference peak.

The machine is shared, so absolute timings are noisy: the three are measured interleaved,
in rounds, and the targets are ratios within one run (medians over rounds), by the wall
clock and by this process's CPU time (steadier while other processes hold the cores). FLOPs count
2 per multiply-add in the forward and backward matmuls (weights and inputs); elementwise
work and Adam are not counted. Writes benchmarks/results/zoo_speed.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from netembed.config import FamilyConfig, ZooConfig
from netembed.family import make_family
from netembed.zoo import init_layers, input_generator, lr_at, polynomial_targets, train_zoo

RESULTS = Path(__file__).parent / "results"


def flops_per_model_step(config: ZooConfig) -> int:
    """Forward: 2*B*sum(fan_in*fan_out); backward: the same for weight grads, and again for input grads past layer 0."""
    sizes = [1] + [config.width] * config.depth + [1]
    macs = [i * o for i, o in zip(sizes[:-1], sizes[1:])]
    return 2 * config.batch_size * (2 * sum(macs) + sum(macs[1:]))


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class LoopZoo:
    """The notebook way: a list of nn.Modules, each with its own Adam, initialised as the zoo is."""

    def __init__(self, family, config: ZooConfig, device):
        self.config, self.device = config, device
        zoo0 = train_zoo(family, ZooConfig(**{**config.__dict__, "steps": 0}), engine="autograd")  # seeds, task ids
        self.task_ids = zoo0.task_ids
        act = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh, "gelu": nn.GELU}[config.activation]
        self.models = []
        layers = init_layers(config, zoo0.seeds)
        for i in range(len(zoo0.seeds)):
            modules = []
            for j, (w, b) in enumerate(layers):
                lin = nn.Linear(w.shape[1], w.shape[2])
                with torch.no_grad():
                    lin.weight.copy_(w[i].T)
                    lin.bias.copy_(b[i, 0])
                modules += [lin] + ([act()] if j < len(layers) - 1 else [])
            self.models.append(nn.Sequential(*modules).to(device))
        self.opts = [torch.optim.Adam(m.parameters(), lr=config.lr) for m in self.models]
        self.coeffs = torch.as_tensor(family.coefficients, dtype=torch.float32, device=device)
        self.gen = input_generator(config)
        self.step = 0

    def train(self, steps: int) -> float:
        """Train every model `steps` more steps; returns the (wall, CPU) seconds taken."""
        sync(self.device)
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            x = (torch.rand(self.config.batch_size, generator=self.gen) * 2 - 1).to(self.device)
            y = polynomial_targets(self.coeffs, x)  # (K, batch)
            for model, opt, task in zip(self.models, self.opts, self.task_ids):
                for group in opt.param_groups:
                    group["lr"] = lr_at(self.step, self.config)
                loss = ((model(x[:, None])[:, 0] - y[task]) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                loss.item()  # a notebook logs every loss
            self.step += 1
        sync(self.device)
        return time.perf_counter() - start, time.process_time() - cpu


def matmul_seconds(total_flops: float, device, size: int = 1024) -> float:
    """(wall, CPU) seconds for square float32 matmuls adding up to total_flops (at least one)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    out = torch.empty(size, size, device=device)
    torch.mm(a, b, out=out)  # warm up
    reps = max(1, round(total_flops / (2 * size**3)))
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(reps):
        torch.mm(a, b, out=out)
    sync(device)
    scale = total_flops / (reps * 2 * size**3)
    return (time.perf_counter() - start) * scale, (time.process_time() - cpu) * scale


def zoo_seconds(family, config, device, engine, overhead_cpu=0.0):
    """Train the zoo: (zoo, wall seconds of its training loop, CPU seconds less the untimed set-up and fit check)."""
    cpu = time.process_time()
    zoo = train_zoo(family, config, device=device, engine=engine)
    return zoo, zoo.seconds, time.process_time() - cpu - overhead_cpu


@contextlib.contextmanager
def kernel_cflags(flags: str):
    """Within: the kernel is built and loaded with these extra compiler flags (zoo_kernel.py)."""
    old = os.environ.get("NETEMBED_KERNEL_CFLAGS")
    os.environ["NETEMBED_KERNEL_CFLAGS"] = flags
    try:
        yield
    finally:
        if old is None:
            del os.environ["NETEMBED_KERNEL_CFLAGS"]
        else:
            os.environ["NETEMBED_KERNEL_CFLAGS"] = old


def machine() -> dict:
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))  # fmt: skip
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved measurement rounds")
    parser.add_argument("--threads", type=int, default=1, help="threads for all three (torch and the kernel; 1 is robust on a shared machine)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compare-cflags", default="", help='also time the kernel built with these extra C flags, e.g. "-mno-avx512f"')
    parser.add_argument("--out", default=str(RESULTS / "zoo_speed.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ["NETEMBED_KERNEL_THREADS"] = str(args.threads)  # the same threads for all three
    family = make_family(FamilyConfig(n_functions=10, seed=0))
    config = ZooConfig(models_per_function=max(2, args.models // 10), width=args.width, depth=args.depth,
                       batch_size=args.batch, steps=args.steps)  # fmt: skip
    n = family.n_functions * config.models_per_function
    flops = flops_per_model_step(config) * n * config.steps  # one full zoo run
    loop = LoopZoo(family, config, args.device)
    chunk = max(1, config.steps // args.rounds)
    names = ("loop", "vectorised", "vectorised_autograd", "matmul_model_steps") + (("vectorised_cflags",) if args.compare_cflags else ())
    rates = {clock: {k: [] for k in names} for clock in ("wall", "cpu")}
    matmul_gflops, load = {"wall": [], "cpu": []}, [os.getloadavg()[0]]
    train_zoo(family, ZooConfig(**{**config.__dict__, "steps": 2}), device=args.device)  # builds the kernel once
    _, _, overhead = zoo_seconds(family, ZooConfig(**{**config.__dict__, "steps": 0}), args.device, "auto")
    cflags_engine = None
    if args.compare_cflags:
        with kernel_cflags(args.compare_cflags):  # build it outside the timed rounds
            cflags_engine = train_zoo(family, ZooConfig(**{**config.__dict__, "steps": 2}), device=args.device).engine

    def record(name, seconds, model_steps):
        for clock, s in zip(("wall", "cpu"), seconds):
            rates[clock][name].append(model_steps / max(s, 1e-9))

    for _ in range(args.rounds):
        record("loop", loop.train(chunk), n * chunk)
        zoo, *seconds = zoo_seconds(family, config, args.device, "auto", overhead)
        engine, fit = zoo.engine, zoo.fit_mse
        record("vectorised", seconds, n * config.steps)
        record("vectorised_autograd", zoo_seconds(family, config, args.device, "autograd", overhead)[1:], n * config.steps)
        if args.compare_cflags:
            with kernel_cflags(args.compare_cflags):
                record("vectorised_cflags", zoo_seconds(family, config, args.device, "auto", overhead)[1:], n * config.steps)
        seconds = matmul_seconds(flops, args.device)
        record("matmul_model_steps", seconds, n * config.steps)
        for clock, s in zip(("wall", "cpu"), seconds):
            matmul_gflops[clock].append(flops / max(s, 1e-9) / 1e9)
        load.append(os.getloadavg()[0])
    med = {clock: {k: statistics.median(v) for k, v in r.items()} for clock, r in rates.items()}
    summary = {}
    for clock in ("wall", "cpu"):
        m, peak = med[clock], statistics.median(matmul_gflops[clock])
        gflops = m["vectorised"] * flops_per_model_step(config) / 1e9
        summary[clock] = {"model_steps_per_s": m, "vectorised_over_loop": m["vectorised"] / m["loop"],
                          "autograd_over_loop": m["vectorised_autograd"] / m["loop"], "vectorised_gflops": gflops,
                          "matmul_gflops": peak, "fraction_of_matmul_peak": gflops / peak}  # fmt: skip
        if args.compare_cflags:
            summary[clock]["cflags_over_loop"] = m["vectorised_cflags"] / m["loop"]
    result = {
        "zoo": {"models": n, "width": config.width, "depth": config.depth, "batch": config.batch_size,
                "steps": config.steps, "flops_per_model_step": flops_per_model_step(config)},  # fmt: skip
        "device": args.device, "threads": args.threads, "engine": engine, "machine": machine(),
        "compare_cflags": args.compare_cflags, "cflags_engine": cflags_engine,
        "wall": summary["wall"], "cpu": summary["cpu"], "all_rounds": rates,
        "median_fit_mse": float(torch.as_tensor(fit).median()),
        "load_average_1min": load,
        "note": "shared machine: absolute rates are noisy; the ratios are measured interleaved in one run (medians over "
                "rounds). 'wall' counts elapsed time, 'cpu' this process's CPU time (steadier when others hold the cores)",
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print_table(result)


def print_table(r):
    z = r["zoo"]
    print(f"\nzoo: {z['models']} models 1->{z['width']}x{z['depth']}->1, batch {z['batch']}, {z['steps']} steps; "
          f"{r['device']}, {r['threads']} thread(s), engine {r['engine']}")  # fmt: skip
    w, c = r["wall"]["model_steps_per_s"], r["cpu"]["model_steps_per_s"]
    print(f"{'trainer':34s} {'model-steps/s':>14s} {'x loop':>7s} {'(CPU time)':>14s} {'x loop':>7s}")
    rows = [("loop of nn.Modules + Adam each", "loop"), (f"netembed vectorised ({r['engine']})", "vectorised"),
            ("netembed vectorised (autograd)", "vectorised_autograd"), ("matmul, same FLOPs", "matmul_model_steps")]  # fmt: skip
    if r["compare_cflags"]:
        rows.insert(2, (f"  ({r['cflags_engine']}, {r['compare_cflags']})", "vectorised_cflags"))
    for name, key in rows:
        print(f"{name:34s} {w[key]:14.0f} {w[key] / w['loop']:7.1f} {c[key]:14.0f} {c[key] / c['loop']:7.1f}")
    for clock in ("wall", "cpu"):
        s = r[clock]
        print(f"[{clock:4s}] vectorised / loop: {s['vectorised_over_loop']:.1f}x (target >= 20x); "
              f"{s['vectorised_gflops']:.1f} GFLOP/s = {100 * s['fraction_of_matmul_peak']:.0f}% of the measured "
              f"matmul peak {s['matmul_gflops']:.1f} GFLOP/s (target >= 30%)")  # fmt: skip
        if r["compare_cflags"]:
            print(f"[{clock:4s}] vectorised with {r['compare_cflags']} / loop: {s['cflags_over_loop']:.1f}x (target >= 20x)")
    print(r["note"])


if __name__ == "__main__":
    main()
