"""The batches out of the queue, from forming to their answers.

:meth:`Batches.dispatch` takes a formed batch out of the queue (a request already past its
deadline is answered instead) and gives it a task and a turn (:class:`~server.scheduler.runner.Turn`).
The task, like Ray Serve's batch handler:

1. prepares the batch (tokenizes) in a worker thread, then waits for its turn and a free instance
   (or, when its turn and an instance are free as it leaves the queue, prepares and computes it
   in one call on that instance's thread, skipping to 3:
   :meth:`~server.scheduler.runner.EngineRunner.take_if_free`);
2. drops the requests that expired or were cancelled meanwhile (:meth:`Tickets.drop_dead
   <server.scheduler.ticket.Tickets.drop_dead>`), preparing the rest again, so they are never
   computed; a batch left empty ends there;
3. computes it on the runner and answers each request with its result;
4. fails every request of the batch, and only those, if anything in 1-3 raises: one
   ``try``/``except`` (an ``EngineTimeout`` as it is, anything else as ``InferenceFailed``).

Answers go through :class:`~server.scheduler.ticket.Tickets`, so a request answered meanwhile
(deadline, cancellation) keeps its first answer and its late result is dropped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

from server.errors import EngineTimeout, InferenceFailed, SluiceError
from server.scheduler.admission import Admission
from server.scheduler.clock import Clock
from server.scheduler.handler import BatchHandler, PreparedBatch
from server.scheduler.observer import BatchObserver
from server.scheduler.queue import RequestQueue
from server.scheduler.runner import EngineRunner, Turn
from server.scheduler.ticket import Ticket, Tickets
from server.scheduler.timings import timed

logger = logging.getLogger(__name__)

P = TypeVar("P")
R = TypeVar("R")


class Batches(Generic[P, R]):
    """Formed batches of one model version, each run as a task until its requests are answered."""

    def __init__(
        self,
        handler: BatchHandler[P, R],
        queue: RequestQueue[Ticket[P, R]],
        tickets: Tickets[P, R],
        runner: EngineRunner[P, R],
        admission: Admission,
        *,
        clock: Clock,
        observer: BatchObserver,
        executor: Callable[[], Executor | None],
        name: str,
        on_finished: Callable[[], None],
    ) -> None:
        self._handler = handler
        self._queue = queue
        self._tickets = tickets
        self._runner = runner
        self._admission = admission
        self._backlog = admission.backlog  # expected compute of the batches out of the queue
        self._clock = clock
        self._observer = observer
        self._executor = executor
        self._name = name
        self._on_finished = on_finished
        self._in_flight = 0  # batches out of the queue and not finished
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        """Batches taken from the queue and not finished (preparing, waiting or executing)."""
        return self._in_flight

    def dispatch(self, batch: Sequence[Ticket[P, R]], now: float) -> None:
        """Take ``batch`` out of the queue and run it (requests past their deadline: answered)."""
        taken = []
        for ticket in batch:
            if ticket.expired(now):
                self._tickets.expire(ticket)
            else:
                self._queue.take(ticket, now)
                taken.append(ticket)
        if not taken:
            return
        self._backlog.add(id(taken), self._admission.expected_compute_s(taken))
        self._in_flight += 1
        task = asyncio.create_task(self._run(taken, self._runner.turn()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[Ticket[P, R]], turn: Turn) -> None:
        tickets = batch
        try:
            if self._runner.take_if_free(turn):  # nothing ahead, an instance idle: one hop
                for ticket in tickets:
                    ticket.computing = True
                self._backlog.start(id(batch), self._clock.now())
                prepared, prepare_s, results, compute_s = await self._runner.prepare_and_run(
                    [t.payload for t in tickets], turn, self._admission.expected_compute_s(tickets)
                )
                self._check_count(results, tickets)
                self._answer(tickets, results, prepared, prepare_s, compute_s)
                return
            prepared, prepare_s = await self._prepare(tickets)
            await self._runner.take_instance(turn)
            # Requests may have expired or been cancelled while the batch was prepared or
            # waited for an instance: they must not be computed, so prepare the rest again.
            while True:
                self._tickets.drop_dead(tickets)
                alive = [t for t in tickets if not t.finished]
                if not alive:
                    return
                if len(alive) == len(tickets):
                    break
                tickets = alive
                prepared, again_s = await self._prepare(tickets)
                prepare_s += again_s
            for ticket in tickets:
                ticket.computing = True  # its deadline timer stays armed: it holds in compute
            self._backlog.start(id(batch), self._clock.now())
            results, compute_s = await self._runner.run(
                [t.payload for t in tickets], prepared, turn,
                self._admission.expected_compute_s(tickets),
            )
            self._check_count(results, tickets)
            self._answer(tickets, results, prepared, prepare_s, compute_s)
        except Exception as error:
            logger.warning("model %s: a batch of %d requests failed", self._name, len(batch), exc_info=True)
            message = str(error) if isinstance(error, SluiceError) else (f"{type(error).__name__}: {error}")
            failure = error if isinstance(error, EngineTimeout) else InferenceFailed(
                f"model '{self._name}': inference failed: {message}")
            for ticket in batch:
                self._tickets.fail(ticket, "failed", failure)
        finally:
            self._backlog.finish(id(batch))
            self._runner.end_turn(turn)
            self._in_flight -= 1
            self._on_finished()

    @staticmethod
    def _check_count(results: Sequence[R], tickets: list[Ticket[P, R]]) -> None:
        if len(results) != len(tickets):
            raise InferenceFailed(f"the engine returned {len(results)} results for {len(tickets)} requests")

    def _answer(
        self, tickets: list[Ticket[P, R]], results: Sequence[R], prepared: PreparedBatch,
        prepare_s: float, compute_s: float,
    ) -> None:
        """Feed the latency model and the observer, then answer each ticket with its result."""
        items = sum(t.items for t in tickets)
        self._admission.latency.observe(items, prepared.padded_tokens, prepare_s, compute_s)
        self._observer.batch_executed(
            len(tickets), items, prepared.real_tokens, prepared.padded_tokens, prepare_s, compute_s
        )
        for ticket, result in zip(tickets, results, strict=True):
            timings = ticket.timings
            if timings is not None and not ticket.finished:  # answered: left alone
                timings.prepare_s += prepare_s
                timings.compute_s += compute_s
                timings.batch_items = items
            self._tickets.succeed(ticket, result)

    async def _prepare(self, tickets: list[Ticket[P, R]]) -> tuple[PreparedBatch, float]:
        """The batch's engine input, prepared in a worker thread, and the seconds it took."""
        call = functools.partial(self._handler.prepare, [t.payload for t in tickets])
        return await asyncio.get_running_loop().run_in_executor(self._executor(), timed(call))
