"""The hot routes without the router: ``POST`` classify and v2 infer as plain ASGI.

FastAPI's routing, dependency solving and its outer middleware cost several times what the
server does for a request of one text (``loadtests/floor_bench.py`` measures it). The two
inference routes stay declared on the FastAPI app, so OpenAPI documents them and any request
the fast path does not take (another method, a ``root_path``, a trailing slash) still reaches
them; :class:`SluiceApp` sends a ``POST`` to exactly ``/v1/models/{model}/classify``,
``/v2/models/{model}/infer`` or ``/v2/models/{model}/versions/{version}/infer`` through the
same user middleware (access log and ``X-Request-ID``, name checks, the guard, CORS: one stack
built from ``user_middleware``, like Starlette's) to :class:`HotRoutes`, which reads the body,
computes and answers with the same functions the routes call (``server.api.classify``,
``server.api.kserve``), and maps a domain error through the one table of ``server.api.errors``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from server.api.body import read_raw_body
from server.api.classify import CLASSIFY_PATH, classify_document
from server.api.errors import response_for
from server.api.kserve import INFER_PATH, INFER_VERSION_PATH, infer_encoded
from server.errors import ModelNotReady, SluiceError
from server.state import ServerState

HOT_KEY = "sluice.hot"
_JSON = b"application/json"
_BINARY = b"application/octet-stream"


def hot_route(path: str) -> tuple[str, str, str | None] | None:
    """(kind, model, version) of a path the fast path serves, else None."""
    parts = path.split("/")
    n = len(parts)
    if n == 5 and parts[0] == "" and parts[2] == "models" and parts[3]:
        if parts[1] == "v1" and parts[4] == "classify":
            return "classify", parts[3], None
        if parts[1] == "v2" and parts[4] == "infer":
            return "infer", parts[3], None
    if (n == 7 and parts[0] == "" and parts[1] == "v2" and parts[2] == "models" and parts[3]
            and parts[4] == "versions" and parts[5] and parts[6] == "infer"):
        return "infer", parts[3], parts[5]
    return None


def _query_version(query: bytes) -> str | None:
    """``?version=`` as Starlette's ``query_params.get`` reads it (the last one wins)."""
    if b"version" not in query:
        return None
    found = None
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if key == "version":
            found = value
    return found


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def _answer(send: Send, body: bytes, media: bytes,
                  extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    headers = [*extra, (b"content-length", b"%d" % len(body)), (b"content-type", media)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class HotRoute:
    """``scope["route"]`` of a hot request: its template, as the router's route carries it."""

    path: str


class HotRoutes:
    """The ASGI endpoint of the hot routes (the innermost app of the fast stack)."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._routes = {
            ("classify", False): HotRoute(CLASSIFY_PATH),
            ("infer", False): HotRoute(INFER_PATH),
            ("infer", True): HotRoute(INFER_VERSION_PATH),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind, model, version = scope[HOT_KEY]
        # What the router would have set: the access log and metrics read the template.
        scope["route"] = self._routes[(kind, version is not None)]
        scope["path_params"] = {"model": model} if version is None else {
            "model": model, "version": version}
        try:
            if self.state.draining:
                raise ModelNotReady("server is shutting down")
            if kind == "classify":
                await self._classify(scope, receive, send, model)
            else:
                await self._infer(scope, receive, send, model, version)
        except SluiceError as error:
            await response_for(error)(scope, receive, send)

    async def _classify(self, scope: Scope, receive: Receive, send: Send, model: str) -> None:
        state = self.state
        body = await read_raw_body(scope, receive, state.settings.max_request_bytes)
        version = _query_version(scope.get("query_string", b""))
        await _answer(send, await classify_document(state, model, version, body, receive), _JSON)

    async def _infer(self, scope: Scope, receive: Receive, send: Send, model: str,
                     version: str | None) -> None:
        state = self.state
        body = await read_raw_body(scope, receive, state.settings.max_request_bytes)
        raw = _header(scope, b"inference-header-content-length")
        encoded = await infer_encoded(state, model, version, body,
                                      None if raw is None else raw.decode("latin-1"), receive)
        if encoded.header_length is None:
            await _answer(send, encoded.body, _JSON)
        else:
            await _answer(send, encoded.body, _BINARY, ((b"inference-header-content-length",
                                                         b"%d" % encoded.header_length),))


class SluiceApp(FastAPI):
    """FastAPI, with the hot routes dispatched before the router (see the module docstring)."""

    hot: HotRoutes | None = None
    _hot_stack: ASGIApp | None = None

    def enable_hot_routes(self, state: ServerState) -> None:
        self.hot = HotRoutes(state)

    def _build_hot_stack(self, endpoint: ASGIApp) -> ASGIApp:
        app = endpoint
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self.hot
        if (hot is not None and scope["type"] == "http" and scope["method"] == "POST"
                and not self.root_path and not scope.get("root_path")):
            matched = hot_route(scope["path"])
            if matched is not None:
                stack = self._hot_stack
                if stack is None:
                    stack = self._hot_stack = self._build_hot_stack(hot)
                scope["app"] = self
                scope[HOT_KEY] = matched
                await stack(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

