"""Locust scenario for recommendation traffic: ``POST /v1/models/movie-ranker/rank`` with
candidate lists of 50 to 1,000 movies for a random MovieLens user.

    locust -f loadtests/locust_rank.py --host http://127.0.0.1:8000 --headless -u 20 -r 5 -t 2m
"""

from __future__ import annotations

import random

import orjson
from locust import FastHttpUser, task

N_USERS, N_ITEMS = 943, 1682


class RecommendationUser(FastHttpUser):
    """One app user opening a page: rank 50..1,000 candidates, keep the top 20; 0..2 s think."""

    def on_start(self) -> None:
        self.rng = random.Random()

    def wait_time(self) -> float:
        return self.rng.uniform(0.0, 2.0)

    @task
    def rank_candidates(self) -> None:
        size = self.rng.randint(50, 1000)
        body = {
            "user_id": self.rng.randint(1, N_USERS),
            "item_ids": self.rng.sample(range(1, N_ITEMS + 1), size),
            "top_k": 20,
        }
        with self.client.post(
            "/v1/models/movie-ranker/rank", data=orjson.dumps(body).decode(),
            headers={"content-type": "application/json"}, name="rank 50-1000", catch_response=True,
        ) as r:  # fmt: skip
            if r.status_code != 200 or len(r.json()["items"]) != min(20, size):
                r.failure(f"status {r.status_code}: {r.text[:200]}")
