"""Every overlay renders, and every object in it is valid: core kinds for Kubernetes 1.30
(strict: an unknown field is an error), the Prometheus Operator's kinds against their CRD schema."""

from __future__ import annotations

import copy

import jsonschema
import kubernetes_validate
import pytest

from tests.deploy.manifests import (
    K8S_VERSION,
    OVERLAYS,
    Obj,
    container,
    of_kind,
    one,
    validate,
    validate_core,
    validate_crd,
)

EXPECTED_KINDS = {
    "Namespace", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget",
    "HorizontalPodAutoscaler", "NetworkPolicy", "ServiceMonitor", "PrometheusRule",
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    assert EXPECTED_KINDS <= {o["kind"] for o in objs}
    for obj in objs:
        try:
            validate(obj)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as e:
            pytest.fail(f"{overlay}: {obj['kind']}/{obj['metadata']['name']}: {e.message} "
                        f"at {'/'.join(map(str, e.absolute_path))}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_lands_in_one_namespace(rendered: dict[str, list[Obj]], overlay: str) -> None:
    namespace = one(rendered[overlay], "Namespace")["metadata"]["name"]
    for obj in rendered[overlay]:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == namespace, obj["metadata"]


def test_validation_rejects_a_misspelt_field(rendered: dict[str, list[Obj]]) -> None:
    """The checks above can fail: a typo anywhere (core object or CRD object) is caught."""
    deployment = copy.deepcopy(one(rendered["cpu"], "Deployment"))
    container(deployment["spec"]["template"]["spec"], "sluice")["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_core(deployment)
    for kind in ("ServiceMonitor", "PrometheusRule"):
        obj = copy.deepcopy(one(rendered["cpu"], kind))
        obj["spec"]["endpoint" if kind == "ServiceMonitor" else "group"] = []
        with pytest.raises(jsonschema.ValidationError):
            validate_crd(obj)
    monitor = copy.deepcopy(one(rendered["cpu"], "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["interval"] = "15 seconds"
    with pytest.raises(jsonschema.ValidationError):
        validate_crd(monitor)
    monitor["metadata"]["labelz"] = {}
    with pytest.raises(jsonschema.ValidationError):
        validate_crd(monitor)


def test_pinned_kubernetes_version_is_bundled() -> None:
    minor = ".".join(K8S_VERSION.split(".")[:2])
    assert minor in {".".join(v.split(".")[:2]) for v in kubernetes_validate.utils.all_versions()}


def _pod(objs: list[Obj]) -> Obj:
    spec: Obj = one(objs, "Deployment")["spec"]["template"]["spec"]
    return spec


def _mounts(objs: list[Obj]) -> dict[str, Obj]:
    return {m["mountPath"]: m for m in container(_pod(objs), "sluice")["volumeMounts"]}


def _volumes(objs: list[Obj]) -> dict[str, Obj]:
    return {v["name"]: v for v in _pod(objs)["volumes"]}


@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
def test_models_come_read_only_from_the_claim(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    mount = _mounts(objs)["/models"]
    assert mount["readOnly"] is True
    claim = _volumes(objs)[mount["name"]]["persistentVolumeClaim"]
    assert claim["readOnly"] is True
    pvc = one(objs, "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == claim["claimName"]
    assert pvc["spec"]["accessModes"] == ["ReadOnlyMany"]
    args = container(_pod(objs), "sluice")["args"]
    assert args[args.index("--model-repository") + 1] == "/models"


def test_bundled_overlay_serves_the_image_models(rendered: dict[str, list[Obj]]) -> None:
    objs = rendered["bundled"]
    assert of_kind(objs, "PersistentVolumeClaim") == []
    assert "/models" not in _mounts(objs)
    assert container(_pod(objs), "sluice")["image"] == "sluice:bundled"


def test_cpu_overlay_image(rendered: dict[str, list[Obj]]) -> None:
    sluice = container(_pod(rendered["cpu"]), "sluice")
    assert sluice["image"] == "sluice:cpu"
    assert not any("nvidia.com/gpu" in r for r in sluice["resources"].values())


def test_gpu_overlay(rendered: dict[str, list[Obj]]) -> None:
    objs = rendered["gpu"]
    pod = _pod(objs)
    sluice = container(pod, "sluice")
    assert sluice["image"] == "sluice:gpu"
    assert sluice["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    shm = _volumes(objs)[_mounts(objs)["/dev/shm"]["name"]]
    assert shm["emptyDir"]["medium"] == "Memory"
    settings = one(objs, "ConfigMap")["data"]
    assert settings["SLUICE_DEVICE"] == "cuda"
    # the merge kept the base settings
    assert {"SLUICE_SHUTDOWN_DELAY_S", "SLUICE_DRAIN_TIMEOUT_S"} <= settings.keys()
