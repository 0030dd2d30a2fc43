"""`python -m netembed`: the pipeline headless. Flags -> configs -> the same core calls as the app."""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import time
from pathlib import Path

from .cli_errors import CliError, OneLineParser, exit_status, warn_divergence
from .cli_flags import add_config_flags, add_degree_flag, built, config_from_args, flags_of
from .config import (
    ACTIVATIONS,
    SWEEP_BOTTLENECKS,
    SWEEP_MASK_RATIOS,
    ClozeConfig,
    ConfigError,
    FamilyConfig,
    MixedZooConfig,
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


def check_executor_flags(a, family: FamilyConfig, zoo: ZooConfig) -> None:
    """Refuse bad executor flags before any work (a cluster is reached only when the command runs)."""
    from .shards import plan_shards

    if a.workers is not None and a.workers < 1:
        raise CliError(f"--workers must be >= 1, got {a.workers}")
    if a.ray_address is not None and not RAY_ADDRESS.match(a.ray_address):
        raise CliError(f"--ray-address must be host:port, ray://host:port or auto, got {a.ray_address!r}")
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


class ShardBar:
    """tqdm over shards, with the model-steps done; on stderr, quiet when stderr is not a terminal."""

    def __init__(self):
        self.bar = None

    def __call__(self, done: int, total: int, info: dict) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc="zoo shards", unit="shard", file=sys.stderr, disable=None, leave=False)
            if info["loaded"]:
                print(f"resuming: {info['loaded']} of {total} shards loaded from disk", file=sys.stderr)
        self.bar.n = done
        self.bar.set_postfix_str(f"{info['model_steps']:.3g}/{info['model_steps_total']:.3g} model-steps", refresh=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


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


def cmd_embed(a) -> None:
    """embed: networks trained elsewhere, placed among a run's models (imported.py)."""
    import json

    from .imported import load_network, parse_input_range, predict

    run = load_run(a.run)
    input_range = parse_input_range(a.input_range)
    named = []
    for path in a.files:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise CliError(f"{path}: {e.strerror or e}") from None
        named.append((path, load_network(data, path, a.activation, input_range)))
    results = predict(run, named)
    for r in results:
        params = ", ".join(f"{k} {v:.3g}" for k, v in r.predicted_parameters.items())
        print(f"{r.file}: function f{r.predicted_function} ({params}); nearest models {r.neighbours}")
    if a.out:
        Path(a.out).write_text(json.dumps([r.to_json() for r in results], indent=1))
        print(f"wrote {a.out}")


def check_embed_flags(a) -> None:
    """embed's flags, before any file is read: the range, --out, then the run and its embedder."""
    from .imported import parse_input_range

    parse_input_range(a.input_range)  # its message names --input-range
    if a.out is not None and Path(a.out).is_dir():
        raise CliError(f"--out {a.out}: is a folder; give a JSON file to write")
    if a.run is None:
        raise CliError("--run is required: the run folder whose embedder places the networks")
    try:
        run = load_run(a.run)
    except RunError as e:
        raise RunError(f"{e} (--run)") from None
    if run.embedder is None:
        raise CliError(f"--run {a.run}: holds no trained embedder; make one with `python -m netembed run`")
    if not a.files:
        raise CliError("give at least one safetensors FILE to embed")


def cmd_inspect(a) -> None:
    run = load_run(a.run)
    zoo, family = run.zoo, run.family
    s = zoo_report(zoo)
    fc, zc = family.config, zoo.config
    print(f"run {Path(a.run).resolve()} (saved {run.meta.get('saved_at', '?')})")
    print(f"  family: {family.n_functions} polynomials, degree {fc.degree_min}-{fc.degree_max}, "
          f"sampling {fc.sampling}, seed {fc.seed}")  # fmt: skip
    if hasattr(zoo, "parts"):
        print(f"  architectures: {', '.join(zoo.labels)} (mixed zoo; the line below is the first's)")
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


def check_out_folder(out: str) -> None:
    if Path(out).exists() and not Path(out).is_dir():
        raise CliError(f"--out {out}: exists and is not a folder")


def reused_zoo(a):
    """(family, zoo) from --from-zoo, or (None, None) to train them."""
    if a.from_zoo is None:
        return None, None
    try:
        run = load_run(a.from_zoo)
    except RunError as e:
        raise RunError(f"{e} (--from-zoo)") from None
    if hasattr(run.zoo, "parts"):
        raise CliError(f"--from-zoo {a.from_zoo}: a mixed-architecture zoo; run and sweep take one architecture "
                       "(the cross-architecture study is benchmarks/cross_arch.py)")  # fmt: skip
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
    print_protocols(report.get("protocols", {}))
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in report["seconds"].items()))


