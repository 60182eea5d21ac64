"""Locust scenarios for any Sluice URL, with pass/fail thresholds for headless runs.

Scenarios (name them on the command line to pick; none named runs all three by weight):

- ``ChatUser``: customer-service chat, one short tweet per request, many users with think time.
- ``ScoringUser``: recommendation scoring, 16 to 64 texts per request.
- ``MixedUser``: nine chat requests for every scoring request from the same user.

Examples::

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 --headless \\
        -u 200 -r 50 -t 2m ChatUser --p99-ms 150 --max-failure-ratio 0.001
    locust -f loadtests/locustfile.py --host http://sluice:8000 --headless -u 20 -r 5 -t 5m \\
        ScoringUser --model airline-sentiment --protocol infer --p99-ms 1500

Headless runs exit 1 when the overall p99 latency passes ``--p99-ms``, the failure ratio passes
``--max-failure-ratio``, or no request succeeded; 0 otherwise (even if a few requests failed
within the allowed ratio). Texts are the real US-airline tweets, in a random order per user.
"""

from __future__ import annotations

import logging
import random
import sys
from pathlib import Path
from typing import Any

from locust import FastHttpUser, events, task

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # locust puts only this file's folder on the path
    sys.path.insert(0, _ROOT)

from loadtests.corpus import airline_tweets  # noqa: E402
from loadtests.thresholds import add_run_options, apply_thresholds  # noqa: E402
from loadtests.workload import answer_count, encode_body  # noqa: E402

log = logging.getLogger("sluice.locust")
JSON_HEADERS = {"Content-Type": "application/json"}


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _add_options(parser: Any) -> None:
    group = parser.add_argument_group("Sluice")
    group.add_argument("--model", default="airline-sentiment", help="model to call")
    group.add_argument("--protocol", choices=["classify", "infer"], default="classify",
                       help="classify: /v1/models/{m}/classify; infer: KServe v2 /v2/models/{m}/infer")
    add_run_options(group)


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _apply_thresholds(environment: Any, **_kwargs: Any) -> None:
    apply_thresholds(environment, log)


class _SluiceUser(FastHttpUser):
    abstract = True

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.model: str = getattr(options, "model", "airline-sentiment")
        self.protocol: str = getattr(options, "protocol", "classify")
        self.think_time: float = getattr(options, "think_time", 1.0)
        self.texts = airline_tweets()
        self.rng = random.Random()
        self.position = self.rng.randrange(len(self.texts))
        if self.protocol == "classify":
            self.path = f"/v1/models/{self.model}/classify"
        else:
            self.path = f"/v2/models/{self.model}/infer"

    def wait_time(self) -> float:
        return self.rng.uniform(0.0, 2.0 * self.think_time) if self.think_time > 0 else 0.0

    def _take(self, n: int) -> list[str]:
        out = [self.texts[(self.position + i) % len(self.texts)] for i in range(n)]
        self.position = (self.position + n) % len(self.texts)
        return out

    def classify(self, n: int, name: str) -> None:
        body = encode_body(self.protocol, self._take(n))
        with self.client.post(self.path, data=body.decode(), headers=JSON_HEADERS, name=name,
                              catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
            elif answer_count(self.protocol, response.content or b"") != n:
                response.failure(f"expected {n} answers")
            else:
                response.success()

    def chat(self) -> None:
        self.classify(1, "chat (1 text)")

    def score(self) -> None:
        self.classify(self.rng.randint(16, 64), "scoring (16-64 texts)")


class ChatUser(_SluiceUser):
    """A customer-service chat front end: one short text per request."""

    weight = 8

    @task
    def chat_message(self) -> None:
        self.chat()


class ScoringUser(_SluiceUser):
    """A recommendation service scoring 16 to 64 candidate texts per request."""

    weight = 1

    @task
    def score_candidates(self) -> None:
        self.score()


class MixedUser(_SluiceUser):
    """Both kinds of traffic from one client: nine chat requests per scoring request."""

    weight = 1

    @task(9)
    def chat_message(self) -> None:
        self.chat()

    @task(1)
    def score_candidates(self) -> None:
        self.score()
