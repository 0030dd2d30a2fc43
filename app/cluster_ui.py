"""Where the Zoo page trains a new zoo: on this server (one zoo, zoo_job; on its CPU, or its GPU when torch sees
one, as `--device cuda` does), or as shards on a Ray cluster (sharded_zoo_job: a local cluster started for the
job, or a running one at an address), as
`python -m netembed zoo --executor ray [--ray-address A] [--workers N] --shards S --shard-by BY` does."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import streamlit as st

from app import widgets
from netembed.cli_executor import RAY_ADDRESS
from netembed.config import ConfigError, ZooConfig
from netembed.executor import RAY_MISSING

PLACES = {"here": "this server", "ray": "a Ray cluster"}  # the URL keeps the short name
MAX_WORKERS = 1024  # a local cluster's CPUs: bounded only so the widget has a top


@dataclass(frozen=True)
class OnRay:
    """A sharded zoo's place: the Ray cluster at `address` (None: a local one of `workers` CPUs), and its shards."""

    address: str | None
    workers: int | None
    n_shards: int
    by: str

    def flags(self) -> str:
        """The command line's executor flags for the same job."""
        where = f"--ray-address {self.address}" if self.address else f"--executor ray --workers {self.workers}"
        return f"{where} --shards {self.n_shards} --shard-by {self.by}"


def ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


def ray_missing() -> str:
    """RAY_MISSING in the page's words: how to get Ray on the server."""
    how = RAY_MISSING.split(": ", 1)[1]  # the install command
    return f"Training on a Ray cluster needs Ray, which is not installed on this server: {how}"


DEVICES = {"cpu": "CPU", "cuda": "GPU"}  # the URL keeps torch's device name


def device_ui() -> str:
    """"cpu", or "cuda" when torch sees a GPU and the user picks it (the CLI's --device; the default stays the CPU,
    as there: a GPU trains the same models to float rounding, not bit for bit). No control without a GPU."""
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    name = torch.cuda.get_device_name(0)
    return widgets.choice("Train on", "zoo_device", list(DEVICES), "cpu", horizontal=True,
                          fmt=lambda d: DEVICES[d] if d == "cpu" else f"GPU ({name})",
                          help="The GPU trains 1 -> W -> W -> 1 zoos with one Triton kernel per step (README: "
                               "16.8 M model-steps/s on an H200 for relu), other shapes with the fused torch step. "
                               "`--device cuda` on the command line.")  # fmt: skip


def run_on_ui(n_functions: int, config: ZooConfig, mixed: bool) -> OnRay | None:
    """The "Run on" control and, for a Ray cluster, its settings -> OnRay, or None to train here.
    Raises ConfigError for settings the job would refuse (shards that do not split the zoo, a malformed address)."""
    if mixed:
        st.caption("A mixed zoo trains on this server: its architectures train one after another, not as shards.")
        return None
    where = widgets.choice("Run on", "zoo_run_on", list(PLACES), "here", fmt=PLACES.get, horizontal=True,
                           help="This server trains the zoo in one piece, and a cancel keeps what was done. A Ray "
                                "cluster trains it as independent shards (Ray tasks), merged into the same zoo; "
                                "the progress bar moves as each shard arrives.")  # fmt: skip
    if where == "here":
        return None
    if not ray_installed():
        raise ConfigError(ray_missing())
    c1, c2, c3, c4 = st.columns(4)
    with c1:
        address = widgets.text("Cluster address", "zoo_ray_address", "", placeholder="a local cluster",
                               help="host:port (or ray://host:port, or auto) of a running cluster (`ray start --head`); "
                                    "netembed must be importable on its nodes. Blank: a local cluster of the workers "
                                    "below, started for this job and stopped after it.").strip()  # fmt: skip
    with c2:
        workers = widgets.number("Workers", "zoo_ray_workers", os.cpu_count() or 1, 1, MAX_WORKERS,
                                 disabled=bool(address), help="CPUs of the local cluster (one shard each at a time)")  # fmt: skip
    with c3:
        by = widgets.choice("Shard by", "zoo_shard_by", ["function", "seed"], "function",
                            help="Split the zoo by function or by seed range")  # fmt: skip
    n_split = n_functions if by == "function" else config.models_per_function
    with c4:
        n_shards = widgets.number("Shards", "zoo_shards", min(2, n_split), 1, 100_000,
                                  help=f"Independent parts of the zoo, 1..{n_split} when split by {by}")  # fmt: skip
    if address and not RAY_ADDRESS.match(address):
        raise ConfigError(f"the cluster address must be host:port, ray://host:port or auto, got {address!r}")
    if not 1 <= n_shards <= n_split:
        raise ConfigError(f"shards must be in 1..{n_split} when splitting by {by} "
                          f"({n_functions} functions x {config.models_per_function} seeds), got {n_shards}")  # fmt: skip
    on = OnRay(address or None, None if address else workers, n_shards, by)
    st.caption(f"The command line: `{on.flags()}`.")
    return on
