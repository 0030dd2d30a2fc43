"""Each bad input on the command line: a non-zero exit, one line naming the setting, nothing written."""

import subprocess
import sys

import pytest

from netembed.cli import main
from netembed.store import Run, save_run

from random_zoo import random_run_parts

TINY = ["--functions", "2", "--models-per-function", "2", "--width", "8", "--steps", "60", "--batch-size", "32"]

BAD = [
    # zero or negative counts
    (["zoo", "--functions", "0"], "n_functions"),
    (["zoo", "--functions", "-2"], "n_functions"),
    (["zoo", "--models-per-function", "0"], "models_per_function"),
    (["zoo", "--models-per-function", "1"], "models_per_function"),
    (["zoo", "--width", "0"], "width"),
    (["zoo", "--depth", "0"], "depth"),
    (["zoo", "--steps", "-1"], "steps"),
    (["zoo", "--batch-size", "0"], "batch_size"),
    (["run", "--n-inputs", "0"], "n_inputs"),
    (["run", "--embed-steps", "-5"], "--embed-steps"),
    (["run", "--embed-batch", "0"], "--embed-batch"),
    # degree outside 1..8
    (["zoo", "--degree", "0"], "degree_min"),
    (["zoo", "--degree", "9"], "degree_min"),
    (["zoo", "--degree", "2-9"], "degree_max"),
    (["zoo", "--degree", "5-3"], "degree_max"),
    (["zoo", "--degree", "three"], "--degree"),
    # mask ratio outside (0, 1)
    (["run", "--mask-ratio", "0"], "mask_ratio"),
    (["run", "--mask-ratio", "1"], "mask_ratio"),
    (["run", "--mask-ratio", "-0.1"], "mask_ratio"),
    (["run", "--mask-ratio", "1.5"], "mask_ratio"),
    (["sweep", "--mask-ratios", "0.5,0"], "--mask-ratios"),
    # bottleneck larger than the encoder
    (["run", "--bottleneck", "65"], "bottleneck"),
    (["run", "--d-model", "16", "--n-inputs", "8", "--bottleneck", "32"], "bottleneck"),
    (["sweep", "--bottlenecks", "2,999"], "--bottlenecks"),
    # more functions than the variety threshold allows
    (["zoo", "--functions", "3", "--degree", "1"], "n_functions"),
    (["zoo", "--functions", "50", "--degree", "2", "--min-distance", "8"], "n_functions"),
    # NaN / Inf anywhere
    (["zoo", "--lr", "nan"], "lr"),
    (["zoo", "--lr", "inf"], "lr"),
    (["zoo", "--min-distance", "nan"], "min_derivative_distance"),
    (["run", "--embed-lr", "-inf"], "--embed-lr"),
    (["run", "--mask-ratio", "nan"], "mask_ratio"),
    (["zoo", "--functions", "nan"], "--functions"),
    (["sweep", "--mask-ratios", "0.5,inf"], "mask_ratio"),
    # learning rates that are not learning rates
    (["zoo", "--lr", "0"], "lr"),
    (["zoo", "--lr", "-0.01"], "lr"),
    (["zoo", "--lr", "1e6"], "lr"),
    # flags and lists that do not parse
    (["zoo", "--no-such-flag"], "--no-such-flag"),
    (["sweep", "--mask-ratios", "0.5,abc"], "--mask-ratios"),
    (["sweep", "--bottlenecks", ","], "--bottlenecks"),
    (["zoo", "--activation", "sigmoid"], "--activation"),
    # too large for the machine
    (["zoo", "--functions", "1000", "--models-per-function", "100000"], "memory"),
    (["sweep", "--functions", "100", "--models-per-function", "100", "--width", "8", "--steps", "1000000"], "h at"),
]  # fmt: skip


def snapshot(root):
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    def call(argv):
        before = snapshot(tmp_path)
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse's own errors
            rc = e.code
        err = capsys.readouterr().err
        return rc, err, snapshot(tmp_path) == before

    return call


