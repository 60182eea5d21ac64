"""Who may call what, as pure ASGI middleware in front of every route (README "Security").

In this order, for every HTTP request:

1. ``Host`` against ``allowed_hosts`` when set (DNS rebinding): 421. ``/v2/health/*`` and
   ``/metrics`` are exempt (kubelet probes and Prometheus use the pod IP).
2. A state-changing method (anything but GET, HEAD, OPTIONS) whose ``Content-Type`` is set and
   is neither JSON nor ``application/octet-stream`` (the binary tensor extension; tritonclient
   sends none): 415. One whose ``Origin`` is neither the server's own (``Host``) nor in
   ``cors_origins``: 403. A browser's cross-site form POST therefore reaches no route.
3. Model control (``/v2/repository/models/{m}/load|unload``): 403 unless ``model_control_mode``
   is ``explicit`` (``none``; ``poll``, as Triton) or with no admin key configured; else an
   admin key is required (401).
4. Everything else but health and /metrics (each behind its own switch): an API or admin key
   when any API key is configured (401 without one or with a wrong one).

Every refusal is ``{"error": "..."}`` JSON. Keys are checked by :mod:`server.keys`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import orjson
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from server.keys import KeySet, bearer_token
from server.settings import Settings

log = logging.getLogger("sluice")

HEALTH_PREFIX = "/v2/health/"
METRICS_PATH = "/metrics"
CONTROL_PREFIX = "/v2/repository/models/"
CONTROL_PATH = re.compile(r"^/v2/repository/models/[^/]+/(load|unload)$")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ALLOWED_TYPES = frozenset({b"application/json", b"application/octet-stream"})
CONTROL_OFF = ("model control is off (model_control_mode: none): start the server with "
               "--model-control-mode explicit (or SLUICE_MODEL_CONTROL_MODE=explicit) and an "
               "admin key (SLUICE_ADMIN_KEYS or --admin-keys-dir) to load and unload models")
CONTROL_POLLED = ("load and unload are not allowed in model_control_mode poll (as in Triton): "
                  "the repository is watched; change the model folder instead, or start with "
                  "--model-control-mode explicit")
NO_ADMIN_KEY = ("load and unload need an admin key, and none is configured: set admin_keys "
                "(SLUICE_ADMIN_KEYS) or admin_keys_dir (--admin-keys-dir)")


@dataclass(frozen=True)
class GuardPolicy:
    """What the guard enforces (from the settings)."""

    api_keys: KeySet
    admin_keys: KeySet
    control_mode: str = "none"
    health_requires_key: bool = False
    metrics_requires_key: bool = False
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """``host`` (a Host header) matches an entry: ``name`` (any port), ``name:port``, or
    ``.example.com`` (that domain and its subdomains)."""
    return _HostList(allowed).allows(host)


class _HostList:
    """``allowed_hosts`` prepared once: exact names in a set, domain suffixes apart."""

    def __init__(self, allowed: tuple[str, ...]) -> None:
        entries = [e.lower() for e in allowed]
        self.any = "*" in entries
        self.exact = frozenset(e for e in entries if not e.startswith("."))
        self.suffixes = tuple(e for e in entries if e.startswith("."))

    def allows(self, host: str) -> bool:
        if self.any or host in self.exact:
            return True
        host = host.lower()
        if host.startswith("["):  # [v6] or [v6]:port
            name = host.split("]", 1)[0] + "]"
        else:
            name = host.partition(":")[0]
        if name in self.exact:
            return True
        return bool(self.suffixes) and any(name.endswith(s) or name == s[1:] for s in self.suffixes)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The few request headers the guard reads, in one pass (the last of each wins)."""
    host = content_type = origin = authorization = b""
    for key, value in scope["headers"]:
        if key == b"host":
            host = value
        elif key == b"content-type":
            content_type = value
        elif key == b"authorization":
            authorization = value
        elif key == b"origin":
            origin = value
    found = {b"host": host}
    if content_type:
        found[b"content-type"] = content_type
    if authorization:
        found[b"authorization"] = authorization
    if origin:
        found[b"origin"] = origin
    return found


