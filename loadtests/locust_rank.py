"""Locust scenario for recommendation traffic: ``POST /v1/models/movie-ranker/rank`` with
candidate lists of 50 to 1,000 movies for a random MovieLens user, keeping the top 20.

    locust -f loadtests/locust_rank.py --host http://127.0.0.1:8000 --headless -u 16 -r 8 -t 30s \\
        --csv loadtests/reports/locust-rank --p99-ms 200

Options: ``--model`` (a ranking model; default movie-ranker), ``--think-time`` (mean seconds a
user waits between requests, uniform on 0..2x; default 1; 0 sends back to back). Headless runs
exit 1 when the overall p99 passes ``--p99-ms``, the failure ratio passes
``--max-failure-ratio``, or no request succeeded (the same rule as ``loadtests/locustfile.py``).
"""

from __future__ import annotations

import logging
import random
import sys
from pathlib import Path
from typing import Any

import orjson
from locust import FastHttpUser, events, task

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # locust puts only this file's folder on the path
    sys.path.insert(0, _ROOT)

from loadtests.thresholds import add_run_options, apply_thresholds  # noqa: E402

N_USERS, N_ITEMS = 943, 1682
TOP_K = 20
log = logging.getLogger("sluice.locust")


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _add_options(parser: Any) -> None:
    group = parser.add_argument_group("Sluice ranking")
    group.add_argument("--model", default="movie-ranker", help="ranking model to call")
    add_run_options(group)


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _apply_thresholds(environment: Any, **_kwargs: Any) -> None:
    apply_thresholds(environment, log)


class RecommendationUser(FastHttpUser):
    """One app user opening a page: rank 50..1,000 candidates, keep the top 20, think."""

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.rng = random.Random()
        self.path = f"/v1/models/{getattr(options, 'model', 'movie-ranker')}/rank"
        self.think_time: float = getattr(options, "think_time", 1.0)

    def wait_time(self) -> float:
        return self.rng.uniform(0.0, 2.0 * self.think_time) if self.think_time > 0 else 0.0

    @task
    def rank_candidates(self) -> None:
        size = self.rng.randint(50, 1000)
        body = {
            "user_id": self.rng.randint(1, N_USERS),
            "item_ids": self.rng.sample(range(1, N_ITEMS + 1), size),
            "top_k": TOP_K,
        }
        with self.client.post(
            self.path, data=orjson.dumps(body).decode(),
            headers={"content-type": "application/json"}, name="rank 50-1000", catch_response=True,
        ) as r:  # fmt: skip
            if r.status_code != 200:
                r.failure(f"status {r.status_code}: {(r.text or '')[:200]}")
            elif len(orjson.loads(r.content or b"{}").get("items", ())) != min(TOP_K, size):
                r.failure(f"expected {min(TOP_K, size)} items")
            else:
                r.success()
