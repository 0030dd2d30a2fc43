"""One declaration per setting: every flag and widget is derived from config.setting, and errors name the right flag.

The flag test walks the real argparse parsers, so a flag added later (declared or explicit)
is covered, or the test says which flag has no bad value to try.
"""

import dataclasses
import re

import pytest
from streamlit.testing.v1 import AppTest

import app.state
from netembed.cli import build_parser, main
from netembed.cli_errors import OneLineParser
from netembed.cli_flags import add_config_flags, built, config_from_args, flag_of, flags_of
from netembed.config import (
    SWEEP_BOTTLENECKS,
    SWEEP_MASK_RATIOS,
    ClozeConfig,
    ConfigError,
    FamilyConfig,
    MixedZooConfig,
    ZooConfig,
    check_fields,
    setting,
    specs,
)
from netembed.digits import UnitsConfig
from netembed.store import Run
from netembed.unit_cloze import UnitEmbedConfig

from app_session import MAIN, TIMEOUT, visit
from random_zoo import random_run_parts

CONFIGS = (FamilyConfig, ZooConfig, ClozeConfig, MixedZooConfig, UnitsConfig, UnitEmbedConfig)


def subcommands() -> dict:
    parser = build_parser()
    return next(a for a in parser._actions if a.dest == "command").choices


def declared_bad_values(s: dict) -> list[str]:
    """Values the declaration `s` refuses: a wrong type, and just outside each bound; a choice not offered."""
    if s["kind"] is str:
        return ["no-such-choice"]
    lo = s["lo"] if s["open_lo"] else s["lo"] - 1
    bad = ["x", str(lo)]
    if s["hi"] is not None:
        bad.append(str(s["hi"] if s["open_hi"] else s["hi"] + 1))
    return bad


def explicit_bad_values(tmp_path) -> dict[str, list[str]]:
    """The command line's own flags (not config settings) and what each refuses."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a run")
    return {
        "--degree": ["three", "5-3", "2-9"],
        "--device": ["tpu"],
        "--threads": ["0", "x"],
        "--from-zoo": [str(tmp_path / "missing")],
        "--out": [str(a_file)],
        "--umap": ["=yes"],  # a switch takes no value: --umap=yes
        "--mask-ratios": ["abc", "0.5,0", ","],
        "--bottlenecks": ["x", "2,999"],
        "--executor": ["no-such-executor"],
        "--ray-address": ["not an address"],
        "--workers": ["0", "x"],
        "--shards": ["0", "x", "999"],
        "--shard-by": ["no-such-split"],
        "--protocols": ["bogus", ","],
        "--quick": ["=yes"],
        "--studies": ["nope"],
        "--seeds": ["x", ","],
        "--run": [str(tmp_path / "missing")],  # embed
        "--activation": ["no-such-activation"],
        "--input-range": ["x", "2,1"],
        ("embed", "--out"): [str(tmp_path)],  # embed writes a JSON file: a folder is what it refuses
        "--network": ["no-such-network"],  # units
        "--plain": ["=yes"],  # units: a switch
    }


def cases(tmp_path) -> list[tuple[str, str, str]]:
    """(command, flag, bad value) for every flag of every subcommand."""
    declared = {}
    for cls in CONFIGS:
        for s in specs(cls):
            if s["cli"]:
                declared.setdefault(flag_of(s), []).extend(declared_bad_values(s))
    explicit = explicit_bad_values(tmp_path)
    out = []
    for command, parser in subcommands().items():
        for action in parser._actions:
            for flag in action.option_strings:
                if flag in ("-h", "--help"):
                    continue
                bad = explicit.get((command, flag), explicit.get(flag, []) + declared.get(flag, []))
                assert bad, f"{command} {flag}: no bad value to try; declare the setting or add it to explicit_bad_values"
                out += [(command, flag, value) for value in dict.fromkeys(bad)]
    return out


def test_every_flag_of_every_subcommand_refuses_a_bad_value_in_one_line_naming_that_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tried = cases(tmp_path)
    assert len({(c, f) for c, f, _ in tried}) >= 60  # zoo, run and sweep each have 20+ flags
    for command, flag, value in tried:
        argv = [command, flag + value] if value.startswith("=") else [command, flag, value]
        if command in ("zoo", "run", "units") and flag != "--out":
            argv += ["--out", str(tmp_path / "out")]
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse's own errors (type, choice)
            rc = e.code
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), (argv, rc, err)
        named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", lines[0])) - {"--help"}
        assert named == {flag}, (argv, lines[0])
        assert not (tmp_path / "out").exists(), argv


@pytest.mark.parametrize(
    "argv, line",
    [
        (["zoo", "--lr", "1e6"], "error: lr must be in (0, 10], got 1e+06 (--lr)"),  # said --embed-lr before
        (["run", "--lr", "0"], "error: lr must be in (0, 10], got 0 (--lr)"),
        (["run", "--embed-lr", "0"], "error: lr must be in (0, 10], got 0 (--embed-lr)"),
        (["run", "--embed-steps", "-1"], "error: steps must be in 0..10000000, got -1 (--embed-steps)"),
        (["zoo", "--steps", "-1"], "error: steps must be in 0..10000000, got -1 (--steps)"),
        (["sweep", "--bottlenecks", "2,99"], "error: bottleneck must be in 1..64, got 99 (--bottlenecks)"),
        (["sweep", "--bottleneck", "99"], "error: bottleneck must be in 1..64, got 99 (--bottleneck)"),
    ],
)
def test_a_setting_in_two_configs_is_named_by_the_flag_of_the_command_run(tmp_path, capsys, argv, line):
    rc = main(argv + (["--out", str(tmp_path / "o")] if argv[0] != "sweep" else []))
    assert rc == 2 and capsys.readouterr().err.strip() == line


def test_flag_names_stay_those_users_know():
    """Today's flags keep working (new settings may add flags), and each command keeps to its configs."""
    flags = {c: {f for a in p._actions for f in a.option_strings} for c, p in subcommands().items()}
    known = {"--functions", "--degree", "--sampling", "--min-distance", "--seed", "--models-per-function", "--width",
             "--depth", "--activation", "--steps", "--batch-size", "--lr", "--device", "--out"}  # fmt: skip
    embedder = {"--bottleneck", "--mask-ratio", "--mask-unit", "--n-inputs", "--d-model", "--layers", "--embed-steps",
                "--embed-batch", "--embed-lr", "--embed-seed", "--from-zoo", "--threads"}  # fmt: skip
    cloze_flags = {flag_of(s) for s in specs(ClozeConfig) if s["cli"]}
    assert known <= flags["zoo"] and not flags["zoo"] & (embedder | cloze_flags)  # zoo has no embedder flags
    assert known | embedder | {"--umap"} <= flags["run"] and "--mask-ratios" not in flags["run"]
    assert known | embedder | {"--mask-ratios", "--bottlenecks"} <= flags["sweep"] and "--umap" not in flags["sweep"]


