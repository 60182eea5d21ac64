"""Helpers shared by every test suite: tiny real models and a model repository built from them."""

from tests.support.texts import SAMPLE_TEXTS
from tests.support.tiny_model import (
    TINY_LABELS,
    TINY_MAX_BATCH,
    TINY_MAX_LENGTH,
    make_tiny_hf_model,
    make_tiny_repository,
    tiny_artifacts,
)

__all__ = [
    "SAMPLE_TEXTS",
    "TINY_LABELS",
    "TINY_MAX_BATCH",
    "TINY_MAX_LENGTH",
    "make_tiny_hf_model",
    "make_tiny_repository",
    "tiny_artifacts",
]
