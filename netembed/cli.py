"""`python -m netembed`: the pipeline headless. Flags -> configs -> the same core calls as the app.

One module per command (cli_zoo, cli_embed, cli_inspect, cli_run, cli_sweep, cli_bench, cli_units); each adds
its subparser with the function that runs it (`fn`) and its checks before any work (`preflight`).
"""

from __future__ import annotations

import argparse
import sys

from .cli_bench import add_bench_command
from .cli_embed import add_embed_command
from .cli_errors import OneLineParser, exit_status
from .cli_inspect import add_inspect_command
from .cli_run import add_run_command
from .cli_sweep import add_sweep_command
from .cli_units import add_units_command
from .cli_zoo import add_zoo_command

COMMANDS = (add_zoo_command, add_embed_command, add_inspect_command, add_run_command, add_sweep_command,
            add_bench_command, add_units_command)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = OneLineParser(prog="python -m netembed", formatter_class=fmt,
                           description="Network embeddings from input-gradients, headless.")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    for add_command in COMMANDS:  # in this order in --help
        add_command(sub, fmt)
    return parser


def preflight(a) -> None:
    """Build every config the command will use and check the job against the resource limits,
    before any training or writing, so a bad flag or an oversized job costs nothing."""
    if hasattr(a, "preflight"):
        a.preflight(a)  # inspect has none: loading the run is its check


def main(argv=None) -> int:
    """Run a command; any failure is one line on stderr and a non-zero exit, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        preflight(args)
        args.fn(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        return exit_status(e)  # NETEMBED_TRACEBACK=1 re-raises an unexpected one
    return 0
