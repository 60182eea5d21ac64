"""Train one ranker (one seed) on the training interactions; binary cross-entropy, Adam."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.ranker.data import Features


@dataclass(frozen=True)
class RankerSettings:
    """How the ranker is built. ``smoke`` trains one short seed on a user subset."""

    profile: str
    seeds: tuple[int, ...]
    epochs: int
    dim: int = 16
    hidden: int = 64
    batch_size: int = 1024
    lr: float = 2e-3
    weight_decay: float = 1e-6
    negatives_per_positive: int = 4
    candidates: int = 99
    user_limit: int | None = None

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


PROFILES = {
    "full": RankerSettings(profile="full", seeds=(0, 1, 2), epochs=6),
    "smoke": RankerSettings(profile="smoke", seeds=(0,), epochs=1, user_limit=150),
}


def feeds(features: Features, users: np.ndarray, items: np.ndarray) -> dict[str, np.ndarray]:
    """The model's input arrays for (user, item) pairs, gathered from the feature tables."""
    u = features.users[users]
    return {
        "user": users.astype(np.int64),
        "item": items.astype(np.int64),
        "occupation": u[:, 0],
        "age": u[:, 1],
        "gender": u[:, 2],
        "genres": features.items[items],
    }


def train(
    features: Features,
    users: np.ndarray,
    items: np.ndarray,
    labels: np.ndarray,
    settings: RankerSettings,
    seed: int,
) -> object:
    """The trained ``Ranker`` (torch module, eval mode)."""
    import torch

    from pipeline.ranker.model import INPUT_NAMES, Ranker

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Ranker(
        features.users.shape[0], features.items.shape[0], len(features.occupations) + 1,
        features.items.shape[1], settings.dim, settings.hidden,
    )  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    loss_fn = torch.nn.BCELoss()
    all_feeds = {k: torch.from_numpy(v) for k, v in feeds(features, users, items).items()}
    y = torch.from_numpy(labels)
    model.train()
    for _ in range(settings.epochs):
        order = torch.from_numpy(rng.permutation(len(labels)))
        for start in range(0, len(order), settings.batch_size):
            idx = order[start : start + settings.batch_size]
            pred = model(*(all_feeds[name][idx] for name in INPUT_NAMES))
            loss = loss_fn(pred, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model
