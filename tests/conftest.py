"""Shared fixtures: a tiny random GPT-2 saved in Hugging Face format and an engine over it."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from engine.api import create_app
from engine.service import Engine
from engine.settings import DEFAULT_MODEL_DIR, EngineSettings
from tests.helpers import make_tiny_gpt2

# TestClient sends "Host: testserver"; engines made in tests answer to it (engine/security.py)
os.environ.setdefault("INTERPSCOPE_ALLOWED_HOSTS", '["testserver"]')


@pytest.fixture(autouse=True)
def _grad_mode_restored():
    """A test that switches autograd off globally must not leak it into the next test."""
    grad = torch.is_grad_enabled()
    yield
    torch.set_grad_enabled(grad)


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return make_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2"))


@pytest.fixture(scope="session")
def engine(tiny_model_dir, tmp_path_factory):
    settings = EngineSettings(model=str(tiny_model_dir), cache_dir=tmp_path_factory.mktemp("cache"))
    eng = Engine(settings)
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def api(engine):
    with TestClient(create_app(engine)) as client:
        yield client


@pytest.fixture
def model(engine):
    return engine.require_model().model


@pytest.fixture(scope="module")
def org(tmp_path_factory):
    """An engine on the shipped demo organism, with a cache of its own for each test module."""
    if not (DEFAULT_MODEL_DIR / "config.json").is_file():
        pytest.skip("the demo organism is not shipped here")
    eng = Engine(
        EngineSettings(model=str(DEFAULT_MODEL_DIR), cache_dir=tmp_path_factory.mktemp("org"))
    )
    yield eng
    eng.close()
