from __future__ import annotations

from itertools import islice

import orjson
import pytest

from loadtests.corpus import AIRLINE_HANDLE as AIRLINE
from loadtests.corpus import TextStream, airline_tweets, corpus_for, request_sizes
from loadtests.workload import Workload, answer_count, encode_body


def test_airline_tweets_are_deduplicated_airline_texts_in_a_fixed_order() -> None:
    tweets = airline_tweets()
    assert len(tweets) > 10_000
    assert len(set(tweets)) == len(tweets)
    assert all(AIRLINE.search(t) for t in tweets[:500])
    assert airline_tweets(seed=0) == tweets
    assert airline_tweets(seed=1)[:50] != tweets[:50]


def test_each_model_gets_its_own_corpus_from_the_build_loaders() -> None:
    assert corpus_for("airline-sentiment") == airline_tweets()
    assert corpus_for("tiny-sentiment") == airline_tweets()  # outside the catalogue
    home = corpus_for("home-intent")  # home-assistant-intents through pipeline.data
    assert len(home) > 1000 and len(set(home)) == len(home)
    assert any(t.startswith("turn on ") for t in home)
    assert not any(AIRLINE.search(t) for t in home[:200])


def test_workload_version_path_and_api_key() -> None:
    plain = Workload("m", "chat", ["t"], protocol="infer")
    assert plain.next_request().path == "/v2/models/m/infer" and plain.headers == b""
    pinned = Workload("m", "chat", ["t"], protocol="infer", version="2", api_key="k1")
    assert pinned.next_request().path == "/v2/models/m/versions/2/infer"
    assert pinned.headers == b"Authorization: Bearer k1\r\n"
    assert Workload("m", "chat", ["t"], version="2").next_request().path == "/v1/models/m/classify"


def test_request_sizes() -> None:
    assert set(islice(request_sizes("chat"), 100)) == {1}
    sizes = list(islice(request_sizes("batch", seed=3), 2000))
    assert min(sizes) == 16 and max(sizes) == 64
    with pytest.raises(ValueError):
        next(request_sizes("huge"))


def test_text_stream_wraps_around_in_order() -> None:
    stream = TextStream(["a", "b", "c"])
    assert stream.take(2) == ["a", "b"]
    assert stream.take(3) == ["c", "a", "b"]


def test_workload_hands_out_consecutive_texts() -> None:
    w = Workload("m", "batch", ["t0", "t1", "t2", "t3"] * 20, seed=0)
    first, second = w.next_request(), w.next_request()
    assert first.path == "/v1/models/m/classify"
    sent = orjson.loads(first.body)["inputs"] + orjson.loads(second.body)["inputs"]
    assert len(sent) == first.texts + second.texts
    assert sent[:4] == ["t0", "t1", "t2", "t3"]


def test_answer_count_for_both_protocols() -> None:
    classify = orjson.dumps({"predictions": [[{"label": "x", "score": 1.0}]] * 3})
    infer = orjson.dumps({"outputs": [
        {"name": "probabilities", "shape": [2, 3], "data": [0.0] * 6},
        {"name": "label", "shape": [2], "data": ["a", "b"]},
    ]})
    assert answer_count("classify", classify) == 3
    assert answer_count("infer", infer) == 2
    assert answer_count("classify", b"not json") == -1
    assert answer_count("infer", b'{"error": "x"}') == -1
    body = orjson.loads(encode_body("infer", ["a", "b"]))
    assert body["inputs"][0] == {"name": "text", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]}
