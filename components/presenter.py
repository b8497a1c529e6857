"""Presenter mode for lectures: large fonts, high contrast, no sidebar or Streamlit chrome.

One switch (``present=1`` in the URL, or the toggle in the top bar) turns it on for every
page; figures switch to the presenter template (``components.theme``), and download buttons
are left out. The CSS is a pure function so tests can check what it hides.
"""

from __future__ import annotations

import streamlit as st

from components import state

HIDDEN = (
    '[data-testid="stSidebar"]',
    '[data-testid="stSidebarCollapsedControl"]',
    '[data-testid="stExpandSidebarButton"]',
    '[data-testid="stHeader"]',
    '[data-testid="stToolbar"]',
    '[data-testid="stDecoration"]',
    '[data-testid="stStatusWidget"]',
    '[data-testid="stMainMenu"]',
    "footer",
)
ROOT_FONT_PX = 22  # Streamlit sizes text in rem: this scales every widget and heading


def active() -> bool:
    return bool(state.get("present"))


def css(root_font_px: int = ROOT_FONT_PX) -> str:
    """The presenter stylesheet: chrome hidden, root font enlarged, black on white."""
    hidden = ",\n".join(HIDDEN)
    return f"""<style>
{hidden} {{ display: none !important; }}
html {{ font-size: {root_font_px}px; }}
.stApp, .stApp p, .stApp li, .stApp label, .stApp span {{ color: #000; }}
.stApp {{ background: #fff; }}
.stApp [data-testid="stCaptionContainer"] {{ color: #222; }}
.stApp a {{ color: #0033cc; text-decoration: underline; }}
.block-container, [data-testid="stMainBlockContainer"] {{
  padding-top: 1.2rem !important; max-width: 100% !important;
}}
.stApp button {{ border: 2px solid #000 !important; }}
</style>"""


def inject() -> None:
    """Apply presenter mode to this page when it is on."""
    if active():
        st.html(css())


def toggle(container=None) -> None:
    """The one control: a toggle that flips presenter mode (kept in the URL as present=1)."""

    def changed() -> None:
        state.put(present=1 if st.session_state["w_present"] else None)

    st.session_state["w_present"] = active()
    (container or st).toggle(
        "Presenter mode",
        key="w_present",
        on_change=changed,
        help="Large fonts, high contrast, no sidebar: for lectures (URL: present=1)",
    )
