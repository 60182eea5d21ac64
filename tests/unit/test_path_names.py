"""Model names and versions in request paths (``server.api.names``)."""

from __future__ import annotations

import pytest

from server.api.names import path_problem


@pytest.mark.parametrize("path", [
    "/v2/models/../infer", "/v2/repository/models/../load", "/v1/models/../classify",
    "/v2/models/.hidden/ready", "/v2/models/a b/infer", "/v2/models/" + "a" * 129,
    "/v2/models/m/versions/²/infer", "/v2/models/m/versions/" + "9" * 19 + "/infer",
    "/v2/models/m/versions/-1/infer",
])
def test_unsafe_names_and_versions_are_refused(path: str) -> None:
    assert path_problem(path) is not None


@pytest.mark.parametrize("path", [
    "/v2/models/tiny-sentiment/infer", "/v2/models/a.b_c-1/versions/12/ready",
    "/v2/health/ready", "/metrics", "/v1/models/airline/classify",
])
def test_ordinary_paths_pass(path: str) -> None:
    assert path_problem(path) is None


def test_version_query_parameter_is_checked() -> None:
    assert path_problem("/v1/models/m/classify", b"version=%C2%B2") is not None
    assert path_problem("/v1/models/m/classify", b"version=3") is None
