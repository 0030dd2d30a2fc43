"""Where a cold start's seconds go: a timeline from launching the server to the first chart drawn, for this app
and for minimal streamlit apps (no chart, a vega-lite chart, a plotly chart), measured interleaved.

    python -m benchmarks.app_speed --breakdown --rounds 5

Every round is a cold start as benchmarks/app_speed.py measures it (a new server on a new port, a new browser
context: empty cache, new origin), with marks along the way, in seconds since the server process was launched:
- listening: the server accepts a TCP connection (a side thread tries every 10 ms);
- html / dom_ready / load: the page's navigation timing (the index.html response, DOMContentLoaded, load:
  Streamlit's main JS bundle fetched and run);
- ws_open: the browser's websocket to the server opened; first_delta: the first element of the script run
  arrived; chart_delta: the chart's element arrived (the script has drawn it); script_finished: the first script
  run ended on the server (the message's arrival in the browser);
- chart_chunk: the chart library's lazily loaded JS chunks fully received (PlotlyChart.*.js, ~4.7 MB; vega-lite's
  ArrowVegaLiteChart, loadVegaEmbed and embed chunks, ~0.8 MB);
- drawn: the first chart visible (what app_speed's cold start waits for; for the no-chart app, the title).
And, for the round: the server's CPU seconds, and the page renderer's from Chrome's Performance metrics
(ProcessTime: its CPU time; ScriptDuration: JS run), with the 1-minute load average.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from playwright.sync_api import sync_playwright
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from benchmarks.app_speed import cpu_seconds, open_when_listening, server_command
from benchmarks.browser import free_port, launch_chromium

ROOT = Path(__file__).resolve().parents[1]

BARE_APPS = {  # name: (app/main.py, the selector of what is drawn last)
    "bare-empty": ('import streamlit as st\n\nst.title("bare")\nst.write("no chart")\n', "h1"),
    "bare-vega": ('import streamlit as st\n\nst.title("bare")\nst.line_chart({"y": [0, 1, 0]})\n',
                  '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg'),
    "bare-plotly": ('import plotly.graph_objects as go\nimport streamlit as st\n\nst.title("bare")\n'
                    'st.plotly_chart(go.Figure(go.Scatter(x=[0, 1, 2], y=[0, 1, 0])))\n', ".js-plotly-plot"),
}  # fmt: skip
OURS_DRAWN = ".js-plotly-plot"  # this app's first page: the Family chart
CHUNKS = ("PlotlyChart", "ArrowVegaLiteChart", "loadVegaEmbed", "embed")  # the charts' lazily loaded JS chunks (name prefixes)
MARKS = ("listening", "html", "dom_ready", "load", "ws_open", "first_delta", "chart_delta", "script_finished",
         "chart_chunk", "drawn")  # fmt: skip


def wait_listening(port: int, started: float, marks: dict, stop: threading.Event) -> None:
    """Record when the server first accepts a connection on `port` (seconds since `started`)."""
    while not stop.is_set():
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                marks["listening"] = time.time() - started
                return
        time.sleep(0.01)


def on_frames(cdp, started: float, marks: dict) -> None:
    """Mark the websocket's opening, the first delta, the first chart delta and the script's end, at the times the
    browser received them (Chrome's own timestamps: Playwright's frame events reach Python later, by a varying
    delay on a loaded machine)."""
    clock: dict = {}  # Chrome's monotonic timestamps -> wall time, from a request's (timestamp, wallTime) pair

    def wall(timestamp: float) -> float:
        return clock["offset"] + timestamp - started

    def request(e):
        clock.setdefault("offset", e["wallTime"] - e["timestamp"])

    def opened(e):
        if "offset" in clock:
            marks.setdefault("ws_open", wall(e["timestamp"]))

    def frame(e):
        if e["response"]["opcode"] != 2 or "offset" not in clock:  # binary frames carry ForwardMsgs
            return
        msg = ForwardMsg.FromString(base64.b64decode(e["response"]["payloadData"]))
        kind, now = msg.WhichOneof("type"), wall(e["timestamp"])
        if kind == "delta":
            marks.setdefault("first_delta", now)
            element = msg.delta.new_element.WhichOneof("type") if msg.delta.HasField("new_element") else None
            if element in ("plotly_chart", "vega_lite_chart"):
                marks.setdefault("chart_delta", now)
        elif kind == "script_finished":
            marks.setdefault("script_finished", now)

    cdp.on("Network.requestWillBeSent", request)
    cdp.on("Network.webSocketHandshakeResponseReceived", opened)
    cdp.on("Network.webSocketFrameReceived", frame)
    cdp.send("Network.enable")


def timeline(browser, code: Path, drawn_selector: str) -> dict:
    """One cold start of the app in `code` (app/main.py), with its marks; see the module's docstring."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "NETEMBED_RUNS_DIR": "/tmp/netembed-bench-runs"}
    marks: dict = {}
    stop = threading.Event()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable")
    started = time.time()
    on_frames(cdp, started, marks)
    server = subprocess.Popen(server_command(port), cwd=code, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    threading.Thread(target=wait_listening, args=(port, started, marks, stop), daemon=True).start()
    try:
        open_when_listening(page, url)
        page.wait_for_selector(drawn_selector, state="visible", timeout=120_000)
        marks["drawn"] = time.time() - started
        server_cpu = cpu_seconds(server.pid)
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        timing = page.evaluate("""chunks => {
            const nav = performance.getEntriesByType('navigation')[0];
            const found = performance.getEntriesByType('resource').filter(r => chunks.some(c => r.name.includes('/' + c + '.')));
            return {origin: performance.timeOrigin, html: nav.responseEnd, dom_ready: nav.domContentLoadedEventEnd,
                    load: nav.loadEventEnd, chart_chunk: found.length ? Math.max(...found.map(r => r.responseEnd)) : null,
                    chunk_bytes: found.length ? found.reduce((n, r) => n + r.encodedBodySize, 0) : null};
        }""", list(CHUNKS))  # fmt: skip
    finally:
        stop.set()
        server.terminate()
        server.wait(10)
        context.close()
    origin = timing["origin"] / 1000 - started  # the browser's navigation start, in seconds since the launch
    for key in ("html", "dom_ready", "load", "chart_chunk"):
        if timing[key] is not None:
            marks[key] = origin + timing[key] / 1000
    return {"marks": marks, "launched_at": started, "server_cpu_s": server_cpu, "renderer_cpu_s": metrics.get("ProcessTime"),
            "renderer_script_s": metrics.get("ScriptDuration"),
            "chart_chunk_bytes": timing["chunk_bytes"], "load_average_1min": os.getloadavg()[0]}  # fmt: skip


def breakdown(rounds: int, variants: tuple[str, ...] = ("ours", *BARE_APPS)) -> dict:
    """The timelines of `variants` (this app and the bare apps), interleaved over `rounds`: per-mark medians."""
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        places = {"ours": (ROOT, OURS_DRAWN)}
        for name, (source, selector) in BARE_APPS.items():
            (Path(tmp) / name / "app").mkdir(parents=True)
            (Path(tmp) / name / "app" / "main.py").write_text(source)
            shutil.copytree(ROOT / ".streamlit", Path(tmp) / name / ".streamlit")  # the same server settings as ours
            places[name] = (Path(tmp) / name, selector)
        browser = launch_chromium(p)
        try:
            for i in range(rounds):
                for name in variants:
                    try:
                        r = timeline(browser, *places[name])
                    except Exception as e:  # noqa: BLE001 - a lost round is said, not fatal
                        print(f"round {i + 1}/{rounds} {name}: failed ({str(e).splitlines()[0]})", flush=True)
                        continue
                    runs[name].append(r)
                    print(f"round {i + 1}/{rounds} {name:11s} " + " ".join(
                        f"{k} {r['marks'][k]:.2f}" for k in MARKS if k in r["marks"]) +
                        f" | server CPU {r['server_cpu_s']:.2f} renderer CPU {r['renderer_cpu_s']:.2f} "
                        f"(JS {r['renderer_script_s']:.2f}) "
                        f"load {r['load_average_1min']:.1f}", flush=True)  # fmt: skip
        finally:
            browser.close()
    return {name: summary(rs) for name, rs in runs.items() if rs}


def summary(rs: list[dict]) -> dict:
    """Per-mark and per-measure medians over rounds `rs`."""
    out = {"rounds": len(rs), "marks_median_s": {}}
    for k in MARKS:
        values = [r["marks"][k] for r in rs if k in r["marks"]]
        if values:
            out["marks_median_s"][k] = round(statistics.median(values), 3)
    for k in ("server_cpu_s", "renderer_cpu_s", "renderer_script_s", "load_average_1min"):
        out[k + "_median"] = round(statistics.median(r[k] for r in rs), 3)
    out["chart_chunk_bytes"] = rs[0]["chart_chunk_bytes"]
    return out
