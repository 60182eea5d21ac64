"""Rehearse a rolling update and a crash behind nginx with no retries, as Kubernetes runs them.

Two real replicas serve steady kept-alive load through a real nginx; the test replaces them one
by one (surge first, SIGTERM, the endpoint dropped a second later) and counts every request.
Without the lame duck (``--shutdown-delay-s 0``) the same rehearsal loses requests: the old
replica's listener closes while nginx still routes to it.
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


def test_rolling_update_answers_every_request(fleet: Fleet) -> None:
    fleet.start(2)
    old = [address(m) for m in fleet.members]
    load = Load(fleet.nginx.url).start()
    try:
        load.wait_for(100)
        fleet.rolling_update()
        load.wait_for(100)
    finally:
        outcomes = load.stop()

    assert [o for o in outcomes if o.status != 200] == [], summary(outcomes)
    served_by = {o.upstream for o in outcomes}
    started = {address(r) for r in fleet.started}
    assert started <= served_by, f"replicas that served nothing: {started - served_by}"
    for replica in old:
        # the scenario's point: traffic kept reaching each old replica after its SIGTERM
        after_signal = [o for o in outcomes
                        if o.upstream == replica and o.sent > fleet.signalled_at[replica]]
        assert after_signal, f"{replica} got no request after SIGTERM; the rehearsal proves nothing"
    assert set(fleet.exit_codes.values()) == {0}, fleet.exit_codes


def test_killed_replica_loses_only_what_it_held(fleet: Fleet) -> None:
    """kill -9 under load: each client loses at most the request it had outstanding, none once
    the replica has left the list. (nginx's passive check is on here, as in an ingress: without
    it, like kube-proxy, every new connection to the dead replica fails until it leaves.)"""
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
