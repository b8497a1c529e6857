"""Tours: an ordered list of view states (each a URL) to step through, e.g. in a lecture.

A tour file is JSON in ``assets/tours/<id>.json``::

    {"title": "...", "description": "...",
     "steps": [{"title": "...", "note": "...", "url": "attention?prompt=...&layer=1"}]}

A step's ``url`` is what the browser shows for that view: a page path (``""`` for the
default page, else the page's url path, e.g. ``attention``) and its query; a full
``http://host/...`` URL copied from the address bar works too. The tour and step shown live
in the URL (``tour``, ``step``), like the rest of the view state, so a tour can be resumed
from a link. Pages join a tour by being named in its steps: nothing else to register.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, Field, ValidationError

TOURS_DIR = Path(__file__).resolve().parent.parent / "assets" / "tours"
DEFAULT_TOUR = "organism"


class TourStep(BaseModel):
    title: str = Field(min_length=1)
    note: str = ""
    url: str = Field(description="the view's URL: page path and query")


class Tour(BaseModel):
    title: str = Field(min_length=1)
    description: str = ""
    steps: list[TourStep] = Field(min_length=1)


class TourError(ValueError):
    """A tour that does not exist or does not parse, with a message for the page."""


def split_url(url: str) -> tuple[str, dict[str, list[str]]]:
    """(page path, query) of a step URL; ``""`` is the default page."""
    parts = urlsplit(url.strip())
    path = parts.path.strip("/")
    return path, parse_qs(parts.query, keep_blank_values=False)


def available(tours_dir: Path = TOURS_DIR) -> list[str]:
    return sorted(p.stem for p in tours_dir.glob("*.json"))


@lru_cache(maxsize=32)
def _parse(path: Path, mtime: float) -> Tour:
    try:
        return Tour.model_validate_json(path.read_text())
    except ValidationError as e:
        raise TourError(f"Tour file {path.name} is not a valid tour: {e}") from None


def load(tour_id: str, tours_dir: Path = TOURS_DIR) -> Tour:
    path = tours_dir / f"{tour_id}.json"
    if not tour_id or "/" in tour_id or not path.is_file():
        known = ", ".join(available(tours_dir)) or "none"
        raise TourError(f"No tour named {tour_id!r} (known: {known}).")
    return _parse(path, path.stat().st_mtime)


def clamp_step(tour: Tour, step: int | None) -> int:
    return min(max(step or 0, 0), len(tour.steps) - 1)


def pages_of(tour: Tour) -> list[str]:
    """The page paths a tour visits, in order, each once."""
    return list(dict.fromkeys(split_url(s.url)[0] for s in tour.steps))
