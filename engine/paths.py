"""Which files the engine may read on a user's behalf: only inside directories its owner chose.

A request names a text file, a dataset, a local SAE directory or a model directory; the engine
reads it only if it resolves (symlinks followed, ``..`` and ``~`` expanded) inside one of the
*readable roots*: the ``data_dirs`` setting (default ``<user data dir>/interpscope/data``, more
with ``--data-dir`` or ``INTERPSCOPE_DATA_DIRS``), the repo's ``assets/`` and the directory of a
local ``--model``. Anything else is a 403 that names the setting, the same answer whether the
file exists or not, so a request cannot probe the machine's files either.

A name starting with ``/``, ``~`` or ``.`` is a path; any other name is first looked up in each
root (``texts.txt`` finds ``<data dir>/texts.txt``), and otherwise means a hub name
(``local_path`` answers None).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from engine.errors import EngineError
from engine.settings import ASSETS_DIR, DEFAULT_DATA_DIR, EngineSettings

log = logging.getLogger(__name__)

MAX_PATH_CHARS = 1024
HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?$")


def readable_roots(settings: EngineSettings) -> list[Path]:
    roots = [Path(d).expanduser() for d in settings.data_dirs] + [ASSETS_DIR]
    if settings.model and (Path(settings.model).expanduser() / "config.json").is_file():
        roots.append(Path(settings.model).expanduser())
    return [r.resolve() for r in roots]


def ensure_default_data_dir(settings: EngineSettings, default: Path | None = None) -> None:
    """Create the default data directory at engine start (when it is one of the data_dirs), so
    the folder the 403 names exists for the user to put files in; a directory the owner
    named is never created. A failure (read-only home) is logged, not fatal."""
    default = Path(default or DEFAULT_DATA_DIR)
    if default not in [Path(d).expanduser() for d in settings.data_dirs]:
        return
    try:
        default.mkdir(parents=True, exist_ok=True)
        log.info("data directory (files, datasets and SAEs the engine may read): %s", default)
    except OSError as e:
        log.warning("could not create the data directory %s: %s", default, e)


def _describe(settings: EngineSettings) -> str:
    return ", ".join(str(r) for r in readable_roots(settings))


def not_allowed(name: str, what: str, settings: EngineSettings) -> EngineError:
    return EngineError(
        403,
        "path_not_allowed",
        f"The engine reads a {what} only from inside its data directories (setting data_dirs: "
        f"{_describe(settings)}); {name!r} is not inside them. Put the file there, or start the "
        "engine with --data-dir DIR (or INTERPSCOPE_DATA_DIRS) to allow another directory.",
        {"setting": "data_dirs", "roots": [str(r) for r in readable_roots(settings)]},
    )


def _check_text(name: str, what: str) -> None:
    if not name or not name.strip():
        raise EngineError(422, "empty_path", f"The {what} is empty.")
    if len(name) > MAX_PATH_CHARS or "\x00" in name:
        raise EngineError(
            422, "bad_path", f"That {what} is not a usable path (over {MAX_PATH_CHARS} characters "
            "or a NUL character in it).",
        )  # fmt: skip


def is_path_like(name: str) -> bool:
    return name.startswith(("/", "~", ".", "\\")) or "\\" in name or ".." in name.split("/")


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def _resolve(candidate: Path, name: str, what: str) -> Path:
    try:
        return candidate.expanduser().resolve()
    except (OSError, RuntimeError, ValueError):  # too long, a symlink loop, no home directory
        raise EngineError(422, "bad_path", f"{name!r} is not a usable {what} path.") from None


def local_path(name: str, settings: EngineSettings, *, what: str = "file") -> Path | None:
    """The resolved local path `name` means, checked against the readable roots (403 outside,
    whether or not it exists); None when it is not a path and no root has it (a hub name)."""
    _check_text(name, what)
    roots = readable_roots(settings)
    if is_path_like(name) or Path(name).is_absolute():
        path = _resolve(Path(name), name, what)
        if not _inside(path, roots):
            raise not_allowed(name, what, settings)
        return path
    for root in roots:
        path = _resolve(root / name, name, what)
        if not _inside(path, roots):  # a symlink in a root that points outside
            raise not_allowed(name, what, settings)
        if path.exists():
            return path
    return None


def confine(name: str, settings: EngineSettings, *, what: str = "file") -> Path:
    """Like ``local_path``, for names that can only be local: a name no root has is looked for
    in the first root (and is then reported missing there)."""
    path = local_path(name, settings, what=what)
    if path is None:
        return _resolve(readable_roots(settings)[0] / name, name, what)
    return path
