"""A latent's panel in Streamlit: label (shipped, or Neuronpedia's when it can be had), facts,
activation on the prompt, top-activating examples, histogram and logit effect.

``show_latent_panel(detail, ...)`` draws it from one ``latent_detail`` result (any view can call
it, e.g. the Graph view for a transcoder latent:
``client.analyze("latent_detail", prompt, source="transcoder", layer=L, index=i)``).
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from components import latent_figures as lf
from components import widgets
from components.safe import md
from engine.schemas.saes import LatentDetailResult, NeuronpediaLabel


def show_latent_panel(
    detail: LatentDetailResult,
    *,
    key: str,
    neuronpedia: Callable[[], NeuronpediaLabel] | None = None,
    figures: bool = True,
) -> None:
    """Draw the panel. `neuronpedia()` fetches the online label (raises on failure); it is
    only called when the latent has a Neuronpedia page."""
    parts = lf.panel_parts(detail)
    st.markdown(f"#### {parts['title_md']}")
    st.html(parts["label_html"])  # escaped: labels come from SAE directories and Neuronpedia
    st.caption(parts["facts_md"])
    if parts["neuronpedia_url"]:
        _neuronpedia(parts["neuronpedia_url"], neuronpedia, key)
    tokens = [t.text for t in detail.tokens]
    st.markdown("**On this prompt**")
    st.html(lf.colored_tokens_html(tokens, detail.acts))
    st.html(parts["examples_over_html"])
    if detail.examples:
        st.html(parts["examples_html"])
    else:
        st.caption("No examples yet: compute them over a text file below.")
    if not figures:
        return
    left, right = st.columns(2)
    params = {"latent": f"{detail.key}#{detail.index}"}
    with left:
        widgets.figure(parts["logit_figure"], name=f"{key}_logit_effect", params=params)
    with right:
        if parts["histogram_figure"] is not None:
            widgets.figure(parts["histogram_figure"], name=f"{key}_histogram", params=params)


def _neuronpedia(url: str, fetch: Callable[[], NeuronpediaLabel] | None, key: str) -> None:
    st.link_button("Open on Neuronpedia", url)
    if fetch is None:
        return
    if st.toggle("Neuronpedia label (online)", key=f"{key}_np"):
        try:
            got = fetch()
        except Exception as e:  # offline / no key: say so, keep the shipped label
            st.caption(f"Neuronpedia label unavailable: {md(getattr(e, 'message', e))}")
            return
        st.markdown(f"Neuronpedia: **{md(got.text or got.message)}**"
                    + (" (cached)" if got.cached else ""))  # fmt: skip
