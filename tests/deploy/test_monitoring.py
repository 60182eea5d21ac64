"""Alerts, dashboard and autoscaling metric: valid PromQL that reads only what Sluice exports.

Names are checked against a real ``sluice serve`` (tests/deploy/conftest.py::live_sluice), so a
renamed metric breaks this test rather than a dashboard in production."""

from __future__ import annotations

import subprocess
from typing import Any

import promql_parser
import pytest
import yaml

from tests.deploy.conftest import METRICS_PATH, LiveSluice
from tests.deploy.manifests import REPO, Obj, one
from tests.deploy.promql import (
    PENDING_METRICS,
    RULE_FILE,
    Expression,
    adapter_rules,
    all_expressions,
    dashboard,
    dashboard_expressions,
    dashboard_variable_metrics,
    metric_names,
    recorded_names,
    rule_groups,
)
from tests.support.tools import require

EXPRESSIONS = all_expressions()


def test_prometheus_rule_carries_the_rule_file(rendered: dict[str, list[Obj]]) -> None:
    """One set of alerts: the PrometheusRule's groups are the plain rule file's, exactly."""
    for overlay, objs in rendered.items():
        assert one(objs, "PrometheusRule")["spec"]["groups"] == rule_groups(), (
            f"{overlay}: deploy/kubernetes/components/monitoring/prometheusrule.yaml differs from "
            f"{RULE_FILE.relative_to(REPO)}")


def test_promtool_checks_the_rules() -> None:
    promtool = require("promtool", "checks the Prometheus rule file")
    done = subprocess.run([promtool, "check", "rules", str(RULE_FILE)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    rules = sum(len(group["rules"]) for group in rule_groups())
    assert f"SUCCESS: {rules} rules found" in done.stdout


def test_alerts_fire_on_the_series_they_watch() -> None:
    """promtool's unit tests of every alert (tests/deploy/sluice-rules.test.yaml)."""
    promtool = require("promtool", "runs the alert rules' unit tests")
    tests = REPO / "tests" / "deploy" / "sluice-rules.test.yaml"
    done = subprocess.run([promtool, "test", "rules", str(tests)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    cases = yaml.safe_load(tests.read_text())["tests"]
    tested = {t["alertname"] for case in cases for t in case["alert_rule_test"]}
    alerts = {r["alert"] for g in rule_groups() for r in g["rules"] if "alert" in r}
    assert tested == alerts, f"alerts without a unit test: {alerts - tested}"


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=[e.where for e in EXPRESSIONS])
def test_expression_parses(expression: Expression) -> None:
    try:
        promql_parser.parse(expression.promql)
    except ValueError as e:
        pytest.fail(f"{expression.where}: {e}\n{expression.promql}")


def _quantile_calls(node: Any, found: list[Any]) -> None:
    if isinstance(node, promql_parser.Call) and node.func.name == "histogram_quantile":
        found.append(node)


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=[e.where for e in EXPRESSIONS])
def test_quantiles_come_from_summed_bucket_rates(expression: Expression) -> None:
    """histogram_quantile(q, sum by (le, ...) (rate(X_bucket[w]))): never a quantile of
    quantiles, never a bucket without rate, never a sum that drops `le`."""
    calls: list[Any] = []
    promql_parser.walk(promql_parser.parse(expression.promql), lambda n: _quantile_calls(n, calls))
    for call in calls:
        aggregate = call.args[1]
        assert isinstance(aggregate, promql_parser.AggregateExpr), expression.where
        assert str(aggregate.op) == "sum" and "le" in aggregate.modifier.labels, expression.where
        rate = aggregate.expr
        assert isinstance(rate, promql_parser.Call) and rate.func.name == "rate", expression.where
        assert rate.args[0].vector_selector.name.endswith("_bucket"), expression.where


@pytest.mark.e2e
def test_expressions_read_only_exported_metrics(live_sluice: LiveSluice) -> None:
    exported = live_sluice.sample_names()
    known = exported | recorded_names() | PENDING_METRICS
    missing = {e.where: sorted(metric_names(e.promql) - known) for e in EXPRESSIONS
               if metric_names(e.promql) - known}
    assert not missing, f"metrics no live Sluice exports: {missing}"
    for variable, metric in dashboard_variable_metrics().items():
        assert metric in exported, f"dashboard variable ${variable} reads {metric}"
    landed = PENDING_METRICS & exported
    assert not landed, f"{landed} is exported now: remove it from PENDING_METRICS"


@pytest.mark.e2e
def test_histograms_are_read_as_histograms(live_sluice: LiveSluice) -> None:
    """Every _bucket the PromQL reads has the _sum and _count of one exported histogram."""
    exported = live_sluice.sample_names()
    buckets = {n for e in EXPRESSIONS for n in metric_names(e.promql) if n.endswith("_bucket")}
    assert buckets
    for bucket in buckets:
        base = bucket.removesuffix("_bucket")
        assert {f"{base}_sum", f"{base}_count"} <= exported, base


def test_dashboard_shows_what_operators_ask_for() -> None:
    exprs = [e.promql for e in dashboard_expressions()]
    read = set().union(*(metric_names(e) for e in exprs))
    for histogram in ("sluice_request_duration_seconds", "sluice_queue_duration_seconds",
                      "sluice_compute_duration_seconds"):
        for q in ("0.5", "0.99"):
            assert any(f"histogram_quantile({q}," in e and f"{histogram}_bucket" in e for e in exprs), (
                histogram, q)
    assert {"nv_inference_request_success_total", "nv_inference_count_total",  # throughput
            "sluice_batch_size_bucket", "sluice_padding_ratio_bucket",  # batching
            "sluice_http_requests_total",  # 429 and 5xx
            "nv_inference_pending_request_count",  # queue depth
            "nv_model_load_duration_secs", "sluice_model_ready"} <= read  # model loads
    assert any('status=~"429|5.."' in e for e in exprs)


def test_dashboard_is_well_formed() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "model"} <= variables
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert 'model=~"$model"' in target["expr"], f"{panel['title']}: ignores the model picker"


def test_autoscaler_metrics_are_served_by_the_adapter(rendered: dict[str, list[Obj]]) -> None:
    served = {rule["name"]["as"] for rule in adapter_rules()}
    for rule in adapter_rules():
        assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"},
                                                  "pod": {"resource": "pod"}}
    for overlay, objs in rendered.items():
        hpa = one(objs, "HorizontalPodAutoscaler")["spec"]
        wanted = {m["pods"]["metric"]["name"] for m in hpa["metrics"] if m["type"] == "Pods"}
        assert wanted and wanted <= served, f"{overlay}: {wanted - served} not served"


def test_service_monitor_scrapes_the_metrics_port(rendered: dict[str, list[Obj]]) -> None:
    for overlay, objs in rendered.items():
        monitor = one(objs, "ServiceMonitor")["spec"]
        service = one(objs, "Service")
        assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        ports = {p["name"] for p in service["spec"]["ports"]}
        assert [(e["port"], e["path"], e["interval"]) for e in monitor["endpoints"]] == [
            ("metrics", METRICS_PATH, "15s")], overlay
        assert "metrics" in ports
