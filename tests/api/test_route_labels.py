"""The ``route`` label of sluice_http_requests_total: a fixed set, whatever the path."""

from __future__ import annotations

from pathlib import Path

from server.api.access import route_label
from server.app import create_app
from server.metrics import HTTP_ROUTES
from server.settings import Settings

ROUTE_LABELS = {
    "/v2/models/{model}/infer": "infer",
    "/v2/models/{model}/versions/{version}/infer": "infer",
    "/v1/models/{model}/classify": "classify",
    "/v1/models/{model}/rank": "rank",
    "/v2": "metadata",
    "/v2/models/{model}": "metadata",
    "/v2/models/{model}/versions/{version}": "metadata",
    "/v2/models/{model}/ready": "ready",
    "/v2/models/{model}/versions/{version}/ready": "ready",
    "/v2/models/{model}/config": "config",
    "/v2/models/{model}/versions/{version}/config": "config",
    "/v2/models/{model}/stats": "stats",
    "/v2/models/{model}/versions/{version}/stats": "stats",
    "/v2/health/live": "health",
    "/v2/health/ready": "health",
    "/v2/repository/index": "repository",
    "/v2/repository/models/{model}/load": "repository",
    "/v2/repository/models/{model}/unload": "repository",
    "/metrics": "metrics",
    "/docs": "other",
    "/openapi.json": "other",
}


def test_route_templates_map_onto_the_fixed_label_set(tmp_path: Path) -> None:
    for template, label in ROUTE_LABELS.items():
        assert route_label(template) == label, template
    assert route_label(None) == "other"
    # Every documented route of the real app is one of the table's (a new route gets a label
    # on purpose, not by accident).
    paths = set(create_app(Settings(model_repository=tmp_path)).openapi()["paths"])
    assert paths <= set(ROUTE_LABELS), sorted(paths - set(ROUTE_LABELS))
    assert set(ROUTE_LABELS.values()) == set(HTTP_ROUTES)
