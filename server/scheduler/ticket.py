"""A request's ticket: its future, its deadline, its cancellation, and its one answer.

:class:`Ticket` is what the batcher keeps of an accepted request. :class:`Tickets` holds those
not yet answered and is the only place that answers them: :meth:`Tickets.succeed` and
:meth:`Tickets.fail` do nothing for a ticket already answered, take it out of the queue if it is
still there, and set its future through the "if not done" helpers of
:mod:`server.scheduler.futures` (its caller may have cancelled it).

- **Deadline.** A timer per ticket: at the deadline it is answered ``DeadlineExceeded``, whether
  queued or computing (its batch's late result is then dropped). A level whose queue policy
  says ``DELAY`` has a soft deadline instead: the timer moves the ticket behind its level.
- **Cancellation.** Cancelling the future answers the ticket ``cancelled`` (a done callback);
  :meth:`Tickets.drop_dead` catches those whose callback has not run yet, and those past their
  deadline, before their batch is computed.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from server.errors import DeadlineExceeded
from server.scheduler.admission import Terms
from server.scheduler.clock import Clock, TimerHandle
from server.scheduler.futures import set_exception_if_not_done, set_result_if_not_done
from server.scheduler.observer import BatchObserver
from server.scheduler.queue import RequestQueue
from server.scheduler.timings import Timings

P = TypeVar("P")
R = TypeVar("R")


class Ticket(Generic[P, R]):
    """One accepted request, until it is answered."""

    __slots__ = (
        "computing",
        "cost",
        "deadline",
        "delayed",
        "dequeued_at",
        "enqueued_at",
        "finished",
        "future",
        "items",
        "level",
        "payload",
        "queued",
        "seq",
        "timeout_us",
        "timer",
        "timings",
    )

    def __init__(
        self,
        seq: int,
        payload: P,
        items: int,
        cost: int,
        future: asyncio.Future[R],
        enqueued_at: float,
        timeout_us: int,
        timings: Timings | None,
        level: int = 1,
    ) -> None:
        self.seq = seq
        self.payload = payload
        self.items = items
        self.cost = cost
        self.future = future
        self.enqueued_at = enqueued_at
        self.timeout_us = timeout_us
        self.deadline = enqueued_at + timeout_us / 1_000_000 if timeout_us > 0 else None
        self.timer: TimerHandle | None = None
        self.dequeued_at: float | None = None
        self.queued = True
        self.computing = False
        self.finished = False
        self.timings = timings
        self.level = level  # priority level, 1 the highest
        self.delayed = False  # its soft deadline passed (DELAY): behind its level

    def expired(self, now: float) -> bool:
        """Its (hard) deadline has passed."""
        return self.deadline is not None and now >= self.deadline


class Tickets(Generic[P, R]):
    """The accepted requests not yet answered; each is answered exactly once."""

    def __init__(
        self,
        queue: RequestQueue[Ticket[P, R]],
        *,
        clock: Clock,
        observer: BatchObserver,
        name: str,
        on_answered: Callable[[], None],
    ) -> None:
        self._queue = queue
        self._clock = clock
        self._observer = observer
        self._name = name
        self._on_answered = on_answered
        self._live: dict[int, Ticket[P, R]] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def __bool__(self) -> bool:
        return bool(self._live)

    def issue(
        self, payload: P, *, items: int, cost: int, terms: Terms, timings: Timings | None
    ) -> asyncio.Future[R]:
        """Queue a new request admitted on ``terms``; its future."""
        timeout_us, soft = terms.timeout_us, terms.soft
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        ticket = Ticket(
            next(self._seq), payload, items, cost, future, self._clock.now(),
            0 if soft else timeout_us, timings, terms.level,
        )
        self._queue.put(ticket)
        self._live[ticket.seq] = ticket
        if ticket.deadline is not None:
            ticket.timer = self._clock.call_at(ticket.deadline, functools.partial(self.expire, ticket))
        elif soft and timeout_us > 0:
            ticket.timer = self._clock.call_at(
                ticket.enqueued_at + timeout_us / 1_000_000, functools.partial(self._demote, ticket)
            )
        future.add_done_callback(functools.partial(self._on_future_done, ticket))
        return future

    # -- answering -----------------------------------------------------------------------------

    def succeed(self, ticket: Ticket[P, R], result: R) -> None:
        if self._close(ticket):
            set_result_if_not_done(ticket.future, result)
            self._report(ticket, "success")

    def fail(self, ticket: Ticket[P, R], outcome: str, error: BaseException) -> None:
        if self._close(ticket):
            set_exception_if_not_done(ticket.future, error)
            self._report(ticket, outcome)

    def expire(self, ticket: Ticket[P, R]) -> None:
        """Its deadline: it holds while the batch computes (the late result is dropped)."""
        self.fail(ticket, "timeout", self._deadline_error(ticket))

    def drop_dead(self, tickets: Iterable[Ticket[P, R]]) -> None:
        """Answer the tickets that expired or were cancelled (callback not yet run)."""
        now = self._clock.now()
        for ticket in tickets:
            if ticket.future.cancelled():
                self.fail(ticket, "cancelled", asyncio.CancelledError())
            elif ticket.expired(now):
                self.expire(ticket)

    def fail_all(self, error: BaseException, *, computing_too: bool = True) -> None:
        """Fail every ticket not answered (``computing_too=False``: those not computing)."""
        for ticket in list(self._live.values()):
            if computing_too or not ticket.computing:
                self.fail(ticket, "failed", error)

    def _close(self, ticket: Ticket[P, R]) -> bool:
        """Take ``ticket`` out of every structure; False if it was already answered."""
        if ticket.finished:
            return False
        ticket.finished = True
        if ticket.timer is not None:
            ticket.timer.cancel()
            ticket.timer = None
        if ticket.queued:
            self._queue.take(ticket, self._clock.now())
        del self._live[ticket.seq]
        self._on_answered()
        return True

    def _report(self, ticket: Ticket[P, R], outcome: str) -> None:
        now = self._clock.now()
        left_queue = ticket.dequeued_at if ticket.dequeued_at is not None else now
        if ticket.timings is not None:
            ticket.timings.queue_s += left_queue - ticket.enqueued_at
        self._observer.request_finished(
            outcome, ticket.items, left_queue - ticket.enqueued_at, now - ticket.enqueued_at
        )

    def _demote(self, ticket: Ticket[P, R]) -> None:
        """The soft deadline (``DELAY``) of a ticket: behind its level's others, if still queued."""
        ticket.timer = None
        if ticket.queued:
            self._queue.demote(ticket)

    def _deadline_error(self, ticket: Ticket[P, R]) -> DeadlineExceeded:
        where = "while its batch was computing" if ticket.computing else "before it could run"
        return DeadlineExceeded(
            f"model '{self._name}': the request's deadline ({ticket.timeout_us} us) passed {where}"
        )

    def _on_future_done(self, ticket: Ticket[P, R], future: asyncio.Future[R]) -> None:
        if future.cancelled():
            self.fail(ticket, "cancelled", asyncio.CancelledError())
