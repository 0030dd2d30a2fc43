"""`python -m netembed units`: embed the hidden units of a digits network and score them against planted modules
(issue 13)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .cli_checks import check_out, check_threads, set_threads
from .cli_flags import add_config_flags, built, config_from_args, flags_of
from .cli_progress import StageBars
from .config import ClozeConfig


def add_units_flags(p: argparse.ArgumentParser) -> None:
    from .digits import UnitsConfig
    from .unit_cloze import UnitEmbedConfig
    from .units_pipeline import NETWORKS

    g = p.add_argument_group("digits network")
    g.add_argument("--network", choices=NETWORKS, default="planted",
                   help="planted: stitched modules with a ground truth; plain: a 10-class MLP (no ground truth)")  # fmt: skip
    g.add_argument("--plain", action="store_const", const="plain", dest="network", help="same as --network plain")
    add_config_flags(g, UnitsConfig)
    add_config_flags(p.add_argument_group("units as 1D functions"), UnitEmbedConfig)
    g = p.add_argument_group("cloze embedder")
    add_config_flags(g, ClozeConfig)  # --seed is the network's; the embedder's is --embed-seed
    # units are 1D functions with one or two line-sections: hiding whole sections leaves nothing to
    # predict from (cloze R2 ~0 measured), so the units command hides single samples by default
    p.set_defaults(mask_unit="sample", d_model=32, embed_steps=300)
    g.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", required=True, help="folder to write (units study and report.json)")


def units_configs(a):
    from .digits import UnitsConfig
    from .unit_cloze import UnitEmbedConfig

    return (built(lambda: config_from_args(UnitsConfig, a), flags_of(UnitsConfig)),
            built(lambda: config_from_args(UnitEmbedConfig, a), flags_of(UnitEmbedConfig)),
            built(lambda: config_from_args(ClozeConfig, a), flags_of(ClozeConfig)))  # fmt: skip


def cmd_units(a) -> None:
    from .unit_store import save_units
    from .units_pipeline import run_units

    check_out(a.out)
    units, embed, cloze = units_configs(a)
    set_threads(a.threads)
    bars = StageBars()
    try:
        run = run_units(a.network, units, embed, cloze, progress=bars)
    finally:
        bars.close()
    out = save_units(run, a.out)
    r = run.report
    print(f"{r['network']['kind']} network {r['network']['widths']}, test accuracy "
          f"{', '.join(f'{x:.3f}' for x in r['network']['test_accuracy'])}; {r['n_units']} hidden units")  # fmt: skip
    if "off_block_fraction" in r["network"]:
        print(f"off-block weight share {r['network']['off_block_fraction']:.4f}")
    for name, m in r.get("modules", {}).items():
        print(f"{name:>20}  NMI {m['nmi']:.3f}  ARI {m['ari']:.3f}  probe {m['probe_accuracy']:.3f}  (mean over layers)")
    print(f"saved to {out} (report: {Path(out) / 'report.json'})")


def preflight_units(a) -> None:
    check_out(a.out)
    check_threads(a.threads)
    units_configs(a)


def add_units_command(sub, fmt) -> None:
    p = sub.add_parser("units", help="embed the hidden units of a digits network; score them against planted modules",
                       formatter_class=fmt)  # fmt: skip
    add_units_flags(p)
    p.set_defaults(fn=cmd_units, preflight=preflight_units)
