"""Shared tiny fixtures: small configs so the whole suite stays fast."""

import os
from pathlib import Path

import pytest
import torch

# Tests run beside other processes: 1 thread is the predictable choice. NETEMBED_TEST_THREADS=2 runs the
# suite with 2 torch threads, to check that no assertion depends on the thread count.
torch.set_num_threads(int(os.environ.get("NETEMBED_TEST_THREADS", "1")))
# Without a GPU, the Triton step (netembed/zoo_triton.py) runs in Triton's interpreter, a mode Triton reads once,
# when first imported; torch's optimizers import it, so it is set before any test runs.
if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

from netembed.config import FamilyConfig, ZooConfig  # noqa: E402
from netembed.family import make_family  # noqa: E402
from netembed.zoo import train_zoo  # noqa: E402


@pytest.fixture(scope="session")
def tiny_family():
    return make_family(FamilyConfig(n_functions=3, seed=1))


@pytest.fixture(scope="session")
def tiny_zoo(tiny_family):
    return train_zoo(tiny_family, ZooConfig(models_per_function=4, width=16, steps=300, batch_size=128, seed=1))


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def child_env():
    """The environment for a `python -m netembed` / `python -c` child: the repository (found from this file, not
    from the working directory) first on its import path, as pyproject's `pythonpath` does for the tests."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + path if path else "")}


@pytest.fixture
def private_runs_folder(tmp_path, monkeypatch):
    """The app saves into this test's own runs folder; no UMAP warm-up (numba would hold the GIL for seconds)."""
    monkeypatch.setenv("NETEMBED_WARM_UMAP", "0")
    monkeypatch.setenv("NETEMBED_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"
