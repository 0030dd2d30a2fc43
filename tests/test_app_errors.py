"""Bad input in the dashboard: hostile links, impossible settings, oversized jobs -> a message, never a traceback."""


import pytest
from streamlit.testing.v1 import AppTest

from app_session import MAIN, PAGES, TIMEOUT

pytestmark = pytest.mark.usefixtures("private_runs_folder")

KEYS = ["fam_k", "fam_degree", "fam_sampling", "fam_distance", "fam_seed", "zoo_m", "zoo_width", "zoo_depth",
        "zoo_act", "zoo_steps", "zoo_lr", "zoo_seed", "emb_bottleneck", "emb_mask", "emb_unit", "emb_steps",
        "emb_seed", "sw_ratios", "sw_bottlenecks", "sw_steps", "sw_metric", "run"]  # fmt: skip
HOSTILE = {
    "zero_and_negative": "0",
    "negative": "-5",
    "nan": "nan",
    "inf": "inf",
    "overflow": "1e309",
    "huge": "99999999999999999999",
    "text": "../../etc/passwd",
    "ranges": "9-1",
    "long": "x" * 5000,
}


def shown(at: AppTest, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_hostile_link_falls_back_or_explains_on_every_page(value, private_runs_folder):
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT)
    for key in KEYS:
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    for page in PAGES:
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert at.title, page
    assert not private_runs_folder.exists()


def family_then_zoo(at: AppTest, **family) -> AppTest:
    at.switch_page("views/family.py").run()
    for key, value in family.items():
        widget = at.slider(key=key) if key == "fam_degree" else at.radio(key=key) if key == "fam_kind" else at.number_input(key=key)
        widget.set_value(value)
    at.run()
    return at


def test_more_functions_than_the_variety_allows_is_a_message(private_runs_folder):
    at = family_then_zoo(AppTest.from_file(MAIN, default_timeout=TIMEOUT), fam_kind="polynomials", fam_k=3,
                         fam_degree=(1, 1))  # the demo is sines: the variety limit is the polynomials' (fmt: skip)
    assert not at.exception
    assert any("at most 2" in e and "n_functions" in e for e in shown(at, "error")), shown(at, "error")


def test_an_oversized_zoo_is_refused_with_its_estimate_and_starts_nothing(monkeypatch, private_runs_folder):
    monkeypatch.setenv("NETEMBED_MAX_MEMORY_MB", "1")
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("views/zoo.py").run()
    next(b for b in at.button if b.label == "Train zoo").click().run()
    assert not at.exception, [e.value for e in at.exception]
    errors = shown(at, "error")
    assert any("needs about" in e and "NETEMBED_MAX_MEMORY_MB" in e for e in errors), errors
    assert "zoo" not in at.session_state["ne"]["jobs"]
    assert not private_runs_folder.exists()
