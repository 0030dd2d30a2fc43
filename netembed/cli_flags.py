"""Command-line flags derived from the config declarations (config.setting), and configs built back from them.

Each config becomes one argparse group: a field's flag is its declared `flag` or
--field-name, its type, default, help and choices come from the declaration. A flag that
an earlier group (or explicit code) already added is shared, not added twice: --seed seeds
the family and the zoo alike, --degree sets degree_min and degree_max as one range.
A validation error names the flag of the command that was run (`built`).
"""

from __future__ import annotations

import argparse

from .config import ConfigError, help_text, spec, specs


def flag_of(s: dict) -> str:
    """A declared setting's flag: its own, or --field-name."""
    return s["flag"] or "--" + s["name"].replace("_", "-")


def dest_of(flag: str) -> str:
    return flag[2:].replace("-", "_")


def add_config_flags(group, cls) -> None:
    """One flag per declared command-line setting of `cls`, unless the flag exists already (shared)."""
    for s in specs(cls):
        flag = flag_of(s)
        if not s["cli"] or flag in group._option_string_actions:  # argparse groups share the parser's table
            continue
        kind = s["kind"]
        extra = {"choices": s["choices"]} if kind is str else {"type": kind, "metavar": kind.__name__.upper()}
        if kind is str and s["choices"] is None:  # a free-form string (a pattern), checked by its config
            extra = {"metavar": "TEXT"}
        group.add_argument(flag, default=s["default"], help=help_text(s), **extra)


def add_degree_flag(group, cls) -> None:
    """--degree: degree_min and degree_max of `cls` as one range flag ('3-4' or '3')."""
    lo, hi = spec(cls, "degree_min"), spec(cls, "degree_max")
    group.add_argument("--degree", default=f"{lo['default']}-{hi['default']}", metavar="MIN-MAX",
                       help=f"polynomial degree, one number or a range like 3-4; {lo['lo']}..{hi['hi']}")  # fmt: skip


def config_from_args(cls, a: argparse.Namespace, **given):
    """`cls` from the parsed flags; `given` overrides (settings an explicit flag sets, e.g. a range)."""
    values = {}
    for s in specs(cls):
        if s["name"] in given:
            values[s["name"]] = given[s["name"]]
        elif s["cli"]:
            values[s["name"]] = getattr(a, dest_of(flag_of(s)))
    return cls(**values)


def flags_of(cls, **overrides: str) -> dict[str, str]:
    """setting -> flag for `cls` on one command; `overrides` where that command uses another flag."""
    return {**{s["name"]: flag_of(s) for s in specs(cls) if s["cli"]}, **overrides}


def built(make, flags: dict[str, str]):
    """make(), with a ConfigError's message naming the flag (of this command) that sets the bad setting."""
    try:
        return make()
    except ConfigError as e:
        flag = flags.get(e.setting)
        if flag is None:
            raise  # about no flag (the message names it already, or the setting is not on this command)
        raise ConfigError(f"{e} ({flag})", e.setting) from None
