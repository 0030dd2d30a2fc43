"""`python -m netembed`: the pipeline headless. Flags -> configs -> the same core calls as the app."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli_errors import CliError, OneLineParser, exit_status, warn_divergence
from .cli_flags import add_config_flags, add_degree_flag, built, config_from_args, flags_of
from .config import (
    SWEEP_BOTTLENECKS,
    SWEEP_MASK_RATIOS,
    ClozeConfig,
    ConfigError,
    FamilyConfig,
    ZooConfig,
    parse_range,
    to_dict,
)
from .divergence import finite_median, zoo_report
from .family import make_family
from .store import Run, RunError, load_run, save_run


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
        self.bar.set_postfix(median_loss=f"{finite_median(losses):.2e}")  # NaN prints as "nan"

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
    warn_divergence(zoo)
    return family, zoo.to("cpu")


def sci(value) -> str:
    """A fit error for humans: 1.23e-04, or n/a when there is none (every model diverged)."""
    return "n/a" if value is None else f"{value:.2e}"


def cmd_zoo(a) -> None:
    family, zoo = train_zoo_run(a)
    save_run(Run(family=family, zoo=zoo), a.out)
    s = zoo_report(zoo)
    print(f"trained {s['n_models']} models ({family.n_functions} functions x {zoo.config.models_per_function} seeds) "
          f"in {s['seconds']:.1f} s; fit MSE median {sci(s['fit_mse_median'])}, worst {sci(s['fit_mse_worst'])}; "
          f"{s['n_failed']} failed; saved to {a.out}")  # fmt: skip


def cmd_inspect(a) -> None:
    run = load_run(a.run)
    zoo, family = run.zoo, run.family
    s = zoo_report(zoo)
    fc, zc = family.config, zoo.config
    print(f"run {Path(a.run).resolve()} (saved {run.meta.get('saved_at', '?')})")
    print(f"  family: {family.n_functions} polynomials, degree {fc.degree_min}-{fc.degree_max}, "
          f"sampling {fc.sampling}, seed {fc.seed}")  # fmt: skip
    print(f"  zoo:    {s['n_models']} MLPs 1->{'->'.join([str(zc.width)] * zc.depth)}->1 {zc.activation}, "
          f"{zoo.steps_done}/{zc.steps} steps, split {zc.n_train_seeds}/{zc.models_per_function} seeds train")  # fmt: skip
    print(f"          fit MSE median {sci(s['fit_mse_median'])}, worst {sci(s['fit_mse_worst'])}, {s['n_failed']} failed")
    if run.embedder is not None:
        print(f"  embedder: {run.embedder.describe()}")
    if run.report is not None:
        probes = run.report.get("probes", {})
        for name, p in probes.items():
            print(f"  probe {name:>17}: linear {p.get('linear_accuracy', float('nan')):.3f}, "
                  f"kNN {p.get('knn_accuracy', float('nan')):.3f}, NMI {p.get('nmi', float('nan')):.3f}")  # fmt: skip


# ---------------------------------------------------------------- run and sweep (the research pipeline)


def add_cloze_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cloze embedder")
    g.add_argument("--embed-seed", type=int, default=None, metavar="INT", help="seed of the embedder (default: --seed)")
    add_config_flags(g, ClozeConfig)
    g.add_argument("--from-zoo", default=None, help="reuse the family and zoo of this run folder instead of training")
    g.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads; 1 is the safe choice on a shared 2-core machine (2 threads were "
                        "measured 10x slower there when another process was busy)")  # fmt: skip


def cloze_config(a) -> ClozeConfig:
    return config_from_args(ClozeConfig, a, seed=a.seed if a.embed_seed is None else a.embed_seed)


class StageBars:
    """One tqdm bar per pipeline stage, on stderr; quiet when stderr is not a terminal."""

    def __init__(self):
        self.stage, self.bar = None, None

    def __call__(self, stage: str, fraction: float, info: dict) -> None:
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=1000, desc=stage, file=sys.stderr, disable=None, leave=False,
                            bar_format="{desc:>12}: {percentage:3.0f}%|{bar}| {elapsed} {postfix}")  # fmt: skip
        self.bar.n = int(1000 * fraction)
        post = {k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in info.items() if k in ("loss", "r2")}
        self.bar.set_postfix(post, refresh=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


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


def reused_zoo(a):
    """(family, zoo) from --from-zoo, or (None, None) to train them."""
    if a.from_zoo is None:
        return None, None
    try:
        run = load_run(a.from_zoo)
    except RunError as e:
        raise RunError(f"{e} (--from-zoo)") from None
    return run.family, run.zoo


def print_report(report: dict) -> None:
    z, e = report["zoo"], report["embedder"]
    print(f"zoo: {z['n_models']} models, fit MSE median {sci(z['fit_mse_median'])}, {z['n_failed']} failed")
    print(f"embedder: cloze R2 on held-out seeds {e['cloze_r2'] if e['cloze_r2'] is None else round(e['cloze_r2'], 3)}"
          f", {e['steps_done']} steps in {e['seconds']:.1f} s")  # fmt: skip
    for note in e["notes"]:
        print(f"  note: {note}")
    print(f"{'description':>17}  {'linear':>6}  {'kNN':>6}  {'NMI':>6}  (held-out seeds; chance "
          f"{report['probes']['cloze']['chance']:.3f})")  # fmt: skip
    for name, p in report["probes"].items():
        cells = [p[k] for k in ("linear_accuracy", "knn_accuracy", "nmi")]
        print(f"{name:>17}  " + "  ".join("   n/a" if c is None else f"{c:6.3f}" for c in cells))
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in report["seconds"].items()))


def cmd_run(a) -> None:
    from .pipeline import run_pipeline

    set_threads(a.threads)
    family, zoo = reused_zoo(a)
    bars = StageBars()
    try:
        run = run_pipeline(family_config(a), zoo_config(a), cloze_config(a), device=check_device(a.device),
                           progress=bars, projections=("pca", "umap") if a.umap else ("pca",),
                           family=family, zoo=zoo)  # fmt: skip
    finally:
        bars.close()
    warn_divergence(run.zoo)
    out = save_run(run, a.out)  # the run folder holds report.json (listed, with its checksum, in meta.json)
    print_report(run.report)
    print(f"saved to {out} (report: {Path(out) / 'report.json'})")


def parse_list(text: str, kind, flag: str) -> list:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CliError(f"{flag} must be a comma-separated list like 0.25,0.5, got {text!r}") from None
    if not values:
        raise CliError(f"{flag} is empty")
    return values


def cmd_sweep(a) -> None:
    import json
    from dataclasses import replace

    from .pipeline import run_sweep

    ratios = parse_list(a.mask_ratios, float, "--mask-ratios")
    bottlenecks = parse_list(a.bottlenecks, int, "--bottlenecks")
    base = cloze_config(a)
    set_threads(a.threads)
    for r in ratios:  # validate every pair before any training
        for b in bottlenecks:
            replace(base, mask_ratio=r, bottleneck=b)
    family, zoo = reused_zoo(a)
    if zoo is None:
        family, zoo = train_zoo_run(a)
    bars = StageBars()
    try:
        rows = run_sweep(zoo, family, ratios, bottlenecks, base, progress=bars)
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


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = OneLineParser(prog="python -m netembed", formatter_class=fmt,
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

    p = sub.add_parser("run", help="the full pipeline: zoo, embedder, probes, baselines, projections", formatter_class=fmt)
    add_family_flags(p)
    add_zoo_flags(p)
    add_cloze_flags(p)
    p.add_argument("--umap", action="store_true", help="add the UMAP projection (its first use in a process "
                   "compiles for 20-60 s; without it the app computes UMAP when it first shows the run)")  # fmt: skip
    p.add_argument("--out", required=True, help="run folder to write (with report.json)")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("sweep", help="one embedder per (mask ratio, bottleneck) on one zoo", formatter_class=fmt)
    add_family_flags(p)
    add_zoo_flags(p)
    add_cloze_flags(p)
    p.add_argument("--mask-ratios", default=",".join(map(str, SWEEP_MASK_RATIOS)), help="comma-separated mask ratios")
    p.add_argument("--bottlenecks", default=",".join(map(str, SWEEP_BOTTLENECKS)),
                   help="comma-separated bottleneck dimensions")  # fmt: skip
    p.add_argument("--out", default=None, help="folder to write sweep.json into")
    p.set_defaults(fn=cmd_sweep)

    add_units_command(sub, fmt)
    return parser


# ---------------------------------------------------------------- units: inside a digits network (issue 13)


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


def add_units_command(sub, fmt) -> None:
    p = sub.add_parser("units", help="embed the hidden units of a digits network; score them against planted modules",
                       formatter_class=fmt)  # fmt: skip
    add_units_flags(p)
    p.set_defaults(fn=cmd_units, preflight=preflight_units)


def preflight_units(a) -> None:
    check_out(a.out)
    check_threads(a.threads)
    units_configs(a)


# ---------------------------------------------------------------- checks before work; errors as one line


def preflight(a) -> None:
    """Build every config the command will use and check the job against the resource limits,
    before any training or writing, so a bad flag or an oversized job costs nothing."""
    from dataclasses import replace

    from .limits import check_pipeline

    if hasattr(a, "preflight"):
        return a.preflight(a)  # a command with its own checks (units)
    if not hasattr(a, "functions"):
        return  # inspect: nothing to build
    check_out(getattr(a, "out", None))
    check_device(a.device)
    family = built(lambda: family_config(a), flags_of(FamilyConfig))  # degree_min/max: --degree
    zoo = built(lambda: zoo_config(a), flags_of(ZooConfig))
    clozes = []
    if hasattr(a, "bottleneck"):
        check_threads(a.threads)
        base = built(lambda: cloze_config(a), flags_of(ClozeConfig))
        clozes = [base]
        if hasattr(a, "mask_ratios"):
            ratios = parse_list(a.mask_ratios, float, "--mask-ratios")
            bottlenecks = parse_list(a.bottlenecks, int, "--bottlenecks")
            cell_flags = flags_of(ClozeConfig, mask_ratio="--mask-ratios", bottleneck="--bottlenecks")
            clozes = [built(lambda r=r, b=b: replace(base, mask_ratio=r, bottleneck=b), cell_flags)
                      for r in ratios for b in bottlenecks]  # fmt: skip
    if getattr(a, "from_zoo", None) is None:
        check_pipeline(family.n_functions, zoo, clozes)
    else:  # the zoo is loaded, not trained: only the embedders count
        check_pipeline(1, replace(zoo, models_per_function=2, steps=0), clozes)


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
