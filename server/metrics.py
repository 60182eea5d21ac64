"""Every Prometheus metric Sluice exports, declared once.

Names follow Triton's (``nv_inference_*``, as in Triton's metrics guide:
https://docs.nvidia.com/deeplearning/triton-inference-server/user-guide/docs/user_guide/metrics.html)
so existing dashboards read the same; the histograms Triton lacks (queue, compute, end-to-end, batch size,
padding) are ``sluice_*`` and aggregate across replicas.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LABELS = ("model", "version")
#: Triton's failure reasons, keyed by the batcher's outcome names.
FAILURE_REASON = {
    "rejected": "REJECTED",
    "timeout": "REJECTED",
    "cancelled": "CANCELED",
    "failed": "BACKEND",
}
_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 128, 256, 512, 1024)
_PADDING_BUCKETS = (1.0, 1.05, 1.1, 1.2, 1.3, 1.5, 2.0, 3.0, 5.0)

#: The ``route`` label values of ``sluice_http_requests_total`` (``server/api/access.py`` maps
#: every route template onto one; unmatched paths are ``other``).
HTTP_ROUTES = (
    "infer", "classify", "rank", "metadata", "ready", "config", "stats", "repository", "health",
    "metrics", "other",
)
#: Children created at start for every served model (and for ``model=""``), on the routes that
#: carry inference, so that ``rate()`` and ratio alerts see zeros from the first scrape.
HTTP_PRECREATED_ROUTES = ("infer", "classify")
HTTP_PRECREATED_STATUSES = ("200", "400", "404", "413", "429", "500", "503", "504")


class Metrics:
    """The metric families, registered on one registry (one per app, so tests stay isolated)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.request_success = Counter(
            "nv_inference_request_success", "Requests answered successfully.", _LABELS, registry=r
        )
        self.request_failure = Counter(
            "nv_inference_request_failure",
            "Failed requests by reason (REJECTED, CANCELED, BACKEND, OTHER).",
            (*_LABELS, "reason"),
            registry=r,
        )
        self.inference_count = Counter(
            "nv_inference_count", "Inferences performed (a request of 16 texts counts 16).",
            _LABELS, registry=r,
        )
        self.exec_count = Counter(
            "nv_inference_exec_count", "Batch executions (count / exec_count = mean batch size).",
            _LABELS, registry=r,
        )
        self.pending = Gauge(
            "nv_inference_pending_request_count", "Requests waiting in the queue.", _LABELS,
            registry=r,
        )
        self.request_duration_us = Counter(
            "nv_inference_request_duration_us", "Cumulative end-to-end time of requests (us).",
            _LABELS, registry=r,
        )
        self.queue_duration_us = Counter(
            "nv_inference_queue_duration_us", "Cumulative time requests waited in the queue (us).",
            _LABELS, registry=r,
        )
        self.compute_input_us = Counter(
            "nv_inference_compute_input_duration_us",
            "Cumulative input preparation (tokenization) time (us).", _LABELS, registry=r,
        )
        self.compute_infer_us = Counter(
            "nv_inference_compute_infer_duration_us", "Cumulative model execution time (us).",
            _LABELS, registry=r,
        )
        self.load_duration = Gauge(
            "nv_model_load_duration_secs", "Time to load the model (s).", _LABELS, registry=r
        )
        self.cache_hits = Counter(
            "nv_cache_num_hits_per_model", "Response cache hits.", _LABELS, registry=r
        )
        self.cache_misses = Counter(
            "nv_cache_num_misses_per_model", "Response cache misses.", _LABELS, registry=r
        )
        self.request_latency = Histogram(
            "sluice_request_duration_seconds", "End-to-end request time in the server (s).",
            _LABELS, buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.queue_latency = Histogram(
            "sluice_queue_duration_seconds", "Time a request waited before its batch ran (s).",
            _LABELS, buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.prepare_latency = Histogram(
            "sluice_prepare_duration_seconds", "Batch input preparation (tokenization) time (s).",
            _LABELS, buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.compute_latency = Histogram(
            "sluice_compute_duration_seconds", "Batch execution time in the engine (s).",
            _LABELS, buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.batch_size = Histogram(
            "sluice_batch_size", "Items per executed batch.", _LABELS, buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.padding_ratio = Histogram(
            "sluice_padding_ratio", "Padded tokens over real tokens per executed batch.", _LABELS,
            buckets=_PADDING_BUCKETS, registry=r,
        )
        self.model_ready = Gauge(
            "sluice_model_ready", "1 when the model version is serving.", _LABELS, registry=r
        )
        self.http_requests = Counter(
            "sluice_http_requests_total",
            "HTTP requests answered, by model, route and status. model: a model this server "
            "has loaded, else \"\" (routes without a model, and names not in the registry). "
            "route: one of " + ", ".join(HTTP_ROUTES) + " (infer: /v2 infer, JSON or binary; "
            "classify: /v1 classify; rank: /v1 rank; metadata: /v2 and model metadata; "
            "ready: model readiness; health: /v2/health/*; repository: /v2/repository/*; "
            "other: anything else, "
            "unknown paths included). status: the 3-digit HTTP status.",
            ("model", "route", "status"),
            registry=r,
        )
        self._http_children: dict[tuple[str, str, int], Callable[[float], None]] = {}
        self._http_models: set[str] = set()
        self._precreate_http("")

    def observer(self, model: str, version: str) -> ModelObserver:
        self._precreate_http(model)
        self._http_models.add(model)
        return ModelObserver(self, model, version)

    def http_model_label(self, name: str) -> str:
        """``name`` if this server has loaded a model of that name, else ``""`` (bounded)."""
        return name if name in self._http_models else ""

    def count_http(self, model: str, route: str, status: int) -> None:
        """Count one answered HTTP request (``model`` from :meth:`http_model_label`)."""
        key = (model, route, status)
        child = self._http_children.get(key)
        if child is None:
            child = self._http_children[key] = _adder(
                self.http_requests.labels(model, route, str(status)))
        child(1)

    def _precreate_http(self, model: str) -> None:
        for route in HTTP_PRECREATED_ROUTES:
            for status in HTTP_PRECREATED_STATUSES:
                self._http_children[(model, route, int(status))] = _adder(
                    self.http_requests.labels(model, route, status))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _adder(child: Counter | Gauge) -> Callable[[float], None]:
    """``child.inc`` without its per-call checks (observability, sign; the batcher adds only
    counts and durations, never negative): its value's own ``inc``, bound once per model."""
    inc = getattr(getattr(child, "_value", None), "inc", None)
    return inc if callable(inc) else child.inc


def _observer(child: Histogram) -> Callable[[float], None]:
    """``child.observe`` by bisection on the bounds (the same bucket as its linear search: the
    first bound at or above the value), bound once per model; ``observe`` itself when the
    client library's internals are not the expected ones."""
    bounds = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    total = getattr(getattr(child, "_sum", None), "inc", None)
    if not (isinstance(bounds, list) and isinstance(buckets, list) and callable(total)
            and len(bounds) == len(buckets) and bounds and bounds[-1] == math.inf):
        return child.observe
    adds = [bucket.inc for bucket in buckets]
    sum_inc = total

    def observe(amount: float) -> None:
        sum_inc(amount)
        i = bisect_left(bounds, amount)
        if i < len(adds) and amount <= bounds[i]:  # NaN: in no bucket, as observe does
            adds[i](1)

    return observe


class ModelObserver:
    """The batcher's metrics hook for one model version (implements ``BatchObserver``)."""

    def __init__(self, metrics: Metrics, model: str, version: str) -> None:
        labels = {"model": model, "version": version}
        m = metrics
        self._success = _adder(m.request_success.labels(**labels))
        self._failure = {
            reason: _adder(m.request_failure.labels(reason=reason, **labels))
            for reason in ("REJECTED", "CANCELED", "BACKEND", "OTHER")
        }
        self._count = _adder(m.inference_count.labels(**labels))
        self._exec = _adder(m.exec_count.labels(**labels))
        self._pending = _adder(m.pending.labels(**labels))
        self._request_us = _adder(m.request_duration_us.labels(**labels))
        self._queue_us = _adder(m.queue_duration_us.labels(**labels))
        self._input_us = _adder(m.compute_input_us.labels(**labels))
        self._infer_us = _adder(m.compute_infer_us.labels(**labels))
        self._request_h = _observer(m.request_latency.labels(**labels))
        self._queue_h = _observer(m.queue_latency.labels(**labels))
        self._prepare_h = _observer(m.prepare_latency.labels(**labels))
        self._compute_h = _observer(m.compute_latency.labels(**labels))
        self._batch_h = _observer(m.batch_size.labels(**labels))
        self._padding_h = _observer(m.padding_ratio.labels(**labels))
        self.cache_hits = m.cache_hits.labels(**labels)
        self.cache_misses = m.cache_misses.labels(**labels)
        self.load_duration = m.load_duration.labels(**labels)
        self.ready = m.model_ready.labels(**labels)

    def request_queued(self, items: int) -> None:
        self._pending(1)

    def request_dequeued(self, items: int) -> None:
        self._pending(-1)

    def request_finished(self, outcome: str, items: int, queue_s: float, total_s: float) -> None:
        if outcome == "success":
            self._success(1)
            self._count(items)
        else:
            self._failure[FAILURE_REASON.get(outcome, "OTHER")](1)
        self._request_us(total_s * 1e6)
        self._queue_us(queue_s * 1e6)
        self._request_h(total_s)
        self._queue_h(queue_s)

    def batch_executed(
        self,
        requests: int,
        items: int,
        real_tokens: int,
        padded_tokens: int,
        prepare_s: float,
        compute_s: float,
    ) -> None:
        self._exec(1)
        self._batch_h(items)
        if real_tokens > 0:
            self._padding_h(padded_tokens / real_tokens)
        self._input_us(prepare_s * 1e6)
        self._infer_us(compute_s * 1e6)
        self._prepare_h(prepare_s)
        self._compute_h(compute_s)
