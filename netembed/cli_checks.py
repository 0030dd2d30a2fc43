"""Checks of flags that several commands share (device, threads, --out, comma-separated lists), as one-line errors."""

from __future__ import annotations

from pathlib import Path

from .cli_errors import CliError


def check_device(device: str) -> str:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CliError("--device cuda was asked for, but torch sees no CUDA device here")
    if not (device == "cpu" or device.startswith("cuda")):
        raise CliError(f"--device must be cpu or cuda, got {device!r}")
    return device


def check_threads(n: int) -> None:
    if n < 1:
        raise CliError(f"--threads must be >= 1, got {n}")


def set_threads(n: int) -> None:
    import torch

    check_threads(n)
    torch.set_num_threads(n)


def check_out(out: str | None) -> None:
    """Refuse up front an --out that is a file: it could never become a run folder (save_run checks the rest)."""
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise CliError(f"--out {out}: exists and is not a run folder; refusing to replace it")


def check_out_folder(out: str) -> None:
    if Path(out).exists() and not Path(out).is_dir():
        raise CliError(f"--out {out}: exists and is not a folder")


def parse_list(text: str, kind, flag: str) -> list:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CliError(f"{flag} must be a comma-separated list like 0.25,0.5, got {text!r}") from None
    if not values:
        raise CliError(f"{flag} is empty")
    return values
