"""An instance slot swaps in a fresh engine under a stuck call and closes the old one after it."""

from __future__ import annotations

import threading

import numpy as np

from server.repository.instances import EngineSlot
from tests.support.fake_engine import FakeEngine

FEED = {"input_ids": np.ones((2, 3), dtype=np.int64)}


def test_swap_under_a_running_call_closes_the_old_engine_when_the_call_returns() -> None:
    gate = threading.Event()
    old, fresh = FakeEngine(gate=gate), FakeEngine()
    slot = EngineSlot(old)
    stuck = threading.Thread(target=slot.run, args=(FEED,))
    stuck.start()
    assert old.entered.wait(5)
    slot.swap(fresh)
    assert not old.closed  # never closed under its running call
    assert slot.run(FEED)["logits"].shape == (2, 3) and fresh.batches  # new calls: the fresh one
    gate.set()
    stuck.join(5)
    assert old.closed and not fresh.closed


def test_close_waits_for_the_running_call_and_an_idle_swap_closes_at_once() -> None:
    gate = threading.Event()
    engine = FakeEngine(gate=gate)
    slot = EngineSlot(engine)
    running = threading.Thread(target=slot.run, args=(FEED,))
    running.start()
    assert engine.entered.wait(5)
    slot.close()
    assert not engine.closed
    gate.set()
    running.join(5)
    assert engine.closed

    idle, other = FakeEngine(), FakeEngine()
    slot = EngineSlot(idle)
    slot.swap(other)
    assert idle.closed and slot.engine is other
