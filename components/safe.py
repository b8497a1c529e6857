"""Text that did not come from our own code (latent labels, example texts, dataset, model and
SAE names, prompts, token strings, Neuronpedia text, error messages that quote a request), made
safe to show: ``h`` for HTML we build, ``md`` for Streamlit markdown (``st.markdown``,
``st.caption``, ``st.subheader``, ...), which would otherwise render a label's
``![x](http://...)`` as an image fetched from the network, or its ``[x](...)`` as a link,
and ``plot_text`` for plotly text (titles, tick labels, hover text, annotations, legend names, cell
text), where plotly renders ``<a href>``, ``<span style>``, ``<b>``, ``<br>`` and a few more.
"""

from __future__ import annotations

import html
import re

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=])")


def h(text: object) -> str:
    """`text` as HTML text (quotes included, so it is safe in attributes too), on one line:
    line breaks as character references, so HTML given to ``st.markdown`` stays one HTML block
    (a blank line would end it and the rest would be read as markdown, ``![x](http://...)``
    fetching an image)."""
    escaped = html.escape(str(text), quote=True)
    return escaped.replace("\r", "&#13;").replace("\n", "&#10;")


def md(text: object) -> str:
    """`text` as literal markdown text: every markdown character escaped, on one line."""
    one_line = re.sub(r"[\r\n]+", " ", str(text))
    return _MD_SPECIAL.sub(r"\\\1", one_line)


def plot_text(text: object) -> str:
    """`text` as plotly text: ``<``, ``>`` and ``&`` as entities, which plotly shows as typed
    (it turns ``&lt;`` ``&gt;`` ``&amp;`` back into characters after reading its tags). Escape
    after truncating, so no entity is cut in half; join our own ``<br>`` after escaping."""
    return html.escape(str(text), quote=False)


def code_comment(text: object) -> str:
    """`text` for a ``#`` comment in generated Python (a bundle's snippet.py): on one line, so
    a label with a line break cannot put code after the comment (``x\nimport os; ...``)."""
    return " ".join(str(text).replace("\x00", "").splitlines())
