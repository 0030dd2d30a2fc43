"""The README picture of the "Inside a network" page: the plain digits MLP's units, trained from the page.

    python -m benchmarks.inside_screenshot [--out assets/screenshots/inside.png] [--embed-steps 300]

Starts the dashboard on a free port, drives Debian's chromium with Playwright (benchmarks/browser.py),
chooses the plain 10-class MLP, trains it and the embedder from the page, and saves the part
from the units scatter to the units grouped once they are drawn.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.browser import ROOT, dashboard, launch_chromium


def main() -> None:
    from playwright.sync_api import expect, sync_playwright

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshots" / "inside.png")
    p.add_argument("--embed-steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    with dashboard(tempfile.mkdtemp(prefix="inside-runs-")) as url, sync_playwright() as pw:
        browser = launch_chromium(pw)
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


if __name__ == "__main__":
    main()
