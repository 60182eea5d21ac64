"""Every PromQL expression the deployment ships, and the metric names each one reads.

Grafana's and prometheus-adapter's template variables are substituted with plain values first,
the way those tools expand them, so that what remains is PromQL that Prometheus would run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import promql_parser
import yaml

from tests.deploy.manifests import DEPLOY

RULE_FILE = DEPLOY / "prometheus" / "sluice-rules.yaml"
DASHBOARD = DEPLOY / "grafana" / "sluice-dashboard.json"
ADAPTER_RULES = DEPLOY / "prometheus-adapter" / "rules.yaml"

#: Metrics the rules and the dashboard read that land with branches being merged. The name
#: check fails once one of them is exported, so the entry is removed with the merge.
PENDING_METRICS: set[str] = set()
#: Grafana's variables as a dashboard at "All models" expands them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$model": ".*"}
#: prometheus-adapter's templates as it expands them for a request about two pods.
ADAPTER_TEMPLATES = {
    "<<.LabelMatchers>>": 'namespace="sluice",pod=~"sluice-a|sluice-b"',
    "<<.GroupBy>>": "pod",
}


@dataclass(frozen=True)
class Expression:
    where: str  # "dashboard: <panel title> [A]", "rule: <alert or record>", "adapter: <name>"
    promql: str


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULE_FILE.read_text())["groups"]
    return groups


def rule_expressions() -> list[Expression]:
    return [
        Expression(f"rule: {rule.get('alert') or rule['record']}", str(rule["expr"]))
        for group in rule_groups() for rule in group["rules"]
    ]


def recorded_names() -> set[str]:
    return {rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def grafana_expand(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"an unknown Grafana variable is left in {expr!r}"
    return expr


def dashboard_expressions() -> list[Expression]:
    found = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            where = f"dashboard: {panel['title']} [{target['refId']}]"
            found.append(Expression(where, grafana_expand(target["expr"])))
    return found


def dashboard_variable_metrics() -> dict[str, str]:
    """Template variable name -> the metric its ``label_values(metric, label)`` query reads."""
    found = {}
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", variable["query"]["query"])
        assert match, f"variable {variable['name']}: unexpected query {variable['query']}"
        found[variable["name"]] = match.group(1)
    return found


def adapter_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = yaml.safe_load(ADAPTER_RULES.read_text())["rules"]
    return rules


def adapter_expressions() -> list[Expression]:
    found = []
    for rule in adapter_rules():
        name = rule["name"]["as"]
        found.append(Expression(f"adapter: {name} seriesQuery", rule["seriesQuery"]))
        series = promql_parser.parse(rule["seriesQuery"])
        assert isinstance(series, promql_parser.VectorSelector), rule["seriesQuery"]
        query = rule["metricsQuery"].replace("<<.Series>>", str(series.name))
        for template, value in ADAPTER_TEMPLATES.items():
            query = query.replace(template, value)
        assert "<<" not in query, f"an unknown adapter template is left in {query!r}"
        found.append(Expression(f"adapter: {name} metricsQuery", query))
    return found


def all_expressions() -> list[Expression]:
    return rule_expressions() + dashboard_expressions() + adapter_expressions()


def metric_names(promql: str) -> set[str]:
    """The metric names an expression selects (raises ValueError when it does not parse)."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {promql!r}"
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(promql), visit)
    return names
