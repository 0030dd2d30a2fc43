"""`python -m netembed sweep`: one embedder per (mask ratio, bottleneck) on one zoo, as a table and sweep.json."""

from __future__ import annotations

from pathlib import Path

from .cli_checks import parse_list, set_threads
from .cli_executor import add_executor_flags, executor_from_flags
from .cli_progress import StageBars
from .cli_run import add_cloze_flags, cloze_config, reused_zoo
from .cli_zoo import add_family_flags, add_zoo_flags, train_zoo_run
from .config import SWEEP_BOTTLENECKS, SWEEP_MASK_RATIOS, to_dict


def cmd_sweep(a) -> None:
    import json
    from dataclasses import replace

    from .pipeline import run_sweep
    from .shards import discard_shards, shard_folder

    ratios = parse_list(a.mask_ratios, float, "--mask-ratios")
    bottlenecks = parse_list(a.bottlenecks, int, "--bottlenecks")
    base = cloze_config(a)
    set_threads(a.threads)
    for r in ratios:  # validate every pair before any training
        for b in bottlenecks:
            replace(base, mask_ratio=r, bottleneck=b)
    keep_in = shard_folder(Path(a.out) / "zoo") if a.out else None  # the sweep's zoo is not saved; its shards are
    family, zoo = reused_zoo(a)
    bars = StageBars()
    with executor_from_flags(a) as executor:
        if zoo is None:
            family, zoo = train_zoo_run(a, executor, keep_in=keep_in)
        try:
            rows = run_sweep(zoo, family, ratios, bottlenecks, base, progress=bars,
                             executor=executor if executor.name != "local" else None)  # fmt: skip
        finally:
            bars.close()
    cols = ("mask_ratio", "bottleneck", "linear_accuracy", "knn_accuracy", "nmi", "cloze_r2", "seconds")
    print("  ".join(f"{c:>15}" for c in cols))
    for row in rows:
        print("  ".join(f"{'n/a':>15}" if row[c] is None else f"{row[c]:>15.4g}" for c in cols))
    if a.out:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        (Path(a.out) / "sweep.json").write_text(json.dumps({"config": {"family": to_dict(family.config),
            "zoo": to_dict(zoo.config), "cloze": to_dict(base)}, "rows": rows}, indent=1, allow_nan=False))  # fmt: skip
        print(f"saved to {Path(a.out) / 'sweep.json'}")
        discard_shards(Path(a.out) / "zoo")


def add_sweep_command(sub, fmt) -> None:
    from .cli_preflight import preflight_training

    p = sub.add_parser("sweep", help="one embedder per (mask ratio, bottleneck) on one zoo", formatter_class=fmt)
    add_family_flags(p)
    add_zoo_flags(p)
    add_cloze_flags(p)
    add_executor_flags(p)
    p.add_argument("--mask-ratios", default=",".join(map(str, SWEEP_MASK_RATIOS)), help="comma-separated mask ratios")
    p.add_argument("--bottlenecks", default=",".join(map(str, SWEEP_BOTTLENECKS)),
                   help="comma-separated bottleneck dimensions")  # fmt: skip
    p.add_argument("--out", default=None, help="folder to write sweep.json into")
    p.set_defaults(fn=cmd_sweep, preflight=preflight_training)
