"""The key-cost script measures what it claims: keys on passes, a wrong key is refused."""

from __future__ import annotations

from pathlib import Path

from loadtests.key_cost import VARIANTS, main, measure


async def test_each_variant_answers_as_configured() -> None:
    figures, best, statuses = await measure(requests=30, rounds=2)
    assert set(figures) == set(best) == set(VARIANTS)
    assert all(us > 0 for us in figures.values()) and all(best[v] <= figures[v] for v in VARIANTS)
    assert statuses["bare"] == statuses["guard_open"] == statuses["keys_on"] == {200: 60}
    assert statuses["wrong_key"] == {401: 60}


def test_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    assert main(["--requests", "20", "--rounds", "1", "--out", str(out)]) == 0
    assert '"keys_on_cost_us"' in out.read_text()
