"""The first page a user sees (Home, with the demo run) imports none of the heavy libraries, and draws no chart; the
Family page, the study's first step, imports none it does not draw with.

Cold start is mostly imports (benchmarks/app_speed.py; `python -X importtime`): torch ~1.4 s CPU, pandas ~0.3 s,
sklearn + umap + numba ~2-4 s on this machine. Those belong to the pages that use them (training, gradients,
tables, projections) and to the UMAP warm-up thread (sidebar.warm_up, off in this test). The demo run is read
as numpy (store.load_run(lazy=True)): its torch zoo and embedder are built when a page first uses them.
Home draws no chart because plotly's 4.7 MB chunk alone costs the browser ~1.1 s of a cold start (README).
This guards that design without a clock: a fresh interpreter runs the app's first script run, then the Family
page, and lists what got imported, so a new module-level import in a module either page touches fails here
instead of silently slowing every start.
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

def seen(at):
    return {"exceptions": [str(e.value) for e in at.exception], "charts": len(at.get("plotly_chart")),
            "titles": [t.value for t in at.title], "modules": sorted({m.split(".")[0] for m in sys.modules})}

at = AppTest.from_file(sys.argv[1], default_timeout=240)
at.run()
home = seen(at)
at.switch_page("views/family.py").run()
print(json.dumps({"home": home, "family": seen(at)}))
"""


def test_the_first_pages_import_no_deferred_library():
    env = {**os.environ, "NETEMBED_WARM_UMAP": "0", "NETEMBED_RUNS_DIR": str(ROOT / "no-such-runs-dir")}
    done = subprocess.run([sys.executable, "-c", FIRST_RUN, str(ROOT / "app" / "main.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    home, family = result["home"], result["family"]
    assert home["exceptions"] == [] and family["exceptions"] == []
    assert home["titles"] == ["netembed"] and home["charts"] == 0  # Home drew, and drew no chart
    loaded = sorted(set(DEFERRED) & set(home["modules"]))
    assert loaded == [], f"Home imported {loaded}: import them inside the functions that need them"
    assert "Family of target functions" in family["titles"] and family["charts"] >= 1  # the page really drew
    assert "plotly" in family["modules"]  # the check sees the page's imports (plotly draws its chart)
    loaded = sorted(set(DEFERRED) & set(family["modules"]))
    assert loaded == [], f"the Family page imported {loaded}: import them inside the functions that need them"
