"""Interpscope: ``streamlit run app.py``. Shell only: engine link, sidebar, navigation."""

from __future__ import annotations

import pandas  # noqa: F401  (before any page: plotly imports it lazily, and two script threads racing that import fail a rerun)
import streamlit as st

from components import shell, state, tour_bar

st.set_page_config(page_title="Interpscope", page_icon="🔬", layout="wide")
shell.refuse_foreign_host()  # DNS rebinding: only the app's own host names are served
state.init()
link = shell.connect()
st.session_state["capabilities"] = shell.sidebar(link)
pages = [
    st.Page("views/prompt.py", title="Prompt", icon=":material/text_fields:", default=True),
    st.Page("views/attention.py", title="Attention", icon=":material/grid_view:"),
    st.Page("views/logit_lens.py", title="Logit lens", icon=":material/layers:"),
    st.Page("views/dla.py", title="Direct logit attribution", icon=":material/bar_chart:"),
    st.Page("views/graph.py", title="Attribution graph", icon=":material/account_tree:"),
    st.Page("views/latents.py", title="SAE latents", icon=":material/scatter_plot:"),
    st.Page("views/steering.py", title="Steering", icon=":material/tune:"),
    st.Page("views/probes.py", title="Probes", icon=":material/insights:"),
    st.Page("views/directions.py", title="Directions", icon=":material/north_east:"),
    st.Page("views/tour.py", title="Tours", icon=":material/tour:"),
]
pages.insert(-1, st.Page("views/diff.py", title="Diff", icon=":material/compare_arrows:"))
nav = st.navigation(pages)
tour_bar.show(pages, nav)
state.write_url()
with shell.engine_errors():  # whatever a page leaves unhandled: a banner, never a traceback
    nav.run()
