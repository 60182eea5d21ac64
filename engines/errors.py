"""Errors raised by backends. They carry no HTTP; the server maps them.

EngineError
├── BackendUnavailable   the backend's library is not installed (message says how to install it)
├── ArtifactError        the model file is missing, unreadable or not what the backend expects
└── InferenceError       running a batch failed
    └── EngineOutOfMemory  the device ran out of memory for this batch (a smaller one may fit)
"""


class EngineError(Exception):
    """Base class of every backend error."""


class BackendUnavailable(EngineError):
    """The backend's library is missing or unusable here (no GPU, say)."""


class ArtifactError(EngineError):
    """The model artifact is missing, corrupt or of the wrong kind."""


class InferenceError(EngineError):
    """Running a batch failed."""


class EngineOutOfMemory(InferenceError):
    """The device (CUDA) ran out of memory running a batch; the scheduler retries it in halves."""
