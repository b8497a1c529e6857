"""Text that did not come from our own code (latent labels, example texts, dataset, model and
SAE names, prompts, token strings, Neuronpedia text, error messages that quote a request), made
safe to show: ``h`` for HTML we build, ``md`` for Streamlit markdown (``st.markdown``,
``st.caption``, ``st.subheader``, ...), which would otherwise render a label's
``![x](http://...)`` as an image fetched from the network, or its ``[x](...)`` as a link.
"""

from __future__ import annotations

import html
import re

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=])")


def h(text: object) -> str:
    """`text` as HTML text (quotes included, so it is safe in attributes too)."""
    return html.escape(str(text), quote=True)


def md(text: object) -> str:
    """`text` as literal markdown text: every markdown character escaped, on one line."""
    one_line = re.sub(r"[\r\n]+", " ", str(text))
    return _MD_SPECIAL.sub(r"\\\1", one_line)
