"""The dashboard in a real browser, shared by the browser tests (tests/test_browser.py) and the scripts that
photograph or time it (benchmarks/inside_screenshot.py, app_speed.py, sweep_heatmap_png.py).

`dashboard(runs_dir)` runs `streamlit run app/main.py` on a free loopback port as a subprocess and
yields its URL once /_stcore/health answers; `launch_chromium(playwright)` starts Debian's chromium
(Playwright's own browser download is not reachable here) with --no-sandbox, which running as root
needs. Importable as `benchmarks.browser` from the repository root (pytest's pythonpath, python -m).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dashboard(runs_dir, start_timeout_s: float = 120) -> Iterator[str]:
    """The app on a free loopback port, its runs in `runs_dir`, without the UMAP warm-up; yields its URL.

    The server's output goes to a temporary file (a pipe nobody reads could fill and stall it during a long
    session); its tail is the error when the server exits or does not answer within start_timeout_s.
    """
    port = free_port()
    env = {**os.environ, "NETEMBED_WARM_UMAP": "0", "NETEMBED_RUNS_DIR": str(runs_dir)}
    cmd = [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false"]  # fmt: skip
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + start_timeout_s  # a loaded machine may take a while
            while True:
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.time() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"streamlit did not start: {log.read().decode(errors='replace')[-2000:]}")
                time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def launch_chromium(playwright):
    """Debian's chromium under Playwright (a playwright.sync_api Browser); a clear error when it is missing."""
    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
