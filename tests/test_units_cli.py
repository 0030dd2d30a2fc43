"""`python -m netembed units`: the folder and report.json it promises, on a tiny config, and its one-line errors."""

import json

import pytest

from netembed.cli import main
from netembed.unit_baselines import DESCRIPTIONS
from netembed.unit_store import load_units

TINY = ["--modules", "2", "--module-width", "4", "--net-steps", "40", "--embed-steps", "3", "--d-model", "16",
        "--n-inputs", "16", "--embed-batch", "8", "--n-base", "2", "--embed-inputs", "16"]  # fmt: skip


def test_units_writes_every_promised_key(tmp_path, capsys):
    out = tmp_path / "units"
    assert main(["units", *TINY, "--fine-tune-steps", "5", "--seed", "1", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["modules"]) == {"cloze", *DESCRIPTIONS}
    for name, scores in report["modules"].items():
        for key in ("nmi", "ari", "probe_accuracy"):
            assert isinstance(scores[key], float), (name, key)
        assert set(scores["layers"]) == {"layer0", "layer1"}
    assert report["network"]["kind"] == "planted" and report["network"]["off_block_fraction"] > 0
    assert report["config"]["units"]["fine_tune_steps"] == 5 and report["config"]["units"]["seed"] == 1
    run = load_units(out)  # the folder loads back (checksums, shapes)
    assert run.report == report and run.net.widths == [8, 8]
    assert "cloze" in capsys.readouterr().out


def test_units_plain_reports_only_what_exists(tmp_path):
    out = tmp_path / "plain"
    assert main(["units", *TINY, "--plain", "--plain-width", "8", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert "modules" not in report and report["network"]["kind"] == "plain"
    assert "off_block_fraction" not in report["network"] and report["n_units"] == 16


@pytest.mark.parametrize("flags, message", [
    (["--modules", "1"], "n_modules must be in 2..8, got 1 (--modules)"),
    (["--unit-input", "pixels"], "invalid choice"),
    (["--embed-steps", "-1"], "--embed-steps"),
])  # fmt: skip
def test_units_refuses_bad_flags_in_one_line(tmp_path, capsys, flags, message):
    if "choice" in message:  # argparse refuses a bad choice itself (exit 2)
        with pytest.raises(SystemExit):
            main(["units", *TINY, *flags, "--out", str(tmp_path / "x")])
    else:
        assert main(["units", *TINY, *flags, "--out", str(tmp_path / "x")]) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()

