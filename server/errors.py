"""Domain errors. None of them knows about HTTP: ``server.api.errors`` maps them to statuses.

SluiceError
├── ConfigError            a model's config.yaml or artifacts are invalid (names file and field)
├── InvalidInput           a request is malformed (names the field and the limit)
│   └── PayloadTooLarge    a request body or a request's item count passes a limit
├── ModelNotFound          no such model or version
├── ModelNotReady          the model exists but is not (or no longer) serving
├── QueueFull              the model's queue is full; retry later
│   └── DeadlineUnreachable  the queue ahead cannot drain before the request's deadline
├── DeadlineExceeded       the request's deadline passed before it could be computed
├── EngineTimeout          the engine call of the request's batch ran past the watchdog's limit
├── RequestCancelled       the client went away; the request was dropped before compute
└── InferenceFailed        the engine raised, or returned the wrong number of results
"""

from __future__ import annotations


class SluiceError(Exception):
    """Base class of every error Sluice raises on purpose."""


class ConfigError(SluiceError):
    """A model's configuration or artifacts are invalid."""


class InvalidInput(SluiceError):
    """A request is malformed."""


class PayloadTooLarge(InvalidInput):
    """A request passes a size limit (body bytes, texts per request)."""


class ModelNotFound(SluiceError):
    """No such model or version."""


class ModelNotReady(SluiceError):
    """The model exists but is not serving (loading, failed, draining)."""


class QueueFull(SluiceError):
    """The model's queue is at ``max_queue_size``."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeadlineUnreachable(QueueFull):
    """The work queued ahead of a request cannot finish before its deadline; retry later."""


class DeadlineExceeded(SluiceError):
    """The request's deadline passed (queued, or while its batch computed), or it is shorter
    than the model's batch could ever take."""


class EngineTimeout(SluiceError):
    """The engine call computing the request's batch ran past its limit and was abandoned."""


class RequestCancelled(SluiceError):
    """The client disconnected (or cancelled) before compute."""


class InferenceFailed(SluiceError):
    """The engine failed for the batch this request was part of."""
