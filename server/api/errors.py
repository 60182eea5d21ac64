"""The one table from domain errors to HTTP statuses, and the JSON error body."""

from __future__ import annotations

import math

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from server.errors import (
    ConfigError,
    DeadlineExceeded,
    DeadlineUnreachable,
    EngineTimeout,
    InferenceFailed,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    PayloadTooLarge,
    QueueFull,
    RequestCancelled,
    SluiceError,
)

#: Most specific first: the first class an error is an instance of wins.
STATUS: tuple[tuple[type[SluiceError], int], ...] = (
    (PayloadTooLarge, 413),
    (InvalidInput, 400),
    (ModelNotFound, 404),
    (DeadlineUnreachable, 429),
    (QueueFull, 429),
    (ModelNotReady, 503),
    (DeadlineExceeded, 504),
    (EngineTimeout, 504),
    (RequestCancelled, 499),
    (InferenceFailed, 500),
    (ConfigError, 400),
)


def status_of(error: SluiceError) -> int:
    for cls, status in STATUS:
        if isinstance(error, cls):
            return status
    return 500


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps({"error": message}), status_code=status,
        media_type="application/json", headers=headers,
    )


def response_for(error: SluiceError) -> Response:
    headers = None
    if isinstance(error, QueueFull):
        headers = {"Retry-After": str(max(1, math.ceil(error.retry_after_s)))}
    return error_response(status_of(error), str(error), headers)


def install(app: FastAPI) -> None:
    """Every error leaves as ``{"error": "..."}`` with the table's status."""

    async def on_sluice_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SluiceError)
        return response_for(exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        parts = [".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in exc.errors()]
        return error_response(400, "; ".join(parts))

    app.add_exception_handler(SluiceError, on_sluice_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
