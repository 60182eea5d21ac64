"""The reference a user would write instead of Sluice: FastAPI calling the engine per request.

Same engine, tokenizer and thread settings as Sluice (see :mod:`loadtests.engine_model`), no
batching across requests: each request's texts are tokenized and run as one engine call. The
endpoints are plain ``def`` functions, so FastAPI runs them on its thread pool; the engine call
is serialized by a lock because the engine contract allows one caller at a time per instance.
It speaks the subset of Sluice's API the load tests use (classify, v2 infer with JSON BYTES,
readiness) plus ``GET /stats``, the counters the benchmark reads (texts, engine calls, tokens).

Run: ``python -m loadtests.naive_server --model-repository model_repository
--model airline-sentiment --port 8100``.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from engines.scores import best, label_names, top_k
from loadtests.engine_model import TextModel, load_text_model


class ClassifyRequest(BaseModel):
    inputs: list[str] = Field(min_length=1)
    top_k: int = Field(default=1, ge=1)


class InferInput(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    data: list[Any]


class InferRequest(BaseModel):
    id: str | None = None
    inputs: list[InferInput]


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.texts = 0
        self.executions = 0
        self.real_tokens = 0
        self.padded_tokens = 0


def create_app(model: TextModel) -> FastAPI:
    app = FastAPI(title="naive reference server")
    engine_lock = threading.Lock()
    counters = _Counters()

    def run(name: str, texts: list[str]) -> np.ndarray:
        if name != model.name:
            raise HTTPException(404, f"unknown model {name!r}")
        encoded = model.encode(texts)
        with engine_lock:
            result = model.run_encoded(encoded)
        with counters.lock:
            counters.texts += len(texts)
            counters.executions += 1
            counters.real_tokens += result.real_tokens
            counters.padded_tokens += result.padded_tokens
        return result.probabilities

    @app.get("/v2/health/ready")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.get("/v2/health/live")
    def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/stats")
    def stats() -> dict[str, int]:
        with counters.lock:
            return {
                "texts": counters.texts,
                "executions": counters.executions,
                "real_tokens": counters.real_tokens,
                "padded_tokens": counters.padded_tokens,
            }

    @app.post("/v1/models/{name}/classify")
    def classify(name: str, request: ClassifyRequest) -> dict[str, Any]:
        probabilities = run(name, request.inputs)
        order, scores = top_k(probabilities, min(request.top_k, len(model.labels)))
        predictions = [
            [{"label": model.labels[int(i)], "score": float(p)} for i, p in zip(row, ps, strict=True)]
            for row, ps in zip(order, scores, strict=True)
        ]
        return {"model_name": model.name, "model_version": model.version, "predictions": predictions}

    @app.post("/v2/models/{name}/versions/{version}/infer")
    def infer_version(name: str, version: str, request: InferRequest) -> dict[str, Any]:
        if version != model.version:
            raise HTTPException(404, f"model {name!r} has no version {version!r} loaded")
        return infer(name, request)

    @app.post("/v2/models/{name}/infer")
    def infer(name: str, request: InferRequest) -> dict[str, Any]:
        texts = [i for i in request.inputs if i.name == "text"]
        if len(texts) != 1:
            raise HTTPException(400, "expected one input named 'text'")
        probabilities = run(name, [str(t) for t in texts[0].data])
        n, c = probabilities.shape
        labels = label_names(best(probabilities), model.labels)
        return {
            "model_name": model.name,
            "model_version": model.version,
            "id": request.id or "",
            "outputs": [
                {"name": "probabilities", "datatype": "FP32", "shape": [n, c],
                 "data": probabilities.reshape(-1).tolist()},
                {"name": "label", "datatype": "BYTES", "shape": [n], "data": labels},
            ],
        }

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--model", default="airline-sentiment")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--version", default=None,
                        help="version folder to serve (default: the one Sluice would serve)")
    parser.add_argument("--threads", type=int, default=0,
                        help="ONNX intra-op threads when the config says 0 (0: available cores)")
    args = parser.parse_args(argv)

    import uvicorn

    model = load_text_model(args.model_repository, args.model, args.threads or None, args.version)
    try:
        uvicorn.run(create_app(model), host=args.host, port=args.port, loop="uvloop",
                    http="httptools", log_level="warning", access_log=False)
    finally:
        model.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
