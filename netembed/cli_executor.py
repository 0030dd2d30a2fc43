"""The executor flags (--executor, --ray-address, --workers, --shards, --shard-by): declared, checked, and the
executor they ask for, started for one command."""

from __future__ import annotations

import argparse
import contextlib
import re

from .cli_errors import CliError
from .config import FamilyConfig, ZooConfig


def add_executor_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("executor (independent shards and sweep cells, here or on a Ray cluster)")
    g.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="where shards and sweep cells run: here, or as Ray tasks (pip install -r requirements-ray.txt)")
    g.add_argument("--ray-address", default=None,
                   help="join this running Ray cluster (host:port, or auto) instead of starting a local one; implies --executor ray")
    g.add_argument("--workers", type=int, default=None, help="CPUs of a local Ray cluster (default: every core)")
    g.add_argument("--shards", type=int, default=1,
                   help="train the zoo as this many independent shards, kept beside --out as they finish, so a killed "
                        "job resumes where it stopped")
    g.add_argument("--shard-by", choices=("function", "seed"), default="function",
                   help="split the zoo by function or by seed range")  # fmt: skip


RAY_ADDRESS = re.compile(r"^(auto|(ray://)?[A-Za-z0-9_.-]+:[0-9]{1,5})$")


def check_cluster_flags(a) -> None:
    """--workers and --ray-address, before any cluster is reached."""
    if a.workers is not None and a.workers < 1:
        raise CliError(f"--workers must be >= 1, got {a.workers}")
    if a.ray_address is not None and not RAY_ADDRESS.match(a.ray_address):
        raise CliError(f"--ray-address must be host:port, ray://host:port or auto, got {a.ray_address!r}")


def check_executor_flags(a, family: FamilyConfig, zoo: ZooConfig) -> None:
    """Refuse bad executor flags before any work (a cluster is reached only when the command runs)."""
    from .shards import plan_shards

    check_cluster_flags(a)
    try:
        plan_shards(family.n_functions, zoo, a.shards, by=a.shard_by)
    except ValueError as e:
        raise CliError(f"--shards: {e}") from None


@contextlib.contextmanager
def executor_from_flags(a):
    """The executor the flags ask for (--ray-address implies ray), started for the command and stopped after it."""
    from .executor import ExecutorError, make_executor

    try:
        executor = make_executor("ray" if a.ray_address else a.executor, a.ray_address, a.workers)
        executor.__enter__()
    except ExecutorError as e:
        raise CliError(str(e)) from None
    try:
        yield executor
    finally:
        executor.__exit__(None, None, None)
