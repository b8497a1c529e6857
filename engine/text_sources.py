"""Texts for a latent examples job: a text file, or a dataset (Hugging Face hub or local).

A source gives its texts (empty ones dropped, at most ``limit``) and a name that changes
whenever the texts do (a hash of them), so a cached result is reused only for the same texts.

Datasets load through the ``datasets`` package (SAELens's own dependency):
- a directory written by ``Dataset.save_to_disk`` (``load_from_disk``),
- a local data file (.parquet, .csv, .json/.jsonl, .txt) (``load_dataset``),
- a hub dataset name, streamed so only the first ``limit`` rows are read. With the hub
  unreachable this answers 503 at once (``HF_HUB_OFFLINE=1`` uses what is cached).

``check`` runs when the job is submitted: a local file or dataset must lie inside the engine's
data directories (engine/paths.py, 403 otherwise), a file must be a file and a dataset
directory a ``save_to_disk`` one (any other directory is refused, never walked), and a
``save_to_disk`` dataset must have the split and column asked for, and a hub name must be one
the ``datasets`` package will not take to mean files here (``hub_only``). Reading calls ``tick()``
between texts and rows, which raises once the job is cancelled.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from itertools import islice
from pathlib import Path

from engine import paths
from engine.errors import EngineError
from engine.loading import hub_reachable
from engine.schemas.saes import ExamplesJobParams
from engine.settings import EngineSettings

Tick = Callable[[], None]
SAVED = ("state.json", "dataset_dict.json")  # what save_to_disk writes at the top


def _no_tick() -> None:
    pass


LOCAL_FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json",
                 ".txt": "text"}  # fmt: skip


def _named(texts: list[str], stem: str, source: str) -> tuple[list[str], str, str]:
    if not texts:
        raise EngineError(422, "empty_source", f"{source} has no text in it.")
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:10]
    return texts, f"{re.sub(r'[^A-Za-z0-9_.-]', '_', stem)}-{digest}", source


def read_file(path: str, limit: int, tick: Tick = _no_tick) -> tuple[list[str], str, str]:
    """The first `limit` non-empty texts of a file: one per line, or .jsonl with a 'text'
    field. Reads only as far as it needs."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise EngineError(404, "no_such_file", f"No text file at {path!r} on the engine's machine.")
    texts: list[str] = []
    with p.open(encoding="utf-8", errors="replace", newline=None) as f:
        for n, line in enumerate(f):
            if n % 256 == 0:
                tick()
            line = line.rstrip("\n")
            if p.suffix == ".jsonl":
                if not line.strip():
                    continue
                try:
                    line = json.loads(line).get("text", "")
                except (ValueError, AttributeError):
                    raise EngineError(422, "bad_jsonl", f"{p.name}, line {n + 1}: not a JSON "
                                      "object with a 'text' field.") from None  # fmt: skip
            if isinstance(line, str) and line.strip():
                texts.append(line)
                if len(texts) == limit:
                    break
    return _named(texts, p.stem, p.name)


def _saved_columns(p: Path, split: str) -> list[str] | None:
    """The columns of a ``save_to_disk`` dataset's split, from its own JSON files."""
    if (p / "dataset_dict.json").is_file():
        splits = json.loads((p / "dataset_dict.json").read_text()).get("splits", [])
        if split not in splits:
            raise EngineError(422, "no_such_split",
                              f"{p.name!r} has no split {split!r}; it has {sorted(splits)}.")  # fmt: skip
        p = p / split
    info = p / "dataset_info.json"
    if not info.is_file():
        return None
    return list(json.loads(info.read_text()).get("features") or {})


def hub_only(name: str, settings: EngineSettings) -> None:
    """Refuse a hub name that ``datasets.load_dataset`` would read from the engine's machine
    instead: a packaged loader's name (``text``, ``csv``, ``json``, ...) reads every such file
    under the working directory, and a name that is a path there reads that path."""
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    if name.lower() in {m.lower() for m in _PACKAGED_DATASETS_MODULES} or os.path.lexists(name):
        raise EngineError(
            403, "path_not_allowed",
            f"{name!r} is not a Hugging Face dataset name here: the datasets package would read it "
            "from the engine's working directory. Put the file in a data directory and name it "
            "(setting data_dirs: " + ", ".join(str(r) for r in paths.readable_roots(settings)) + ").",
            {"setting": "data_dirs"},
        )  # fmt: skip


