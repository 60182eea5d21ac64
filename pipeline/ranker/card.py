"""The ranker's ``MODEL_CARD.md`` / ``model_card.json``, rewritten only when a figure changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Keys whose change means new figures (latency and timings vary run to run and do not count).
_QUALITY_KEYS = ("mean_over_seeds", "baselines", "targets", "settings", "data")


def _quality(card: dict[str, Any]) -> Any:
    return [card.get(k) for k in _QUALITY_KEYS] + [[v["metrics"] for v in card.get("variants", [])]]


def write_if_changed(model_dir: Path, card: dict[str, Any], config: dict[str, Any]) -> bool:
    """Write config and card; keep the committed card when its quality figures are the same."""
    from pipeline.card import write_config

    write_config(model_dir, config)
    path = model_dir / "model_card.json"
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = None
    if old is not None and json.loads(json.dumps(_quality(old))) == json.loads(json.dumps(_quality(card))):
        return False
    path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (model_dir / "MODEL_CARD.md").write_text(render(card), encoding="utf-8")
    return True


def _row(name: str, m: dict[str, float]) -> str:
    return f"| {name} | {m['auc']:.4f} | {m['hit@10']:.4f} | {m['ndcg@10']:.4f} |"


def render(card: dict[str, Any]) -> str:
    mean = card["mean_over_seeds"]
    v = card["variants"][0]
    lat = v["latency_ms"]
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

## Latency (served version, through `server.inference.ranking` + the ONNX Runtime engine, 2 threads)

- 100 candidates: {lat["latency_ms_100"]:.2f} ms median;
  1,000 candidates: {lat["latency_ms_1000"]:.2f} ms median.

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

Weights and feature tables are git-ignored (and left out of the bundled image); this card,
`model_card.json` and `config.yaml` are committed.
"""
