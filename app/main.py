"""The dashboard's entry point: `streamlit run app/main.py`. It only builds the navigation and the sidebar."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run` puts app/ on the path, not the repository root
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app import sidebar, state, widgets  # noqa: E402
from netembed.errors import USER_ERRORS  # noqa: E402

# a local file: a material icon or emoji as page_icon makes the browser fetch the favicon from the internet
st.set_page_config(page_title="netembed", page_icon=str(ROOT / "assets" / "favicon.png"), layout="wide")

pages = [
    st.Page("views/family.py", title="Family", icon=":material/function:", url_path="family", default=True),
    st.Page("views/zoo.py", title="Zoo", icon=":material/model_training:", url_path="zoo"),
    st.Page("views/gradients.py", title="Gradients", icon=":material/show_chart:", url_path="gradients"),
    st.Page("views/embedder.py", title="Embedder", icon=":material/psychology:", url_path="embedder"),
    st.Page("views/embeddings.py", title="Embeddings", icon=":material/scatter_plot:", url_path="embeddings"),
    st.Page("views/sweep.py", title="Sweep", icon=":material/grid_on:", url_path="sweep"),
    st.Page("views/compare.py", title="Compare runs", icon=":material/compare:", url_path="compare"),
    st.Page("views/inside.py", title="Inside a network", icon=":material/hub:", url_path="inside"),
]
page = st.navigation(pages)
for new in state.collect_finished():  # results of jobs that ended since the last run join the history here
    st.toast(f"{new.made_by.capitalize()} finished: {new.name}. Open it from the sidebar.", icon=":material/check:")
widgets.carry_url()  # every setting this session holds stays in the URL, whichever page draws it
with st.sidebar:
    with st.container():  # one element each, whatever they hold: the later ones never shift (no stale copies)
        sidebar.run_picker()
    with st.container():
        sidebar.jobs_panel()
    sidebar.save_and_load()
if state.missing():
    st.error(state.missing_message(state.missing()), icon=":material/link_off:")
try:
    page.run()
except USER_ERRORS as e:  # pages catch these; this is the safety net
    st.error(str(e))
finally:  # once per server, after the first page is drawn: the warm-up would compete with it for the GIL
    sidebar.warm_up()
