"""Latent labels from Neuronpedia, through the ``neuronpedia`` package, cached on disk.

The package is a REST client that needs an API key (``NEURONPEDIA_API_KEY``, or
``neuronpedia.set_api_key``) and the network; ``USE_LOCALHOST=true`` points it at a
self-hosted Neuronpedia on localhost:3000, and ``INTERPSCOPE_NEURONPEDIA_URL`` (e.g.
``http://127.0.0.1:3000/api``) at any other. Without a key, or when the host cannot be reached
within a second or two, ``fetch_label`` fails at once with a 503 saying which, so views fall
back to the shipped label. Answers are cached as JSON files, one per latent.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from neuronpedia.requests.base_request import NPRequest
from neuronpedia.requests.feature_request import FeatureRequest

from engine.atomic import atomic_write
from engine.errors import EngineError
from engine.schemas.saes import NeuronpediaLabel

CONNECT_TIMEOUT_S = 1.5
READ_TIMEOUT_S = 5.0
SITE = "https://neuronpedia.org"


def base_url() -> str:
    return os.environ.get("INTERPSCOPE_NEURONPEDIA_URL") or NPRequest.BASE_URL


def page_url(model_id: str, source: str, index: int) -> str:
    return f"{SITE}/{model_id}/{source}/{index}"


def _cache_path(cache_dir: Path, base: str, model_id: str, source: str, index: int) -> Path:
    key = hashlib.sha256(f"{base}|{model_id}|{source}|{index}".encode()).hexdigest()[:24]
    return cache_dir / f"{key}.json"


def _api_key(api_key: str | None) -> str:
    try:
        return NPRequest._get_api_key(api_key)
    except Exception:
        raise EngineError(
            503,
            "neuronpedia_no_key",
            "No Neuronpedia API key: set NEURONPEDIA_API_KEY (or USE_LOCALHOST=true for a "
            "self-hosted Neuronpedia) to fetch its labels; showing the shipped label instead.",
        ) from None


def _check_reachable(base: str) -> None:
    u = urlparse(base)
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        with socket.create_connection((u.hostname, port), timeout=CONNECT_TIMEOUT_S):
            return
    except OSError as e:
        raise EngineError(
            503,
            "neuronpedia_offline",
            f"Neuronpedia ({u.hostname}:{port}) cannot be reached from the engine "
            f"({type(e).__name__}): offline, so its label is not available.",
        ) from None


def _explanation(result: dict) -> str | None:
    for ex in result.get("explanations") or []:
        if ex.get("description"):
            return ex["description"]
    return None


def fetch_label(
    model_id: str, source: str, index: int, *, cache_dir: Path, api_key: str | None = None
) -> NeuronpediaLabel:
    """The Neuronpedia explanation of one latent (from the disk cache when it has it)."""
    base = base_url()
    path = _cache_path(cache_dir, base, model_id, source, index)
    if path.is_file():
        try:
            return NeuronpediaLabel(**json.loads(path.read_text()), cached=True)
        except (OSError, ValueError, TypeError):
            path.unlink(missing_ok=True)  # a damaged entry: fetch it again
    key = _api_key(api_key)
    _check_reachable(base)
    req = FeatureRequest(api_key=key)
    req.BASE_URL = base
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints every request
            result = req.send_request(
                method="GET",
                uri=f"{model_id}/{source}/{index}",
                timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
            )
    except Exception as e:
        raise EngineError(
            503, "neuronpedia_failed", f"Neuronpedia did not give this latent: {e}"
        ) from None
    text = _explanation(result)
    label = NeuronpediaLabel(
        available=True,
        text=text,
        url=page_url(model_id, source, index),
        message="" if text else "Neuronpedia has no explanation for this latent yet.",
    )
    atomic_write(path, label.model_dump_json(exclude={"cached"}))
    return label
