"""What one running server holds, created by ``create_app`` and handed to the routes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from server.metrics import Metrics
from server.repository.registry import ModelRegistry
from server.service import InferenceService
from server.settings import Settings


@dataclass
class ServerState:
    settings: Settings
    metrics: Metrics
    executor: ThreadPoolExecutor
    registry: ModelRegistry
    service: InferenceService
    version: str
    draining: bool = False
    load_error: str = ""
    notes: dict[str, str] = field(default_factory=dict)
