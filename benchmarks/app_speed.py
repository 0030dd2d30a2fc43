"""The dashboard's responsiveness: cold start to the first chart, the UMAP view after warm-up, server memory.

    python -m benchmarks.app_speed            # prints a table and JSON
    python -m benchmarks.app_speed --compare 601840b --rounds 5   # cold start before/after, interleaved

Starts `streamlit run app/main.py` on a free loopback port (with the UMAP warm-up on, as a
user gets it), drives Debian's chromium with Playwright, and measures:
- cold start: from launching the server process to the first plotly chart on the first page;
- the first page in a new browser tab once the server is up (what a colleague opening a link sees);
- the Embeddings page switched to UMAP once the warm-up has finished;
- the server's resident memory (VmHWM, the peak) with the demo run loaded and every page visited.
Targets (issue 5): first page within 5 s, UMAP view after warm-up within 2 s, server < 1.5 GiB;
issue 14: cold start within 3 s.

--compare REV measures only the cold start and the new tab, with git revision REV's app (exported
with `git archive` to a temporary folder) and with this tree's, interleaved over --rounds: the
medians and their ratio (the ratio is what to trust on a loaded machine). --compare bare puts a
minimal streamlit app with one small plotly chart in REV's place: what the framework and the
browser alone take on this machine.

--breakdown times the steps of a cold start (server listening, page loaded, websocket, script run, chart chunk,
chart drawn) for this app and for minimal apps without a chart, with a vega-lite chart and with a plotly chart,
interleaved over --rounds (benchmarks/app_timeline.py); its medians go to benchmarks/results/app_timeline.json.

--returning measures a returning browser, labelled as such: the same browser profile and port, the server
restarted, beside the same round's first visit (a cold start as above).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from benchmarks.browser import free_port, launch_chromium

ROOT = Path(__file__).resolve().parents[1]
PLOT = ".js-plotly-plot"


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far: what a loaded machine changes least."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


def first_chart_seconds(page, url: str, timeout_ms: int = 120_000) -> float:
    t = time.perf_counter()
    page.goto(url)
    page.wait_for_selector(PLOT, state="visible", timeout=timeout_ms)
    return time.perf_counter() - t


def open_when_listening(page, url: str, timeout_s: float = 60) -> None:
    """Load `url` in `page`, asking again every 0.1 s until the server answers, as a user pressing reload would."""
    deadline = time.time() + timeout_s
    while True:
        try:
            page.goto(url, timeout=2000)
            return
        except Exception:  # noqa: BLE001 - connection refused until the server listens
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def server_command(port: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true",
            "--server.port", str(port), "--server.address", "127.0.0.1"]  # fmt: skip


def cold_start(browser, code: Path, context=None, port: int | None = None) -> tuple[dict, subprocess.Popen, str]:
    """Start the app of `code` and wait for its first page's chart; the server keeps running (returned).

    By default in new browser contexts (an empty cache) on a new port (a new origin); `context` and `port` reuse
    them (returning_start)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "NETEMBED_RUNS_DIR": str(Path("/tmp/netembed-bench-runs"))}
    out = {}
    started = time.perf_counter()
    server = subprocess.Popen(server_command(port), cwd=code, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        page = (context or browser).new_page(**({} if context else {"viewport": {"width": 1400, "height": 1000}}))
        open_when_listening(page, url)
        page.wait_for_selector(PLOT, state="visible", timeout=120_000)
        out["cold_start_to_first_chart_s"] = time.perf_counter() - started
        out["server_cpu_to_first_chart_s"] = cpu_seconds(server.pid)
        out["new_tab_first_chart_s"] = first_chart_seconds((context or browser).new_page(), url)
    except BaseException:
        stop(server)
        raise
    return out, server, url


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    server.wait(10)


def main() -> dict:
    with sync_playwright() as p:
        browser = launch_chromium(p)
        out, server, url = cold_start(browser, ROOT)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            time.sleep(40)  # let the background UMAP warm-up (numba compile) finish
            page.goto(f"{url}/embeddings")
            page.wait_for_selector(PLOT, state="visible", timeout=120_000)
            t = time.perf_counter()
            page.get_by_text("UMAP", exact=True).click()
            page.wait_for_selector("text=UMAP of the embeddings", timeout=120_000)
            page.wait_for_selector(PLOT, state="visible", timeout=120_000)
            out["umap_view_after_warmup_s"] = time.perf_counter() - t
            for path in ("zoo", "gradients", "embedder", "sweep"):
                page.goto(f"{url}/{path}")
                page.wait_for_selector(PLOT, state="visible", timeout=120_000)
            out["server_peak_rss_mib"] = peak_rss_mib(server.pid)
        finally:
            stop(server)
            browser.close()
    out["load_average_1min"] = os.getloadavg()[0]
    return out


BARE = "bare"  # --compare bare: a minimal app instead of a git revision
BARE_APP = """import plotly.graph_objects as go
import streamlit as st

st.title("bare")
st.plotly_chart(go.Figure(go.Scatter(x=[0, 1, 2], y=[0, 1, 0])))
"""


def compare(rev: str, rounds: int) -> dict:
    """Cold start and new tab with revision `rev`'s app and with this tree's, interleaved: medians and ratios."""
    runs = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        if rev == BARE:  # the framework's own floor: streamlit drawing one small plotly chart
            (Path(tmp) / "app").mkdir()
            (Path(tmp) / "app" / "main.py").write_text(BARE_APP)
        else:
            archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        browser = launch_chromium(p)
        try:
            for i in range(rounds):
                for name, code in (("before", Path(tmp)), ("after", ROOT)):
                    try:
                        r, server, _ = cold_start(browser, code)
                    except Exception as e:  # noqa: BLE001 - a round lost to a stalled browser is said, not fatal
                        print(f"round {i + 1}/{rounds} {name}: failed ({str(e).splitlines()[0]})", flush=True)
                        continue
                    stop(server)
                    r["load_average_1min"] = os.getloadavg()[0]
                    runs[name].append(r)
                    print(f"round {i + 1}/{rounds} {name:6s} ({rev if name == 'before' else 'this tree'}): cold start "
                          f"{r['cold_start_to_first_chart_s']:.2f} s (server CPU {r['server_cpu_to_first_chart_s']:.2f} s), new tab {r['new_tab_first_chart_s']:.2f} s, "
                          f"load {r['load_average_1min']:.1f}", flush=True)  # fmt: skip
        finally:
            browser.close()
    out = {"rev": rev, "runs": runs}
    for key in ("cold_start_to_first_chart_s", "server_cpu_to_first_chart_s", "new_tab_first_chart_s"):
        med = {name: statistics.median(r[key] for r in rs) for name, rs in runs.items()}
        out[key] = {**{f"median_{n}": round(v, 2) for n, v in med.items()}, "ratio": round(med["before"] / med["after"], 2)}
    return out


def returning_start(rounds: int) -> dict:
    """A returning browser, labelled as such (not issue 14's measurement, which is cold_start's fresh browser):
    per round, one browser context (profile) and one port: a first visit (a cold start, as cold_start measures)
    fills its cache; the server is stopped and started again on the same port, and the same measurement is
    taken again, with the browser's cache (and the compiled code kept with it) from the first visit."""
    runs = {"first_visit": [], "returning": []}
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            for i in range(rounds):
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                port = free_port()
                try:
                    for name in runs:
                        r, server, _ = cold_start(browser, ROOT, context, port)
                        for page in context.pages:  # a closed tab would reconnect to the next server
                            page.close()
                        stop(server)
                        r["load_average_1min"] = os.getloadavg()[0]
                        runs[name].append(r)
                        print(f"round {i + 1}/{rounds} {name:11s}: to the first chart {r['cold_start_to_first_chart_s']:.2f} s "
                              f"(server CPU {r['server_cpu_to_first_chart_s']:.2f} s), load {r['load_average_1min']:.1f}",
                              flush=True)  # fmt: skip
                finally:
                    context.close()
        finally:
            browser.close()
    return {name: {"median_to_first_chart_s": round(statistics.median(r["cold_start_to_first_chart_s"] for r in rs), 2),
                   "median_load_average_1min": round(statistics.median(r["load_average_1min"] for r in rs), 2),
                   "runs": rs} for name, rs in runs.items()}  # fmt: skip


def print_result(result: dict) -> None:
    targets = {"cold_start_to_first_chart_s": 3.0, "new_tab_first_chart_s": 5.0, "umap_view_after_warmup_s": 2.0,
               "server_peak_rss_mib": 1536.0}  # fmt: skip
    for key, limit in targets.items():
        print(f"{key:32s} {result[key]:8.2f}   target <= {limit:g}: {'met' if result[key] <= limit else 'MISSED'}")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compare", metavar="REV", help="cold start only, with git revision REV's app and this tree's "
                        "('bare': a minimal streamlit app with one plotly chart, the framework's floor)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --compare (interleaved before/after), --breakdown or --returning")
    parser.add_argument("--breakdown", action="store_true", help="where the cold start goes: a timeline of this app "
                        "and of minimal apps (no chart, vega-lite, plotly), interleaved over --rounds "
                        "(benchmarks/app_timeline.py)")  # fmt: skip
    parser.add_argument("--returning", action="store_true", help="a returning browser (same profile and port, server "
                        "restarted) beside its first visit, over --rounds; not issue 14's fresh-browser measurement")  # fmt: skip
    args = parser.parse_args()
    if args.returning:
        print(json.dumps(returning_start(args.rounds), indent=1))
    elif args.breakdown:
        from benchmarks.app_timeline import breakdown

        result = breakdown(args.rounds)
        (ROOT / "benchmarks" / "results" / "app_timeline.json").write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result, indent=1))
    elif args.compare:
        print(json.dumps(compare(args.compare, args.rounds), indent=1))
    else:
        print_result(main())
