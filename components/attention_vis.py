"""circuitsvis ``AttentionHeads`` rendered offline, with the JavaScript bundled in the package.

``str()`` of a circuitsvis object imports from a CDN and ``.local_src`` inlines the 1.3 MB
bundle into every render. Here the bundle is copied once from the installed package into the
app's static folder (served by Streamlit at ``/app/static/``, cached by the browser), and the
HTML only refers to it; without static serving the bundle is inlined as a fallback.
"""

from __future__ import annotations

import html
import json
import shutil
from importlib.metadata import version
from pathlib import Path

import circuitsvis
import numpy as np

BUNDLE = Path(circuitsvis.__file__).parent / "dist" / "cdn" / "iife.js"
STATIC_URL = "/app/static/"


def bundle_name() -> str:
    return f"vendor/circuitsvis-{version('circuitsvis')}.js"


def install_bundle(static_dir: Path) -> str:
    """Copy the package's bundle into `static_dir` (once per version); its URL path."""
    dest = static_dir / bundle_name()
    if not dest.exists() or dest.stat().st_size != BUNDLE.stat().st_size:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".tmp")
        shutil.copyfile(BUNDLE, tmp)
        tmp.replace(dest)
    return STATIC_URL + bundle_name()


Patterns = list[list[list[float]]] | np.ndarray  # [head][query][key]


def _props(tokens: list[str], patterns: Patterns, names: list[str]) -> str:
    props = {
        "attention": np.round(np.asarray(patterns, dtype=np.float64), 4).tolist(),
        "tokens": tokens,
        "attentionHeadNames": names,
        "maskUpperTri": True,
    }
    # no "<" at all inside the <script>: a token like "</script><img ...>" or "<!--" stays data
    return json.dumps(props).replace("<", "\\u003c")


def attention_heads_html(
    tokens: list[str],
    patterns: Patterns,
    names: list[str],
    *,
    bundle_url: str | None,
) -> str:
    """A page rendering ``AttentionHeads``: `patterns` is [head][query][key].

    With `bundle_url` the page loads the bundle from there (``<script src>``); with None the
    bundle is inlined (1.3 MB), which works anywhere but costs that on every render."""
    if bundle_url:
        loader = f'<script src="{html.escape(bundle_url)}"></script>'
    else:
        loader = (
            "<script>" + BUNDLE.read_text(encoding="utf-8").replace("</script>", "") + "</script>"
        )
    call = (
        f'CircuitsVis.render("cv", CircuitsVis.AttentionHeads, {_props(tokens, patterns, names)});'
    )
    style = "<style>body{margin:0;font-family:DejaVu Sans,Helvetica,Arial,sans-serif}</style>"
    return f'{style}<div id="cv"></div>{loader}<script>{call}</script>'
