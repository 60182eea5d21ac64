"""The ranker: field embeddings (user, movie, genres, occupation, age bucket, gender), a
factorization-machine interaction over them and an MLP head over their concatenation.

Inputs (batch axis first): ``user``, ``item``, ``occupation``, ``age``, ``gender`` as int64
``[B]`` and ``genres`` as float32 ``[B, 19]``; output ``score`` float32 ``[B]`` in (0, 1).
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_NAMES = ("user", "item", "occupation", "age", "gender", "genres")
OUTPUT_NAME = "score"


class Ranker(nn.Module):
    def __init__(
        self, n_users: int, n_items: int, n_occupations: int, n_genres: int, dim: int, hidden: int
    ) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.occupation = nn.Embedding(n_occupations, dim)
        self.age = nn.Embedding(9, dim)
        self.gender = nn.Embedding(3, dim)
        self.genre = nn.Linear(n_genres, dim, bias=False)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        for e in (self.user, self.item, self.occupation, self.age, self.gender):
            nn.init.normal_(e.weight, std=0.05)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        self.mlp = nn.Sequential(
            nn.Linear(6 * dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden // 2), nn.ReLU(),
            nn.Linear(hidden // 2, 1),
        )  # fmt: skip

    def forward(
        self,
        user: torch.Tensor,
        item: torch.Tensor,
        occupation: torch.Tensor,
        age: torch.Tensor,
        gender: torch.Tensor,
        genres: torch.Tensor,
    ) -> torch.Tensor:
        counts = genres.sum(dim=1, keepdim=True).clamp(min=1.0)
        fields = torch.stack(
            [
                self.user(user), self.item(item), self.occupation(occupation), self.age(age),
                self.gender(gender), self.genre(genres) / counts,
            ],
            dim=1,
        )  # fmt: skip
        summed = fields.sum(dim=1)
        fm = 0.5 * (summed * summed - (fields * fields).sum(dim=1)).sum(dim=1)
        deep = self.mlp(fields.flatten(1)).squeeze(1)
        bias = self.user_bias(user).squeeze(1) + self.item_bias(item).squeeze(1)
        return torch.sigmoid(fm + deep + bias)
