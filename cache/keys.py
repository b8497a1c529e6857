"""Cache keys: everything that determines an analysis result, hashed.

A key covers the model fingerprint (name + weight hash or hub revision + dtype), the token
ids, the analysis name and its version, and the analysis parameters (which include any
steering or SAE configuration). Parameters are serialized canonically (sorted keys), so
the same request always maps to the same key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any


def result_key(
    fingerprint: str,
    token_ids: Sequence[int],
    analysis: str,
    version: int,
    params: dict[str, Any],
) -> str:
    payload = json.dumps(
        {
            "model": fingerprint,
            "tokens": list(token_ids),
            "analysis": analysis,
            "version": version,
            "params": params,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return f"{analysis}:{hashlib.sha256(payload.encode()).hexdigest()}"
