"""A request's deadline holds while its batch computes: answered at the deadline, result dropped."""

from __future__ import annotations

import asyncio

import pytest

from server.errors import DeadlineExceeded
from server.scheduler import Timings
from tests.unit.batcher_fakes import FakeHandler, Text, hang_guard, make_rig


@hang_guard
async def test_deadline_passing_while_the_batch_computes_answers_at_the_deadline() -> None:
    rig = await make_rig(FakeHandler(gated=True), max_batch_size=4, max_queue_delay_us=0)
    timings = Timings()
    hurried = rig.submit(Text("hurried"), timeout_us=1000, timings=timings)
    patient = rig.submit(Text("patient"))
    await rig.handler.execute_starts.reach(1)  # both compute in one batch, held by the gate
    assert rig.handler.executed_ids() == [["hurried", "patient"]]
    rig.clock.advance(0.001)
    assert hurried.done()  # answered by its timer, the engine still holding the batch
    with pytest.raises(DeadlineExceeded, match="while its batch was computing"):
        hurried.result()
    assert not patient.done()
    rig.handler.release()
    assert await patient == "patient!"  # the batch's late result for "hurried" was dropped
    assert rig.observer.outcomes() == ["timeout", "success"]
    assert len(rig.observer.batches) == 1
    assert (timings.compute_s, timings.batch_items) == (0.0, 0)  # untouched once answered
    after = rig.submit(Text("after"))
    rig.handler.release()
    assert await after == "after!"
    await rig.batcher.stop()


@hang_guard
async def test_a_batch_failing_after_the_deadline_answers_the_others_only() -> None:
    handler = FakeHandler(gated=True, fail_if=lambda t: t.id == "bad")
    rig = await make_rig(handler, max_batch_size=4, max_queue_delay_us=0)
    hurried = rig.submit(Text("hurried"), timeout_us=1000)
    bad = rig.submit(Text("bad"))
    await rig.handler.execute_starts.reach(1)
    rig.clock.advance(0.001)
    rig.handler.release()
    results = await asyncio.gather(hurried, bad, return_exceptions=True)
    assert isinstance(results[0], DeadlineExceeded)  # one answer each, the first one kept
    assert not isinstance(results[1], DeadlineExceeded) and isinstance(results[1], Exception)
    assert sorted(rig.observer.outcomes()) == ["failed", "timeout"]
    await rig.batcher.stop()
