"""Issue 11's targets, measured: held-out functions (polynomials, sines), parameter regression, many polynomials.

    nice -n 10 python -m benchmarks.study_targets STUDY [--seeds 0,1,2] [--set key=value ...] [--zoo-set key=value ...]

STUDY is one of
    polynomials  60 polynomials x 50 seeds; embedder on 40 functions, scored on the 20 unseen ones
    sines        sines a*sin(b*t); embedder on 2/3 of the functions, scored on the unseen third;
                 retrieval / NMI / few-shot, and ridge + kNN regression of (a, b)
    many         100 polynomials (degrees 3-6), held-out-seed probes at bottleneck 16
Each trains its zoo once (cached under --cache, default /tmp/netembed-study-zoos, keyed by
the configs) and one embedder per seed; prints a table of mean ± std over the seeds for the
cloze embedding and every baseline, and writes the rows to benchmarks/results/study_STUDY.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from netembed.baselines import baseline_features, supervised_probe
from netembed.cloze_training import train_embedder
from netembed.config import ClozeConfig, FamilyConfig, ZooConfig, to_dict
from netembed.embedding import EMBED_SEED, embed
from netembed.family import make_family
from netembed.probes import probe_all
from netembed.protocols import held_out_function_study, split_functions
from netembed.store import Run, load_run, save_run
from netembed.zoo import train_zoo

RESULTS = Path(__file__).resolve().parent / "results"

STUDIES = {
    "polynomials": dict(
        family=FamilyConfig(n_functions=60, max_tries=20000),
        zoo=ZooConfig(models_per_function=50),
        cloze=ClozeConfig(bottleneck=8),
        n_unseen=20,
    ),
    "sines": dict(
        family=FamilyConfig(kind="sines", n_functions=36),
        # ReLU nets need width, depth and steps for 10 periods: measured rel. fit MSE <= 0.5% up to b ~ 9
        zoo=ZooConfig(models_per_function=8, width=64, depth=3, steps=3000, lr=3e-3, batch_size=512),
        cloze=ClozeConfig(bottleneck=16, n_freqs=12, n_inputs=128),
        n_unseen=12,
    ),
    "many": dict(
        family=FamilyConfig(n_functions=100, degree_min=3, degree_max=6, max_tries=20000),
        zoo=ZooConfig(models_per_function=10),
        cloze=ClozeConfig(bottleneck=16),
        n_unseen=None,
    ),
}


def parse_settings(items: list[str], config) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = type(getattr(config, key))(value)
    return out


def config_key(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def embeddings_file(folder: Path, config: ClozeConfig, n_unseen: int) -> Path:
    """Where one held-out-function training's embeddings are stored. A setting added later is left out of the key
    at its default (loss_scale, input_scale "zoo": what every earlier training used), so earlier stored trainings stay found."""
    data = to_dict(config)
    for late, default in (("loss_scale", "zoo"), ("input_scale", "zoo")):
        if data.get(late) == default:
            del data[late]
    return folder / f"embeddings_{config_key([data, n_unseen])}.npz"


def zoo_folder_for(family_config: FamilyConfig, zoo_config: ZooConfig, cache: Path) -> Path:
    return cache / config_key([to_dict(family_config), to_dict(zoo_config)])


def embeddings_folder_for(zoo_folder: Path) -> Path:
    """Where the trainings on a cached zoo keep their embeddings (created if missing): beside the zoo's run
    folder, not in it, since load_run refuses any file of its own folder it did not write."""
    folder = zoo_folder.with_name(zoo_folder.name + "-embeddings")
    folder.mkdir(exist_ok=True)
    return folder


def study_from_flags(name: str, a: argparse.Namespace):
    """Study `name` with the command line's overrides (--family-set, --zoo-set, --set, --n-unseen) and its cached
    zoo: (family_config, zoo_config, cloze, n_unseen, family, zoo, embeddings folder). Shared by study_targets,
    sine_rows and sine_sweep, so the three find the same zoo and the same stored embeddings."""
    study = STUDIES[name]
    family_config = replace(study["family"], **parse_settings(a.family_set, study["family"]))
    zoo_config = replace(study["zoo"], **parse_settings(a.zoo_set, study["zoo"]))
    cloze = replace(study["cloze"], **parse_settings(a.set, study["cloze"]))
    n_unseen = a.n_unseen or study["n_unseen"]
    family, zoo = cached_zoo(family_config, zoo_config, Path(a.cache))
    embeddings = embeddings_folder_for(zoo_folder_for(family_config, zoo_config, Path(a.cache)))
    return family_config, zoo_config, cloze, n_unseen, family, zoo, embeddings


def cached_zoo(family_config: FamilyConfig, zoo_config: ZooConfig, cache: Path):
    folder = zoo_folder_for(family_config, zoo_config, cache)
    if folder.exists():
        run = load_run(folder)
        return run.family, run.zoo
    family = make_family(family_config)
    t = time.perf_counter()
    zoo = train_zoo(family, zoo_config)
    print(f"zoo: {zoo.n_models} models in {time.perf_counter() - t:.0f} s", flush=True)
    save_run(Run(family=family, zoo=zoo, meta={"kind": "zoo"}), folder)
    return family, zoo


def fit_summary(family, zoo) -> dict:
    var = (family.values(np.linspace(-1, 1, 1025)) ** 2).mean(1)[zoo.task_ids]  # each target's mean square
    rel = zoo.fit_mse / var
    return {"fit_mse_median": float(np.median(zoo.fit_mse)), "relative_fit_mse_median": float(np.median(rel)),
            "relative_fit_mse_p90": float(np.quantile(rel, 0.9)), "n_relative_above_5pct": int((rel > 0.05).sum())}  # fmt: skip


def held_out_seed_rows(zoo, config: ClozeConfig, seed: int) -> dict:
    emb = train_embedder(zoo, config)
    z = embed(emb, zoo, seed=EMBED_SEED)
    rows = {"cloze": probe_all(z, zoo.task_ids, zoo.is_train, seed)}
    for name, f in baseline_features(zoo, pca_dim=z.shape[1]).items():
        rows[name] = probe_all(f, zoo.task_ids, zoo.is_train, seed)
    rows["supervised"] = supervised_probe(zoo, random_state=seed)
    keep = ("linear_accuracy", "knn_accuracy", "nmi")
    return {"seen": {name: {k: r[k] for k in keep} for name, r in rows.items()}, "cloze_r2": emb.cloze_r2_}


def flatten(result: dict, prefix=()) -> dict:
    out = {}
    for key, value in result.items():
        if isinstance(value, dict):
            out.update(flatten(value, (*prefix, key)))
        else:
            out[(*prefix, key)] = value
    return out


def summarise(per_seed: list[dict]) -> dict:
    """{path: (mean, std)} over seeds; None (n/a) stays None."""
    flat = [flatten(r) for r in per_seed]
    out = {}
    for key in flat[0]:
        values = [f[key] for f in flat]
        if any(v is None for v in values):
            out[key] = None
            continue
        v = np.asarray(values, dtype=np.float64)
        out[key] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0)
    return out


def print_table(summary: dict) -> None:
    groups = {}
    for key, value in summary.items():
        groups.setdefault(key[:-1], {})[key[-1]] = value
    for group, cols in groups.items():
        cells = "  ".join(f"{c} {'n/a' if v is None else f'{v[0]:.3f}±{v[1]:.3f}'}" for c, v in cols.items())
        print(f"{'/'.join(group):<42} {cells}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", choices=sorted(STUDIES))
    p.add_argument("--seeds", default="0,1,2", help="embedder seeds")
    p.add_argument("--set", nargs="*", default=[], help="ClozeConfig overrides, key=value")
    p.add_argument("--zoo-set", nargs="*", default=[], help="ZooConfig overrides, key=value")
    p.add_argument("--family-set", nargs="*", default=[], help="FamilyConfig overrides, key=value")
    p.add_argument("--n-unseen", type=int, default=None)
    p.add_argument("--cache", default="/tmp/netembed-study-zoos")
    p.add_argument("--tag", default="", help="suffix of the results file")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    family_config, zoo_config, cloze, n_unseen, family, zoo, embeddings_folder = study_from_flags(a.study, a)
    fit = fit_summary(family, zoo)
    print(f"{a.study}: {family.n_functions} functions x {zoo_config.models_per_function} seeds; fit {fit}")
    print(f"cloze: {cloze}", flush=True)
    per_seed = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        t = time.perf_counter()
        config = replace(cloze, seed=seed)
        if n_unseen:
            split = split_functions(family.n_functions, n_unseen, random_state=seed)
            stored = embeddings_file(embeddings_folder, config, n_unseen)
            z = dict(np.load(stored)) if stored.exists() else None  # the same training, stored: rescoring is cheap
            result = held_out_function_study(zoo, family, config, split, random_state=seed,
                                             embeddings=None if z is None else z["embeddings"])  # fmt: skip
            if z is None:
                np.savez(stored, embeddings=result["embeddings"], cloze_r2=result["cloze_r2"])
            else:
                result["cloze_r2"] = float(z["cloze_r2"])
            del result["embeddings"]
        else:
            result = held_out_seed_rows(zoo, config, seed)
        per_seed.append(result)
        head = result["functions"]["cloze"] if "functions" in result else result["seen"]["cloze"]
        print(f"seed {seed}: cloze_r2 {result['cloze_r2']:.3f}, cloze {json.dumps(head)}, "
              f"{time.perf_counter() - t:.0f} s", flush=True)  # fmt: skip
    summary = summarise(per_seed)
    print_table(summary)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"study_{a.study}{a.tag}.json"
    out.write_text(json.dumps({"command": " ".join(sys.argv), "family": to_dict(family_config), "zoo": to_dict(zoo_config),
                               "cloze": to_dict(cloze), "n_unseen": n_unseen, "fit": fit, "per_seed": per_seed,
                               "summary": {"/".join(k): v for k, v in summary.items()}}, indent=1))  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
