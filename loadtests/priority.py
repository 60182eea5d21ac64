"""How much priority levels buy: probe latency under a low-priority flood, with and without.

Against a running server whose text model has ``priority_levels`` >= 2::

    python -m loadtests.priority --url http://127.0.0.1:8000 --model tiny-priority

``--clients`` flood clients keep the model's queue full with requests of ``--flood-texts``
texts at the lowest level; meanwhile one probe client sends a one-text request every
``--probe-interval-ms``, first at priority 1, then at the flood's own level (what every request
gets without priorities: first come, first served). Each phase runs ``--seconds``; the report
gives the probes' p50/p90/p99 in both phases and the flood's throughput. Everything is bounded:
two phases, a fixed duration each, one request in flight per client.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

import orjson

from loadtests.http_client import Connection, split_url
from loadtests.stats import LatencySummary

TEXT = "my flight was delayed three hours and nobody at the gate told us anything about it"


@dataclass
class Phase:
    probe_priority: int
    probes: LatencySummary
    probe_errors: int
    flood_texts_per_s: float
    flood_statuses: dict[int, int]


async def _flood(url: str, path: str, body: bytes, texts: int, stop: asyncio.Event,
                 statuses: dict[int, int]) -> int:
    connection = Connection(*split_url(url))
    done = 0
    try:
        while not stop.is_set():
            response = await connection.request("POST", path, body)
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if response.status == 200:
                done += texts
            elif response.status == 429:  # queue full: back off a little, as a client would
                await asyncio.sleep(0.005)
    finally:
        await connection.close()
    return done


async def _probe(url: str, path: str, priority: int, interval_s: float, seconds: float
                 ) -> tuple[list[float], int]:
    connection = Connection(*split_url(url))
    body = orjson.dumps({"inputs": [TEXT], "priority": priority})
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = await connection.request("POST", path, body)
            elapsed = time.perf_counter() - started
            if response.status == 200:
                latencies.append(elapsed)
            else:
                errors += 1
            await asyncio.sleep(max(0.0, interval_s - elapsed))
    finally:
        await connection.close()
    return latencies, errors


async def run_phase(args: argparse.Namespace, probe_priority: int) -> Phase:
    path = f"/v1/models/{args.model}/classify"
    flood_body = orjson.dumps({"inputs": [TEXT] * args.flood_texts, "priority": args.flood_priority})
    stop = asyncio.Event()
    statuses: dict[int, int] = {}
    flood = [asyncio.create_task(_flood(args.url, path, flood_body, args.flood_texts, stop, statuses))
             for _ in range(args.clients)]
    await asyncio.sleep(args.warmup_seconds)  # let the queue fill before probing
    started = time.monotonic()
    latencies, errors = await _probe(args.url, path, probe_priority, args.probe_interval_ms / 1e3,
                                     args.seconds)
    stop.set()
    texts = sum(await asyncio.gather(*flood))
    return Phase(probe_priority, LatencySummary.of(latencies), errors,
                 texts / (time.monotonic() - started + args.warmup_seconds), statuses)


async def main_async(args: argparse.Namespace) -> list[Phase]:
    return [await run_phase(args, 1), await run_phase(args, args.flood_priority)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", required=True)
    parser.add_argument("--clients", type=int, default=16, help="flood clients (1..256)")
    parser.add_argument("--flood-texts", type=int, default=16, help="texts per flood request")
    parser.add_argument("--flood-priority", type=int, default=2, help="the flood's (low) level")
    parser.add_argument("--probe-interval-ms", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="probing time per phase (<= 120)")
    parser.add_argument("--warmup-seconds", type=float, default=1.0)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 256 or not 0 < args.seconds <= 120:
        parser.error("--clients must be within 1..256 and --seconds within (0, 120]")
    for phase in asyncio.run(main_async(args)):
        p = phase.probes
        label = "priority 1" if phase.probe_priority == 1 else f"priority {phase.probe_priority} (FIFO)"
        statuses = dict(sorted(phase.flood_statuses.items()))
        print(f"probes at {label:<20} n={p.count:<4} p50 {p.p50_ms:7.1f} ms  p90 {p.p90_ms:7.1f} ms"
              f"  p99 {p.p99_ms:7.1f} ms  errors {phase.probe_errors}  |  flood "
              f"{phase.flood_texts_per_s:6.0f} texts/s, statuses {statuses}")


if __name__ == "__main__":
    main()
