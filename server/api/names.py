"""Model names and versions in request paths are checked before any route sees them.

A raw request path can carry ``..`` (also as ``%2E%2E``) or Unicode digits (``²``); the
registry turns names into repository folders and versions into integers, so both are refused
here with 400 (names: ``server.protocol.names.check_model_name``; versions: ASCII digits).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from server.protocol.names import check_model_name, check_version

#: Path prefixes followed by a model name; ``versions/<v>`` may follow the name.
_PREFIXES = (("v2", "models"), ("v2", "repository", "models"), ("v1", "models"))


def path_problem(path: str, query: bytes = b"") -> str | None:
    """What is wrong with the model name or version in ``path`` (and ``?version=``), or None."""
    parts = path.strip("/").split("/")
    for prefix in _PREFIXES:
        n = len(prefix)
        if tuple(parts[:n]) == prefix and len(parts) > n:
            if problem := check_model_name(parts[n]):
                return f"path: {problem}"
            if len(parts) > n + 2 and parts[n + 1] == "versions":
                if problem := check_version(parts[n + 2]):
                    return f"path: {problem}"
            break
    if query and b"version=" in query:
        for key, value in parse_qsl(query.decode("latin-1")):
            if key == "version" and (problem := check_version(value)):
                return f"version: {problem}"
    return None


class NameGuard:
    """Answers 400 ``{"error": ...}`` for a bad model name or version in the path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = path_problem(scope["path"], scope.get("query_string", b""))
            if problem is not None:
                body = orjson.dumps({"error": problem})
                await send({"type": "http.response.start", "status": 400, "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(body))]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
