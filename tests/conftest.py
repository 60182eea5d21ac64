"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository with the tiny random BERT as ONNX (tiny-sentiment) and torch."""
    from tests.support.tiny_model import make_tiny_repository

    return make_tiny_repository(tmp_path_factory.mktemp("tiny-repo"))
