"""The "Inside a network" page under AppTest: empty, then a tiny network and embedder trained from the page."""

import pytest

from app_session import fresh, visit

pytestmark = pytest.mark.usefixtures("private_runs_folder")


def train_tiny(at, network: str):
    visit(at, "inside")
    at.radio(key="inside_network").set_value(network).run()  # the other network's settings are disabled
    if network == "planted":
        at.number_input(key="inside_modules").set_value(2)
        at.number_input(key="inside_width").set_value(4)
    else:
        at.number_input(key="inside_plain_width").set_value(8)
    at.number_input(key="inside_net_steps").set_value(30)
    at.number_input(key="inside_embed_steps").set_value(5)
    at.number_input(key="inside_d_model").set_value(16).run()
    at.button(key="inside_train").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = at.session_state["ne"]["jobs"]["units"]
    assert job.wait(240), "the tiny units study should finish within 4 minutes on a loaded 2-core machine"
    assert job.state == "done", job.error
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def subheaders(at) -> list[str]:
    return [s.value for s in at.subheader]


def test_page_renders_empty_then_with_planted_modules():
    at = visit(fresh(), "inside")
    assert not at.error and at.title[0].value == "Inside a network"
    assert any("Nothing trained yet" in i.value for i in at.info)
    train_tiny(at, "planted")
    assert "How well each description finds the planted modules" in subheaders(at)
    table = at.dataframe[-1].value  # the scores table (AppTest does not carry a dataframe's key)
    assert "cloze embedding" in list(table["description"])
    at.selectbox(key="inside_unit").set_value(5).run()  # what a click on the scatter sets
    assert not at.exception
    assert "Unit 5 (layer 0)" in subheaders(at)


def test_page_shows_the_plain_mlp_without_ground_truth():
    at = train_tiny(fresh(), "plain")
    assert "The units grouped" in subheaders(at)
    assert "How well each description finds the planted modules" not in subheaders(at)
