"""The Sweep page's heatmap of a run as a PNG (the README's trade-off figure).

    python -m benchmarks.sweep_heatmap_png [RUN] [--metric coefficient_r2] [--out assets/screenshots/sweep_tradeoff.png]

The plotly figure (sweep_plots.sweep_figure, as the app draws it) is written as a self-contained
HTML page and photographed by Debian's chromium through Playwright (no network needed).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.browser import launch_chromium
from netembed.plots import PROBE_COLUMNS
from netembed.store import load_run
from netembed.sweep_plots import sweep_figure

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", default=str(ROOT / "assets" / "demo_run"))
    p.add_argument("--metric", default="coefficient_r2")
    p.add_argument("--out", default=str(ROOT / "assets" / "screenshots" / "sweep_tradeoff.png"))
    a = p.parse_args()
    rows = load_run(a.run).report["sweep"]
    title = f"{PROBE_COLUMNS.get(a.metric, a.metric)} on held-out seeds (demo run: 12 sines)"
    fig = sweep_figure(rows, a.metric, title=title)
    fig.update_layout(width=640, height=420)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        page_file = Path(tmp) / "heatmap.html"
        page_file.write_text(fig.to_html(include_plotlyjs=True, full_html=True))
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            page = browser.new_page(viewport={"width": 660, "height": 440})
            page.goto(page_file.as_uri())
            page.wait_for_selector(".main-svg")
            page.screenshot(path=a.out)
            browser.close()
    print(f"wrote {a.out}")
    for row in rows:
        print(f"mask {row['mask_ratio']:<5} bottleneck {row['bottleneck']:<3} " +
              "  ".join(f"{k} {row[k]:.3f}" for k in ("linear_accuracy", "knn_accuracy", "nmi", "coefficient_r2", "cloze_r2")
                        if row.get(k) is not None))  # fmt: skip


if __name__ == "__main__":
    main()