def test_the_sweep_grid_of_the_command_line_is_the_declared_one():
    a = build_parser().parse_args(["sweep"])
    assert a.mask_ratios == ",".join(map(str, SWEEP_MASK_RATIOS)) and a.bottlenecks == ",".join(map(str, SWEEP_BOTTLENECKS))


def test_cli_defaults_are_the_config_defaults():
    a = build_parser().parse_args(["run", "--out", "x"])
    from netembed.cli_run import cloze_config
    from netembed.cli_zoo import family_config, zoo_config

    assert (family_config(a), zoo_config(a), cloze_config(a)) == (FamilyConfig(), ZooConfig(), ClozeConfig())


# ---------------------------------------------------------------- a new setting needs no other edit


@dataclasses.dataclass(frozen=True)
class Toy:
    width: int = setting(8, "hidden units", lo=1, hi=64)
    rate: float = setting(0.5, "a rate", lo=0.0, hi=1.0, open_lo=True, flag="--toy-rate")
    kind: str = setting("a", "a kind", choices=("a", "b"))
    hidden: int = setting(3, "kept off the command line", lo=0, cli=False)

    def __post_init__(self):
        check_fields(self)


def toy_parser() -> OneLineParser:
    parser = OneLineParser(prog="toy")
    add_config_flags(parser.add_argument_group("toy"), Toy)
    return parser


def test_a_declared_setting_becomes_a_documented_validated_flag(capsys):
    text = " ".join(toy_parser().format_help().split())
    assert "--width INT hidden units; 1..64" in text and "--toy-rate FLOAT a rate; (0, 1]" in text
    assert "--kind {a,b} a kind" in text and "--hidden" not in text
    assert config_from_args(Toy, toy_parser().parse_args(["--width", "9", "--kind", "b"])) == Toy(width=9, kind="b")
    with pytest.raises(ConfigError, match=r"^rate must be in \(0, 1\], got 0 \(--toy-rate\)$"):
        built(lambda: config_from_args(Toy, toy_parser().parse_args(["--toy-rate", "0"])), flags_of(Toy))
    with pytest.raises(SystemExit):
        toy_parser().parse_args(["--kind", "c"])
    assert "argument --kind: invalid choice" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="hidden must be in >= 0, got -1"):
        Toy(hidden=-1)


