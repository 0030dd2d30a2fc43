"""The README picture of the "Inside a network" page: the plain digits MLP's units, trained from the page.

    python -m benchmarks.inside_screenshot [--out assets/screenshots/inside.png] [--embed-steps 300]

Starts the dashboard on a free port, drives Debian's chromium with Playwright (--no-sandbox),
chooses the plain 10-class MLP, trains it and the embedder from the page, and saves the part
from the units scatter to the units grouped once they are drawn.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    from playwright.sync_api import expect, sync_playwright

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshots" / "inside.png")
    p.add_argument("--embed-steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    port = free_port()
    env = {**os.environ, "NETEMBED_WARM_UMAP": "0", "NETEMBED_RUNS_DIR": tempfile.mkdtemp(prefix="inside-runs-")}
    cmd = [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true", "--server.port",
           str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false"]  # fmt: skip
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise RuntimeError("streamlit did not start")
            time.sleep(0.5)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 3200})  # tall: streamlit scrolls inside
            page.goto(f"{url}/inside?inside_embed_steps={a.embed_steps}&inside_seed={a.seed}")
            expect(page.get_by_role("heading", name="Inside a network")).to_be_visible(timeout=120_000)
            page.get_by_text("plain 10-class MLP").click()
            time.sleep(2)
            page.get_by_role("button", name="Train network and embedder").click()
            expect(page.get_by_role("heading", name="The units grouped")).to_be_visible(timeout=1_800_000)
            page.wait_for_function("""() => [...document.querySelectorAll('.js-plotly-plot')].every(
                p => p._fullLayout !== undefined && p.querySelector('svg.main-svg'))""", timeout=120_000)  # fmt: skip
            time.sleep(2)
            a.out.parent.mkdir(parents=True, exist_ok=True)
            plots = page.locator(".js-plotly-plot")
            top = plots.nth(1).bounding_box()  # 0 is the live training chart; 1 the units scatter
            bottom = plots.nth(plots.count() - 1).bounding_box()  # the units grouped
            clip = {"x": 0, "y": top["y"] - 60, "width": 1400, "height": bottom["y"] + bottom["height"] - top["y"] + 70}
            page.screenshot(path=str(a.out), clip=clip, full_page=True)
            browser.close()
        print(f"saved {a.out}")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
