"""The registry and the service a front end's HTTP layer is built with: the same classes'
interfaces, answered from the engine's snapshot (metadata, readiness, stats) or forwarded to it
(inference, model control)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from server.app import _version
from server.cluster import messages as m
from server.cluster.client import EngineClient
from server.cluster.tokenizers import FrontendTokenizers
from server.domain import RankRequest, RankResult, TensorRequest, TensorResult, TextRequest, TextResult
from server.errors import ModelNotReady, SluiceError
from server.lifecycle import Lifecycle
from server.metrics import Metrics
from server.repository.loader import ModelVersion
from server.repository.registry import ModelEntry, ModelRegistry
from server.service import REQUEST_TIMINGS, InferenceService
from server.settings import Settings
from server.state import ServerState


class RemoteRegistry(ModelRegistry):
    """``ModelRegistry``'s queries over the engine's last snapshot; load and unload forwarded.

    Ready only while the engine process answers, its registry is ready and every front end
    beats. ``load_all`` is the connection: it runs until the app shuts down.
    """

    def __init__(self, settings: Settings, metrics: Metrics, client: EngineClient) -> None:
        super().__init__(settings.model_repository, metrics=metrics,
                         executor=ThreadPoolExecutor(1), threads=1, only=settings.models,
                         drain_timeout_s=settings.drain_timeout_s)
        self.client = client
        self._connection: asyncio.Task[None] | None = None

    def _sync(self) -> None:
        snap = self.client.snapshot
        if snap is None:
            raise ModelNotReady("engine process unavailable")
        self.startup_complete = snap.startup_complete
        self._entries = {e.name: _entry(e) for e in snap.entries}

    def entries(self) -> list[ModelEntry]:
        self._sync()
        return super().entries()

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        self._sync()
        return super().get(name, version)

    def is_ready(self) -> bool:
        snap = self.client.snapshot
        return snap is not None and self.client.connected.is_set() and snap.ready

    def index(self) -> list[ModelEntry]:
        self._sync()
        return super().index()

    async def load_all(self) -> None:
        """Connect; then stay here (the app's loader task) until shut down: the poller of
        ``poll`` mode is the engine process's, never a front end's."""
        self._connection = asyncio.create_task(self.client.run(), name="sluice-engine-client")
        await asyncio.Event().wait()

    async def load(self, name: str) -> ModelEntry:
        view, _ = await self.client.call("load", name)
        return _entry(view)

    async def unload(self, name: str) -> None:
        await self.client.call("unload", name)

    async def close(self) -> None:
        """Wait for the calls in flight to be answered, then disconnect."""
        await self.client.drain(self._drain_timeout_s)
        if self._connection is not None:
            self._connection.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connection


def _entry(view: Any) -> ModelEntry:
    return ModelEntry(view.name, view.state, view.reason,
                      cast(dict[int, ModelVersion], view.versions), view.wanted, view.last_error)


class RemoteService(InferenceService):
    """``InferenceService`` whose calls the engine process computes; ``model`` (the front end's
    own look-up) reads the snapshot."""

    def __init__(self, registry: RemoteRegistry, chars_per_token: int,
                 tokenizers: FrontendTokenizers | None = None) -> None:
        super().__init__(registry, chars_per_token)
        self.client = registry.client
        self.tokenizers = tokenizers
        self._snapshot: m.Snapshot | None = None

    async def _forward(self, method: str, request: Any) -> Any:
        value, timings = await self.client.call(method, request)
        mine = REQUEST_TIMINGS.get()
        if mine is not None and timings is not None:
            (mine.queue_s, mine.prepare_s, mine.compute_s, mine.batch_items,
             mine.version) = timings
        return value

    async def classify(self, request: TextRequest) -> TextResult:
        """Checked and tokenized here (when this front end has the version's tokenizer), so
        the engine process only pads; else the texts go as they came."""
        if self.tokenizers is None:
            return cast(TextResult, await self._forward("classify", request))
        try:
            model = self.registry.get(request.model, request.version)
        except SluiceError:  # perhaps a stale snapshot: the engine has the last word
            return cast(TextResult, await self._forward("classify", request))
        self._prune()
        texts = self.checked_texts(model, request)
        key = (model.name, model.version, model.config.max_length)
        tokens = await self.tokenizers.encode(key, texts)
        if tokens is None:
            return cast(TextResult, await self._forward("classify", request))
        request = dataclasses.replace(request, texts=texts)
        return cast(TextResult, await self._forward(
            "classify_tokens", (request, model.version, tokens)))

    def _prune(self) -> None:
        """Once per snapshot: drop the tokenizers of versions the engine no longer serves."""
        snap = self.client.snapshot
        if snap is None or snap is self._snapshot or self.tokenizers is None:
            return
        self._snapshot = snap
        self.tokenizers.keep((e.name, v.version, v.config.max_length)
                             for e in snap.entries for v in e.versions.values() if v.is_text)

    async def infer(self, request: TensorRequest) -> TensorResult:
        return cast(TensorResult, await self._forward("infer", request))

    async def rank(self, request: RankRequest) -> RankResult:
        return cast(RankResult, await self._forward("rank", request))


class FrontendMetrics(Metrics):
    """Renders every process's metrics summed (the engine merges its own with each front
    end's, pushed once a second): the same on every front end, up to about 2 s old. Its own
    alone until the engine has answered."""

    client: EngineClient | None = None

    def own(self) -> bytes:
        return super().render()

    def render(self) -> bytes:
        merged = self.client.metrics if self.client is not None else b""
        return merged or self.own()


def remote_state(settings: Settings, lifecycle: Lifecycle, index: int,
                 endpoint: str) -> ServerState:
    metrics = FrontendMetrics()
    client = EngineClient(endpoint, index, metrics.own)
    metrics.client = client
    registry = RemoteRegistry(settings, metrics, client)
    return ServerState(
        settings=settings, metrics=metrics, executor=ThreadPoolExecutor(2),
        registry=registry,
        service=RemoteService(registry, settings.max_text_chars_per_token,
                              FrontendTokenizers(settings.model_repository)),
        version=_version(), lifecycle=lifecycle,
    )
