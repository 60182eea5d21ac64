"""Server-side figures over a measurement window: batch size, padding waste, server CPU.

Read at the window's two edges and differenced: Sluice's Prometheus ``/metrics``
(``nv_inference_count / nv_inference_exec_count`` and ``sluice_padding_ratio``), the naive
server's ``/stats``, and the server process tree's CPU time through psutil.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import orjson
import psutil

from loadtests.http_client import Connection, HttpError, split_url


@dataclass(frozen=True)
class Counters:
    texts: float = 0.0
    executions: float = 0.0
    padding_sum: float = 0.0  # sum over batches of padded/real (Sluice) or padded tokens (naive)
    padding_count: float = 0.0  # batches observed (Sluice) or real tokens (naive)
    cpu_s: float = 0.0


@dataclass(frozen=True)
class WindowFigures:
    mean_batch_size: float | None
    padding_waste: float | None
    server_cores: float | None


def parse_sluice_metrics(text: str, model: str) -> Counters:
    """Sum this model's samples (all versions) of the counters the report needs."""
    from prometheus_client.parser import text_string_to_metric_families

    totals = {"nv_inference_count": 0.0, "nv_inference_exec_count": 0.0,
              "sluice_padding_ratio_sum": 0.0, "sluice_padding_ratio_count": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("model") != model:
                continue
            name = sample.name
            if name.endswith("_total"):
                name = name[: -len("_total")]
            if name in totals:
                totals[name] += sample.value
    return Counters(
        texts=totals["nv_inference_count"],
        executions=totals["nv_inference_exec_count"],
        padding_sum=totals["sluice_padding_ratio_sum"],
        padding_count=totals["sluice_padding_ratio_count"],
    )


def parse_naive_stats(body: bytes) -> Counters:
    doc = orjson.loads(body)
    return Counters(
        texts=float(doc["texts"]),
        executions=float(doc["executions"]),
        padding_sum=float(doc["padded_tokens"]),
        padding_count=float(doc["real_tokens"]),
    )


def process_tree_cpu(pid: int) -> float:
    """User + system seconds of a process and its live children."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
    return total


class ServerProbe:
    """Window hooks for :mod:`loadtests.loadgen`; ``kind`` is ``sluice`` or ``naive``."""

    def __init__(self, kind: str, url: str, model: str, pid: int | None) -> None:
        if kind not in ("sluice", "naive"):
            raise ValueError(kind)
        self._kind = kind
        self._model = model
        self._pid = pid
        host, port = split_url(url)
        self._conn = Connection(host, port)
        self._start: Counters | None = None
        self._end: Counters | None = None
        self._window_s = 0.0
        self._t0 = 0.0

    async def _read(self) -> Counters | None:
        path = "/metrics" if self._kind == "sluice" else "/stats"
        try:
            response = await self._conn.request("GET", path)
        except (HttpError, OSError):
            return None
        if response.status != 200:
            return None
        try:
            counters = (
                parse_sluice_metrics(response.body.decode(), self._model)
                if self._kind == "sluice"
                else parse_naive_stats(response.body)
            )
        except (ValueError, KeyError):
            return None
        cpu = process_tree_cpu(self._pid) if self._pid is not None else 0.0
        return Counters(counters.texts, counters.executions, counters.padding_sum,
                        counters.padding_count, cpu)

    async def begin(self) -> None:
        self._t0 = time.perf_counter()
        self._start = await self._read()

    async def end(self) -> None:
        self._end = await self._read()
        self._window_s = time.perf_counter() - self._t0
        await self._conn.close()

    def figures(self) -> WindowFigures:
        a, b = self._start, self._end
        if a is None or b is None:
            return WindowFigures(None, None, None)
        executions = b.executions - a.executions
        mean_batch = (b.texts - a.texts) / executions if executions > 0 else None
        weight = b.padding_count - a.padding_count
        waste: float | None = None
        if weight > 0:
            # Sluice: mean of per-batch padded/real ratios; naive: padded tokens / real tokens.
            waste = (b.padding_sum - a.padding_sum) / weight - 1.0
        cores = (b.cpu_s - a.cpu_s) / self._window_s if self._pid and self._window_s > 0 else None
        return WindowFigures(mean_batch, waste, cores)