def zoo_config_with_weight_decay():
    """ZooConfig plus one new setting, as a contributor would add it to config.py."""
    return dataclasses.make_dataclass(
        "ZooConfig", [("weight_decay", float, setting(0.0, "AdamW weight decay", lo=0.0, hi=1.0))],
        bases=(ZooConfig,), frozen=True)  # fmt: skip


def test_a_setting_added_to_a_config_reaches_the_real_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("netembed.cli_zoo.ZooConfig", zoo_config_with_weight_decay())
    zoo_help = subcommands()["zoo"].format_help()
    assert "--weight-decay" in zoo_help and "AdamW weight decay" in " ".join(zoo_help.split())
    assert main(["zoo", "--weight-decay", "2", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == "error: weight_decay must be in [0, 1], got 2 (--weight-decay)"


# ---------------------------------------------------------------- the app's widgets come from the same declarations


@pytest.fixture
def no_demo(monkeypatch, tmp_path, private_runs_folder):
    """A session with no run to take settings from, so every widget shows the declared default."""
    monkeypatch.setattr(app.state, "DEMO_DIR", tmp_path / "no-demo")
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def widget_values(at: AppTest) -> dict:
    return {w.key: w.value for kind in ("number_input", "slider", "selectbox", "multiselect") for w in getattr(at, kind)}


def with_a_run_without_embedder(at: AppTest) -> AppTest:
    family, zoo = random_run_parts()
    entry = at.session_state["ne"]["history"].add(Run(family=family, zoo=zoo), "random", "zoo")
    at.session_state["run"] = entry.id  # as the sidebar's Open button does
    at.run()
    assert not at.exception, at.exception
    return at


def test_app_widget_defaults_are_the_config_defaults(no_demo):
    f, z, c = FamilyConfig(), ZooConfig(), ClozeConfig()
    family = widget_values(visit(no_demo, "family"))
    assert family["fam_k"] == f.n_functions and family["fam_degree"] == (f.degree_min, f.degree_max)
    assert family["fam_sampling"] == f.sampling and family["fam_distance"] == f.min_derivative_distance
    assert family["fam_seed"] == f.seed and family["fam_max_tries"] == f.max_tries
    zoo = widget_values(visit(no_demo, "zoo"))
    expected = {"zoo_m": z.models_per_function, "zoo_width": z.width, "zoo_depth": z.depth, "zoo_act": z.activation,
                "zoo_steps": z.steps, "zoo_lr": z.lr, "zoo_seed": z.seed, "zoo_batch_size": z.batch_size,
                "zoo_train_fraction": z.train_fraction, "zoo_fail_relative_mse": z.fail_relative_mse}  # fmt: skip
    assert {k: zoo[k] for k in expected} == expected
    at = with_a_run_without_embedder(no_demo)
    emb = widget_values(visit(at, "embedder"))
    expected = {"emb_bottleneck": c.bottleneck, "emb_mask": c.mask_ratio, "emb_unit": c.mask_unit,
                "emb_steps": c.steps, "emb_seed": c.seed, "emb_n_inputs": c.n_inputs, "emb_d_model": c.d_model,
                "emb_n_heads": c.n_heads, "emb_n_layers": c.n_layers, "emb_models_per_batch": c.models_per_batch,
                "emb_lr": c.lr}  # fmt: skip
    assert {k: emb[k] for k in expected} == expected
    sweep = widget_values(visit(at, "sweep"))
    assert sweep["sw_ratios"] == list(SWEEP_MASK_RATIOS) and sweep["sw_bottlenecks"] == list(SWEEP_BOTTLENECKS)
    assert sweep["sw_steps"] == c.steps


def test_app_widgets_carry_the_declared_bounds_and_help(no_demo):
    visit(no_demo, "zoo")
    for s in specs(ZooConfig):
        key = {"models_per_function": "zoo_m", "activation": "zoo_act"}.get(s["name"], f"zoo_{s['name']}")
        if s["kind"] is str:
            assert no_demo.selectbox(key=key).options == list(s["choices"])
            continue
        w = no_demo.number_input(key=key)
        assert w.min == s["lo"] and w.max == s["hi"], s["name"]
        assert s["help"] in w.help, s["name"]


def test_a_setting_added_to_a_config_appears_in_the_app(no_demo, monkeypatch):
    monkeypatch.setattr("netembed.config.ZooConfig", zoo_config_with_weight_decay())
    visit(no_demo, "zoo")
    w = no_demo.number_input(key="zoo_weight_decay")
    assert w.value == 0.0 and (w.min, w.max) == (0.0, 1.0) and "AdamW weight decay" in w.help
