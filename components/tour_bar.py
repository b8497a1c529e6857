"""The top bar of every page: tour stepping (buttons and arrow keys), presenter toggle, and
the first-run welcome that offers the built-in tour.

``show(pages, current)`` runs in app.py before the page: it applies presenter mode, draws the
bar when a tour is on (or presenter mode is on), else puts the presenter toggle in the
sidebar, and greets a new visitor (a session that opened the app with no view state in its
URL) on the default page. Deep links never see the welcome.
"""

from __future__ import annotations

import streamlit as st

from components import presenter, state, tour

Pages = dict[str, st.Page]


def page_map(pages: list) -> Pages:
    """Page path -> page; ``""`` is the default page."""
    return {p.url_path: p for p in pages}


def go(tour_id: str, step: int, pages: Pages) -> None:
    """Show step `step` of tour `tour_id`: load its view state and switch to its page."""
    t = tour.load(tour_id)
    step = tour.clamp_step(t, step)
    path, query = tour.split_url(t.steps[step].url)
    if path not in pages:
        st.error(f"Tour step {step + 1} names a page that is not here: {path!r}.")
        return
    state.load(query)
    state.put(tour=tour_id, step=step)
    st.switch_page(pages[path])


def end() -> None:
    state.put(tour=None, step=None)


def show(pages: list, current) -> None:
    presenter.inject()
    where = st.session_state["tour_pages"] = page_map(pages)
    tour_id = state.get("tour")
    if tour_id:
        try:
            _bar(tour.load(tour_id), tour_id, where)
        except tour.TourError as e:
            st.warning(str(e), icon=":material/tour:")
            end()
    elif presenter.active():
        presenter.toggle(st.container(horizontal=True, horizontal_alignment="right"))
    else:
        presenter.toggle(st.sidebar)
        if getattr(current, "url_path", None) == "" and _is_new_visitor():
            _welcome(where)


def _bar(t: tour.Tour, tour_id: str, pages: Pages) -> None:
    step = tour.clamp_step(t, state.get("step"))
    n = len(t.steps)
    row = st.container(horizontal=True, vertical_alignment="center", key="tour_bar")
    prev = row.button("Previous", icon=":material/arrow_back:", shortcut="Left",
                      disabled=step == 0, key="tour_prev")  # fmt: skip
    row.markdown(f"Step {step + 1}/{n} · **{t.steps[step].title}**", width="content")
    nxt = row.button("Next", icon=":material/arrow_forward:", shortcut="Right",
                     disabled=step == n - 1, type="primary", key="tour_next")  # fmt: skip
    stop = row.button("End tour", icon=":material/close:", key="tour_end")
    presenter.toggle(row)
    if t.steps[step].note:
        st.info(t.steps[step].note, icon=":material/tour:")
    if prev or nxt:
        go(tour_id, step + (1 if nxt else -1), pages)
    if stop:
        end()
        st.rerun()


def _is_new_visitor() -> bool:
    return (
        bool(st.session_state.get("fresh_visit"))
        and not st.session_state.get("welcome_done")
        and state.get("prompt") == state.DEFAULT_PROMPT
    )


def _welcome(pages: Pages) -> None:
    box = st.container(border=True, key="welcome")
    box.markdown(
        "**Welcome to Interpscope.** New here? A short guided tour walks through the demo "
        "model: an induction head, indirect-object identification, where a fact is looked up, "
        "and steering. Use ← and → (or the buttons) to step; every step is a link you can share."
    )
    row = box.container(horizontal=True)
    if row.button("Start the tour", type="primary", icon=":material/tour:", key="welcome_go"):
        st.session_state["welcome_done"] = True
        go(tour.DEFAULT_TOUR, 0, pages)
    if row.button("Not now", key="welcome_skip"):
        st.session_state["welcome_done"] = True
        st.rerun()
