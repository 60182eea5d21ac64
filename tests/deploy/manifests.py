"""Rendering the kustomize overlays and validating objects offline.

Core Kubernetes objects are checked by kubernetes-validate (strict: unknown fields are errors)
for one pinned Kubernetes version; the CRD objects against the schemas in ``schemas/`` (see
``schemas/SOURCES.md``), which ``$ref`` the same bundled Kubernetes definitions.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUSTOMIZE = DEPLOY / "kubernetes"
OVERLAYS = ("cpu", "gpu", "bundled")
#: The Kubernetes version the manifests are written for (a version kubernetes-validate bundles).
K8S_VERSION = "1.30.0"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
#: Kinds checked against schemas/ rather than Kubernetes' own.
CRD_SCHEMA_FILES = {
    "ServiceMonitor": "prometheus-operator.yaml",
    "PrometheusRule": "prometheus-operator.yaml",
    "ClusterServingRuntime": "kserve.yaml",
    "InferenceService": "kserve.yaml",
}

Obj = dict[str, Any]


def render(kubectl: str, overlay: str) -> list[Obj]:
    """``kubectl kustomize deploy/kubernetes/overlays/<overlay>`` as a list of objects."""
    out = subprocess.run(
        [kubectl, "kustomize", str(KUSTOMIZE / "overlays" / overlay)],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def load_yaml_docs(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def of_kind(objs: Iterable[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: Iterable[Obj], kind: str) -> Obj:
    found = of_kind(objs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container(pod_spec: Obj, name: str) -> Obj:
    matches = [c for c in pod_spec["containers"] if c["name"] == name]
    assert len(matches) == 1, f"no single container {name!r} in {[c['name'] for c in pod_spec['containers']]}"
    return matches[0]


def validate_core(obj: Obj) -> None:
    """Raise ``kubernetes_validate.ValidationError`` unless ``obj`` is valid for K8S_VERSION."""
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@cache
def _k8s_definitions() -> Resource[Any]:
    major_minor = ".".join(K8S_VERSION.split(".")[:2])
    folder = resources.files("kubernetes_validate") / "kubernetes-json-schema"
    defs = folder / f"v{major_minor}.0-local-strict" / "_definitions.json"
    return Resource.from_contents(json.loads(defs.read_text()))


@cache
def _crd_schema(kind: str) -> str:
    return json.dumps(yaml.safe_load((SCHEMAS / CRD_SCHEMA_FILES[kind]).read_text())[kind])


def validate_crd(obj: Obj) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``obj`` matches its kind's schema in schemas/."""
    schema = json.loads(_crd_schema(obj["kind"]))
    registry: Registry[Any] = _k8s_definitions() @ Registry()
    jsonschema.Draft202012Validator(schema, registry=registry).validate(obj)


def validate(obj: Obj) -> None:
    if obj["kind"] in CRD_SCHEMA_FILES:
        validate_crd(obj)
    else:
        validate_core(obj)
