"""The Zoo page trains mixed-architecture zoos as `python -m netembed zoo --architectures` does.

Tiny configs (2 functions x 2 seeds, 60 steps, width 8); jobs are waited for with job.wait, never timed.
"""

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from netembed.cli import main
from netembed.cli_flags import flag_of
from netembed.config import FamilyConfig, ZooConfig, specs
from netembed.store import load_run

from app_session import MAIN, SETTLE, TIMEOUT, fresh, settle, visit

pytestmark = pytest.mark.usefixtures("private_runs_folder")
ARCHS = "8x1:relu,8x1:sine,8x2:relu,8x2:sine"  # widths [8] x depths [1, 2] x activations [relu, sine]


def choose_mixed(at: AppTest, steps: int = 60) -> AppTest:
    """Family K = 2; on the Zoo page: several architectures, widths 8, depths 1 and 2, relu and sine."""
    visit(at, "family")
    at.number_input(key="fam_k").set_value(2).run()
    visit(at, "zoo")
    at.toggle(key="zoo_mixed").set_value(True).run()
    at.pills(key="zoo_widths").set_value([8])
    at.pills(key="zoo_depths").set_value([1, 2])
    at.pills(key="zoo_acts").set_value(["sine", "relu"])  # picked in any order: the declared order in the zoo
    at.number_input(key="zoo_m").set_value(2)
    at.number_input(key="zoo_steps").set_value(steps).run()
    assert not at.error, [e.value for e in at.error]
    return at


def train(at: AppTest):
    next(b for b in at.button if b.label.startswith("Train zoo")).click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at.session_state["ne"]["jobs"]["zoo"]


def open_newest(at: AppTest):
    entry = at.session_state["ne"]["history"].newest_first()[0]
    at.selectbox(key="run").set_value(entry.id).run()
    return entry


