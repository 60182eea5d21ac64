"""Rehearse a rolling update and a crash behind nginx with no retries, as Kubernetes runs them.

Two real replicas serve steady kept-alive load through a real nginx; the test replaces them one
by one (surge first, SIGTERM, the endpoint dropped a second later) and counts every request.
Without the lame duck (``--shutdown-delay-s 0``) the same rehearsal loses requests: the old
replica's listener closes while nginx still routes to it.

Requests are attributed to replicas by nginx's ``X-Upstream`` header, so a replica that served
nothing, or no traffic reaching an old replica after its SIGTERM, fails the test too.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.load import Load, Outcome
from tests.support.rollout import Fleet, address
from tests.support.tools import require

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: longer than the endpoint lag (1 s), short enough to keep the rehearsal quick
SHUTDOWN_DELAY_S = 2.0


@pytest.fixture
def fleet(tiny_repository: Path, tmp_path: Path) -> Iterator[Fleet]:
    program = require("nginx", "the rolling-update rehearsal puts nginx in front of the replicas")
    fleet = Fleet(program, tmp_path, tiny_repository, shutdown_delay_s=SHUTDOWN_DELAY_S)
    try:
        yield fleet
    finally:
        fleet.close()


def summary(outcomes: list[Outcome]) -> str:
    failed = [o for o in outcomes if o.status != 200]
    lines = [f"{len(outcomes)} requests, {len(failed)} not answered 200"]
    lines += [f"  {o.status} {o.upstream or '-'} {o.error}" for o in failed[:10]]
    return "\n".join(lines)


def roll(fleet: Fleet) -> list[Outcome]:
    """Replace both replicas of a two-replica fleet under load; every request's outcome."""
    fleet.start(2)
    load = Load(fleet.nginx.url).start()
    try:
        load.wait_for(100)
        fleet.rolling_update()
        load.wait_for(100)
    finally:
        outcomes = load.stop()
    return outcomes


def test_rolling_update_answers_every_request(fleet: Fleet) -> None:
    outcomes = roll(fleet)

    assert [o for o in outcomes if o.status != 200] == [], summary(outcomes)
    served_by = {o.upstream for o in outcomes}
    started = {address(r) for r in fleet.started}
    assert len(started) == 4 and started <= served_by, f"idle replicas: {started - served_by}"
    assert len(fleet.signalled_at) == 2
    for replica, signalled in fleet.signalled_at.items():
        # the scenario's point: traffic kept reaching each old replica after its SIGTERM
        after_signal = [o for o in outcomes
                        if o.upstream == replica and o.sent > signalled]
        assert after_signal, f"{replica} got no request after SIGTERM; the rehearsal proves nothing"
    assert set(fleet.exit_codes.values()) == {0}, fleet.exit_codes


def test_without_the_lame_duck_the_rehearsal_loses_requests(fleet: Fleet) -> None:
    """The same rehearsal can fail: with no lame duck the old listener closes while listed."""
    fleet.shutdown_delay_s = 0.0
    outcomes = roll(fleet)
    failed = [o for o in outcomes if o.status != 200]
    assert failed and all(o.status == 502 for o in failed), summary(outcomes)
    assert set(fleet.exit_codes.values()) == {0}, fleet.exit_codes


def test_killed_replica_costs_each_client_at_most_one_request(fleet: Fleet) -> None:
    """kill -9 under load: a client loses at most one request (the one the replica held, or the
    first sent to it dead, after which nginx's passive check, on here as in an ingress, marks it
    down), and nothing once it has left the list. Without that check, as with kube-proxy, every
    request routed to the dead replica fails until it leaves (about 100 in this rehearsal)."""
    fleet.max_fails = 1
    fleet.start(2)
    victim = fleet.members[0]
    name = address(victim)
    load = Load(fleet.nginx.url).start()
    try:
        load.wait_for(100)
        fleet.stop_replica(victim, signal.SIGKILL)
        load.wait_for(200)
    finally:
        outcomes = load.stop()

    failed = [o for o in outcomes if o.status != 200]
    assert all(o.upstream == name and o.status == 502 for o in failed), summary(outcomes)
    assert [o for o in failed if o.sent > fleet.left_at[name]] == [], summary(outcomes)
    per_client = Counter(o.client for o in failed)
    assert all(n <= 1 for n in per_client.values()), summary(outcomes)
    assert fleet.exit_codes[name] == -signal.SIGKILL
