"""The ranker's ``MODEL_CARD.md`` (written by the rule of pipeline/card.py: only when it changes)."""

from __future__ import annotations

from typing import Any


def _row(name: str, m: dict[str, float]) -> str:
    return f"| {name} | {m['auc']:.4f} | {m['hit@10']:.4f} | {m['ndcg@10']:.4f} |"


def render(card: dict[str, Any]) -> str:
    mean = card["mean_over_seeds"]
    v = card["variants"][0]
    targets = "\n".join(f"- {t['target']}: **{t['result']}** ({t['detail']})" for t in card["targets"])
    seeds = "\n".join(
        _row(f"ranker, seed {s}", m) for s, m in zip(mean["seeds"], mean["per_seed"], strict=True)
    )
    notes = "\n".join(f"- {n}" for n in card["notes"])
    s = card["settings"]
    return f"""# {card["name"]}

{card["description"]}

Task `ranking`: served as a tensor model through KServe v2 (inputs `user`, `item`, `occupation`,
`age`, `gender` INT64 `[B]`, `genres` FP32 `[B, 19]`; output `score` FP32 `[B]`) and at
`POST /v1/models/{card["name"]}/rank` (features gathered from the tables next to the model).

## Quality on the test period (mean of {len(mean["seeds"])} seeds)

| model | AUC | HitRate@10 | NDCG@10 |
| --- | --- | --- | --- |
{_row("ranker (mean)", mean["ranker"])}
{_row("popularity baseline (mean)", mean["popularity"])}
{seeds}
{_row(f"served: version {v['version']} ({v['precision']} ONNX, seed {mean['seeds'][0]})", v["metrics"])}

Protocol: rating >= 4 is a positive; each user's latest 20% of ratings (by time) are the test
set ({card["data"]["test"]} ratings; train {card["data"]["train"]}); training adds
{s["negatives_per_positive"]} sampled unrated movies per positive as negatives. AUC on the rated
test interactions; each test positive ranked among {s["candidates"]} movies the user never rated
(sampled per seed) for HitRate@10 and NDCG@10. Popularity: number of training ratings.

## Targets

{targets}

## Latency

Measured by every build on its machine (served version, through `server.inference.ranking` +
the ONNX Runtime engine, 2 threads; median for 100 and 1,000 candidates) and written to
`measured.json` next to the weights (git-ignored): latency is the machine's, not the model's.

## Variants

{notes}

## Model and training

Embeddings (dim {s["dim"]}) for user, movie, occupation, age bucket, gender and genres (mean of
genre embeddings), a factorization-machine interaction over the six fields, an MLP head
({s["hidden"]}-{s["hidden"] // 2}-1) over their concatenation, user and item biases; BCE, Adam
lr {s["lr"]}, batch {s["batch_size"]}, {s["epochs"]} epochs, PyTorch on 2 threads.

## Data

- Origin: {card["data"]["origin"]}
- Licence: {card["data"]["licence"]}

## Rebuild

```
sluice build movie-ranker --force
```

Weights, feature tables and `measured.json` are git-ignored (and left out of the bundled image);
this card, `model_card.json` and `config.yaml` are committed, rewritten only when what they say
changes.
"""
