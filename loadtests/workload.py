"""Request bodies for the two request shapes and two protocols, and the check of each answer.

``classify`` is Sluice's ``/v1/models/{m}/classify`` (the naive server speaks it too);
``infer`` is the KServe v2 ``/v2/models/{m}/infer`` with a BYTES ``text`` input (or
``/v2/models/{m}/versions/{v}/infer`` when a version is named). ``api_key`` adds an
``Authorization: Bearer`` header to every request.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import orjson

from loadtests.corpus import TextStream, request_sizes

PROTOCOLS = ("classify", "infer")
SHAPES = ("chat", "batch")


@dataclass(frozen=True)
class PreparedRequest:
    path: str
    body: bytes
    texts: int


class Workload:
    """Turns the text stream into requests of one shape, in arrival order."""

    def __init__(
        self,
        model: str,
        shape: str,
        texts: Sequence[str],
        protocol: str = "classify",
        seed: int = 0,
        version: str | None = None,
        api_key: str | None = None,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; choose from {PROTOCOLS}")
        self.model = model
        self.shape = shape
        self.protocol = protocol
        self._stream = TextStream(texts)
        self._sizes: Iterator[int] = request_sizes(shape, seed)
        if protocol == "classify":
            self._path = f"/v1/models/{model}/classify"
        elif version is not None:
            self._path = f"/v2/models/{model}/versions/{version}/infer"
        else:
            self._path = f"/v2/models/{model}/infer"
        self.headers = b"Authorization: Bearer %s\r\n" % api_key.encode() if api_key else b""

    def next_request(self) -> PreparedRequest:
        n = next(self._sizes)
        texts = self._stream.take(n)
        return PreparedRequest(self._path, encode_body(self.protocol, texts), n)

    def check(self, body: bytes, texts: int) -> bool:
        """Whether a 200 answer carries one result per text (cheap: no per-label checks)."""
        return answer_count(self.protocol, body) == texts


def encode_body(protocol: str, texts: list[str]) -> bytes:
    if protocol == "classify":
        return orjson.dumps({"inputs": texts, "top_k": 1})
    return orjson.dumps(
        {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}
    )


def answer_count(protocol: str, body: bytes) -> int:
    """How many texts a 200 answer answers; -1 when it is not the expected JSON."""
    try:
        doc = orjson.loads(body)
        if protocol == "classify":
            return len(doc["predictions"])
        for output in doc["outputs"]:
            if output["name"] == "label":
                return int(output["shape"][0])
    except (orjson.JSONDecodeError, KeyError, TypeError, IndexError, ValueError):
        return -1
    return -1
