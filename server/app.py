"""``create_app``: the FastAPI application and its lifespan.

Start-up: the process is live at once and turns ready when every model has loaded (loading runs
in the background so probes and metrics answer meanwhile). Shut-down (``server.lifecycle``):
readiness flips to 503 while the server still serves, then it stops accepting and the lifespan
drains every model's queue and closes its engines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata

from starlette.responses import Response

from server.api import access, classify, control, errors, guard, kserve, names, rank
from server.api.hot import SluiceApp
from server.lifecycle import Lifecycle
from server.metrics import Metrics
from server.repository.poller import RepositoryPoller
from server.repository.registry import ModelRegistry
from server.scheduler.watchdog import WatchdogLimits
from server.service import InferenceService
from server.settings import Settings, default_threads
from server.state import ServerState

log = logging.getLogger("sluice")


def _version() -> str:
    try:
        return metadata.version("sluice")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def build_state(settings: Settings, lifecycle: Lifecycle | None = None) -> ServerState:
    metrics = Metrics()
    cores = default_threads()
    workers = settings.worker_threads or 2 * cores + 2
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sluice-worker")
    registry = ModelRegistry(
        settings.model_repository,
        metrics=metrics,
        executor=executor,
        threads=settings.engine_threads or cores,
        only=settings.models,
        drain_timeout_s=settings.drain_timeout_s,
        response_cache_size=settings.response_cache_size,
        device=settings.device,
        engine_plugins=settings.engine_plugin_prefixes,
        watchdog=WatchdogLimits(call_timeout_s=settings.engine_call_timeout_s,
                                max_stuck_calls=settings.max_stuck_calls),
        cost_budget_s=settings.cost_grid_budget_s,
    )
    return ServerState(
        settings=settings, metrics=metrics, executor=executor, registry=registry,
        service=InferenceService(registry, settings.max_text_chars_per_token), version=_version(),
        lifecycle=lifecycle or Lifecycle(shutdown_delay_s=settings.shutdown_delay_s),
    )


async def load_models(state: ServerState) -> None:
    """Load every model of the repository, then (poll mode) follow its changes; a repository
    that cannot be read leaves the server live but never ready (``state.load_error``)."""
    poller = None  # its first look comes before the first load: no change goes unseen
    if state.settings.model_control_mode == "poll":
        poller = RepositoryPoller(state.registry, state.settings.repository_poll_secs)
    try:
        await state.registry.load_all()
        summary = ", ".join(f"{e.name}={e.state}" for e in state.registry.entries())
        log.info("sluice model loading finished: %s; ready=%s", summary,
                 state.registry.is_ready())
    except Exception as e:  # the repository itself is unusable; stay live, never ready
        state.load_error = str(e)
        log.error("model repository failed to load: %s", e)
        return
    if poller is not None:
        await poller.run()


def create_app(
    settings: Settings | None = None, lifecycle: Lifecycle | None = None,
    state: ServerState | None = None,
) -> SluiceApp:
    """The app; ``lifecycle`` is shared with the server that moves it (``server.http_server``).
    ``state``: one built elsewhere (a front end's, with the remote registry and service)."""
    state = state or build_state(settings or Settings(), lifecycle)

    @contextlib.asynccontextmanager
    async def lifespan(app: SluiceApp) -> AsyncIterator[None]:
        loader = asyncio.create_task(load_models(state), name="sluice-load")
        try:
            yield
        finally:
            state.lifecycle.begin_drain()
            loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loader
            await state.registry.close()
            state.executor.shutdown(wait=False, cancel_futures=True)

    app = SluiceApp(
        title="Sluice",
        version=state.version,
        summary="High-throughput inference for fine-tuned, compressed text classifiers.",
        lifespan=lifespan,
    )
    errors.install(app)
    guard.install(app, state.settings)
    app.add_middleware(names.NameGuard)  # inside the access log, so its 400s are logged
    access.install(app, state.metrics, access_log=state.settings.access_log)
    app.include_router(kserve.build_router(state))
    app.include_router(classify.build_router(state))
    app.include_router(control.build_router(state))
    app.include_router(rank.build_router(state))

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    app.enable_hot_routes(state)  # classify and infer past the router, same middleware

    return app