def frame_with(at: AppTest, column: str):
    """The table that has `column` (AppTest does not expose a dataframe's key)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def cli_flags(family: FamilyConfig, zoo: ZooConfig) -> list[str]:
    """The command-line flags for these configs (every declared flag; width/depth/activation come from
    --architectures; --seed is shared, so the family's and the zoo's seed must agree)."""
    assert family.seed == zoo.seed
    args = ["--degree", f"{family.degree_min}-{family.degree_max}"]
    for cls, config in ((FamilyConfig, family), (ZooConfig, zoo)):
        for s in specs(cls):
            if s["cli"] and flag_of(s) not in ("--degree", "--width", "--depth", "--activation") + tuple(args):
                args += [flag_of(s), str(getattr(config, s["name"]))]
    return args


def test_a_mixed_zoo_trained_in_the_app_equals_the_clis(tmp_path):
    at = choose_mixed(fresh())
    assert any(f"--architectures {ARCHS}" in c.value for c in at.caption), [c.value for c in at.caption]
    job = train(at)
    settle(at, job)
    assert job.state == "done", job.error
    assert job.total == 4 * 60 and job.step == 4 * 60, "the job's step counts through every part"
    entry = open_newest(at)
    assert "4 archs" in entry.name
    app_run = entry.run

    out = tmp_path / "cli"
    assert main(["zoo", *cli_flags(app_run.family.config, app_run.zoo.config), "--architectures", ARCHS,
                 "--out", str(out)]) == 0  # fmt: skip
    cli_run = load_run(out)
    assert cli_run.family.config == app_run.family.config
    assert app_run.zoo.labels == cli_run.zoo.labels == ARCHS.split(",")
    for mine, theirs in zip(app_run.zoo.parts, cli_run.zoo.parts):
        assert mine.config == theirs.config
        assert mine.steps_done == theirs.steps_done == 60
        for (w1, b1), (w2, b2) in zip(mine.layers, theirs.layers):  # same engine, seeds and draws: equal
            assert torch.equal(w1, w2) and torch.equal(b1, b2)
        np.testing.assert_array_equal(mine.fit_mse, theirs.fit_mse)

    # the page shows the models by architecture: the fit of each, and every model with its architecture
    visit(at, "zoo")
    per_arch = frame_with(at, "median fit MSE (output units²)")
    assert list(per_arch.architecture) == ARCHS.split(",")
    assert list(per_arch.models) == [4, 4, 4, 4]
    for row, part in zip(per_arch.itertuples(index=False), app_run.zoo.parts):
        assert row[per_arch.columns.get_loc("median fit MSE (output units²)")] == pytest.approx(np.median(part.fit_mse))
    arch_col = "architecture (width x depth: activation)"
    table = frame_with(at, arch_col)
    assert list(table[arch_col]) == list(app_run.zoo.architectures)
    at.multiselect(key="zoo_filter_arch").set_value(["8x2:sine"]).run()
    shown = frame_with(at, arch_col)
    assert len(shown) == 4 and set(shown[arch_col]) == {"8x2:sine"}
    assert at.query_params.get("zoo_filter_arch") in ("8x2:sine", ["8x2:sine"])


def test_a_link_keeps_the_architectures_chosen():
    at = choose_mixed(fresh())
    link = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert link["zoo_mixed"] == "1" and link["zoo_widths"] == "8" and link["zoo_depths"] == "1,2"
    assert link["zoo_acts"] == "sine,relu"
    other = AppTest.from_file(MAIN, default_timeout=TIMEOUT)  # a colleague opens the link
    for k, v in link.items():
        other.query_params[k] = v
    other.run()
    visit(other, "zoo")
    assert other.toggle(key="zoo_mixed").value is True
    assert other.pills(key="zoo_widths").value == [8]
    assert other.pills(key="zoo_depths").value == [1, 2]
    assert other.pills(key="zoo_acts").value == ["sine", "relu"]
    assert any(f"--architectures {ARCHS}" in c.value for c in other.caption)


def test_a_width_outside_the_declared_bounds_in_a_link_falls_back_and_an_empty_choice_is_explained():
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT)
    at.query_params["zoo_mixed"] = "1"
    at.query_params["zoo_widths"] = "8,99999"  # 99999 is not offered (nor within width's declared 1..4096)
    at.run()
    visit(at, "zoo")
    assert at.pills(key="zoo_widths").value == [16, 32], "a bad link falls back to the defaults"
    at.pills(key="zoo_acts").set_value([]).run()
    assert [e.value for e in at.error] == ["choose at least one activation for the mixed zoo"]
    assert not any(b.label.startswith("Train zoo") for b in at.button), "nothing to train without an activation"


def test_cancelling_a_mixed_zoo_stops_every_part_at_once():
    at = choose_mixed(fresh(), steps=1_000_000)
    job = train(at)
    while job.step == 0 and job.running:
        job.wait(0.05)
    at.button(key="cancel_zoo").click().run()
    reached = job.step  # read after the cancel: any later step saw it
    assert job.wait(SETTLE) and job.state == "cancelled"
    zoo = job.result
    assert zoo.labels == ["8x1:relu"], "the parts after the cancelled one are not trained"
    assert zoo.steps_done <= reached + 1, "the trainer asks should_stop after every step"
    assert zoo.log_steps[-1] == zoo.steps_done, "the partial logging window is kept"


def test_embedder_and_sweep_pages_train_on_one_architecture_of_a_mixed_zoo():
    at = choose_mixed(fresh())
    settle(at, train(at))
    open_newest(at)
    visit(at, "sweep")
    assert at.selectbox(key="sw_arch").options == ARCHS.split(",")
    visit(at, "embedder")
    assert any("mixes 4 architectures" in c.value for c in at.caption)
    at.selectbox(key="emb_arch").set_value("8x2:relu")
    at.number_input(key="emb_steps").set_value(20).run()
    next(b for b in at.button if b.label.startswith("Train embedder")).click().run()
    job = at.session_state["ne"]["jobs"]["embedder"]
    settle(at, job)
    assert job.state == "done", job.error
    assert job.result.zoo.config.width == 8 and job.result.zoo.config.depth == 2
    assert job.result.zoo.n_models == 4 and not hasattr(job.result.zoo, "parts")
    open_newest(at)
    for page in ("embeddings", "gradients", "zoo"):
        visit(at, page)
        assert not at.error, (page, [e.value for e in at.error])