class Guard:
    """The middleware; ``policy`` decides."""

    def __init__(self, app: ASGIApp, policy: GuardPolicy) -> None:
        self.app = app
        self.policy = policy
        self._hosts = _HostList(policy.allowed_hosts) if policy.allowed_hosts else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.check(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message, extra = refusal
        body = orjson.dumps({"error": message})
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", b"%d" % len(body)), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def check(self, scope: Scope) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """None to let the request through, else (status, message, extra headers)."""
        p = self.policy
        path: str = scope["path"]
        headers = _headers(scope)
        probe = path.startswith(HEALTH_PREFIX)
        metrics = path == METRICS_PATH
        if self._hosts is not None and not (probe or metrics):
            host = headers.get(b"host", b"").decode("latin-1")
            if not self._hosts.allows(host):
                return 421, f"Host '{host[:100]}' is not one this server answers to " \
                            "(allowed_hosts)", []
        if scope["method"] not in SAFE_METHODS:
            refusal = self._cross_site(headers)
            if refusal is not None:
                return refusal
        if path.startswith(CONTROL_PREFIX) and CONTROL_PATH.match(path):
            if p.control_mode != "explicit":
                return 403, CONTROL_OFF if p.control_mode == "none" else CONTROL_POLLED, []
            if not p.admin_keys.enabled:
                return 403, NO_ADMIN_KEY, []
            token = bearer_token(headers.get(b"authorization"))
            if token is None or not p.admin_keys.accepts(token, refresh=False):
                return _unauthorized("an admin key")
            return None
        if (probe and not p.health_requires_key) or (metrics and not p.metrics_requires_key):
            return None
        if not p.api_keys.enabled:
            return None
        token = bearer_token(headers.get(b"authorization"))
        if token is not None and (p.api_keys.accepts(token, refresh=False)
                                  or p.admin_keys.accepts(token)):
            return None
        return _unauthorized("an API key")

    def _cross_site(
        self, headers: dict[bytes, bytes]
    ) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        content_type = headers.get(b"content-type")
        if content_type is not None:
            media = content_type.split(b";", 1)[0].strip().lower()
            if media not in ALLOWED_TYPES:
                return 415, (f"Content-Type '{media.decode('latin-1')[:100]}' is not accepted: "
                             "send application/json (or application/octet-stream with the "
                             "binary tensor extension)"), []
        origin = headers.get(b"origin")
        if origin is not None:
            text = origin.decode("latin-1")
            host = headers.get(b"host", b"").decode("latin-1")
            own = text.split("://", 1)[-1] == host and text != "null"
            if not own and text not in self.policy.cors_origins:
                return 403, (f"cross-origin request from '{text[:100]}' refused: add the "
                             "origin to cors_origins to allow it"), []
        return None


def _unauthorized(what: str) -> tuple[int, str, list[tuple[bytes, bytes]]]:
    return 401, (f"this endpoint needs {what}: send 'Authorization: Bearer <key>'"), [
        (b"www-authenticate", b'Bearer realm="sluice"')]


def policy_from(settings: Settings) -> GuardPolicy:
    return GuardPolicy(
        api_keys=KeySet(settings.api_keys, settings.api_keys_dir),
        admin_keys=KeySet(settings.admin_keys, settings.admin_keys_dir),
        control_mode=settings.model_control_mode,
        health_requires_key=settings.health_requires_key,
        metrics_requires_key=settings.metrics_requires_key,
        allowed_hosts=settings.allowed_hosts,
        cors_origins=settings.cors_origins,
    )


def install(app: FastAPI, settings: Settings) -> None:
    """The guard, and CORS outside it (preflights carry no key) only when origins are set.
    Call before ``access.install`` so that refusals are logged and counted too."""
    policy = policy_from(settings)
    log.info("access: model_control_mode=%s, API keys %s, admin keys %s, allowed_hosts %s, "
             "CORS origins %s%s", settings.model_control_mode,
             "on" if policy.api_keys.enabled else "off",
             "configured" if policy.admin_keys.enabled else "none",
             ",".join(settings.allowed_hosts) or "any", ",".join(settings.cors_origins) or "none",
             ", TLS" if settings.ssl_certfile else "")
    app.add_middleware(Guard, policy=policy)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Inference-Header-Content-Length",
                           "X-Request-ID"],
            expose_headers=["Inference-Header-Content-Length", "X-Request-ID", "Server-Timing"],
        )
