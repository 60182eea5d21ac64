"""The rendered Deployment keeps the project's operating rules (README, "Run it in production"):
probes on the server's real routes, a grace period that covers the lame duck and the drain,
engine threads from the CPU limit, Guaranteed QoS, a hardened container, a tight NetworkPolicy."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.settings import Settings
from tests.deploy.manifests import OVERLAYS, Obj, container, one

#: The margin the grace period keeps beyond the lame duck and the drain (SIGKILL comes after it).
GRACE_MARGIN_S = 5
STARTUP_BUDGET_S = 300  # the slowest model load the startup probe must wait for


def _deployment(rendered: dict[str, list[Obj]], overlay: str) -> Obj:
    return one(rendered[overlay], "Deployment")


def _sluice(rendered: dict[str, list[Obj]], overlay: str) -> Obj:
    return container(_deployment(rendered, overlay)["spec"]["template"]["spec"], "sluice")


def _settings(rendered: dict[str, list[Obj]], overlay: str) -> dict[str, str]:
    data: dict[str, str] = one(rendered[overlay], "ConfigMap")["data"]
    return data


def _port_number(sluice: Obj, port: str | int) -> int:
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in sluice["ports"] if p["name"] == port]
    assert len(numbers) == 1, f"no container port named {port!r}"
    return int(numbers[0])


def _arg(sluice: Obj, flag: str) -> str:
    args: list[str] = sluice["args"]
    return args[args.index(flag) + 1]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_hit_real_routes_on_the_api_port(
    rendered: dict[str, list[Obj]], overlay: str, get_routes: set[str]
) -> None:
    sluice = _sluice(rendered, overlay)
    api_port = int(_arg(sluice, "--port"))
    assert _arg(sluice, "--host") == "0.0.0.0"
    assert _port_number(sluice, "http") == api_port
    expected = {"startupProbe": "/v2/health/ready", "readinessProbe": "/v2/health/ready",
                "livenessProbe": "/v2/health/live"}
    for probe, path in expected.items():
        get = sluice[probe]["httpGet"]
        assert get["path"] == path, probe
        assert get["path"] in get_routes, f"{probe}: the server has no GET {get['path']}"
        assert _port_number(sluice, get["port"]) == api_port, probe
    startup = sluice["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] >= STARTUP_BUDGET_S
    assert sluice["readinessProbe"]["periodSeconds"] == 5


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ports_and_service(rendered: dict[str, list[Obj]], overlay: str) -> None:
    sluice = _sluice(rendered, overlay)
    assert {p["name"]: p["containerPort"] for p in sluice["ports"]} == {"http": 8000, "metrics": 8002}
    assert int(_settings(rendered, overlay)["SLUICE_METRICS_PORT"]) == _port_number(sluice, "metrics")
    service = one(rendered[overlay], "Service")
    targets = {p["name"]: p["targetPort"] for p in service["spec"]["ports"]}
    assert targets == {"http": "http", "metrics": "metrics"}
    deployment = _deployment(rendered, overlay)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = {
        "Deployment": deployment["spec"]["selector"]["matchLabels"],
        "Service": service["spec"]["selector"],
        "PodDisruptionBudget":
            one(rendered[overlay], "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        "NetworkPolicy": one(rendered[overlay], "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    }
    for kind, selector in selectors.items():
        assert selector and selector.items() <= pod_labels.items(), f"{kind} does not select the pods"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grace_period_covers_lame_duck_and_drain(rendered: dict[str, list[Obj]], overlay: str) -> None:
    settings = _settings(rendered, overlay)
    needed = float(settings["SLUICE_SHUTDOWN_DELAY_S"]) + float(settings["SLUICE_DRAIN_TIMEOUT_S"])
    grace = _deployment(rendered, overlay)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= needed + GRACE_MARGIN_S, f"{grace} s < {needed} s + {GRACE_MARGIN_S} s margin"
    sluice = _sluice(rendered, overlay)
    settings_name = one(rendered[overlay], "ConfigMap")["metadata"]["name"]
    assert sluice["envFrom"] == [{"configMapRef": {"name": settings_name}}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rollout_never_drops_below_the_ready_count(rendered: dict[str, list[Obj]], overlay: str) -> None:
    deployment = _deployment(rendered, overlay)
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    assert "replicas" not in deployment["spec"], "the HorizontalPodAutoscaler owns the replica count"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_guaranteed_qos_and_threads_from_the_cpu_limit(rendered: dict[str, list[Obj]], overlay: str) -> None:
    sluice = _sluice(rendered, overlay)
    resources = sluice["resources"]
    assert resources["requests"] == resources["limits"]
    assert {"cpu", "memory"} <= resources["limits"].keys()
    threads = [e for e in sluice["env"] if e["name"] == "SLUICE_ENGINE_THREADS"]
    assert threads == [{"name": "SLUICE_ENGINE_THREADS", "valueFrom": {"resourceFieldRef": {
        "containerName": "sluice", "resource": "limits.cpu", "divisor": "1"}}}]
    assert "SLUICE_ENGINE_THREADS" not in _settings(rendered, overlay)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_security_context_is_hardened(rendered: dict[str, list[Obj]], overlay: str) -> None:
    pod = _deployment(rendered, overlay)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = _sluice(rendered, overlay)["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 1000
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = _sluice(rendered, overlay)["volumeMounts"]
    tmp = [m for m in mounts if m["mountPath"] == "/tmp"]
    assert len(tmp) == 1 and "emptyDir" in volumes[tmp[0]["name"]]
    writable = [m["mountPath"] for m in mounts if not m.get("readOnly")
                and "emptyDir" not in volumes[m["name"]]]
    assert writable == [], "only emptyDirs may be writable"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_admits_clients_and_the_scrape_only(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    policy = one(rendered[overlay], "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    by_port = {rule["ports"][0]["port"]: rule for rule in policy["ingress"]}
    assert by_port.keys() == {"http", "metrics"}
    assert all(len(rule["ports"]) == 1 for rule in policy["ingress"])
    container_ports = {p["name"] for p in _sluice(rendered, overlay)["ports"]}
    assert by_port.keys() <= container_ports
    assert by_port["metrics"]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    for peer in by_port["http"]["from"]:
        selector = peer.get("namespaceSelector") or peer["podSelector"]
        assert selector["matchLabels"], "an empty selector would admit everyone"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_are_real_settings(rendered: dict[str, list[Obj]], overlay: str) -> None:
    known = {f"SLUICE_{name.upper()}" for name in Settings.model_fields}
    for key in _settings(rendered, overlay):
        if key.startswith("SLUICE_"):
            assert key in known, f"{key} is no setting of server/settings.py"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaler(rendered: dict[str, list[Obj]], overlay: str) -> None:
    hpa = one(rendered[overlay], "HorizontalPodAutoscaler")["spec"]
    deployment = _deployment(rendered, overlay)
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": deployment["metadata"]["name"]}
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    kinds = [m["type"] for m in hpa["metrics"]]
    assert kinds[0] == "Pods", "the queue signal comes first"
    assert {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 75}}} in hpa["metrics"]
    for metric in hpa["metrics"]:
        name = metric.get("pods", metric.get("resource", {})).get("metric", {}).get("name", "")
        assert "gpu" not in name.lower(), "never scale on GPU utilisation"
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300
    pdb = one(rendered[overlay], "PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] < hpa["minReplicas"]


def test_repository_path_is_the_images(rendered: dict[str, list[Obj]]) -> None:
    """The args say /models, the image's CMD default; the compose file mounts models there too."""
    compose = (Path(__file__).resolve().parents[2] / "docker" / "compose.yaml").read_text()
    assert ":/models:ro" in compose
    for overlay in OVERLAYS:
        assert _arg(_sluice(rendered, overlay), "--model-repository") == "/models"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keys_come_from_secret_folders_that_update_in_place(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    pod = _deployment(rendered, overlay)["spec"]["template"]["spec"]
    sluice = _sluice(rendered, overlay)
    volumes = {v["name"]: v for v in pod["volumes"]}
    settings = _settings(rendered, overlay)
    assert _arg(sluice, "--host") == "0.0.0.0"  # the server's own default is loopback
    assert settings["SLUICE_MODEL_CONTROL_MODE"] == "none"
    mounts = {m["mountPath"]: m for m in sluice["volumeMounts"]}
    for setting in ("SLUICE_API_KEYS_DIR", "SLUICE_ADMIN_KEYS_DIR"):
        mount = mounts[settings[setting]]
        assert "subPath" not in mount, "a subPath mount never sees the Secret change"
        assert mount["readOnly"] is True
        secret = volumes[mount["name"]]["secret"]
        assert secret["optional"] is True and secret["defaultMode"] == 0o440
    for mount in sluice["volumeMounts"]:
        if "secret" in volumes[mount["name"]]:
            assert "subPath" not in mount
