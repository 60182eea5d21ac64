"""Steady, bounded load from a few client threads, each with its own kept-alive httpx client.

Every request's outcome is recorded (when it was sent and answered, the status or the error, and
the upstream that answered, from a response header), so a test can account for each one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx

BODY = {"inputs": ["my flight was delayed again but the crew were lovely"]}


@dataclass(frozen=True)
class Outcome:
    client: int
    sent: float
    answered: float
    status: int | None  # None: no HTTP answer at all
    upstream: str = ""
    error: str = ""


@dataclass
class Load:
    """``clients`` threads posting to ``url`` every ``pace_s``, until ``stop()`` or the bounds."""

    url: str
    path: str = "/v1/models/tiny-sentiment/classify"
    clients: int = 4
    pace_s: float = 0.01
    max_requests: int = 50_000
    max_seconds: float = 120.0
    upstream_header: str = "x-upstream"
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _answered: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> Load:
        deadline = time.monotonic() + self.max_seconds
        for i in range(self.clients):
            t = threading.Thread(target=self._client, args=(i, deadline), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _client(self, index: int, deadline: float) -> None:
        with httpx.Client(base_url=self.url, timeout=30.0) as client:
            while (not self._stop.is_set() and time.monotonic() < deadline
                   and len(self.outcomes) < self.max_requests):
                sent = time.monotonic()
                try:
                    r = client.post(self.path, json=BODY)
                    outcome = Outcome(index, sent, time.monotonic(), r.status_code,
                                      r.headers.get(self.upstream_header, ""),
                                      "" if r.status_code == 200 else r.text[:200])
                except httpx.HTTPError as e:
                    outcome = Outcome(index, sent, time.monotonic(), None, error=repr(e))
                with self._answered:
                    self.outcomes.append(outcome)
                    self._answered.notify_all()
                self._stop.wait(self.pace_s)

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        """Block until ``count`` more requests have been answered (or fail after ``timeout``)."""
        with self._answered:
            target = len(self.outcomes) + count
            if not self._answered.wait_for(lambda: len(self.outcomes) >= target, timeout):
                raise RuntimeError(f"load stalled at {len(self.outcomes)} requests")

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for t in self._threads:
            t.join(40.0)
        return list(self.outcomes)

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != 200]
