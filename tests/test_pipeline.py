import json

import numpy as np
import pytest

from netembed.cli import main
from netembed.config import ClozeConfig, FamilyConfig, ZooConfig
from netembed.pipeline import embeddings, projection, run_pipeline, run_sweep
from netembed.store import load_run

TINY = ["--functions", "3", "--models-per-function", "5", "--width", "8", "--steps", "60", "--batch-size", "64",
        "--embed-steps", "8", "--d-model", "16", "--layers", "1", "--n-inputs", "16"]  # fmt: skip
PROBE_KEYS = ("linear_accuracy", "knn_accuracy", "nmi")
DESCRIPTIONS = ("cloze", "raw_gradients", "outputs", "weights", "weight_stats", "supervised")


def test_run_command_writes_a_report_with_every_key(tmp_path, capsys):
    assert main(["run", *TINY, "--out", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert set(report["config"]) >= {"family", "zoo", "cloze"}
    assert report["config"]["cloze"]["steps"] == 8 and report["config"]["family"]["n_functions"] == 3
    assert {"fit_mse_median", "n_failed"} <= set(report["zoo"])
    assert "cloze_r2" in report["embedder"]
    for name in DESCRIPTIONS:
        for key in PROBE_KEYS:
            value = report["probes"][name][key]
            assert value is None or 0.0 <= value <= 1.0, (name, key, value)
    assert {"family", "zoo", "embedder", "probes_and_baselines", "projections", "total"} <= set(report["seconds"])
    run = load_run(tmp_path / "r")
    assert run.report == report
    assert embeddings(run).shape == (15, 4) and projection(run, "pca").shape == (15, 2)
    assert "cloze" in capsys.readouterr().out


def test_run_command_rejects_bad_settings_in_one_line(tmp_path, capsys):
    assert main(["run", *TINY, "--mask-ratio", "1.5", "--out", str(tmp_path / "r")]) == 2
    assert "mask_ratio" in capsys.readouterr().err and not (tmp_path / "r").exists()


# How the thresholds below were chosen. This exact config was run on a 2-core AMD EPYC under load for
# zoo/embedder seeds 0-19 with the C kernel and 0-11 with autograd (1 torch thread), and seeds 0-1
# with 2 threads on each engine: 36 runs. Per run, over 12 held-out models: linear probe mean 0.89
# (sd 0.09, min 0.667), kNN mean 0.87 (sd 0.10, min 0.667). The engine and the thread count change a
# given seed's result by one or two models (seed 1, kNN: kernel 1.0, autograd 0.833, autograd with
# 2 threads 0.667), just as another CPU does: an Intel Xeon got kNN 0.667 on the old single-seed,
# >= 0.75 test, a value seen here too. So the test asserts the behaviour over three seeds: their mean
# beats chance (1/3) at least twice over (worst mean of any 3 of the 20 kernel seeds: 0.72 linear,
# 0.75 kNN; a 3-seed mean has sd ~0.055 around 0.87, so 0.667 is ~3.6 sd below), and no single seed
# falls to 1.5x chance (0.5; worst seen 0.667, over 3.5 sd below the per-run mean).
PROBE_SEEDS = (0, 1, 2)
MEAN_OVER_CHANCE = 2.0
EACH_OVER_CHANCE = 1.5


def cloze_probe_run(seed: int):
    """Three functions whose derivatives differ a lot; the embedder never sees a label. 12 held-out models."""
    return run_pipeline(
        FamilyConfig(n_functions=3, degree_min=2, degree_max=4, min_derivative_distance=2.0, seed=4),
        ZooConfig(models_per_function=8, width=16, steps=300, batch_size=128, train_fraction=0.5, seed=seed),
        ClozeConfig(steps=200, d_model=32, n_heads=2, n_layers=1, n_inputs=32, models_per_batch=12, lr=4e-3, seed=seed),
        projections=("pca",),
    )


def test_probe_on_the_cloze_embedding_beats_chance_widely_on_clearly_different_functions():
    runs = [cloze_probe_run(seed) for seed in PROBE_SEEDS]
    probes = [run.report["probes"]["cloze"] for run in runs]
    chance = probes[0]["chance"]
    assert chance == pytest.approx(1 / 3)
    for key in ("linear_accuracy", "knn_accuracy"):
        scores = [p[key] for p in probes]
        assert np.mean(scores) >= MEAN_OVER_CHANCE * chance, (key, scores)
        assert min(scores) >= EACH_OVER_CHANCE * chance, (key, scores)
    # Same functions, other weights: the embedding must not move (measured: at most 2.4e-6 relative
    # over the 36 runs above, so 1e-3 leaves 400x), the weights must (measured: at least 1.58).
    for run in runs:
        inv = run.report["invariance"]
        assert inv["embedding_max_change_relative"] < 1e-3 < inv["weights_relative_change"]


def test_sweep_trains_one_embedder_per_pair(tiny_zoo, tiny_family):
    seen = []
    base = ClozeConfig(steps=4, d_model=16, n_heads=2, n_layers=1, n_inputs=16)
    rows = run_sweep(tiny_zoo, tiny_family, [0.25, 0.5], [2, 3], base, progress=lambda s, f, i: seen.append(f))
    assert [(r["mask_ratio"], r["bottleneck"]) for r in rows] == [(0.25, 2), (0.25, 3), (0.5, 2), (0.5, 3)]
    assert all({"linear_accuracy", "knn_accuracy", "nmi", "cloze_r2"} <= set(r) for r in rows)
    assert seen[-1] == 1.0 and np.all(np.diff(seen) >= 0)


def test_sweep_command_prints_a_table(tmp_path, capsys):
    args = ["sweep", *TINY, "--mask-ratios", "0.5", "--bottlenecks", "2,3", "--out", str(tmp_path / "s")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "linear_accuracy" in out and len(json.loads((tmp_path / "s" / "sweep.json").read_text())["rows"]) == 2


def test_run_with_protocols_reports_held_out_functions_and_parameter_regression(tmp_path, capsys):
    """--protocols seeds,functions,parameters adds report["protocols"] and keeps every existing key."""
    argv = ["run", *TINY, "--functions", "6", "--models-per-function", "4", "--protocols", "seeds,functions,parameters"]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert {"probes", "embedder", "zoo", "projections"} <= set(report)
    protocols = report["protocols"]
    assert len(protocols["split"]["unseen"]) == 2 and len(protocols["split"]["seen"]) == 4
    for name in DESCRIPTIONS:
        scores = protocols["functions"][name]
        assert set(scores) == {"retrieval_at_5", "nmi", "one_shot", "five_shot"}
        assert 0.0 <= scores["retrieval_at_5"] <= 1.0 and scores["five_shot"] is None  # 4 seeds: no 5-shot
        for param in ("c0", "c1", "c2", "c3", "c4"):
            assert {"r2", "mse"} <= set(protocols["parameters"][name][param])
    assert "held-out functions" in capsys.readouterr().out


def test_run_without_protocols_flag_keeps_the_report_as_before(tmp_path):
    assert main(["run", *TINY, "--out", str(tmp_path / "r")]) == 0
    assert "protocols" not in json.loads((tmp_path / "r" / "report.json").read_text())


def test_run_refuses_unknown_protocols_in_one_line(tmp_path, capsys):
    assert main(["run", *TINY, "--protocols", "seeds,bogus", "--out", str(tmp_path / "r")]) != 0
    assert "--protocols must be" in capsys.readouterr().err
