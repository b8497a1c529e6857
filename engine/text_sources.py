"""Texts for a latent examples job: a text file, or a dataset (Hugging Face hub or local).

A source gives its texts (empty ones dropped, at most ``limit``) and a name that changes
whenever the texts do (a hash of them), so a cached result is reused only for the same texts.

Datasets load through the ``datasets`` package (SAELens's own dependency):
- a directory written by ``Dataset.save_to_disk`` (``load_from_disk``),
- a local data directory or file (.parquet, .csv, .json/.jsonl, .txt) (``load_dataset``),
- a hub dataset name, streamed so only the first ``limit`` rows are read. With the hub
  unreachable this answers 503 at once (``HF_HUB_OFFLINE=1`` uses what is cached).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from itertools import islice
from pathlib import Path

from engine.errors import EngineError
from engine.loading import hub_reachable
from engine.schemas.saes import ExamplesJobParams

LOCAL_FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json",
                 ".txt": "text"}  # fmt: skip


def _named(texts: list[str], stem: str, source: str) -> tuple[list[str], str, str]:
    if not texts:
        raise EngineError(422, "empty_source", f"{source} has no text in it.")
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:10]
    return texts, f"{re.sub(r'[^A-Za-z0-9_.-]', '_', stem)}-{digest}", source


def read_file(path: str, limit: int) -> tuple[list[str], str, str]:
    """The texts of a file: one per line, or .jsonl with a 'text' field."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise EngineError(404, "no_such_file", f"No text file at {path!r} on the engine's machine.")
    lines = p.read_bytes().decode("utf-8", errors="replace").splitlines()
    if p.suffix == ".jsonl":
        texts = [json.loads(x).get("text", "") for x in lines if x.strip()]
    else:
        texts = lines
    return _named([t for t in texts if t.strip()][:limit], p.stem, p.name)


def _rows(name: str, split: str):
    """The dataset's rows, lazily where it can (a hub dataset streams)."""
    import datasets

    p = Path(name).expanduser()
    if p.is_dir() and any((p / f).is_file() for f in ("state.json", "dataset_dict.json")):
        ds = datasets.load_from_disk(str(p))
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise EngineError(422, "no_such_split",
                                  f"{name!r} has no split {split!r}; it has {sorted(ds)}.")  # fmt: skip
            ds = ds[split]
        return ds
    if p.exists():
        builder = LOCAL_FORMATS.get(p.suffix) if p.is_file() else None
        if p.is_file() and builder is None:
            raise EngineError(422, "unknown_format",
                              f"{p.name}: not a dataset file ({', '.join(LOCAL_FORMATS)}).")  # fmt: skip
        args = (builder,) if builder else (str(p),)
        kw = {"data_files": str(p)} if builder else {}
        return datasets.load_dataset(*args, split=split, **kw)
    if name.startswith(("/", ".", "~")):
        raise EngineError(
            404, "no_such_dataset", f"No dataset at {name!r} on the engine's machine."
        )
    if os.environ.get("HF_HUB_OFFLINE") != "1" and not hub_reachable(timeout=1.5):
        raise EngineError(503, "hub_unreachable",
                          f"The Hugging Face hub is not reachable, so the dataset {name!r} cannot "
                          "be read. Name a local file or dataset directory instead, or start the "
                          "engine with HF_HUB_OFFLINE=1 to use a dataset already in the cache.")  # fmt: skip
    return datasets.load_dataset(name, split=split, streaming=True)


def read_dataset(name: str, split: str, column: str, limit: int) -> tuple[list[str], str, str]:
    """The first `limit` non-empty texts of `column` in a dataset's `split`."""
    try:
        rows = _rows(name, split)
        columns = rows.column_names
        if columns is not None and column not in columns:
            raise EngineError(422, "no_such_column",
                              f"{name!r} has no column {column!r}; it has {columns}.")  # fmt: skip
        texts: list[str] = []
        for row in islice(rows, limit * 4):  # empty rows do not count towards the limit
            text = row.get(column)
            if not isinstance(text, str):
                raise EngineError(422, "not_text", f"Column {column!r} of {name!r} is not text.")
            if text.strip():
                texts.append(text)
                if len(texts) == limit:
                    break
    except EngineError:
        raise
    except (FileNotFoundError, ValueError) as e:  # the datasets package's "not found" errors
        raise EngineError(404, "no_such_dataset", f"Could not open dataset {name!r}: {e}") from e
    stem = Path(name).name if Path(name).expanduser().exists() else name.replace("/", "_")
    return _named(texts, f"{stem}-{split}-{column}", f"{name} [{split}].{column}")


def read(p: ExamplesJobParams) -> tuple[list[str], str, str]:
    """(texts, name for the cache, how to say where they came from) for a job's source."""
    if p.dataset:
        return read_dataset(p.dataset, p.split, p.column, p.max_texts)
    return read_file(p.path or "", p.max_texts)
