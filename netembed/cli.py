"""`python -m netembed`: the pipeline headless. Flags -> configs -> the same core calls as the app."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .config import ACTIVATIONS, SAMPLINGS, ConfigError, FamilyConfig, ZooConfig
from .family import FamilyError, make_family
from .store import Run, RunError, load_run, save_run


class CliError(Exception):
    """A problem worth one line on stderr and a non-zero exit, not a traceback."""


def add_family_flags(p: argparse.ArgumentParser) -> None:
    d = FamilyConfig()
    g = p.add_argument_group("family")
    g.add_argument("--functions", type=int, default=d.n_functions, help="K: number of target polynomials")
    g.add_argument("--degree", type=str, default=f"{d.degree_min}-{d.degree_max}",
                   help="polynomial degree, one number or a range like 3-4 (1..8)")  # fmt: skip
    g.add_argument("--sampling", choices=SAMPLINGS, default=d.sampling, help="how polynomials are drawn")
    g.add_argument("--min-distance", type=float, default=d.min_derivative_distance,
                   help="least RMS distance between two members' derivatives")  # fmt: skip
    g.add_argument("--seed", type=int, default=0, help="seed of the family, the zoo and the embedder")


def add_zoo_flags(p: argparse.ArgumentParser) -> None:
    d = ZooConfig()
    g = p.add_argument_group("zoo")
    g.add_argument("--models-per-function", type=int, default=d.models_per_function, help="M: seeds per function")
    g.add_argument("--width", type=int, default=d.width, help="hidden units per layer")
    g.add_argument("--depth", type=int, default=d.depth, help="hidden layers")
    g.add_argument("--activation", choices=ACTIVATIONS, default=d.activation, help="hidden activation")
    g.add_argument("--steps", type=int, default=d.steps, help="training steps of every model")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="fresh inputs per step, shared by all models")
    g.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (cosine-decayed)")
    g.add_argument("--device", default="cpu", help="torch device: cpu or cuda")


def family_config(a) -> FamilyConfig:
    try:
        lo, _, hi = a.degree.partition("-")
        degree_min, degree_max = int(lo), int(hi or lo)
    except ValueError:
        raise ConfigError(f"--degree must be a number or a range like 3-4, got {a.degree!r}") from None
    return FamilyConfig(n_functions=a.functions, degree_min=degree_min, degree_max=degree_max,
                        sampling=a.sampling, min_derivative_distance=a.min_distance, seed=a.seed)  # fmt: skip


def zoo_config(a) -> ZooConfig:
    return ZooConfig(models_per_function=a.models_per_function, width=a.width, depth=a.depth,
                     activation=a.activation, steps=a.steps, batch_size=a.batch_size, lr=a.lr,
                     seed=a.seed)  # fmt: skip


def check_device(device: str) -> str:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CliError("--device cuda was asked for, but torch sees no CUDA device here")
    if not (device == "cpu" or device.startswith("cuda")):
        raise CliError(f"--device must be cpu or cuda, got {device!r}")
    return device


class ProgressBar:
    """tqdm over training steps, on stderr; quiet when stderr is not a terminal."""

    def __init__(self, total: int, desc: str):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="step", file=sys.stderr, disable=None, leave=False)
        self.last = 0

    def __call__(self, step: int, losses) -> None:
        self.bar.update(step - self.last)
        self.last = step
        finite = np.asarray(losses)[np.isfinite(losses)]
        self.bar.set_postfix(median_loss=f"{np.median(finite):.2e}" if finite.size else "nan")

    def close(self):
        self.bar.close()


def train_zoo_run(a):
    """family + zoo from the flags, with a progress bar."""
    from .zoo import train_zoo

    family = make_family(family_config(a))
    config = zoo_config(a)
    bar = ProgressBar(config.steps, "zoo")
    try:
        zoo = train_zoo(family, config, progress=bar, device=check_device(a.device))
    finally:
        bar.close()
    return family, zoo.to("cpu")


def zoo_summary(zoo) -> dict:
    finite = zoo.fit_mse[np.isfinite(zoo.fit_mse)]
    return {
        "n_models": int(zoo.n_models),
        "fit_mse_median": float(np.median(finite)) if finite.size else float("nan"),
        "fit_mse_worst": float(finite.max()) if finite.size else float("nan"),
        "n_failed": int(zoo.failed.sum()),
        "n_diverged": int((~np.isfinite(zoo.fit_mse)).sum()),
        "seconds": round(zoo.seconds, 2),
    }


def cmd_zoo(a) -> None:
    family, zoo = train_zoo_run(a)
    save_run(Run(family=family, zoo=zoo), a.out)
    s = zoo_summary(zoo)
    print(f"trained {s['n_models']} models ({family.n_functions} functions x {zoo.config.models_per_function} seeds) "
          f"in {s['seconds']:.1f} s; fit MSE median {s['fit_mse_median']:.2e}, worst {s['fit_mse_worst']:.2e}; "
          f"{s['n_failed']} failed; saved to {a.out}")  # fmt: skip


def cmd_inspect(a) -> None:
    run = load_run(a.run)
    zoo, family = run.zoo, run.family
    s = zoo_summary(zoo)
    fc, zc = family.config, zoo.config
    print(f"run {Path(a.run).resolve()} (saved {run.meta.get('saved_at', '?')})")
    print(f"  family: {family.n_functions} polynomials, degree {fc.degree_min}-{fc.degree_max}, "
          f"sampling {fc.sampling}, seed {fc.seed}")  # fmt: skip
    print(f"  zoo:    {s['n_models']} MLPs 1->{'->'.join([str(zc.width)] * zc.depth)}->1 {zc.activation}, "
          f"{zoo.steps_done}/{zc.steps} steps, split {zc.n_train_seeds}/{zc.models_per_function} seeds train")  # fmt: skip
    print(f"          fit MSE median {s['fit_mse_median']:.2e}, worst {s['fit_mse_worst']:.2e}, {s['n_failed']} failed")
    if run.embedder is not None:
        print(f"  embedder: {run.embedder.describe()}")
    if run.report is not None:
        probes = run.report.get("probes", {})
        for name, p in probes.items():
            print(f"  probe {name:>13}: linear {p.get('linear_accuracy', float('nan')):.3f}, "
                  f"kNN {p.get('knn_accuracy', float('nan')):.3f}, NMI {p.get('nmi', float('nan')):.3f}")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="python -m netembed", formatter_class=fmt,
                                     description="Network embeddings from input-gradients, headless.")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("zoo", help="train and save a zoo of MLPs", formatter_class=fmt)
    add_family_flags(p)
    add_zoo_flags(p)
    p.add_argument("--out", required=True, help="run folder to write")
    p.set_defaults(fn=cmd_zoo)

    p = sub.add_parser("inspect", help="load a run folder, validate it and print what it holds", formatter_class=fmt)
    p.add_argument("run", help="run folder")
    p.set_defaults(fn=cmd_inspect)

    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except (ConfigError, FamilyError, RunError, CliError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
