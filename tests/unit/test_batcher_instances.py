"""Several engine instances share one queue; prepare overlaps execute; a bounded pipeline;
one thread hop for a batch that finds an instance free."""

from __future__ import annotations

import asyncio

from tests.unit.batcher_fakes import FakeHandler, Text, hang_guard, make_rig, next_loop_turn


@hang_guard
async def test_two_instances_run_two_batches_at_once_but_never_two_on_one() -> None:
    rig = await make_rig(FakeHandler(gated=True), instance_count=2, max_batch_size=1, max_queue_delay_us=0)
    futures = [rig.submit(Text(f"t{i}")) for i in range(5)]
    await rig.handler.execute_starts.reach(2)
    await rig.handler.prepare_calls.reach(3)
    assert {instance for instance, _ in rig.handler.executed} == {0, 1}
    # Two executing and one prepared ahead; the rest stays queued.
    assert rig.batcher.batches_in_flight == 3
    assert rig.batcher.pending_requests == 2
    assert rig.handler.execute_starts.value == 2
    rig.handler.release(5)
    assert await asyncio.gather(*futures) == [f"t{i}!" for i in range(5)]
    assert rig.handler.overlaps == 0
    assert rig.handler.max_concurrent == 2
    assert {instance for instance, _ in rig.handler.executed} == {0, 1}
    await rig.batcher.stop()


@hang_guard
async def test_next_batch_is_prepared_while_the_current_one_executes() -> None:
    rig = await make_rig(FakeHandler(gated=True), max_batch_size=2, max_queue_delay_us=0)
    first = [rig.submit(Text("a")), rig.submit(Text("b"))]
    await rig.handler.execute_starts.reach(1)
    second = [rig.submit(Text("c")), rig.submit(Text("d"))]
    await rig.handler.prepare_calls.reach(2)  # while "a", "b" still hold the only instance
    assert rig.handler.execute_ends.value == 0
    assert rig.handler.prepared == [["a", "b"], ["c", "d"]]
    rig.handler.release(2)
    assert await asyncio.gather(*first, *second) == ["a!", "b!", "c!", "d!"]
    assert rig.handler.overlaps == 0
    await rig.batcher.stop()


@hang_guard
async def test_busy_instances_let_the_queue_grow_into_a_full_batch() -> None:
    rig = await make_rig(FakeHandler(gated=True), max_batch_size=4, max_queue_delay_us=0)
    first = rig.submit(Text("first"))
    await rig.handler.execute_starts.reach(1)
    rest = [rig.submit(Text("r0"))]
    await next_loop_turn()
    # Not full and no idle instance: it waits in the queue instead of forming a small batch.
    assert rig.batcher.pending_requests == 1 and rig.batcher.batches_in_flight == 1
    rest += [rig.submit(Text("r1")), rig.submit(Text("r2"))]
    await next_loop_turn()
    assert rig.batcher.pending_requests == 3 and rig.batcher.batches_in_flight == 1
    rig.handler.release(2)
    await asyncio.gather(first, *rest)
    assert rig.handler.executed_ids() == [["first"], ["r0", "r1", "r2"]]
    await rig.batcher.stop()


@hang_guard
async def test_a_batch_that_finds_an_instance_free_is_prepared_and_run_in_one_hop() -> None:
    rig = await make_rig(FakeHandler(gated=True), max_batch_size=2, max_queue_delay_us=0)
    first = rig.submit(Text("a"))  # the instance is idle: prepared on the engine's own thread
    await rig.handler.execute_starts.reach(1)
    assert rig.handler.prepare_threads[0] == rig.handler.execute_threads[0]
    assert "engine0" in rig.handler.execute_threads[0]
    # a full batch formed while the instance is busy: prepared in the pool meanwhile
    second = [rig.submit(Text("b")), rig.submit(Text("c"))]
    await rig.handler.prepare_calls.reach(2)
    assert "engine" not in rig.handler.prepare_threads[1]
    assert rig.handler.execute_ends.value == 0
    rig.handler.release(2)
    assert await asyncio.gather(first, *second) == ["a!", "b!", "c!"]
    assert rig.handler.executed_ids() == [["a"], ["b", "c"]] and rig.handler.overlaps == 0
    assert rig.observer.batches[0][:2] == (1, 1)  # the one-hop batch is observed like any other
    await rig.batcher.stop()
