"""The soak's clients: one request of each kind, answering the HTTP status it got."""

from __future__ import annotations

import json
import random
import socket
import time
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

if TYPE_CHECKING:
    from loadtests.soak import SoakConfig

TEXTS = ["my flight was cancelled again", "thanks for the upgrade!", "where is my bag",
         "the crew was lovely", "three hours on the tarmac, no water"]

def some_texts(rng: random.Random) -> list[str]:
    return [rng.choice(TEXTS) for _ in range(rng.randint(1, 4))]


def http_request(client: httpx.Client, cfg: SoakConfig, kind: str, rng: random.Random) -> int:
    m = cfg.model
    if kind == "v2_json":
        texts = some_texts(rng)
        body = {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES",
                            "data": texts}]}
        return client.post(f"/v2/models/{m}/infer", json=body).status_code
    if kind == "classify":
        return client.post(f"/v1/models/{m}/classify", json={"inputs": some_texts(rng)}).status_code
    if kind == "bad_json":
        return client.post(f"/v2/models/{m}/infer", content=b'{"inputs": [',
                           headers={"content-type": "application/json"}).status_code
    if kind == "bad_datatype":
        body = {"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
        return client.post(f"/v2/models/{m}/infer", json=body).status_code
    if kind == "too_many_texts":
        return client.post(f"/v1/models/{m}/classify", json={"inputs": ["a"] * 65}).status_code
    if kind == "oversized":
        return client.post(f"/v1/models/{m}/classify",
                           content=b"x" * (cfg.max_request_bytes + 1)).status_code
    raise ValueError(kind)


def binary_request(triton: Any, cfg: SoakConfig, rng: random.Random) -> int:
    import tritonclient.http as th
    from tritonclient.utils import InferenceServerException

    texts = some_texts(rng)
    inp = th.InferInput("text", [len(texts)], "BYTES")
    inp.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=object), binary_data=True)
    try:
        triton.infer(cfg.model, [inp])
    except InferenceServerException as e:
        status = e.status()
        return int(status) if status and str(status).isdigit() else 599
    return 200


def slow_request(url: str, cfg: SoakConfig, rng: random.Random) -> int:
    """A client that sends its request a few bytes at a time over ~1 s, then reads the answer."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"inputs": some_texts(rng)}).encode()
    request = (f"POST /v1/models/{cfg.model}/classify HTTP/1.1\r\nHost: {host}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
               "Connection: close\r\n\r\n").encode() + body
    with socket.create_connection((host, int(port)), timeout=cfg.request_timeout_s) as s:
        step = max(1, len(request) // 20)
        for i in range(0, len(request), step):
            s.sendall(request[i : i + step])
            time.sleep(0.05)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("closed before the status line")
            data += chunk
    return int(data.split(b" ", 2)[1])