def check(p: ExamplesJobParams, settings: EngineSettings) -> ExamplesJobParams:
    """`p` with its source resolved to where it is read, or a clear 4xx (before any reading)."""
    if p.path:
        path = paths.confine(p.path, settings, what="text file")
        if path.is_dir():
            raise EngineError(422, "not_a_file", f"{p.path!r} is a directory, not a text file.")
        if not path.is_file():
            raise EngineError(404, "no_such_file", f"No text file at {p.path!r}.")
        return p.model_copy(update={"path": str(path)})
    name = p.dataset or ""
    path = paths.local_path(name, settings, what="dataset")
    if path is None:
        if not paths.HUB_NAME.match(name):
            raise EngineError(404, "no_such_dataset",
                              f"No dataset {name!r}: not a file or save_to_disk directory in the "
                              "engine's data directories, nor a Hugging Face dataset name.")  # fmt: skip
        hub_only(name, settings)
        return p
    if path.is_dir():
        if not any((path / f).is_file() for f in SAVED):
            raise EngineError(422, "not_a_dataset_dir",
                              f"{name!r} is a directory but not one written by save_to_disk; name "
                              "a data file in it instead (directories are not searched).")  # fmt: skip
        try:
            columns = _saved_columns(path, p.split)
        except (OSError, ValueError, AttributeError):
            raise EngineError(
                422, "bad_dataset", f"{name!r}: its dataset files are damaged."
            ) from None
        if columns is not None and p.column not in columns:
            raise EngineError(422, "no_such_column",
                              f"{name!r} has no column {p.column!r}; it has {columns}.")  # fmt: skip
    elif path.is_file():
        if path.suffix not in LOCAL_FORMATS:
            raise EngineError(422, "unknown_format",
                              f"{path.name}: not a dataset file ({', '.join(LOCAL_FORMATS)}).")  # fmt: skip
    else:
        raise EngineError(404, "no_such_dataset", f"No dataset at {name!r}.")
    return p.model_copy(update={"dataset": str(path)})


def _rows(name: str, split: str):
    """The dataset's rows, lazily where it can (a hub dataset streams). A local dataset is an
    absolute path (``check`` resolves one); a relative name is a hub name, never a path
    relative to the engine's working directory."""
    import datasets

    p = Path(name).expanduser()
    local = p.is_absolute()
    if local and p.is_dir() and any((p / f).is_file() for f in SAVED):
        ds = datasets.load_from_disk(str(p))
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise EngineError(422, "no_such_split",
                                  f"{name!r} has no split {split!r}; it has {sorted(ds)}.")  # fmt: skip
            ds = ds[split]
        return ds
    if local and p.is_dir():  # never walked: load_dataset would search the whole tree
        raise EngineError(422, "not_a_dataset_dir",
                          f"{name!r} is a directory but not one written by save_to_disk.")  # fmt: skip
    if local and p.exists():
        builder = LOCAL_FORMATS.get(p.suffix)
        if builder is None:
            raise EngineError(422, "unknown_format",
                              f"{p.name}: not a dataset file ({', '.join(LOCAL_FORMATS)}).")  # fmt: skip
        return datasets.load_dataset(builder, split=split, data_files=str(p))
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


def read_dataset(
    name: str, split: str, column: str, limit: int, tick: Tick = _no_tick
) -> tuple[list[str], str, str]:
    """The first `limit` non-empty texts of `column` in a dataset's `split`."""
    try:
        rows = _rows(name, split)
        columns = rows.column_names
        if columns is not None and column not in columns:
            raise EngineError(422, "no_such_column",
                              f"{name!r} has no column {column!r}; it has {columns}.")  # fmt: skip
        texts: list[str] = []
        for n, row in enumerate(islice(rows, limit * 4)):  # empty rows do not count
            if n % 256 == 0:
                tick()
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
    local = Path(name).expanduser()
    stem = local.name if local.is_absolute() and local.exists() else name.replace("/", "_")
    return _named(texts, f"{stem}-{split}-{column}", f"{name} [{split}].{column}")


def read(
    p: ExamplesJobParams, settings: EngineSettings, tick: Tick = _no_tick
) -> tuple[list[str], str, str]:
    """(texts, name for the cache, how to say where they came from) for a job's source."""
    p = check(p, settings)  # again: the files may have changed since the job was submitted
    if p.dataset:
        return read_dataset(p.dataset, p.split, p.column, p.max_texts, tick)
    return read_file(p.path or "", p.max_texts, tick)
