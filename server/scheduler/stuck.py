"""Engine calls abandoned by the watchdog: counted, their instances replaced, the model's health.

A call past its limit (:class:`~server.scheduler.watchdog.WatchdogLimits`) keeps running in its
thread (a running ONNX Runtime call cannot be cancelled). :class:`StuckCalls` counts those calls
and decides what happens to their instances:

- While fewer than ``max_stuck_calls`` calls are stuck, the instance is replaced by a fresh one
  (``replace``, which loads it, in a thread); replacements after consecutive timeouts back off
  exponentially (bounded), and a replacement that fails is retried.
- At ``max_stuck_calls`` the model is UNAVAILABLE (``on_health(False, reason)``) and no instance
  is replaced; as stuck calls finish their instances come back, and below the cap it is
  available again (``on_health(True, "")``) and the instances still stuck are replaced.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from server.scheduler.clock import Clock
from server.scheduler.watchdog import WatchdogLimits

logger = logging.getLogger(__name__)

HealthCallback = Callable[[bool, str], None]


class StuckCalls:
    """The stuck calls of one model version and the instances they hold (see the module docstring)."""

    def __init__(
        self,
        instances: asyncio.Queue[int],
        limits: WatchdogLimits,
        *,
        clock: Clock,
        replace: Callable[[int], None] | None = None,
        on_health: HealthCallback | None = None,
        name: str = "model",
    ) -> None:
        self._instances = instances  # the free instances; a replaced or freed one goes back
        self._limits = limits
        self._clock = clock
        self._replace = replace
        self._on_health = on_health or (lambda available, reason: None)
        self._name = name
        self._stuck = 0
        self._failures = 0  # consecutive watchdog timeouts, reset by a call that finishes
        self._parked: set[int] = set()  # instances out until their stuck call finishes
        self._available = True
        self._reason = ""
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def available(self) -> bool:
        """False while ``max_stuck_calls`` calls are stuck."""
        return self._available

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def count(self) -> int:
        """Abandoned calls still running in their threads."""
        return self._stuck

    def call_finished(self) -> None:
        """A watched call returned within its limit: the next timeout is a first one again."""
        self._failures = 0

    def abandon(self, instance: int, call: asyncio.Future[Any]) -> None:
        """``call`` on ``instance`` ran past its limit: count it, then replace or park ``instance``."""
        self._stuck += 1
        self._failures += 1
        call.add_done_callback(functools.partial(self._stuck_call_done, instance))
        logger.error("model %s: engine call on instance %d stuck past the watchdog limit "
                     "(%d stuck)", self._name, instance, self._stuck)
        if self._stuck >= self._limits.max_stuck_calls or self._replace is None:
            self._parked.add(instance)
            if self._stuck >= self._limits.max_stuck_calls:
                self._set_health(False, f"{self._stuck} engine calls are stuck past the watchdog "
                                        f"limit (max_stuck_calls {self._limits.max_stuck_calls})")
            return
        self._spawn_replacement(instance)

    def close(self) -> None:
        """No more replacements (the batcher stopped)."""
        self._closed = True
        for task in self._tasks:
            task.cancel()

    def _stuck_call_done(self, instance: int, call: asyncio.Future[Any]) -> None:
        if not call.cancelled() and call.exception() is not None:
            logger.info("model %s: a stuck engine call ended with %r", self._name, call.exception())
        self._stuck -= 1
        logger.info("model %s: a stuck engine call finished (%d still stuck)", self._name, self._stuck)
        if instance in self._parked:  # never replaced: its engine is free again
            self._parked.discard(instance)
            if not self._closed:
                self._instances.put_nowait(instance)
        if not self._available and self._stuck < self._limits.max_stuck_calls:
            self._set_health(True, "")
            if self._replace is not None and not self._closed:
                for parked in sorted(self._parked):  # still stuck: replace them now
                    self._parked.discard(parked)
                    self._spawn_replacement(parked)

    def _spawn_replacement(self, instance: int) -> None:
        task = asyncio.create_task(self._replace_later(instance, self._failures))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _replace_later(self, instance: int, failures: int) -> None:
        loop = asyncio.get_running_loop()
        replace = self._replace
        assert replace is not None
        while not self._closed:
            delay = self._limits.backoff_s(failures)
            if delay > 0:
                logger.warning("model %s: replacing instance %d in %.1f s (backoff)",
                               self._name, instance, delay)
                await self._clock.sleep_until(self._clock.now() + delay)
            if self._closed:
                return
            try:
                await loop.run_in_executor(None, replace, instance)
            except Exception:
                logger.exception("model %s: replacing instance %d failed", self._name, instance)
                failures += 1
                continue
            logger.warning("model %s: instance %d replaced by a fresh one", self._name, instance)
            self._instances.put_nowait(instance)
            return

    def _set_health(self, available: bool, reason: str) -> None:
        self._available, self._reason = available, reason
        if available:
            logger.warning("model %s: available again", self._name)
        else:
            logger.error("model %s: UNAVAILABLE: %s", self._name, reason)
        self._on_health(available, reason)
