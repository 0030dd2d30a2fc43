"""The whole study as one function: family -> zoo -> embedder -> probes -> baselines -> projections.

`run_pipeline` returns a `run_schema.Run`; `save_run` writes it as a run folder. Where a
loaded run keeps what the app draws (no retraining needed):
    run.embedder.embeddings_          (n_models, bottleneck) embeddings of every model, stored
                                      in embedder.safetensors ("embeddings"); see `embeddings(run)`
    run.report["projections"][m]      (n_models, 2) coordinates as a list of [x, y] rows, for
                                      m in "pca" and (unless skipped) "umap"; see `projection(run, m)`
    run.report["probes"][name]        probe scores of each description: cloze, raw_gradients,
                                      outputs, weights, weight_stats, raw_gradients_pca (a PCA of
                                      the gradients to the bottleneck's size), supervised
    run.zoo.task_ids / .is_train      labels and the seed split, row-aligned with the above
The report (also written alone as report.json by the command line) holds: config, zoo
(fit_mse_median, n_failed, ...), embedder (cloze_r2, ...), probes, invariance,
projections and seconds per stage. Non-finite numbers are stored as null (JSON has no NaN).

Progress: `progress(stage, fraction, info)` with stage one of STAGES, fraction the
stage's own progress in [0, 1] and info a small dict (step, loss, r2...) that always holds
"overall": the share in [0, 1] of this call's whole work done, by the stages' typical cost
(WEIGHTS) over the stages it computes (a family or zoo passed in costs nothing).
Returning False from it during the "zoo" or "embedder" stage stops that training early,
keeping what was learned (as train_zoo and train_embedder do); raise to abort everything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from .baselines import baseline_features, supervised_probe
from .cloze_training import train_embedder
from .config import ClozeConfig, FamilyConfig, ZooConfig, to_dict
from .divergence import check_not_all_diverged, finite_median, zoo_report
from .embedding import EMBED_SEED, embed
from .family import Family, make_family
from .invariance import invariance_check
from .probes import probe_all
from .projection import project
from .run_schema import Run, json_safe
from .zoo import Zoo, train_zoo

STAGES = ("family", "zoo", "embedder", "probes", "baselines", "projections")
WEIGHTS = {"family": 0.01, "zoo": 0.49, "embedder": 0.35, "probes": 0.03, "baselines": 0.04, "projections": 0.08}
PipelineProgress = Callable[[str, float, dict], "bool | None"]


def stage_teller(progress: PipelineProgress | None, skipped: tuple[str, ...] = ()) -> Callable[..., "bool | None"]:
    """tell(stage, fraction, **info) -> progress(stage, fraction, {**info, "overall": share of the work done}).

    The skipped stages (given, not computed) weigh nothing, so "overall" runs from 0 to 1 over this call's own work.
    """
    weights = {s: 0.0 if s in skipped else WEIGHTS[s] for s in STAGES}
    total = sum(weights.values())

    def tell(stage: str, fraction: float, **info):
        if progress is None:
            return None
        done = sum(weights[s] for s in STAGES[: STAGES.index(stage)]) + weights[stage] * fraction
        return progress(stage, float(fraction), {**info, "overall": min(1.0, done / total)})

    return tell


def probe_descriptions(zoo: Zoo, family: Family, embeddings: np.ndarray, random_state=0, tell=None) -> dict:
    """The probes on the cloze embedding and on every baseline description; `tell` from stage_teller."""
    tell = tell or stage_teller(None)
    coeffs = family.parameters[zoo.task_ids]  # (n, p) each model's continuous parameters (coefficients, or a, b, c)
    labels, split = zoo.task_ids, zoo.is_train
    probes = {"cloze": probe_all(embeddings, labels, split, random_state, coefficients=coeffs)}
    tell("probes", 1.0)
    features = baseline_features(zoo, family, pca_dim=embeddings.shape[1])
    for i, (name, f) in enumerate(features.items()):
        probes[name] = probe_all(f, labels, split, random_state, coefficients=coeffs)
        tell("baselines", (i + 1) / (len(features) + 1), description=name)
    probes["supervised"] = supervised_probe(zoo, family, random_state, coefficients=coeffs)
    tell("baselines", 1.0, description="supervised")
    return probes


def run_pipeline(
    family_config: FamilyConfig,
    zoo_config: ZooConfig,
    cloze_config: ClozeConfig,
    device: str = "cpu",
    progress: PipelineProgress | None = None,
    projections: tuple[str, ...] = ("pca", "umap"),
    family: Family | None = None,
    zoo: Zoo | None = None,
    should_stop: Callable[[int], bool] | None = None,
) -> Run:
    """Run every stage; pass a trained `family` and `zoo` to reuse them (their configs then win).

    `should_stop(step)` is asked after every embedder step (train_embedder); once it said True the run
    finishes quickly with what it has: the embedder's probes, no baselines or invariance check."""
    seconds = {}
    given = {"family": family, "zoo": zoo}
    tell = stage_teller(progress, skipped=tuple(stage for stage, value in given.items() if value is not None))
    t = time.perf_counter()
    if family is None:
        family = make_family(family_config)
    seconds["family"] = time.perf_counter() - t
    tell("family", 1.0)

    t = time.perf_counter()
    if zoo is None:
        steps = zoo_config.steps

        def zoo_progress(step, losses):
            return tell("zoo", step / max(1, steps), step=step, loss=finite_median(losses))

        zoo = train_zoo(family, zoo_config, progress=zoo_progress, device=device).to("cpu")
    check_not_all_diverged(zoo)  # an all-diverged zoo is the learning rate's fault, not a result
    seconds["zoo"] = time.perf_counter() - t
    tell("zoo", 1.0)

    t = time.perf_counter()
    e_steps = cloze_config.steps

    def embedder_progress(step, loss, r2):
        return tell("embedder", step / max(1, e_steps), step=step, loss=loss, r2=r2)

    stopped = []

    def stop_hook(step):
        if should_stop is not None and should_stop(step):
            stopped.append(step)
            return True
        return False

    embedder = train_embedder(zoo, cloze_config, progress=embedder_progress, device=device,
                              should_stop=stop_hook).to("cpu")  # fmt: skip
    embedder.embeddings_ = embed(embedder, zoo, seed=EMBED_SEED)
    seconds["embedder"] = time.perf_counter() - t

    t = time.perf_counter()
    if stopped:  # cancelled: land fast with the embedder's own probes
        params = family.parameters[zoo.task_ids]
        probes = {"cloze": probe_all(embedder.embeddings_, zoo.task_ids, zoo.is_train, cloze_config.seed,
                                     coefficients=params)}  # fmt: skip
        invariance = {}
        projections = tuple(m for m in projections if m == "pca")
    else:
        # scikit-learn's BLAS and OpenMP pools get torch's thread count: their own default (every core)
        # spins threads on these small matrices and, on a shared 2-core machine, cost 10x the CPU time
        with threadpool_limits(limits=torch.get_num_threads()):
            probes = probe_descriptions(zoo, family, embedder.embeddings_, random_state=cloze_config.seed, tell=tell)
            invariance = invariance_check(zoo, embedder, seed=cloze_config.seed)
    seconds["probes_and_baselines"] = time.perf_counter() - t

    t = time.perf_counter()
    coords = {}
    for i, method in enumerate(projections):
        coords[method] = project(embedder.embeddings_, method, random_state=cloze_config.seed)
        tell("projections", (i + 1) / len(projections), method=method)
    tell("projections", 1.0)
    seconds["projections"] = time.perf_counter() - t
    seconds["total"] = sum(seconds.values())

    report = {
        "config": {"family": to_dict(family.config), "zoo": to_dict(zoo.config), "cloze": to_dict(cloze_config),
                   "device": device},  # fmt: skip
        "zoo": zoo_report(zoo),
        "embedder": embedder_report(embedder),
        "probes": probes,
        "invariance": invariance,
        "projections": {m: np.round(c, 5) for m, c in coords.items()},
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
    return Run(family=family, zoo=zoo, embedder=embedder, report=json_safe(report), meta={"kind": "pipeline"})


def embedder_report(embedder) -> dict:
    loss = embedder.loss_curve_
    return {
        "cloze_r2": embedder.cloze_r2_,
        "final_loss": float(loss[-1]) if len(loss) else None,
        "steps_done": int(embedder.steps_done_),
        "seconds": round(float(embedder.seconds_), 3),
        "mask_unit": embedder.mask_unit_,
        "notes": list(embedder.notes_),
    }


def embeddings(run: Run) -> np.ndarray:
    """(n_models, bottleneck) embeddings stored with a pipeline run."""
    if run.embedder is None or run.embedder.embeddings_ is None:
        raise ValueError("this run holds no embeddings (it was saved before the embedder was trained)")
    return run.embedder.embeddings_


def projection(run: Run, method: str = "pca") -> np.ndarray:
    """(n_models, 2) stored projection coordinates; computed now (not stored back) if the run lacks them."""
    stored = (run.report or {}).get("projections", {}).get(method)
    if stored is not None:
        return np.asarray(stored, dtype=np.float64)
    return project(embeddings(run), method)


def run_sweep(zoo: Zoo, family: Family, mask_ratios, bottlenecks, base_config: ClozeConfig, progress=None,
              executor=None, seeds=None, should_stop: Callable[[int, int], bool] | None = None) -> list[dict]:  # fmt: skip
    """One embedder per (mask_ratio, bottleneck, seed) on one zoo -> table rows of held-out probe scores.

    seeds: embedder seeds per cell (default: the base config's); several give the spread of each score.
    executor (executor.py): run the cells through it (e.g. as Ray tasks); progress then moves once per
    finished cell. Without one they run here, one after another, with progress per step, and
    should_stop(cell, step) is asked after every embedder step; True ends the sweep with the cells
    completed (the cell it stopped in is left out: its scores would be of a shorter training).
    """
    seeds = [int(base_config.seed)] if seeds is None else [int(s) for s in seeds]
    cells = [(float(r), int(b), s) for r in mask_ratios for b in bottlenecks for s in seeds]
    if executor is not None:
        finished = []

        def cell_done(i, row):
            finished.append(i)
            if progress is not None:
                progress("sweep", len(finished) / len(cells), {"mask_ratio": row["mask_ratio"], "bottleneck": row["bottleneck"]})

        rows = executor.map(sweep_cell, cells, shared=(zoo, base_config), on_done=cell_done)
    else:
        rows = []
        for i, (ratio, bottleneck, seed) in enumerate(cells):
            def step_progress(step, loss, r2, i=i, ratio=ratio, bottleneck=bottleneck, seed=seed):
                return None if progress is None else progress(
                    "sweep", (i + step / max(1, base_config.steps)) / len(cells),
                    {"mask_ratio": ratio, "bottleneck": bottleneck, "seed": seed, "step": step, "loss": loss,
                     "r2": r2})  # fmt: skip

            stopped = []

            def stop_hook(step, i=i, stopped=stopped):
                if should_stop is not None and should_stop(i, step):
                    stopped.append(step)
                    return True
                return False

            row = sweep_cell(zoo, base_config, ratio, bottleneck, seed, progress=step_progress, should_stop=stop_hook)
            if stopped:
                break
            rows.append(row)
    if progress is not None:
        progress("sweep", 1.0, {})
    return rows


def sweep_cell(zoo: Zoo, base_config: ClozeConfig, mask_ratio: float, bottleneck: int, seed: int | None = None,
               progress=None, should_stop=None) -> dict:  # fmt: skip
    """One sweep cell: an embedder with this mask ratio, bottleneck and seed, probed on the held-out seeds -> a row."""
    seed = base_config.seed if seed is None else int(seed)
    config = replace(base_config, mask_ratio=mask_ratio, bottleneck=bottleneck, seed=seed)
    t = time.perf_counter()
    embedder = train_embedder(zoo, config, progress=progress, should_stop=should_stop)
    p = probe_all(embed(embedder, zoo, seed=EMBED_SEED), zoo.task_ids, zoo.is_train, config.seed)
    return json_safe({
        "mask_ratio": mask_ratio, "bottleneck": bottleneck, "seed": seed, "linear_accuracy": p["linear_accuracy"],
        "knn_accuracy": p["knn_accuracy"], "nmi": p["nmi"], "cloze_r2": embedder.cloze_r2_,
        "n_held_out": int((~zoo.is_train).sum()), "seconds": round(time.perf_counter() - t, 2),
    })  # fmt: skip
