"""Interpscope: ``streamlit run app.py``. Shell only: engine link, sidebar, navigation."""

from __future__ import annotations

import streamlit as st

from components import shell, state

st.set_page_config(page_title="Interpscope", page_icon=":material/biotech:", layout="wide")
state.init()
link = shell.connect()
st.session_state["capabilities"] = shell.sidebar(link)
pages = [st.Page("pages/prompt.py", title="Prompt", icon=":material/text_fields:", default=True)]
nav = st.navigation(pages)
state.write_url()
nav.run()
