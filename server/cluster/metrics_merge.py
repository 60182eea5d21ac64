"""Prometheus text from several processes as one: samples of the same name and labels summed
(counters, histogram buckets, sums and counts add up; so do the gauges the processes export:
in-flight requests, queued items), families and their order as first seen."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if value != int(value) or abs(value) > 1e15 else f"{value:.1f}"


def merge(texts: Iterable[bytes]) -> bytes:
    families: dict[str, tuple[str, str]] = {}  # name -> (type, help)
    samples: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text.decode()):
            families.setdefault(family.name, (family.type, family.documentation))
            rows = samples.setdefault(family.name, {})
            for s in family.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                rows[key] = rows.get(key, 0.0) + s.value
    out: list[str] = []
    for name, (kind, doc) in families.items():
        out.append(f"# HELP {name} {_escape(doc)}")
        out.append(f"# TYPE {name} {kind}")
        for (sample, labels), value in samples[name].items():
            body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            out.append(f"{sample}{{{body}}} {_number(value)}" if body
                       else f"{sample} {_number(value)}")
    return ("\n".join(out) + "\n").encode()