def print_protocols(protocols: dict) -> None:
    """The held-out-function and parameter-regression tables of a report (if it has them)."""
    functions, parameters = protocols.get("functions"), protocols.get("parameters")
    if functions:
        print(f"held-out functions (embedder trained on {len(protocols['split']['seen'])} functions, scored on "
              f"{len(protocols['split']['unseen'])} unseen):")  # fmt: skip
        cols = next(iter(functions.values())).keys()
        print(f"{'description':>17}  " + "  ".join(f"{c:>14}" for c in cols))
        for name, scores in functions.items():
            print(f"{name:>17}  " + "  ".join(f"{'n/a':>14}" if v is None else f"{v:14.3f}" for v in scores.values()))
    if parameters:
        print("parameter regression on the unseen functions (ridge R^2 / MSE; supervised_mlp: an MLP regressor):")
        for name, per_param in parameters.items():
            cells = [f"{p} " + ("n/a (constant)" if s["r2"] is None else f"{s['r2']:.3f} / {s['mse']:.3g}")
                     for p, s in per_param.items()]  # fmt: skip
            print(f"{name:>17}  " + ", ".join(cells))


def parse_protocols(text: str) -> tuple[str, ...]:
    from .protocols import PROTOCOLS

    names = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    bad = [n for n in names if n not in PROTOCOLS]
    if bad or not names:
        raise CliError(f"--protocols must be a comma-separated list of {', '.join(PROTOCOLS)}, got {text!r}")
    return names


def cmd_run(a) -> None:
    from .pipeline import run_pipeline
    from .shards import discard_shards, shard_folder

    set_threads(a.threads)
    family, zoo = reused_zoo(a)
    sharded_seconds = None
    if zoo is None and (a.shards > 1 or a.executor != "local"):
        t = time.perf_counter()
        with executor_from_flags(a) as executor:
            family, zoo = train_zoo_run(a, executor, keep_in=shard_folder(a.out))
        sharded_seconds = time.perf_counter() - t
    bars = StageBars()
    try:
        run = run_pipeline(family_config(a), zoo_config(a), cloze_config(a), device=check_device(a.device),
                           progress=bars, projections=("pca", "umap") if a.umap else ("pca",),
                           family=family, zoo=zoo, protocols=parse_protocols(a.protocols))  # fmt: skip
    finally:
        bars.close()
    warn_divergence(run.zoo)
    if sharded_seconds is not None:  # the zoo was trained before the pipeline: count it in the report's seconds
        seconds = run.report["seconds"]
        seconds.update(zoo=round(sharded_seconds, 3), total=round(seconds["total"] + sharded_seconds, 3))
    out = save_run(run, a.out)  # the run folder holds report.json (listed, with its checksum, in meta.json)
    discard_shards(a.out)
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


