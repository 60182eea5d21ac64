"""Priority levels, queue policies and the level-ordered queue, on their own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from server.errors import ConfigError, InvalidInput
from server.repository.config import BatchingConfig, load_model_config
from server.scheduler import BatchPolicy
from server.scheduler.priority import LevelQueue, Priorities, QueuePolicy, request_timeout_us


@dataclass
class Item:
    seq: int
    level: int
    items: int = 1
    cost: int = 10
    delayed: bool = False
    enqueued_at: float = 0.0


def test_triton_numbering_one_is_highest_zero_is_the_default_level() -> None:
    priorities = Priorities(levels=3, default_level=2)
    assert [priorities.level_of(p) for p in (None, 0, 1, 2, 3)] == [2, 2, 1, 2, 3]
    assert Priorities().level_of(0) == 1  # off: one level


@pytest.mark.parametrize("bad", [4, -1, True, 1.0, "1"])
def test_priority_out_of_range_or_not_an_integer_names_the_field_and_the_limit(bad: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        Priorities(levels=3, default_level=2).level_of(bad, "parameters.priority", "m")  # type: ignore[arg-type]
    message = str(refused.value)
    assert message.startswith("parameters.priority: must be an integer within 0..3")
    assert "model 'm' has priority_levels 3" in message


def test_priorities_off_accept_only_zero() -> None:
    with pytest.raises(InvalidInput, match="priorities are off"):
        Priorities().level_of(1)


@pytest.mark.parametrize(
    "bad",
    [
        {"levels": 0, "default_level": 1},
        {"levels": 2, "default_level": 0},
        {"levels": 2, "default_level": 3},
        {"levels": 2, "default_level": 1, "queue_policies": {3: QueuePolicy()}},
        {"levels": 33, "default_level": 1},
    ],
)
def test_priorities_reject_incoherent_settings(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Priorities(**bad)  # type: ignore[arg-type]


def test_timeout_rules() -> None:
    # no queue policy: Sluice's rule, the request's own timeout replaces the model default
    assert request_timeout_us(None, None, 500) == 500
    assert request_timeout_us(None, 900, 500) == 900
    assert request_timeout_us(None, 0, 500) == 0
    # a queue policy: Triton's rule, a request may only shorten the level's default
    capped = QueuePolicy(default_timeout_us=1000)
    assert request_timeout_us(capped, None, 0) == 1000
    assert request_timeout_us(capped, 400, 0) == 400
    assert request_timeout_us(capped, 4000, 0) == 1000
    assert request_timeout_us(capped, 0, 0) == 1000
    assert request_timeout_us(QueuePolicy(), 700, 300) == 300  # unset default: the model's
    assert request_timeout_us(QueuePolicy(default_timeout_us=0), 700, 300) == 700
    fixed = QueuePolicy(default_timeout_us=1000, allow_timeout_override=False)
    assert request_timeout_us(fixed, 10, 0) == 1000


def test_level_queue_orders_by_level_then_delayed_then_arrival() -> None:
    queue: LevelQueue[Item] = LevelQueue(3)
    items = [Item(0, 3), Item(1, 2), Item(2, 3, items=4, cost=5), Item(3, 1), Item(4, 2)]
    for item in items:
        queue[item.seq] = item
    assert [i.seq for i in queue.values()] == [3, 1, 4, 0, 2]
    queue.demote(items[1])
    assert [i.seq for i in queue.values()] == [3, 4, 1, 0, 2]
    assert queue.ahead_of(1) == (1, 10)
    assert queue.ahead_of(2) == (3, 30)
    assert queue.ahead_of(3) == (8, 60)
    assert queue.items_at(3) == 5
    del queue[3]
    assert len(queue) == 4 and [i.seq for i in queue.values()] == [4, 1, 0, 2]
    assert queue.ahead_of(1) == (0, 0)


def test_oldest_enqueued_at_looks_past_the_highest_level() -> None:
    queue: LevelQueue[Item] = LevelQueue(2)
    queue[0] = Item(0, 2, enqueued_at=1.0)
    queue[1] = Item(1, 1, enqueued_at=5.0)
    assert next(iter(queue.values())).seq == 1
    assert queue.oldest_enqueued_at() == 1.0


def test_batching_config_maps_onto_the_policy() -> None:
    batching = BatchingConfig.model_validate({
        "priority_levels": 2,
        "default_priority_level": 2,
        "default_queue_policy": {"default_timeout_microseconds": 5000},
        "priority_queue_policy": {1: {"max_queue_size": 8, "timeout_action": "DELAY",
                                      "allow_timeout_override": False}},
    })
    priorities = BatchPolicy.from_config(batching, instance_count=1).priorities
    assert priorities == Priorities(
        levels=2,
        default_level=2,
        default_queue_policy=QueuePolicy(default_timeout_us=5000),
        queue_policies={1: QueuePolicy(max_queue_size=8, allow_timeout_override=False,
                                       timeout_action="DELAY")},
    )
    assert priorities.queue_policy(2) == QueuePolicy(default_timeout_us=5000)


@pytest.mark.parametrize(
    ("batching", "complaint"),
    [
        ("{priority_levels: 2}", "default_priority_level must be within 1..2"),
        ("{default_priority_level: 1}", "need priority_levels > 0"),
        ("{priority_levels: 2, default_priority_level: 1, priority_queue_policy: {3: {}}}",
         "level 3 must be within 1..2"),
        ("{priority_levels: 1, default_priority_level: 1, "
         "priority_queue_policy: {1: {timeout_action: DROP}}}", "timeout_action"),
        ("{priority_levels: 1, default_priority_level: 1, "
         "priority_queue_policy: {1: {max_queue_size: 99}}, max_queue_size: 10}",
         "exceeds max_queue_size 10"),
        ("{priority_levels: 40, default_priority_level: 1}", "priority_levels"),
    ],
)
def test_model_config_names_the_file_and_the_field(
    tmp_path: Path, batching: str, complaint: str
) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.yaml").write_text(f"labels: [a, b]\nbatching: {batching}\n")
    with pytest.raises(ConfigError) as refused:
        load_model_config(folder / "config.yaml")
    assert "config.yaml" in str(refused.value) and complaint in str(refused.value)
