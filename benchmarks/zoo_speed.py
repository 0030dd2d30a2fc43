"""Zoo training speed: the same zoo trained three ways in one run, and a matmul for the peak.

    python benchmarks/zoo_speed.py                      # 100 models 1->32->32->1, batch 256, 300 steps
    python benchmarks/zoo_speed.py --threads 2 --device cuda

1. loop: one nn.Sequential per model with its own torch.optim.Adam, stepped in a Python
   loop (what a notebook does), with the same inits, inputs, targets and lr schedule;
2. vectorised: netembed's train_zoo (engine "auto": the fused C kernel on the CPU) and,
   for reference, its plain autograd engine;
3. matmul: one square float32 matmul repeated for the same total FLOPs as the zoo run,
   the machine's reference peak.

The machine is shared, so absolute timings are noisy: the three are measured interleaved,
in rounds, and the targets are ratios within one run (medians over rounds). FLOPs count
2 per multiply-add in the forward and backward matmuls (weights and inputs); elementwise
work and Adam are not counted. Writes benchmarks/results/zoo_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from netembed.config import FamilyConfig, ZooConfig  # noqa: E402
from netembed.family import make_family  # noqa: E402
from netembed.zoo import init_layers, input_generator, lr_at, polynomial_targets, train_zoo  # noqa: E402

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
        """Train every model `steps` more steps; returns the seconds taken."""
        sync(self.device)
        start = time.perf_counter()
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
        return time.perf_counter() - start


def matmul_seconds(total_flops: float, device, size: int = 1024) -> float:
    """Seconds for square float32 matmuls adding up to total_flops (at least one)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    out = torch.empty(size, size, device=device)
    torch.mm(a, b, out=out)  # warm up
    reps = max(1, round(total_flops / (2 * size**3)))
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b, out=out)
    sync(device)
    return (time.perf_counter() - start) * total_flops / (reps * 2 * size**3)


def machine() -> dict:
    cpu = platform.processor()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name"))
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
    rates = {"loop": [], "vectorised": [], "vectorised_autograd": [], "matmul_model_steps": []}
    matmul_gflops, load = [], [os.getloadavg()[0]]
    engine = fit = None
    train_zoo(family, ZooConfig(**{**config.__dict__, "steps": 2}), device=args.device)  # builds the kernel once
    for _ in range(args.rounds):
        rates["loop"].append(n * chunk / loop.train(chunk))
        zoo = train_zoo(family, config, device=args.device)
        engine, fit = zoo.engine, zoo.fit_mse
        rates["vectorised"].append(n * config.steps / zoo.seconds)
        plain = train_zoo(family, config, device=args.device, engine="autograd")
        rates["vectorised_autograd"].append(n * config.steps / plain.seconds)
        seconds = matmul_seconds(flops, args.device)
        matmul_gflops.append(flops / seconds / 1e9)
        rates["matmul_model_steps"].append(n * config.steps / seconds)
        load.append(os.getloadavg()[0])
    med = {k: statistics.median(v) for k, v in rates.items()}
    zoo_gflops = med["vectorised"] * flops_per_model_step(config) / 1e9
    result = {
        "zoo": {"models": n, "width": config.width, "depth": config.depth, "batch": config.batch_size,
                "steps": config.steps, "flops_per_model_step": flops_per_model_step(config)},  # fmt: skip
        "device": args.device, "threads": args.threads, "engine": engine, "machine": machine(),
        "model_steps_per_s": med, "all_rounds": rates,
        "vectorised_over_loop": med["vectorised"] / med["loop"],
        "autograd_over_loop": med["vectorised_autograd"] / med["loop"],
        "vectorised_gflops": zoo_gflops, "matmul_gflops": statistics.median(matmul_gflops),
        "fraction_of_matmul_peak": zoo_gflops / statistics.median(matmul_gflops),
        "median_fit_mse": float(torch.as_tensor(fit).median()),
        "load_average_1min": load,
        "note": "shared machine: absolute rates are noisy; the ratios are measured interleaved in one run (medians over rounds)",
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print_table(result)


def print_table(r):
    m = r["model_steps_per_s"]
    print(f"\nzoo: {r['zoo']['models']} models 1->{r['zoo']['width']}x{r['zoo']['depth']}->1, batch {r['zoo']['batch']}, "
          f"{r['zoo']['steps']} steps; {r['device']}, {r['threads']} thread(s), engine {r['engine']}")  # fmt: skip
    print(f"{'trainer':34s} {'model-steps/s':>14s} {'x loop':>8s}")
    for name, key in [("loop of nn.Modules + Adam each", "loop"), ("netembed vectorised (" + r["engine"] + ")", "vectorised"),
                      ("netembed vectorised (autograd)", "vectorised_autograd"), ("matmul, same FLOPs", "matmul_model_steps")]:  # fmt: skip
        print(f"{name:34s} {m[key]:14.0f} {m[key] / m['loop']:8.1f}")
    print(f"vectorised / loop: {r['vectorised_over_loop']:.1f}x (target >= 20x)")
    print(f"vectorised {r['vectorised_gflops']:.1f} GFLOP/s = {100 * r['fraction_of_matmul_peak']:.0f}% of the measured "
          f"matmul peak {r['matmul_gflops']:.1f} GFLOP/s (target >= 30%)")  # fmt: skip
    print(r["note"])


if __name__ == "__main__":
    main()