def cmd_bench(a) -> None:
    from tqdm import tqdm

    from .bench import QUICK_SUITE, SUITE, run_bench, write_bench

    set_threads(a.threads)
    studies = QUICK_SUITE if a.quick else SUITE
    if a.studies:
        names = parse_list(a.studies, str, "--studies")
        unknown = sorted(set(names) - {s.name for s in studies})
        if unknown:
            raise CliError(f"--studies: no study {', '.join(unknown)}; the suite has {', '.join(s.name for s in studies)}")
        studies = tuple(s for s in studies if s.name in names)
    seeds = parse_list(a.seeds, int, "--seeds")
    bar = tqdm(total=len(studies) * (1 + len(seeds)), desc="bench", unit="cell", file=sys.stderr, disable=None)

    def progress(done, total, what):
        bar.n = done
        bar.set_postfix_str(what, refresh=True)

    try:
        with executor_from_flags(a) as executor:
            try:
                bench = run_bench(studies, seeds, executor, progress=progress)
            except ValueError as e:  # a study whose zoo cannot serve its protocols
                raise CliError(str(e)) from None
    finally:
        bar.close()
    command = "python -m netembed bench " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else [])
    paths = write_bench(bench, Path(a.out), command.strip())
    print((Path(a.out) / "bench.md").read_text())
    print("wrote " + ", ".join(str(p) for p in paths))


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = OneLineParser(prog="python -m netembed", formatter_class=fmt,
                           description="Network embeddings from input-gradients, headless.")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("zoo", help="train and save a zoo of MLPs", formatter_class=fmt)
    add_family_flags(p)
    add_zoo_flags(p)
    add_config_flags(p.add_argument_group("mixed architectures"), MixedZooConfig)
    add_executor_flags(p)
    p.add_argument("--out", required=True, help="run folder to write")
    p.set_defaults(fn=cmd_zoo)

    p = sub.add_parser("embed", help="embed networks trained elsewhere (safetensors nn.Sequential MLPs, 1 -> 1) "
                       "with a run's embedder", formatter_class=fmt)  # fmt: skip
    p.add_argument("--run", default=None, help="run folder with a trained embedder (required)")
    p.add_argument("--activation", default="relu", choices=ACTIVATIONS, help="the networks' hidden activation")
    p.add_argument("--input-range", default="-1,1", metavar="LO,HI",
                   help="the interval the networks were trained on, mapped onto the family's [-1, 1]")
    p.add_argument("--out", default=None, help="JSON file to write, one object per network")
    p.add_argument("files", nargs="*", help="safetensors state_dicts (at least one)")
    p.set_defaults(fn=cmd_embed)

    p = sub.add_parser("inspect", help="load a run folder, validate it and print what it holds", formatter_class=fmt)
    p.add_argument("run", help="run folder")
    p.set_defaults(fn=cmd_inspect)

    p = sub.add_parser("run", help="the full pipeline: zoo, embedder, probes, baselines, projections", formatter_class=fmt)
    add_family_flags(p)
    add_zoo_flags(p)
    add_cloze_flags(p)
    add_executor_flags(p)
    p.add_argument("--umap", action="store_true", help="add the UMAP projection (its first use in a process "
                   "compiles for 20-60 s; without it the app computes UMAP when it first shows the run)")  # fmt: skip
    p.add_argument("--protocols", default="seeds",
                   help="comma-separated: seeds (held-out seeds, always), functions (held-out functions: a second "
                        "embedder trained on two thirds of the functions, scored on the rest) and parameters (regression "
                        "of the members' parameters on those unseen functions); functions or parameters add about the "
                        "embedder's time again")  # fmt: skip
    p.add_argument("--out", required=True, help="run folder to write (with report.json)")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("sweep", help="one embedder per (mask ratio, bottleneck) on one zoo", formatter_class=fmt)
    add_family_flags(p)
    add_zoo_flags(p)
    add_cloze_flags(p)
    add_executor_flags(p)
    p.add_argument("--mask-ratios", default=",".join(map(str, SWEEP_MASK_RATIOS)), help="comma-separated mask ratios")
    p.add_argument("--bottlenecks", default=",".join(map(str, SWEEP_BOTTLENECKS)),
                   help="comma-separated bottleneck dimensions")  # fmt: skip
    p.add_argument("--out", default=None, help="folder to write sweep.json into")
    p.set_defaults(fn=cmd_sweep)

    p = sub.add_parser("bench", help="the declared suite (netembed/bench.py): studies x protocols x descriptions x "
                       "seeds -> bench.md, bench.json, bench.png", formatter_class=fmt)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="the minutes-long suite with tiny zoos (what the tests run)")
    p.add_argument("--studies", default=None, help="comma-separated study names to run (default: the whole suite)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated embedder seeds")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (every cell runs with one)")
    add_executor_flags(p)
    p.add_argument("--out", default="bench", help="folder to write bench.md, bench.json and bench.png into")
    p.set_defaults(fn=cmd_bench)

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

    if a.command == "embed":
        return check_embed_flags(a)
    if a.command == "bench":
        check_out_folder(a.out)
        check_threads(a.threads)
        if a.workers is not None and a.workers < 1:
            raise CliError(f"--workers must be >= 1, got {a.workers}")
        if a.ray_address is not None and not RAY_ADDRESS.match(a.ray_address):
            raise CliError(f"--ray-address must be host:port, ray://host:port or auto, got {a.ray_address!r}")
        if a.shards != 1:
            raise CliError(f"--shards: bench trains every study's zoo in one piece (its cells run through the executor), "
                           f"got {a.shards}")  # fmt: skip
        parse_list(a.seeds, int, "--seeds")
        if a.studies is not None:
            parse_list(a.studies, str, "--studies")
        return
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
    if getattr(a, "architectures", ""):
        from .mixed_zoo import part_configs

        parts = built(lambda: part_configs(zoo, a.architectures), {"architectures": "--architectures"})
        if a.shards > 1 or a.executor != "local" or a.ray_address:
            raise CliError("--architectures trains its parts here, one after another; drop --shards / --executor")
        for part in parts:
            check_pipeline(family.n_functions, part, [])
    if hasattr(a, "executor"):
        check_executor_flags(a, family, zoo)
    if getattr(a, "protocols", None) is not None:
        from .protocols import check_protocol_zoo, default_unseen

        if {"functions", "parameters"} & set(parse_protocols(a.protocols)) and a.from_zoo is None:
            try:
                check_protocol_zoo(family.n_functions, zoo.models_per_function, default_unseen(family.n_functions))
            except ValueError as e:
                raise CliError(f"--protocols: {e}") from None
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
