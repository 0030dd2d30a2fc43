"""Retake the README's dashboard pictures in assets/screenshots/ from the current code, in one command.

    python -m benchmarks.readme_screenshots [--out assets/screenshots]

The pictures are the ones the browser tests take (tests/test_browser.py: streamlit on a free port with a
temporary NETEMBED_RUNS_DIR and NETEMBED_WARM_UMAP=0, Debian's chromium driven by Playwright, every wait
on the page's own state, never a sleep). Running those two tests with $NETEMBED_SCREENSHOTS set keeps one
driver for both the checks and the pictures; this script runs them into a temporary folder and copies the
README's nine pictures over. inside.png has its own script (benchmarks/inside_screenshot.py) and
sweep_tradeoff.png is a chart, not a page (benchmarks/demo_tradeoff.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = [
    "tests/test_browser.py::test_every_page_shows_the_demo",  # family, zoo, gradients, embedder, embeddings, sweep
    "tests/test_browser.py::test_a_whole_study_loses_nothing_and_its_links_reopen_the_same_view",  # the other 3
]
README_PICTURES = ["landing", "family", "zoo", "gradients", "embedder", "embeddings", "sweep", "run-history",
                   "compare"]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshots")
    a = p.parse_args()
    taken = Path(tempfile.mkdtemp(prefix="readme-shots-"))
    env = {**os.environ, "NETEMBED_SCREENSHOTS": str(taken), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS]
    code = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    if code != 0:
        sys.exit(f"the browser tests failed (pytest exit {code}); nothing copied (pictures so far are in {taken})")
    missing = [name for name in README_PICTURES if not (taken / f"{name}.png").exists()]
    if missing:
        sys.exit(f"the browser tests did not take {', '.join(missing)}; nothing copied")
    a.out.mkdir(parents=True, exist_ok=True)
    for name in README_PICTURES:
        shutil.copyfile(taken / f"{name}.png", a.out / f"{name}.png")
        print(f"saved {a.out / f'{name}.png'}")


if __name__ == "__main__":
    main()
