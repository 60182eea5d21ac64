"""A failing batch fails only its own requests, with InferenceFailed, and serving goes on."""

from __future__ import annotations

import asyncio

import pytest

from server.errors import InferenceFailed, ModelNotReady
from tests.unit.batcher_fakes import FakeHandler, Text, hang_guard, make_rig


@hang_guard
async def test_engine_error_fails_exactly_its_batch_and_the_next_batch_succeeds() -> None:
    handler = FakeHandler(fail_if=lambda t: t.id == "bad")
    rig = await make_rig(handler, max_batch_size=2, max_queue_delay_us=0, length_aware=False)
    doomed = [rig.submit(Text("bad")), rig.submit(Text("x"))]
    fine = [rig.submit(Text("y")), rig.submit(Text("z"))]
    outcomes = await asyncio.gather(*doomed, *fine, return_exceptions=True)
    assert [type(o) for o in outcomes[:2]] == [InferenceFailed, InferenceFailed]
    assert "engine exploded" in str(outcomes[0])
    assert outcomes[2:] == ["y!", "z!"]
    assert rig.handler.executed_ids() == [["bad", "x"], ["y", "z"]]
    assert await rig.submit(Text("later")) == "later!"  # still serving
    assert sorted(rig.observer.outcomes()) == ["failed"] * 2 + ["success"] * 3
    assert len(rig.observer.batches) == 2  # only the successful batches are reported
    await rig.batcher.stop()


@hang_guard
async def test_wrong_result_count_fails_the_batch() -> None:
    rig = await make_rig(FakeHandler(drop_one=True), max_batch_size=2, max_queue_delay_us=0)
    futures = [rig.submit(Text("a")), rig.submit(Text("b"))]
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(o, InferenceFailed) for o in outcomes)
    assert "returned 1 results for 2 requests" in str(outcomes[0])
    await rig.batcher.stop()


@hang_guard
async def test_prepare_error_fails_the_batch_without_executing_it() -> None:
    handler = FakeHandler(fail_prepare_if=lambda t: t.id == "garbled")
    rig = await make_rig(handler, max_batch_size=1, max_queue_delay_us=0)
    with pytest.raises(InferenceFailed, match="cannot tokenize"):
        await rig.submit(Text("garbled"))
    assert rig.handler.executed_ids() == []
    assert await rig.submit(Text("clean")) == "clean!"
    await rig.batcher.stop()


@hang_guard
async def test_a_crashed_former_fails_what_it_holds_and_stops_the_batcher() -> None:
    rig = await make_rig(max_queue_delay_us=0)

    def boom(items: int) -> None:
        raise RuntimeError("observer bug")

    rig.observer.request_dequeued = boom  # type: ignore[method-assign]  # the former calls it
    with pytest.raises(InferenceFailed, match="the scheduler failed"):
        await rig.submit(Text("a"))
    assert not rig.batcher.running
    with pytest.raises(ModelNotReady):
        rig.submit(Text("b"))
    assert rig.handler.seen_ids() == set()
