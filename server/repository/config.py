"""The ``config.yaml`` schema of one model in the repository.

A model folder looks like::

    model_repository/<model>/config.yaml
    model_repository/<model>/MODEL_CARD.md        (optional)
    model_repository/<model>/<version>/...         artifacts: model.onnx, a HF folder, model.plan

Every model is validated strictly: unknown keys, wrong types and out-of-range values are errors
that name the file and the field. Names follow Triton's where Triton has one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engines.registry import is_plugin
from server.errors import ConfigError
from server.scheduler.priority import MAX_PRIORITY_LEVELS

Backend = Literal["onnxruntime", "torch", "tensorrt"]
Task = Literal["text-classification", "tensor", "ranking"]
Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]

#: The artifact each backend looks for in a version folder when ``engine.artifact`` is unset.
DEFAULT_ARTIFACT: dict[str, str] = {
    "onnxruntime": "model.onnx",
    "torch": ".",
    "tensorrt": "model.plan",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineConfig(_Strict):
    """Which backend runs the model and how."""

    backend: str = "onnxruntime"
    """The inference backend: ``onnxruntime``, ``torch``, ``tensorrt``, or a plugin engine
    ``"package.module:factory"`` (served only where the ``engine_plugins`` setting allows it)."""
    artifact: str | None = None
    """File or folder inside the version folder; defaults per backend (model.onnx, ., model.plan)."""
    device: str = "cpu"
    """``cpu`` or ``cuda`` / ``cuda:N``."""
    precision: Literal["fp32", "fp16", "bf16", "int8"] = "fp32"
    """Numeric precision the backend runs in (for ONNX, what the artifact was exported as)."""
    threads: int = Field(default=0, ge=0, le=256)
    """Intra-op threads per instance; 0 derives it from the core count and ``instance_count``."""
    providers: tuple[str, ...] = ()
    """ONNX Runtime execution providers in order of preference; empty means CPU."""
    instance_count: int = Field(default=1, ge=1, le=64)
    """Engine instances consuming the model's one queue (Triton's ``instance_group.count``)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Backend-specific options passed through unchanged."""

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in DEFAULT_ARTIFACT and not is_plugin(value):
            raise ValueError(f"'{value}' is not a backend: one of {sorted(DEFAULT_ARTIFACT)} or "
                             "a plugin engine 'package.module:factory'")
        return value


class QueuePolicyConfig(_Strict):
    """The queue policy of one priority level (Triton's ``ModelQueuePolicy`` names)."""

    max_queue_size: int = Field(default=0, ge=0)
    """Most items waiting at this level (429 beyond); 0: only ``batching.max_queue_size``."""
    default_timeout_microseconds: int | None = Field(default=None, ge=0)
    """Deadline of this level's requests that set none; 0: none; unset: ``default_timeout_us``."""
    allow_timeout_override: bool = True
    """A request's own timeout applies when shorter than the default (Triton's rule; Triton's
    default is false); false: the default always applies."""
    timeout_action: Literal["REJECT", "DELAY"] = "REJECT"
    """REJECT: 504 at the deadline, also while computing. DELAY: the deadline is soft; the
    request moves behind its level's requests and is computed later."""


class BatchingConfig(_Strict):
    """Dynamic batching, in Triton's vocabulary."""

    max_batch_size: int = Field(default=32, ge=1, le=4096)
    """Most items (texts, or rows of a tensor) in one batch. A request of 16 texts counts 16."""
    max_queue_delay_us: int = Field(default=2000, ge=0, le=10_000_000)
    """Longest the oldest queued request waits for a batch to fill before it runs anyway."""
    preferred_batch_sizes: tuple[int, ...] = ()
    """Batch sizes worth waiting for; a batch that reaches one is sent at once."""
    max_batch_tokens: int = Field(default=16384, ge=1)
    """Cap on a batch's padded size (items x longest item, in tokens) for text models."""
    max_queue_size: int = Field(default=1024, ge=1)
    """Most items waiting; further requests are rejected at once with 429."""
    default_timeout_us: int = Field(default=0, ge=0)
    """Deadline for requests that set none (``parameters.timeout``); 0 means none."""
    sub_batch_tokens: int = Field(default=0, ge=0)
    """Text models: run a formed batch as length-sorted engine calls of at most this many
    padded tokens each (0: one call). Cuts padding on CPUs; leave 0 on GPUs."""
    priority_levels: int = Field(default=0, ge=0, le=MAX_PRIORITY_LEVELS)
    """Triton's priority levels: 0 is off; N gives levels 1 (the highest) .. N, served in order."""
    default_priority_level: int = Field(default=0, ge=0)
    """Level of requests that set priority 0 or none; must be within 1..N when N > 0."""
    default_queue_policy: QueuePolicyConfig | None = None
    """Queue policy of the levels without their own entry in ``priority_queue_policy``."""
    priority_queue_policy: dict[int, QueuePolicyConfig] = Field(default_factory=dict)
    """Queue policy per level (1..N)."""

    @model_validator(mode="after")
    def _preferred_within_max(self) -> BatchingConfig:
        for size in self.preferred_batch_sizes:
            if not 1 <= size <= self.max_batch_size:
                raise ValueError(
                    f"preferred_batch_sizes entry {size} must be within 1..max_batch_size "
                    f"({self.max_batch_size})"
                )
        levels = self.priority_levels
        if levels == 0 and (self.default_priority_level or self.priority_queue_policy):
            raise ValueError("default_priority_level and priority_queue_policy need priority_levels > 0")
        if levels > 0 and not 1 <= self.default_priority_level <= levels:
            raise ValueError(f"default_priority_level must be within 1..{levels} (priority_levels)")
        for level in self.priority_queue_policy:
            if not 1 <= level <= levels:
                raise ValueError(f"priority_queue_policy: level {level} must be within 1..{levels} "
                                 "(priority_levels)")
        policies = {f"priority_queue_policy.{k}": p for k, p in self.priority_queue_policy.items()}
        if self.default_queue_policy is not None:
            policies["default_queue_policy"] = self.default_queue_policy
        for where, policy in policies.items():
            if policy.max_queue_size > self.max_queue_size:
                raise ValueError(f"{where}.max_queue_size {policy.max_queue_size} exceeds "
                                 f"max_queue_size {self.max_queue_size} (the model's total)")
        return self


class LatestPolicy(_Strict):
    num_versions: int = Field(default=1, ge=1)
    """Serve the newest N versions."""


class SpecificPolicy(_Strict):
    versions: tuple[int, ...] = Field(min_length=1)
    """Serve exactly these versions."""


class VersionPolicy(_Strict):
    """Which version folders to serve: exactly one of ``latest``, ``all``, ``specific``."""

    latest: LatestPolicy | None = None
    all: dict[str, Any] | None = None
    specific: SpecificPolicy | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> VersionPolicy:
        chosen = [k for k in ("latest", "all", "specific") if getattr(self, k) is not None]
        if len(chosen) > 1:
            raise ValueError(f"version_policy takes one of latest, all, specific; got {chosen}")
        return self

    def select(self, available: list[int]) -> list[int]:
        """The versions to serve out of those on disk, newest first."""
        newest_first = sorted(available, reverse=True)
        if self.all is not None:
            return newest_first
        if self.specific is not None:
            return [v for v in newest_first if v in self.specific.versions]
        n = self.latest.num_versions if self.latest is not None else 1
        return newest_first[:n]


class TensorConfig(_Strict):
    """A named input or output of a ``tensor`` model. ``dims`` excludes the batch dimension."""

    name: str = Field(min_length=1)
    datatype: Datatype
    dims: tuple[int, ...]


class RankingConfig(_Strict):
    """A ``ranking`` model: a tensor model scored per (user, candidate item) pair, also served
    at ``POST /v1/models/{model}/rank``. Tables are ``.npy`` files in the version folder."""

    user_table: str = Field(default="user_features.npy", min_length=1)
    """User features indexed by user id (row 0: fallback), written by the pipeline."""
    item_table: str = Field(default="item_features.npy", min_length=1)
    """Item features indexed by item id (row 0: fallback), written by the pipeline."""
    max_candidates: int = Field(default=1000, ge=1, le=100_000)
    """Most candidate items one ``/rank`` request may carry (not ``max_inputs_per_request``)."""
    part_size: int = Field(default=256, ge=1, le=100_000)
    """Candidates per scheduled part: larger requests are split across batches, in order."""
    fallback_unknown: bool = False
    """Score unknown user or item ids with the fallback row instead of answering 400."""


class ModelConfig(_Strict):
    """One model's ``config.yaml``."""

    name: str | None = None
    """Defaults to the folder name; must match it when set."""
    task: Task = "text-classification"
    """``text-classification`` (texts in, label scores out), ``tensor`` (named arrays in and out) or
    ``ranking`` (a tensor model of (user, item) pairs, also served at ``/rank``)."""
    labels: tuple[str, ...] = ()
    """Class names in logit order (text-classification)."""
    max_length: int = Field(default=128, ge=2, le=8192)
    """Longest tokenized text; longer texts are truncated."""
    strict_length: bool = False
    """A text longer than ``max_length`` x the server's ``max_text_chars_per_token`` characters
    answers 400 instead of being cut to that many characters before tokenizing."""
    max_inputs_per_request: int = Field(default=64, ge=1)
    """Most texts (or rows) one request may carry (TEI's ``max-client-batch-size``)."""
    engine: EngineConfig = Field(default_factory=EngineConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    version_policy: VersionPolicy = Field(default_factory=VersionPolicy)
    inputs: tuple[TensorConfig, ...] = ()
    """Input tensors (tensor task); read from the engine when empty."""
    outputs: tuple[TensorConfig, ...] = ()
    """Output tensors (tensor task); read from the engine when empty."""
    description: str = ""
    """Free text shown in metadata."""
    ranking: RankingConfig = Field(default_factory=RankingConfig)
    """Feature tables and candidate limit (read only when the task is ``ranking``)."""

    @model_validator(mode="after")
    def _task_fields(self) -> ModelConfig:
        if self.task == "text-classification" and not self.labels:
            raise ValueError("labels: a text-classification model needs its class names")
        return self

    @property
    def artifact(self) -> str:
        return self.engine.artifact or DEFAULT_ARTIFACT.get(self.engine.backend, ".")


def _format_validation_error(path: Path, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        parts.append(f"{loc}: {e['msg']}")
    return f"{path}: " + "; ".join(parts)


def load_model_config(path: Path) -> ModelConfig:
    """Read and validate one ``config.yaml``; raises :class:`ConfigError` naming file and field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        config = ModelConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(path, e)) from e
    folder = path.parent.name
    if config.name is not None and config.name != folder:
        raise ConfigError(f"{path}: name: '{config.name}' must match the folder name '{folder}'")
    return config
