"""What one running server holds, created by ``create_app`` and handed to the routes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from server.lifecycle import Lifecycle
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
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    load_error: str = ""
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def draining(self) -> bool:
        """Shutting down past the lame duck: new inference is refused."""
        return self.lifecycle.draining
