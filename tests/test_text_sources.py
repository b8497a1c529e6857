"""Where a latent examples job reads its texts: a text file, or a dataset (local or hub)."""

from __future__ import annotations

import json

import datasets
import pytest
from pydantic import ValidationError

from engine import text_sources
from engine.errors import EngineError
from engine.schemas.saes import ExamplesJobParams

TEXTS = ["Once upon a time", "", "The capital of France is", "When Mary and John went", "  "]
KEPT = [t for t in TEXTS if t.strip()]


def test_a_file_gives_its_non_empty_lines_and_jsonl_its_text_field(tmp_path):
    txt, jsonl = tmp_path / "a.txt", tmp_path / "a.jsonl"
    txt.write_text("\n".join(TEXTS))
    jsonl.write_text("\n".join(json.dumps({"text": t, "n": i}) for i, t in enumerate(TEXTS)))
    got, name, _ = text_sources.read_file(str(txt), 10)
    assert got == KEPT and text_sources.read_file(str(jsonl), 10)[1] == name  # same texts
    assert text_sources.read_file(str(txt), 2)[0] == KEPT[:2]
    assert text_sources.read_file(str(txt), 2)[1] != name  # other texts, other cache entry


@pytest.mark.parametrize("kind", ["save_to_disk", "dataset_dict", "parquet", "jsonl"])
def test_a_local_dataset_gives_the_same_texts_as_the_file(tmp_path, kind):
    ds = datasets.Dataset.from_dict({"body": TEXTS, "n": list(range(len(TEXTS)))})
    where = tmp_path / "ds"
    if kind == "save_to_disk":
        ds.save_to_disk(str(where))
    elif kind == "dataset_dict":
        datasets.DatasetDict({"validation": ds}).save_to_disk(str(where))
    elif kind == "parquet":
        where = tmp_path / "rows.parquet"
        ds.to_parquet(str(where))
    else:  # a plain directory is refused, not searched (test_reliability_security.py)
        where = tmp_path / "rows.jsonl"
        ds.to_json(str(where))
    split = "validation" if kind == "dataset_dict" else "train"
    got, name, source = text_sources.read_dataset(str(where), split, "body", 10)
    assert got == KEPT and split in source and "body" in source
    assert text_sources.read_dataset(str(where), split, "body", 2)[0] == KEPT[:2]


def test_dataset_errors_are_clear(tmp_path, monkeypatch):
    ds = datasets.Dataset.from_dict({"body": TEXTS, "n": list(range(len(TEXTS)))})
    ds.save_to_disk(str(tmp_path / "ds"))
    cases = [
        ((str(tmp_path / "ds"), "train", "text"), 422, "no column 'text'"),
        ((str(tmp_path / "ds"), "train", "n"), 422, "is not text"),
        ((str(tmp_path / "missing"), "train", "text"), 404, "No dataset at"),
    ]
    for args, status, words in cases:
        with pytest.raises(EngineError) as e:
            text_sources.read_dataset(*args, limit=5)
        assert e.value.status == status and words in e.value.message
    dd = tmp_path / "dd"
    datasets.DatasetDict({"validation": ds}).save_to_disk(str(dd))
    with pytest.raises(EngineError, match="no split 'train'.*validation"):
        text_sources.read_dataset(str(dd), "train", "body", 5)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(text_sources, "hub_reachable", lambda timeout: False)
    with pytest.raises(EngineError) as e:
        text_sources.read_dataset("someone/some-dataset", "train", "text", 5)
    assert e.value.status == 503 and "HF_HUB_OFFLINE=1" in e.value.message


def test_a_job_names_exactly_one_source():
    assert ExamplesJobParams(sae="s", dataset="d").split == "train"
    for kw in ({}, {"path": "a.txt", "dataset": "d"}):
        with pytest.raises(ValidationError, match="exactly one source"):
            ExamplesJobParams(sae="s", **kw)