def assert_one_line_error(rc, err, expected):
    assert rc not in (0, None), err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, expected", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_writes_nothing(cli, tmp_path, argv, expected):
    needs_out = argv[0] in ("zoo", "run") and "--out" not in argv
    rc, err, unchanged = cli(argv + (["--out", str(tmp_path / "out")] if needs_out else []))
    assert_one_line_error(rc, err, expected)
    assert unchanged and not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["zoo", "run"])
def test_a_learning_rate_that_diverges_training_is_refused_and_not_saved(cli, tmp_path, command):
    # `run` must stop right after the zoo, before training an embedder on models that all blew up
    rc, err, unchanged = cli([command, *TINY, "--lr", "10", "--out", str(tmp_path / "out")])
    assert_one_line_error(rc, err, "lr 10 made training diverge")
    assert unchanged


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"NETEMBED_MAX_MEMORY_MB": "1"}, "NETEMBED_MAX_MEMORY_MB"),
        ({"NETEMBED_MAX_HOURS": "0.000001"}, "NETEMBED_MAX_HOURS"),
        ({"NETEMBED_MAX_MEMORY_MB": "lots"}, "NETEMBED_MAX_MEMORY_MB"),
        ({"NETEMBED_GFLOPS": "-1"}, "NETEMBED_GFLOPS"),
    ],
)
def test_resource_limits_come_from_the_environment(cli, tmp_path, monkeypatch, env, expected):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    rc, err, unchanged = cli(["zoo", "--out", str(tmp_path / "out")])
    assert_one_line_error(rc, err, expected)
    assert unchanged


def test_bad_run_folders_are_one_line(cli, tmp_path):
    (tmp_path / "notes.txt").write_text("not a run")
    family, zoo = random_run_parts()
    folder = save_run(Run(family=family, zoo=zoo), tmp_path / "r")
    data = (folder / "zoo.safetensors").read_bytes()
    (folder / "zoo.safetensors").write_bytes(data[:100])
    for argv, expected in [
        (["inspect", str(tmp_path / "missing")], "no such run"),
        (["inspect", str(tmp_path / "notes.txt")], "not a run folder"),
        (["inspect", str(tmp_path / "r")], "zoo.safetensors"),
        (["inspect", str(tmp_path)], "unexpected file"),
        (["zoo", *TINY, "--out", str(tmp_path / "notes.txt")], "not a run folder"),  # never replaced
        (["run", *TINY, "--from-zoo", str(tmp_path / "r"), "--out", str(tmp_path / "o")], "zoo.safetensors"),
    ]:
        rc, err, unchanged = cli(argv)
        assert_one_line_error(rc, err, expected)
        assert unchanged, argv
    assert (tmp_path / "notes.txt").read_text() == "not a run"


def test_a_good_command_still_works_and_exits_zero(cli, tmp_path):
    rc, err, _ = cli(["zoo", *TINY, "--lr", "0.01", "--out", str(tmp_path / "out")])
    assert rc == 0, err
    assert (tmp_path / "out" / "meta.json").is_file()


def test_the_real_command_line_prints_no_traceback(tmp_path, child_env):
    """Through `python -m netembed`, as a user runs it: exit status and stderr as seen from outside."""
    p = subprocess.run([sys.executable, "-m", "netembed", "zoo", "--functions", "0", "--out", "x"],
                       capture_output=True, text=True, env=child_env, cwd=tmp_path, timeout=120)  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == ["error: n_functions must be in 1..1000, got 0 (--functions)"]
    assert list(tmp_path.iterdir()) == []


def test_an_unexpected_error_is_one_line_unless_asked_for_the_traceback(cli, monkeypatch, tmp_path):
    def boom(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("netembed.cli_zoo.make_family", boom)
    rc, err, _ = cli(["zoo", *TINY, "--out", str(tmp_path / "out")])
    assert rc == 1 and "unexpected ZeroDivisionError: a bug" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("NETEMBED_TRACEBACK", "1")
    with pytest.raises(ZeroDivisionError):
        main(["zoo", *TINY, "--out", str(tmp_path / "out")])
