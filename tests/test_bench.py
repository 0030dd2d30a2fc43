"""`python -m netembed bench --quick` writes every table, key and file it promises, with finite in-range numbers."""

import json
import math

import pytest

from netembed.bench import FUNCTION_SCORES, PARAMETER_SCORES, QUICK_SUITE, SEED_SCORES, Study, check_suite
from netembed.cli import main
from netembed.config import ClozeConfig, FamilyConfig, ZooConfig
from netembed.protocols import PROTOCOLS

# Scores bounded to [0, 1]; R^2 may be any number <= 1 (negative on unseen functions), MSE any number >= 0.
BOUNDED = {"linear_accuracy", "knn_accuracy", "nmi", "retrieval_at_5", "one_shot", "five_shot"}


def check_score(key: str, value) -> None:
    if value is None:
        return  # n/a: the markdown says why (checked below)
    assert math.isfinite(value), (key, value)
    if key in BOUNDED:
        assert 0.0 <= value <= 1.0, (key, value)
    elif key.endswith("r2"):
        assert value <= 1.0, (key, value)
    elif key.endswith("mse"):
        assert value >= 0.0, (key, value)


@pytest.fixture(scope="module")
def quick_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    # two seeds (not the default three) keep the test under a minute or two; std needs at least two
    assert main(["bench", "--quick", "--seeds", "0,1", "--out", str(out)]) == 0
    return out


def test_bench_quick_writes_json_markdown_and_png(quick_bench):
    bench = json.loads((quick_bench / "bench.json").read_text())
    assert {"command", "date", "machine", "executor", "seeds", "studies"} <= set(bench)
    assert bench["seeds"] == [0, 1] and set(bench["studies"]) == {s.name for s in QUICK_SUITE}
    for name, study in bench["studies"].items():
        assert set(study["summary"]) == set(PROTOCOLS), name
        assert len(study["per_seed"]) == 2
        for scores in study["summary"]["seeds"].values():
            assert set(scores) == set(SEED_SCORES)
            for key, v in scores.items():
                assert v is None or v["n"] == 2 and v["std"] >= 0
                check_score(key, None if v is None else v["mean"])
        for scores in study["summary"]["functions"].values():
            assert set(scores) == set(FUNCTION_SCORES)
            for key, v in scores.items():
                check_score(key, None if v is None else v["mean"])
        assert "cloze" in study["summary"]["functions"] and "raw_gradients_pca" in study["summary"]["functions"]
        for desc, per_param in study["summary"]["parameters"].items():
            assert set(per_param) == set(study["parameter_names"]), (name, desc)
            for values in per_param.values():
                for key in PARAMETER_SCORES:
                    check_score(key, None if values[key] is None else values[key]["mean"])
        assert "supervised_mlp" in study["summary"]["parameters"]
    sines = bench["studies"]["sines"]["summary"]["parameters"]["cloze"]
    assert sines["c"]["r2"] is None and sines["a"]["r2"] is not None  # the shared phase is n/a, a is scored
    md = (quick_bench / "bench.md").read_text()
    for name in bench["studies"]:
        assert f"## {name}" in md
    assert md.count("### held-out seeds") == md.count("### held-out functions") == md.count("### parameter regression") == 2
    assert "n/a (constant)" in md and "n/a (constant): the parameter is the same" in md  # the reason is spelled out
    assert "nan" not in md.lower().replace("nmi", "")
    png = (quick_bench / "bench.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_the_readme_headline_table_reads_every_study_and_protocol_of_a_bench_run(quick_bench):
    from benchmarks.bench_headlines import DESCRIPTIONS, table

    bench = json.loads((quick_bench / "bench.json").read_text())
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in table([quick_bench / "bench.json"]).splitlines()
            if line.startswith("| ") and ":" in line}  # fmt: skip
    for name, study in bench["studies"].items():
        cloze = study["summary"]["functions"]["cloze"]["retrieval_at_5"]
        assert rows[f"{name}: functions, retrieval_at_5"][DESCRIPTIONS.index("cloze")] == f"{cloze['mean']:.3f} ± {cloze['std']:.3f}"
        assert f"{name}: seeds, linear_accuracy" in rows and f"{name}: functions, one_shot" in rows
    assert "sines: parameters, ridge R² a" in rows and "sines: parameters, ridge R² c" not in rows  # c is constant
    assert "polynomials: parameters, ridge R² c1" in rows


def test_bench_refuses_a_study_too_small_for_its_protocols():
    tiny = Study("tiny", FamilyConfig(n_functions=3), ZooConfig(models_per_function=2), ClozeConfig(), n_unseen=2)
    with pytest.raises(ValueError, match="tiny: .*at least 6 models of unseen functions"):
        check_suite([tiny])


def test_bench_rejects_an_unknown_study_in_one_line(tmp_path, capsys):
    assert main(["bench", "--quick", "--studies", "nope", "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert "--studies: no study nope" in err and len(err.splitlines()) == 1
