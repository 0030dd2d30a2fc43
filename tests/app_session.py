"""What the AppTest files share: the entry file, the pages, a fresh session, a page visit, waiting for a job.

Pages import torch, so the timeout is raised well above AppTest's 3 s default. Each test file
uses conftest's `private_runs_folder` for every test (pytestmark).
"""

from pathlib import Path

from streamlit.testing.v1 import AppTest

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
PAGES = ["family", "zoo", "gradients", "embedder", "embeddings", "sweep", "compare"]
TIMEOUT = 60
SETTLE = 120  # seconds a tiny job may take on a loaded 2-core machine


def fresh() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def visit(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def settle(at: AppTest, job) -> AppTest:
    """Wait for a background job (a tiny one), then rerun the page so it shows the result."""
    assert job.wait(SETTLE), "a tiny job should end within two minutes"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at
