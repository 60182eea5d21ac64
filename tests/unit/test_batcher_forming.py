"""When batches close and what goes in them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from server.scheduler import BatchPolicy
from server.scheduler.forming import padded_tokens, ready_to_go, select
from tests.unit.batcher_fakes import Text, hang_guard, make_rig

LONG_DELAY_US = 10_000_000  # 10 s of fake time: only a clock advance reaches it


def ids(prefix: str, n: int) -> list[Text]:
    return [Text(f"{prefix}{i}") for i in range(n)]


@hang_guard
async def test_idle_instance_and_zero_delay_goes_at_once() -> None:
    rig = await make_rig(max_batch_size=8, max_queue_delay_us=0)
    assert await rig.submit(Text("a")) == "a!"
    assert rig.handler.executed_ids() == [["a"]]
    await rig.batcher.stop()


@hang_guard
async def test_batch_closes_at_max_batch_size() -> None:
    rig = await make_rig(max_batch_size=4, max_queue_delay_us=LONG_DELAY_US)
    texts = ids("t", 6)
    futures = [rig.submit(t) for t in texts]
    assert await asyncio.gather(*futures[:4]) == ["t0!", "t1!", "t2!", "t3!"]
    await rig.clock.wait_for_timers(1)  # the former is waiting out the delay for the rest
    assert rig.handler.executed_ids() == [["t0", "t1", "t2", "t3"]]
    assert rig.batcher.pending_requests == 2
    rig.clock.advance(LONG_DELAY_US / 1e6)
    assert await asyncio.gather(*futures[4:]) == ["t4!", "t5!"]
    assert rig.handler.executed_ids()[1] == ["t4", "t5"]
    await rig.batcher.stop()


@hang_guard
async def test_batch_closes_when_oldest_waited_max_queue_delay() -> None:
    rig = await make_rig(max_batch_size=8, max_queue_delay_us=2000)
    futures = [rig.submit(t) for t in ids("t", 2)]
    await rig.clock.wait_for_timers(1)
    assert rig.clock.next_deadline == 0.002
    rig.clock.advance(0.001)
    assert rig.handler.prepared == [] and not futures[0].done()
    rig.clock.advance(0.001)
    assert await asyncio.gather(*futures) == ["t0!", "t1!"]
    assert rig.handler.executed_ids() == [["t0", "t1"]]
    await rig.batcher.stop()


@hang_guard
async def test_batch_closes_at_preferred_size() -> None:
    rig = await make_rig(max_batch_size=8, preferred_batch_sizes=(2,), max_queue_delay_us=LONG_DELAY_US)
    futures = [rig.submit(t) for t in ids("t", 3)]
    assert await asyncio.gather(*futures[:2]) == ["t0!", "t1!"]
    await rig.clock.wait_for_timers(1)
    assert rig.handler.executed_ids() == [["t0", "t1"]]
    assert not futures[2].done()
    rig.clock.advance(LONG_DELAY_US / 1e6)
    assert await futures[2] == "t2!"
    await rig.batcher.stop()


@hang_guard
async def test_batch_closes_at_token_budget() -> None:
    rig = await make_rig(max_batch_size=16, max_batch_tokens=100, max_queue_delay_us=LONG_DELAY_US)
    futures = [rig.submit(Text(f"t{i}", tokens=30)) for i in range(5)]
    await asyncio.gather(*futures[:3])
    await rig.clock.wait_for_timers(1)
    assert rig.handler.executed_ids() == [["t0", "t1", "t2"]]  # 4 x 30 would pass 100
    rig.clock.advance(LONG_DELAY_US / 1e6)
    await asyncio.gather(*futures[3:])
    assert rig.handler.executed_ids()[1] == ["t3", "t4"]
    assert all(padded <= 100 for *_, padded in rig.observer.batches)
    await rig.batcher.stop()


@hang_guard
async def test_request_larger_than_max_batch_size_runs_alone() -> None:
    rig = await make_rig(max_batch_size=4, max_queue_delay_us=LONG_DELAY_US)
    big = rig.submit(Text("big"), items=10)
    small = [rig.submit(t) for t in ids("s", 2)]
    assert await big == "big!"
    assert rig.handler.executed_ids() == [["big"]]
    assert rig.observer.batches[0][:2] == (1, 10)
    await rig.clock.wait_for_timers(1)
    rig.clock.advance(LONG_DELAY_US / 1e6)
    assert await asyncio.gather(*small) == ["s0!", "s1!"]
    assert rig.handler.executed_ids()[1] == ["s0", "s1"]
    await rig.batcher.stop()


@hang_guard
async def test_oversized_request_behind_others_neither_blocks_nor_joins_them() -> None:
    rig = await make_rig(max_batch_size=4, max_queue_delay_us=LONG_DELAY_US)
    futures = [rig.submit(Text("a")), rig.submit(Text("big"), items=10), rig.submit(Text("c"))]
    await asyncio.gather(*futures)
    assert sorted(rig.handler.executed_ids()) == [["a", "c"], ["big"]]
    await rig.batcher.stop()


@hang_guard
async def test_each_request_gets_its_own_result_when_grouping_reorders_the_batch() -> None:
    rig = await make_rig(max_batch_size=8, max_queue_delay_us=0)
    tokens = [10, 50, 12, 48, 11]
    texts = [Text(f"t{i}", tokens=n) for i, n in enumerate(tokens)]
    futures = [rig.submit(t) for t in texts]
    assert await asyncio.gather(*futures) == [f"{t.id}!" for t in texts]
    (batch,) = rig.handler.executed_ids()
    assert batch == ["t0", "t4", "t2", "t3", "t1"]  # closest to the oldest's 10 tokens first
    await rig.batcher.stop()


async def _padding_of(length_aware: bool) -> int:
    rig = await make_rig(max_batch_size=4, max_queue_delay_us=0, length_aware=length_aware)
    texts = [Text(f"t{i}", tokens=5 if i % 2 == 0 else 50) for i in range(8)]
    results = await asyncio.gather(*[rig.submit(t) for t in texts])
    assert results == [f"{t.id}!" for t in texts]
    await rig.batcher.stop()
    return sum(padded for *_, padded in rig.observer.batches)


@hang_guard
async def test_length_aware_grouping_pads_less_than_fifo() -> None:
    fifo = await _padding_of(length_aware=False)
    grouped = await _padding_of(length_aware=True)
    assert fifo == 2 * 4 * 50
    assert grouped == 4 * 5 + 4 * 50
    assert grouped < fifo


# -- the selection itself, on plain records ----------------------------------------------------


@dataclass(frozen=True)
class Req:
    name: str
    items: int = 1
    cost: int = 10


def names(requests: list[Req]) -> list[str]:
    return [r.name for r in requests]


def test_fifo_stops_at_the_first_request_that_does_not_fit() -> None:
    policy = BatchPolicy(max_batch_size=4, length_aware=False)
    queue = [Req("a", items=2), Req("b", items=3), Req("c", items=1)]
    selection = select(queue, policy)
    assert names(selection.chosen) == ["a"] and selection.full


def test_length_aware_skips_what_does_not_fit_and_keeps_the_oldest_first() -> None:
    policy = BatchPolicy(max_batch_size=4, max_batch_tokens=200)
    queue = [Req("old", cost=40), Req("short", cost=5), Req("long", cost=100), Req("mid", cost=35)]
    selection = select(queue, policy)
    assert names(selection.chosen) == ["old", "mid", "short"]  # "long" would pad to 400
    assert selection.full
    assert padded_tokens(selection.chosen) == 3 * 40


def test_selection_is_not_full_while_everything_queued_fits() -> None:
    policy = BatchPolicy(max_batch_size=8)
    selection = select([Req("a"), Req("b")], policy)
    assert not selection.full
    assert ready_to_go(selection, delay_elapsed=False, instance_idle=True, flushing=False) is None
    assert ready_to_go(selection, delay_elapsed=True, instance_idle=False, flushing=False) is None
    assert ready_to_go(selection, delay_elapsed=True, instance_idle=True, flushing=False)
    assert ready_to_go(selection, delay_elapsed=False, instance_idle=False, flushing=True)


def test_requests_past_the_window_make_the_batch_full() -> None:
    policy = BatchPolicy(max_batch_size=8)
    assert select([Req("a")], policy, more_beyond=True).full


def test_preferred_size_sends_the_longest_preferred_prefix() -> None:
    policy = BatchPolicy(max_batch_size=8, preferred_batch_sizes=(2, 4))
    selection = select([Req(f"r{i}") for i in range(5)], policy)
    assert not selection.full and selection.preferred_count == 4
    chosen = ready_to_go(selection, delay_elapsed=False, instance_idle=True, flushing=False)
    assert chosen is not None and names(chosen) == ["r0", "r1", "r2", "r3"]
