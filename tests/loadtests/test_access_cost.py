"""The access-middleware cost script measures what it claims: the log-on variant really logs."""

from __future__ import annotations

from loadtests.access_cost import VARIANTS, measure


async def test_every_variant_is_measured_and_only_log_on_writes_lines() -> None:
    figures, lines = await measure(requests=40, rounds=2)
    assert set(figures) == set(VARIANTS)
    assert all(us > 0 for us in figures.values())
    assert lines == 40 + 2 * 40  # the warm-up round and the measured rounds of log_on only
