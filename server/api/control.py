"""Triton's model repository extension: index, load, unload.

Who may call load and unload (``model_control_mode``, the admin key) is decided before a request
gets here, by ``server.api.guard``; which models they may touch, by the registry (only model
folders within ``--models``). The index is readable in every mode and changes nothing.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from server.api import schemas as oas
from server.state import ServerState


def _json(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


_ERROR = {"content": {"application/json": {"schema": {
    "type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}}}}
#: What load and unload may answer besides 200 (the guard's refusals included).
CONTROL_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "the model failed to load (old versions keep serving)", **_ERROR},
    401: {"description": "no admin key, or a wrong one", **_ERROR},
    403: {"description": "model control off (mode none or poll), or no admin key configured",
          **_ERROR},
    404: {"description": "no such model folder, or one outside --models", **_ERROR},
    415: {"description": "Content-Type neither JSON nor application/octet-stream", **_ERROR},
}


def build_router(state: ServerState) -> APIRouter:
    router = APIRouter(prefix="/v2/repository", tags=["KServe v2"])
    registry = state.registry

    @router.post("/index", summary="List the repository's models and their state",
                 responses={200: {"model": list[oas.IndexEntry]}, **oas.errors(*oas.COMMON)})
    async def repository_index() -> Response:
        return _json([
            {"name": e.name, "version": str(max(e.versions)) if e.versions else "",
             "state": e.state, "reason": e.reason}
            for e in registry.index()
        ])

    @router.post("/models/{model}/load", responses={200: {"model": oas.Empty}, **oas.errors(*oas.MODEL),
                                            **CONTROL_RESPONSES},
                 summary="Load or reload a model (model_control_mode explicit; admin key)")
    async def repository_load(model: str) -> Response:
        entry = await registry.load(model)
        if entry.last_error:
            serving = ", ".join(str(v) for v in sorted(entry.versions))
            kept = f"; version(s) {serving} keep serving" if serving else ""
            return _json({"error": f"failed to load '{model}': {entry.last_error}{kept}"}, 400)
        return _json({})

    @router.post("/models/{model}/unload", responses={200: {"model": oas.Empty}, **oas.errors(*oas.MODEL),
                                            **CONTROL_RESPONSES},
                 summary="Unload a model, draining it first (model_control_mode explicit; "
                         "admin key)")
    async def repository_unload(model: str) -> Response:
        await registry.unload(model)
        return _json({})

    return router
