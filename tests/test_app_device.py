"""The Zoo page's "Train on: CPU | GPU" (cluster_ui.device_ui): shown only where torch sees a GPU, and the choice
reaches the zoo job as its device (`--device cuda` on the command line). This machine has no GPU, so torch's
answer is faked and the job is recorded, then run on the CPU: what is tested is the page's plumbing; the GPU step
itself is tested in tests/test_zoo_triton.py (on an H200 when one was lent)."""

import pytest
import torch

import app.jobs

from app_session import fresh, settle, visit

pytestmark = pytest.mark.usefixtures("private_runs_folder")


def small_zoo(at):
    """A zoo of 2 functions x 2 seeds, 30 steps, on the Zoo page (the family from the Family page)."""
    at.number_input(key="fam_k").set_value(2).run()
    visit(at, "zoo")
    at.number_input(key="zoo_m").set_value(2)
    at.number_input(key="zoo_steps").set_value(30).run()
    return at


def test_without_a_gpu_the_page_offers_no_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    at = small_zoo(visit(fresh(), "family"))
    assert not [r for r in at.radio if r.key == "zoo_device"]


def test_with_a_gpu_the_chosen_device_reaches_the_zoo_job(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Test GPU")
    asked = []
    real = app.jobs.zoo_job

    def recording_zoo_job(family, config, device="cpu"):
        asked.append(device)
        return real(family, config, device="cpu")  # no GPU here: the job itself runs on the CPU

    monkeypatch.setattr(app.jobs, "zoo_job", recording_zoo_job)
    at = small_zoo(visit(fresh(), "family"))
    radio = next(r for r in at.radio if r.key == "zoo_device")
    assert radio.value == "cpu" and radio.options == ["CPU", "GPU (Test GPU)"]  # the CPU by default, as the CLI
    radio.set_value("cuda").run()
    next(b for b in at.button if b.label.startswith("Train zoo")).click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert asked == ["cuda"]
    settle(at, at.session_state["ne"]["jobs"]["zoo"])
    assert at.session_state["ne"]["jobs"]["zoo"].state == "done"
