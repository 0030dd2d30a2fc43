"""The first page a user sees (Family, with the demo run) imports none of the heavy libraries it does not draw with.

Cold start is mostly imports (benchmarks/app_speed.py; `python -X importtime`): torch ~1.4 s CPU, pandas ~0.3 s,
sklearn + umap + numba ~2-4 s on this machine. Those belong to the pages that use them (training, gradients,
tables, projections) and to the UMAP warm-up thread (sidebar.warm_up, off in this test). The demo run is read
as numpy (store.load_run(lazy=True)): its torch zoo and embedder are built when a page first uses them.
This guards that design without a clock: a fresh interpreter runs the app's first script run and lists what
got imported, so a new module-level import in a module the first page touches fails here instead of silently
slowing every start.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFERRED = ("torch", "pandas", "sklearn", "umap", "numba", "pynndescent", "scipy")  # top-level packages the first page must not load

FIRST_RUN = """
import json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=240)
at.run()
print(json.dumps({"exceptions": [str(e.value) for e in at.exception],
                  "charts": len(at.get("plotly_chart")),
                  "titles": [t.value for t in at.title],
                  "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def test_first_page_imports_no_deferred_library():
    env = {**os.environ, "NETEMBED_WARM_UMAP": "0", "NETEMBED_RUNS_DIR": str(ROOT / "no-such-runs-dir")}
    done = subprocess.run([sys.executable, "-c", FIRST_RUN, str(ROOT / "app" / "main.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["exceptions"] == []
    assert "Family of target functions" in result["titles"] and result["charts"] >= 1  # the page really drew
    assert "plotly" in result["modules"]  # the check sees the page's imports (plotly draws its chart)
    loaded = sorted(set(DEFERRED) & set(result["modules"]))
    assert loaded == [], f"the first page imported {loaded}: import them inside the functions that need them"
