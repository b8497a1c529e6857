"""Tours: the guided tour of the demo organism (and any tour in assets/tours), warm and start."""

from __future__ import annotations

import streamlit as st

from components import shell, state, tour, tour_bar, warm

link = shell.engine_link()
pages = st.session_state["tour_pages"]
st.title("Tours")
st.caption(
    "A tour is an ordered list of views, each a link. Step with ← / → or the buttons in the bar "
    "at the top; presenter mode gives large fonts and hides the sidebar. Warm a tour before a "
    "lecture: every step then renders from the engine's cache."
)

for tour_id in tour.available():
    try:
        t = tour.load(tour_id)
    except tour.TourError as e:
        st.error(str(e))
        continue
    box = st.container(border=True)
    box.subheader(t.title)
    box.markdown(t.description)
    box.markdown(
        "\n".join(f"{i + 1}. **{s.title}** ({tour.split_url(s.url)[0] or 'prompt'}): {s.note}"
                  for i, s in enumerate(t.steps))
    )  # fmt: skip
    row = box.container(horizontal=True)
    warm_it = row.button("Warm up", icon=":material/local_fire_department:", key=f"warm_{tour_id}")
    start = row.button("Start", type="primary", icon=":material/play_arrow:", key=f"go_{tour_id}")
    present = row.button("Start in presenter mode", icon=":material/slideshow:",
                         key=f"present_{tour_id}")  # fmt: skip
    if warm_it:
        bar = box.progress(0.0, text="Warming: running every step once…")
        failed, seen = [], 0
        for r in warm.warm(tour_id, link.url, link.token):
            seen += 1
            if not r["ok"]:
                failed.append(f"step {r['step'] + 1} ({r['title']}): {r['error']}")
            bar.progress((r["step"] + 1) / r["n"],
                         text=f"Step {r['step'] + 1}/{r['n']} {r['title']}: {r['seconds']:.1f} s")  # fmt: skip
        if seen < len(t.steps):
            failed.append(f"the warm-up stopped after {seen} steps (see {warm.LOG_DIR})")
        if failed:
            box.warning("Some steps did not render: " + "; ".join(failed))
        else:
            box.success("Warm: every step now renders from the engine's cache.")
    if start or present:
        if present:
            state.put(present=1)
        tour_bar.go(tour_id, 0, pages)
