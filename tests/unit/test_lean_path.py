"""The lean request path's pieces: the disconnect watcher, the metric adders, the access lines."""

from __future__ import annotations

import asyncio
import io
import math
import sys
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from server.api.access import _StdoutHandler
from server.api.body import read_raw_body, unless_disconnected
from server.errors import PayloadTooLarge, RequestCancelled
from server.metrics import _adder, _observer


class Client:
    """An ASGI ``receive``: the disconnect arrives when ``leave`` is set."""

    def __init__(self) -> None:
        self.leave = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.leave.wait()
        return {"type": "http.disconnect"}


async def test_a_disconnect_cancels_the_work_and_answers_request_cancelled() -> None:
    client, started, cancelled = Client(), asyncio.Event(), asyncio.Event()

    async def work() -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    waiting = asyncio.ensure_future(unless_disconnected(client.receive, work()))
    await started.wait()
    client.leave.set()
    with pytest.raises(RequestCancelled):
        await waiting
    assert cancelled.is_set()


async def test_the_work_answers_when_the_client_stays() -> None:
    async def work() -> str:
        await asyncio.sleep(0)
        return "done"

    assert await unless_disconnected(Client().receive, work()) == "done"
    await asyncio.sleep(0)  # the watcher's cancellation runs
    assert len(asyncio.all_tasks()) == 1  # the watcher went with the answer


async def test_cancelling_the_request_cancels_its_work() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    waiting = asyncio.ensure_future(unless_disconnected(Client().receive, work()))
    await started.wait()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.sleep(0)
    assert cancelled.is_set()


async def test_a_cancellation_the_work_swallowed_is_taken_back() -> None:
    """The disconnect cancels the calling task; work that catches it and answers anyway
    leaves the task with no cancellation pending (a later ``asyncio.timeout`` still works)."""
    client, started = Client(), asyncio.Event()

    async def work() -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "answered anyway"
        return "never"

    async def request() -> tuple[str, int]:
        result = await unless_disconnected(client.receive, work())
        task = asyncio.current_task()
        assert task is not None
        return result, task.cancelling()

    waiting = asyncio.ensure_future(request())
    await started.wait()
    client.leave.set()
    assert await waiting == ("answered anyway", 0)


def _messages(*messages: dict[str, Any]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


@pytest.mark.parametrize("parts", [[b"abc"], [b"a", b"bc"], [b"", b"abc", b""]])
async def test_read_raw_body_joins_the_parts(parts: list[bytes]) -> None:
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
                for i, p in enumerate(parts)]
    scope = {"headers": [], "path": "/x"}
    assert await read_raw_body(scope, _messages(*messages), 10) == b"abc"


async def test_read_raw_body_refuses_past_the_limit_and_on_disconnect() -> None:
    scope = {"headers": [(b"content-length", b"11")], "path": "/x"}
    with pytest.raises(PayloadTooLarge, match="11 bytes; the limit is 10"):
        await read_raw_body(scope, _messages(), 10)
    chunked = {"headers": [], "path": "/x"}
    with pytest.raises(PayloadTooLarge, match="more than 10 bytes"):
        await read_raw_body(chunked, _messages(
            {"type": "http.request", "body": b"x" * 6, "more_body": True},
            {"type": "http.request", "body": b"x" * 6, "more_body": False}), 10)
    with pytest.raises(RequestCancelled, match="while sending the body"):
        await read_raw_body(chunked, _messages(
            {"type": "http.request", "body": b"x", "more_body": True},
            {"type": "http.disconnect"}), 10)


BOUNDS = (0.001, 0.01, 0.1, 1.0)


@pytest.mark.parametrize("value", [0.0, 0.001, 0.0011, 0.01, 0.5, 1.0, 1.5, 1e9, -1.0, math.nan])
def test_the_bound_observer_fills_the_bucket_observe_fills(value: float) -> None:
    registry = CollectorRegistry()
    h = Histogram("h", "h", ["m"], buckets=BOUNDS, registry=registry)
    mine, reference = h.labels("a"), h.labels("b")
    _observer(mine)(value)
    reference.observe(value)
    def of(child: str) -> dict[tuple[str, str | None], float]:
        return {(s.name, s.labels.get("le")): s.value for s in h.collect()[0].samples
                if s.labels.get("m") == child and not s.name.endswith("_created")}

    samples, wanted = of("a"), of("b")
    assert samples.keys() == wanted.keys()
    for key, v in wanted.items():
        assert samples[key] == v or (math.isnan(v) and math.isnan(samples[key])), key


def test_the_adder_adds_to_the_child() -> None:
    c = Counter("c", "c", ["m"], registry=CollectorRegistry())
    add = _adder(c.labels("a"))
    add(2)
    add(0.5)
    assert c.labels("a")._value.get() == 2.5


async def test_access_lines_of_one_loop_iteration_are_written_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", stream)
    handler = _StdoutHandler()
    handler.write_line(b'{"a":1}')
    handler.write_line(b'{"b":2}')
    assert raw.getvalue() == b""  # not before the iteration ends
    await asyncio.sleep(0)
    assert raw.getvalue() == b'{"a":1}\n{"b":2}\n'


def test_access_lines_outside_a_loop_and_to_a_text_stream_are_written_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = io.StringIO()
    monkeypatch.setattr(sys, "stdout", text)
    _StdoutHandler().write_line(b'{"a":"\xc3\xa9"}')
    assert text.getvalue() == '{"a":"\u00e9"}\n'
