"""`python -m netembed zoo`: train and save a zoo of MLPs; the family and zoo flags that run and sweep share."""

from __future__ import annotations

import argparse

from .cli_checks import check_device
from .cli_errors import CliError, warn_divergence
from .cli_executor import add_executor_flags, executor_from_flags
from .cli_flags import add_config_flags, add_degree_flag, built, config_from_args, flags_of
from .cli_progress import ProgressBar, ShardBar
from .config import ConfigError, FamilyConfig, MixedZooConfig, ZooConfig, parse_range
from .divergence import zoo_report
from .family import make_family
from .store import Run, save_run


def add_family_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("family")
    add_degree_flag(g, FamilyConfig)
    g.add_argument("--seed", type=int, default=FamilyConfig.seed, metavar="INT",
                   help="seed of the family, the zoo and the embedder")  # fmt: skip
    add_config_flags(g, FamilyConfig)


def add_zoo_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("zoo")
    add_config_flags(g, ZooConfig)  # --seed is shared with the family's
    g.add_argument("--device", default="cpu", help="torch device: cpu or cuda")


def family_config(a) -> FamilyConfig:
    try:
        degree_min, degree_max = parse_range(a.degree)
    except ValueError:
        raise ConfigError(f"--degree must be a number or a range like 3-4, got {a.degree!r}") from None
    return config_from_args(FamilyConfig, a, degree_min=degree_min, degree_max=degree_max)


def zoo_config(a) -> ZooConfig:
    return config_from_args(ZooConfig, a)


def checked_family_config(a) -> FamilyConfig:
    """family_config, a bad setting's error naming its flag (degree_min/max: --degree)."""
    return built(lambda: family_config(a), flags_of(FamilyConfig))


def checked_zoo_config(a) -> ZooConfig:
    """zoo_config, a bad setting's error naming its flag."""
    return built(lambda: zoo_config(a), flags_of(ZooConfig))


def train_zoo_run(a, executor=None, keep_in=None):
    """family + zoo from the flags, with a progress bar; with an executor, as shards (kept in `keep_in`)."""
    from .zoo import train_zoo

    family = make_family(family_config(a))
    config = zoo_config(a)
    if executor is not None and (a.shards > 1 or executor.name != "local"):
        from .shards import train_zoo_sharded

        bar = ShardBar()
        try:
            zoo = train_zoo_sharded(family, config, a.shards, executor, by=a.shard_by, device=check_device(a.device),
                                    keep_in=keep_in, progress=bar)  # fmt: skip
        except ValueError as e:  # a shard count the zoo cannot split into
            raise CliError(f"--shards: {e}") from None
        finally:
            bar.close()
        warn_divergence(zoo)
        return family, zoo
    bar = ProgressBar(config.steps, "zoo")
    try:
        zoo = train_zoo(family, config, progress=bar, device=check_device(a.device))
    finally:
        bar.close()
    warn_divergence(zoo)
    return family, zoo.to("cpu")


def sci(value) -> str:
    """A fit error for humans: 1.23e-04, or n/a when there is none (every model diverged)."""
    return "n/a" if value is None else f"{value:.2e}"


def cmd_zoo(a) -> None:
    from .shards import discard_shards, shard_folder

    if a.architectures:
        return cmd_mixed_zoo(a)
    with executor_from_flags(a) as executor:
        family, zoo = train_zoo_run(a, executor, keep_in=shard_folder(a.out))
    save_run(Run(family=family, zoo=zoo), a.out)
    discard_shards(a.out)  # the run holds them now
    s = zoo_report(zoo)
    print(f"trained {s['n_models']} models ({family.n_functions} functions x {zoo.config.models_per_function} seeds) "
          f"in {s['seconds']:.1f} s; fit MSE median {sci(s['fit_mse_median'])}, worst {sci(s['fit_mse_worst'])}; "
          f"{s['n_failed']} failed; saved to {a.out}")  # fmt: skip


def cmd_mixed_zoo(a) -> None:
    """zoo --architectures: one part per architecture, each by its fastest engine, saved as one run."""
    from .mixed_zoo import train_mixed_zoo

    family = make_family(family_config(a))
    bars = {}

    def progress(label, step, losses):
        if label not in bars:
            bars[label] = ProgressBar(zoo_config(a).steps, f"zoo {label}")
        bars[label](step, losses)

    try:
        zoo = train_mixed_zoo(family, zoo_config(a), a.architectures, progress=progress, device=check_device(a.device))
    finally:
        for bar in bars.values():
            bar.close()
    warn_divergence(zoo)
    save_run(Run(family=family, zoo=zoo), a.out)
    s = zoo_report(zoo)
    print(f"trained {s['n_models']} models ({family.n_functions} functions x {zoo.config.models_per_function} seeds x "
          f"{len(zoo.parts)} architectures: {zoo.engine}) in {s['seconds']:.1f} s; fit MSE median "
          f"{sci(s['fit_mse_median'])}, worst {sci(s['fit_mse_worst'])}; {s['n_failed']} failed; saved to {a.out}")  # fmt: skip


def add_zoo_command(sub, fmt) -> None:
    from .cli_preflight import preflight_training

    p = sub.add_parser("zoo", help="train and save a zoo of MLPs", formatter_class=fmt)
    add_family_flags(p)
    add_zoo_flags(p)
    add_config_flags(p.add_argument_group("mixed architectures"), MixedZooConfig)
    add_executor_flags(p)
    p.add_argument("--out", required=True, help="run folder to write")
    p.set_defaults(fn=cmd_zoo, preflight=preflight_training)
