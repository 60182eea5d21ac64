"""What crosses the process boundary: pickled tuples, the registry snapshot, and domain errors
carried by type, message and fields (``retry_after_s`` ...), so a front end raises the same error
the service raised and the HTTP layer maps it to the same status.

Front end -> engine: ``("beat", index)`` every ``HEARTBEAT_S``; ``("call", rid, method, payload,
sent_at)`` (``classify_tokens``' payload: ``(TextRequest, version, TokenIds)``, the texts
tokenized by that version's tokenizer); ``("cancel", rid)``. Engine -> front end:
``("snapshot", boot, Snapshot)`` answering each beat; ``("reply", rid, ok, value, timings)``.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any

from engines.base import TensorSpec
from server import errors
from server.repository.config import ModelConfig
from server.scheduler.priority import Priorities

#: Seconds between a front end's heartbeats (each answered by a snapshot).
HEARTBEAT_S = 0.2
#: A peer unheard for this long is taken for dead (its pending requests fail at once).
PEER_TIMEOUT_S = 1.0
#: The methods a front end may call.
METHODS = ("classify", "classify_tokens", "infer", "rank", "load", "unload")


def dumps(message: tuple[Any, ...]) -> bytes:
    return pickle.dumps(message, protocol=5)


def loads(data: bytes) -> tuple[Any, ...]:
    message = pickle.loads(data)
    assert isinstance(message, tuple)
    return message


def encode_error(error: BaseException) -> tuple[str, str, dict[str, Any]]:
    """A domain error as (class name, message, fields); any other error as InferenceFailed."""
    if isinstance(error, errors.SluiceError):
        return type(error).__name__, str(error), dict(vars(error))
    return "InferenceFailed", f"engine process: {type(error).__name__}: {error}", {}


def decode_error(encoded: tuple[str, str, dict[str, Any]]) -> errors.SluiceError:
    name, message, fields = encoded
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.SluiceError)):
        cls = errors.InferenceFailed
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(fields)
    return error


@dataclass(frozen=True)
class PolicyView:
    priorities: Priorities


@dataclass(frozen=True)
class BatcherView:
    policy: PolicyView
    unavailable_reason: str
    pending_requests: int
    pending_items: int


@dataclass(frozen=True)
class VersionView:
    """What the HTTP layer reads of a ``ModelVersion`` (metadata, readiness, stats)."""

    name: str
    version: int
    config: ModelConfig
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    is_text: bool
    available: bool
    load_seconds: float
    batcher: BatcherView


@dataclass(frozen=True)
class EntryView:
    name: str
    state: str
    reason: str
    wanted: bool
    last_error: str
    versions: dict[int, VersionView] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """The engine process's registry and the cluster's health, as a front end sees it."""

    startup_complete: bool
    registry_ready: bool
    frontends_alive: int
    frontends_expected: int
    entries: tuple[EntryView, ...] = ()
    metrics: bytes = b""
    """The engine's metrics merged with every other front end's (Prometheus text)."""

    @property
    def ready(self) -> bool:
        return self.registry_ready and self.frontends_alive >= self.frontends_expected
