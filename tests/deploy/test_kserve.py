"""deploy/kserve/: the ClusterServingRuntime and the example InferenceService match their CRD
schemas and the server: v2 protocol, the repository at KServe's /mnt/models, probes on real
routes of the port KServe sends traffic to."""

from __future__ import annotations

import copy

import jsonschema
import pytest

from tests.deploy.manifests import DEPLOY, Obj, container, load_yaml_docs, one, validate_crd

KSERVE = DEPLOY / "kserve"
KSERVE_MODEL_DIR = "/mnt/models"  # where KServe's storage initializer puts the storageUri
KSERVE_PORT = 8080  # the container port KServe routes to


@pytest.fixture(scope="module")
def runtime() -> Obj:
    return one(load_yaml_docs(KSERVE / "clusterservingruntime.yaml"), "ClusterServingRuntime")


@pytest.fixture(scope="module")
def service() -> Obj:
    return one(load_yaml_docs(KSERVE / "inferenceservice.yaml"), "InferenceService")


def test_objects_match_their_crds(runtime: Obj, service: Obj) -> None:
    validate_crd(runtime)
    validate_crd(service)
    broken = copy.deepcopy(service)
    model = broken["spec"]["predictor"]["model"]
    model["storageURI"] = model.pop("storageUri")  # misspelt
    with pytest.raises(jsonschema.ValidationError):
        validate_crd(broken)
    broken = copy.deepcopy(runtime)
    broken["spec"]["protocolVersions"] = ["v3"]
    with pytest.raises(jsonschema.ValidationError):
        validate_crd(broken)


def test_runtime_serves_the_v2_protocol_from_mnt_models(runtime: Obj, get_routes: set[str]) -> None:
    spec = runtime["spec"]
    assert spec["protocolVersions"] == ["v2"]
    sluice = container(spec, "kserve-container")
    args = sluice["args"]
    assert args[args.index("--model-repository") + 1] == KSERVE_MODEL_DIR
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert int(args[args.index("--port") + 1]) == KSERVE_PORT
    assert [p["containerPort"] for p in sluice["ports"]] == [KSERVE_PORT]
    for probe in ("readinessProbe", "livenessProbe"):
        get = sluice[probe]["httpGet"]
        assert get["port"] == KSERVE_PORT and get["path"] in get_routes, probe
    assert sluice["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert sluice["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    env = {e["name"]: e for e in sluice["env"]}
    assert spec["annotations"]["prometheus.kserve.io/port"] == env["SLUICE_METRICS_PORT"]["value"]
    assert env["SLUICE_ENGINE_THREADS"]["valueFrom"]["resourceFieldRef"] == {
        "containerName": "kserve-container", "resource": "limits.cpu", "divisor": "1"}
    assert sluice["resources"]["requests"] == sluice["resources"]["limits"]
    context = sluice["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["runAsNonRoot"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    (tmp,) = [m for m in sluice["volumeMounts"] if m["mountPath"] == "/tmp"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == tmp["name"]]
    assert "emptyDir" in volume


def test_example_service_picks_the_runtime(runtime: Obj, service: Obj) -> None:
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    formats = {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert model["modelFormat"]["name"] in formats
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    assert model["resources"]["requests"] == model["resources"]["limits"]
