"""docker/compose.yaml: valid against the Compose Specification's schema, hardened like the
Kubernetes pod, and wired to the monitoring files in deploy/ (images can't be pulled here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.conftest import METRICS_PATH
from tests.deploy.manifests import REPO, SCHEMAS

COMPOSE = REPO / "docker" / "compose.yaml"
#: Files compose refers to that land with branches being merged (the Dockerfile is written on
#: the image branch); the test fails once one exists, so the entry goes with the merge.
@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _bind_mounts(service: dict[str, Any]) -> dict[str, tuple[Path, str]]:
    """container path -> (host path, options) of the service's short-syntax bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *options = volume.split(":")
        if source.startswith((".", "/")):
            mounts[target] = ((COMPOSE.parent / source).resolve(), ",".join(options))
    return mounts


def test_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(compose)
    sluice = {**compose["services"]["sluice"], "readonly": True}  # a misspelt read_only
    broken = {**compose, "services": {**compose["services"], "sluice": sluice}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(broken)


def test_sluice_service_is_hardened(compose: dict[str, Any]) -> None:
    sluice = compose["services"]["sluice"]
    assert sluice["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
    assert sluice["user"].split(":")[0] == "1000"
    assert sluice["read_only"] is True
    assert sluice["tmpfs"] == ["/tmp"]
    assert sluice["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in sluice["security_opt"]
    models, options = _bind_mounts(sluice)["/models"]
    assert models == REPO / "model_repository" and options == "ro"
    env = sluice["environment"]
    grace = int(sluice["stop_grace_period"].removesuffix("s"))
    assert grace >= float(env["SLUICE_SHUTDOWN_DELAY_S"]) + float(env["SLUICE_DRAIN_TIMEOUT_S"]) + 5
    published = {p.rsplit(":", 1)[1] for p in sluice["ports"]}
    assert {"8000", env["SLUICE_METRICS_PORT"]} <= published
    assert all(p.startswith("127.0.0.1:") for s in compose["services"].values() for p in s.get("ports", []))


def test_referenced_files_exist(compose: dict[str, Any]) -> None:
    build = compose["services"]["sluice"]["build"]
    paths = [(COMPOSE.parent / build["context"]).resolve() / build["dockerfile"]]
    for service in compose["services"].values():
        paths += [host for host, _ in _bind_mounts(service).values()]
    missing = {str(p.relative_to(REPO)) for p in paths if not p.exists()}
    assert not missing, f"compose mounts what the repository lacks: {missing}"


def test_prometheus_scrapes_sluice_and_loads_the_rules(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    mounts = _bind_mounts(prometheus)
    config_path = next(t for t in mounts if t.endswith("prometheus.yml"))
    assert f"--config.file={config_path}" in prometheus["command"]
    config = yaml.safe_load(mounts[config_path][0].read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "sluice")
    port = compose["services"]["sluice"]["environment"]["SLUICE_METRICS_PORT"]
    assert job["static_configs"] == [{"targets": [f"sluice:{port}"]}]
    assert job["metrics_path"] == METRICS_PATH
    assert config["global"]["scrape_interval"] == "15s"
    # rule_files resolve against the config file's folder, where compose mounts the rule file
    config_dir = Path(config_path).parent
    rules = REPO / "deploy" / "prometheus" / "sluice-rules.yaml"
    rule_mounts = {t: host for t, (host, _) in mounts.items() if host == rules}
    assert len(rule_mounts) == 1
    (target,) = rule_mounts
    assert any(Path(target).match(str(config_dir / pattern)) for pattern in config["rule_files"])


def test_grafana_provisions_the_dashboard(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = _bind_mounts(grafana)
    provisioning = mounts["/etc/grafana/provisioning"][0]
    providers = yaml.safe_load((provisioning / "dashboards" / "sluice.yaml").read_text())["providers"]
    dashboards_dir = providers[0]["options"]["path"]
    assert mounts[dashboards_dir][0] == REPO / "deploy" / "grafana"
    assert (mounts[dashboards_dir][0] / "sluice-dashboard.json").exists()
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())["datasources"]
    assert [(s["type"], s["url"], s["isDefault"]) for s in sources] == [
        ("prometheus", "http://prometheus:9090", True)]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_dir}/sluice-dashboard.json"
