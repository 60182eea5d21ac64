"""Turn one model folder into serving model versions: validate, build engines, warm up, start.

Everything here that blocks (reading files, building sessions, warm-up) runs in a worker thread
so a slow or broken model never stalls the event loop or the other models.

Each engine instance sits in an :class:`~server.repository.instances.EngineSlot`, so the
watchdog can have a stuck instance replaced by a freshly loaded one (``replace_instance``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engines.base import Engine, EngineSpec, TensorSpec
from engines.errors import EngineError
from engines.options import providers_for_device
from engines.registry import load_engine
from engines.warmup import timed_warmup
from server.cache import ResponseCache
from server.errors import ConfigError
from server.inference.tensor import TensorHandler
from server.inference.text import TextClassificationHandler
from server.metrics import Metrics, ModelObserver
from server.repository.config import ModelConfig, load_model_config
from server.repository.cost_cache import GridCache
from server.repository.engine_plan import plan_engines
from server.repository.instances import EngineSlot
from server.scheduler import Batcher, BatchPolicy
from server.scheduler.cost_model import CostModel
from server.scheduler.latency import LatencyModel, MeasuredLatency
from server.scheduler.watchdog import WatchdogLimits

log = logging.getLogger("sluice.repository")

CONFIG_FILE = "config.yaml"


@dataclass
class ModelVersion:
    """One loaded, serving version of a model."""

    name: str
    version: int
    config: ModelConfig
    path: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    batcher: Batcher[Any, Any]
    engines: list[Engine]
    observer: ModelObserver
    load_seconds: float = 0.0
    cache: ResponseCache | None = None

    @property
    def is_text(self) -> bool:
        return self.config.task == "text-classification"

    @property
    def available(self) -> bool:
        """Serving, and not UNAVAILABLE because of engine calls stuck past the watchdog."""
        return self.batcher.available

    async def stop(self, drain_timeout_s: float) -> None:
        """Drain the queue, then free the engines."""
        self.observer.ready.set(0)
        await self.batcher.stop(drain_timeout_s=drain_timeout_s)
        if self.batcher.batches_in_flight or self.batcher.stuck_calls:
            log.warning("%s v%s: a batch is still computing; its engine closes when it returns",
                        self.name, self.version)
        for engine in self.engines:  # an EngineSlot closes under no running call
            try:
                engine.close()
            except Exception:  # a failing close must not keep the others alive
                log.exception("closing %s v%s failed", self.name, self.version)


def list_model_folders(repository: Path) -> list[Path]:
    """Model folders: sub-folders holding a config.yaml, sorted by name."""
    if not repository.is_dir():
        raise ConfigError(f"{repository}: model repository folder does not exist")
    return sorted(p for p in repository.iterdir() if (p / CONFIG_FILE).is_file())


def available_versions(folder: Path) -> list[int]:
    """Numeric version folders present on disk."""
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def read_config(folder: Path) -> ModelConfig:
    return load_model_config(folder / CONFIG_FILE)


def select_versions(folder: Path, config: ModelConfig) -> list[int]:
    """Versions to serve; a ConfigError if none of them is on disk."""
    on_disk = available_versions(folder)
    chosen = config.version_policy.select(on_disk)
    if not chosen:
        raise ConfigError(
            f"{folder}: no version folder to serve (on disk: {on_disk or 'none'}; "
            f"version_policy: {config.version_policy.model_dump(exclude_none=True) or 'latest 1'})"
        )
    if config.version_policy.specific is not None:
        missing = sorted(set(config.version_policy.specific.versions) - set(on_disk))
        if missing:
            raise ConfigError(f"{folder}: version_policy.specific: versions {missing} not on disk")
    return chosen


def with_device(config: ModelConfig, device: str) -> ModelConfig:
    """``config`` moved to ``device`` (the deploy-time ``SLUICE_DEVICE``); "" leaves it as it is.

    ONNX Runtime providers meant for the other device are dropped (see
    :func:`engines.options.providers_for_device`), so a CPU config runs on CUDA and back.
    """
    if not device or device == config.engine.device:
        return config
    engine = config.engine.model_copy(
        update={"device": device,
                "providers": providers_for_device(device, config.engine.providers)}
    )
    return config.model_copy(update={"engine": engine})


def engine_spec(config: ModelConfig, version_dir: Path, threads: int) -> EngineSpec:
    """The one EngineSpec builder: ``config``'s engine for ``version_dir``.

    ``threads`` is used when the config leaves ``engine.threads`` at 0. The load tests and the
    smoke tests build their engines here too, so they load what the server loads.
    """
    artifact = (version_dir / config.artifact).resolve()
    if not artifact.exists():
        raise ConfigError(
            f"{version_dir}: engine.artifact: '{config.artifact}' not found "
            f"(backend {config.engine.backend})"
        )
    e = config.engine
    return EngineSpec(
        artifact=artifact,
        device=e.device,
        precision=e.precision,
        threads=e.threads or threads,
        providers=e.providers,
        max_batch_size=config.batching.max_batch_size,
        max_length=config.max_length,
        options=dict(e.options),
    )


def _check_tensor_config(config: ModelConfig, engine: Engine, where: Path) -> None:
    declared = {t.name for t in config.inputs}
    actual = {t.name for t in engine.inputs}
    if declared and declared != actual:
        raise ConfigError(f"{where}: inputs: config declares {sorted(declared)}, "
                          f"the model has {sorted(actual)}")


def _tensor_specs(config: ModelConfig, engine: Engine) -> tuple[tuple[TensorSpec, ...], ...]:
    if config.task == "text-classification":
        n = len(config.labels)
        return (
            (TensorSpec("text", "BYTES", (-1,)),),
            (TensorSpec("probabilities", "FP32", (-1, n)), TensorSpec("label", "BYTES", (-1,))),
        )
    ins = tuple(TensorSpec(t.name, t.datatype, (-1, *t.dims)) for t in config.inputs)
    outs = tuple(TensorSpec(t.name, t.datatype, (-1, *t.dims)) for t in config.outputs)
    return ins or tuple(engine.inputs), outs or tuple(engine.outputs)


@dataclass
class _Built:
    engines: list[Engine]
    handler: Any
    replace_instance: Callable[[int], None]
    config: ModelConfig
    """The config as served: ``engine.instance_count`` and ``threads`` as the plan chose them."""
    cost: CostModel | None
    plan: str


def _build_blocking(
    name: str, version: int, config: ModelConfig, version_dir: Path, threads: int,
    plugins: Sequence[str] = (), cost_budget_s: float = 0.0, cache: GridCache | None = None,
) -> _Built:
    base = engine_spec(config, version_dir, max(1, threads // config.engine.instance_count))

    def factory(spec: EngineSpec) -> Engine:
        return load_engine(config.engine.backend, spec, plugins)

    plan = plan_engines(config, base, threads, factory, budget_s=cost_budget_s,
                        cache=cache or GridCache())
    spec = replace(base, threads=plan.threads)
    config = config.model_copy(update={"engine": config.engine.model_copy(
        update={"instance_count": plan.instances, "threads": plan.threads})})
    engines: list[Engine] = []
    slots: list[EngineSlot] = []
    cost = (CostModel(plan.grid, config.batching.max_batch_size, config.max_length)
            if plan.grid is not None else None)

    def replace_instance(instance: int) -> None:
        """Load, warm and swap in a fresh engine for ``instance`` (the watchdog's stuck one)."""
        fresh = load_engine(config.engine.backend, spec, plugins)
        try:
            fresh.warmup()
        except BaseException:
            fresh.close()
            raise
        slots[instance].swap(fresh)

    measured = list(plan.engines)
    try:
        for _ in range(plan.instances):
            engine = measured.pop(0) if measured else load_engine(config.engine.backend, spec, plugins)
            slots.append(EngineSlot(engine))
            engines.append(slots[-1])
        handler: Any
        if config.task == "text-classification":
            from engines.tokenization import TextEncoder

            if not (version_dir / "tokenizer.json").is_file():
                raise ConfigError(f"{version_dir}: tokenizer.json missing (text-classification)")
            encoder = TextEncoder.from_dir(version_dir, config.max_length)
            # the cost model (when there is one) cuts the batches the config does not pin
            handler = TextClassificationHandler(
                encoder, engines, len(config.labels), config.batching.sub_batch_tokens, cost
            )
        else:
            _check_tensor_config(config, engines[0], version_dir)
            handler = TensorHandler(engines)
        for engine in engines[len(plan.engines):]:
            engine.warmup()
        return _Built(engines, handler, replace_instance, config, cost, plan.reason)
    except BaseException:
        for engine in engines + measured:
            engine.close()
        raise


async def load_version(
    folder: Path,
    config: ModelConfig,
    version: int,
    *,
    metrics: Metrics,
    executor: Executor,
    threads: int,
    response_cache_size: int = 0,
    plugins: Sequence[str] = (),
    watchdog: WatchdogLimits | None = None,
    cost_budget_s: float = 0.0,
    cost_cache: GridCache | None = None,
) -> ModelVersion:
    """Build the engines and batcher of one version and start serving it.

    ``plugins``: the ``engine_plugins`` setting (which plugin engines may load); ``watchdog``:
    engine call limits (None: the defaults of :class:`WatchdogLimits`); ``cost_budget_s``: the
    ``cost_grid_budget_s`` setting (0: no cost model); ``cost_cache``: where grids are kept.
    """
    name = folder.name
    version_dir = folder / str(version)
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    try:
        built = await loop.run_in_executor(
            None, _build_blocking, name, version, config, version_dir, threads, plugins,
            cost_budget_s, cost_cache,
        )
    except EngineError as e:
        raise ConfigError(f"{version_dir}: engine {config.engine.backend}: {e}") from e
    engines, config = built.engines, built.config
    latency: LatencyModel
    if built.cost is not None:
        latency = built.cost
    else:
        try:  # the latency model's first figures: warm batches of the warm-up shapes
            warm = await loop.run_in_executor(
                None, timed_warmup, engines[0], config.batching.max_batch_size, config.max_length
            )
        except Exception:
            for engine in engines:
                engine.close()
            raise
        latency = MeasuredLatency.from_warmup(warm)
    observer = metrics.observer(name, str(version))
    policy = BatchPolicy.from_config(config.batching, config.engine.instance_count)
    batcher: Batcher[Any, Any] = Batcher(
        built.handler, policy, name=f"{name}/{version}", observer=observer, executor=executor,
        latency=latency, watchdog=watchdog or WatchdogLimits(),
        replace_instance=built.replace_instance,
    )
    await batcher.start()
    inputs, outputs = _tensor_specs(config, engines[0])
    elapsed = time.perf_counter() - started
    observer.load_duration.set(elapsed)
    observer.ready.set(1)
    log.info("loaded %s version %d (%s) in %.2fs: %d instance(s) x %d thread(s), %s", name, version,
             config.engine.backend, elapsed, config.engine.instance_count, config.engine.threads,
             built.plan)
    return ModelVersion(
        name=name, version=version, config=config, path=version_dir, inputs=inputs,
        outputs=outputs, batcher=batcher, engines=engines, observer=observer,
        load_seconds=elapsed,
        cache=(
            ResponseCache(response_cache_size)
            if response_cache_size and config.task == "text-classification" else None
        ),
    )
