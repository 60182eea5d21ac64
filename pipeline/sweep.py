"""Sweep the teacher's (and its student's) training settings on one data set, on any torch device.

The build runs on 2 CPU cores, where one airline teacher takes five minutes; this runs the same
recipe through the build's own loop (``pipeline.train.train_loop``: AdamW, linear warm-up and
decay, clipping, best checkpoint by validation macro-F1) and the build's max_length rule, many
times over, in parallel processes on one GPU, so that settings are chosen by measurement:

    python -m pipeline.sweep --device cuda --workers 8 --budget 240 --out sweep.jsonl

Each run is one ``Trial``: pooling (``cls``: BERT's pooler over [CLS], what
``AutoModelForSequenceClassification`` does; ``mean``: the mean of the last hidden states over
real tokens, how the sentence-transformers checkpoint was trained), batch order (``random`` or
``bucketed``: shuffled, sorted by length inside windows, batches shuffled, which pads less),
learning rate, epochs, batch size and the split's seed. Results are appended as JSON lines as
they finish, with test accuracy and macro-F1 of the teacher and of a distilled 3-layer
student, and the padded tokens per epoch (the CPU cost of that batch order).
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing as mp
import os
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.metrics import macro_f1
from pipeline.train import batch_order as train_batch_order
from pipeline.train import padded_tokens
from pipeline.trials import Trial, default_grid, second_grid

__all__ = ["Trial", "batch_order", "default_grid", "main", "run_trial", "second_grid"]

BUCKET_WINDOW = 50
"""Batches per window in ``bucketed`` order: sorted by length inside a window of this many."""


def _window(order: str) -> int:
    """The build's ``bucket_window`` for a batch order by name: random (0) or bucketed."""
    if order not in ("random", "bucketed"):
        raise ValueError(f"unknown batch order '{order}'")
    return BUCKET_WINDOW if order == "bucketed" else 0


def batch_order(lengths: Sequence[int], size: int, order: str, rng: random.Random) -> list[list[int]]:
    """The build's batch order (``pipeline.train.batch_order``) by name: random or bucketed."""
    return train_batch_order(lengths, size, _window(order), rng)


# --- everything below needs torch and runs inside a worker process -----------------------------

#: The model whose recipe is swept (its catalogue entry gives the data, the split fractions, the
#: max_length cap and every setting a Trial leaves alone).
SWEPT_MODEL = "airline-sentiment"

_DATA: dict[str, Any] = {}


def _load(example_limit: int | None) -> None:
    """Per worker: the airline data set, split by each seed on demand, tokenized once."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoTokenizer

    from pipeline.catalogue import entry
    from pipeline.train import base_model_dir

    torch.set_num_threads(max(1, min(4, (os.cpu_count() or 2) // 4)))
    model, base = entry(SWEPT_MODEL), base_model_dir()
    _DATA.update(
        confidence=_airline_confidence(),
        dataset=model.dataset(),
        recipe=model.text_recipe("full"),
        tokenizer=AutoTokenizer.from_pretrained(base, local_files_only=True),
        base=base,
        limit=example_limit,
        splits={},
    )


def _airline_confidence() -> dict[str, float]:
    """Annotator confidence per cleaned airline text (the highest among its duplicate rows)."""
    from pipeline.data import airline_rows

    out: dict[str, float] = {}
    for row in airline_rows():
        out[row.text] = max(out.get(row.text, 0.0), row.confidence)
    return out


def _split(seed: int) -> dict[str, Any]:
    """The split by ``seed``, tokenized with the build's own max_length rule."""
    from pipeline.split import split
    from pipeline.train import encode, max_length_for

    if seed not in _DATA["splits"]:
        ds, tok, recipe = _DATA["dataset"], _DATA["tokenizer"], _DATA["recipe"]
        parts = split(
            ds.texts,
            ds.targets,
            validation=recipe.validation_fraction,
            test=recipe.test_fraction,
            seed=seed,
            limit=_DATA["limit"],
        )
        max_length, _, _ = max_length_for(tok, parts.train.texts, recipe.max_length_cap)
        _DATA["splits"][seed] = {
            "train": encode(tok, parts.train, max_length),
            "train_confidence": [_DATA["confidence"].get(t, 1.0) for t in parts.train.texts],
            "validation": encode(tok, parts.validation, max_length),
            "test": encode(tok, parts.test, max_length),
            "max_length": max_length,
        }
    return _DATA["splits"][seed]  # type: ignore[no-any-return]


def _classifier(pooling: str, n_labels: int, device: str) -> Any:
    import torch
    from torch import nn
    from transformers import AutoModel

    class Classifier(nn.Module):
        """BERT encoder + dropout + linear head over [CLS]-pooler or mean-pooled states."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = AutoModel.from_pretrained(
                _DATA["base"], local_files_only=True, add_pooling_layer=pooling == "cls", dtype=torch.float32
            ).float()
            hidden = self.bert.config.hidden_size
            self.dropout = nn.Dropout(0.1)
            self.head = nn.Linear(hidden, n_labels)
            nn.init.normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask)
            if pooling == "cls":
                pooled = out.pooler_output
            else:
                m = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
                pooled = (out.last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1.0)
            return self.head(self.dropout(pooled))

    return Classifier().to(device)


def _student(teacher: Any, layers: Sequence[int]) -> Any:
    from torch import nn

    student = copy.deepcopy(teacher)
    student.bert.encoder.layer = nn.ModuleList([student.bert.encoder.layer[i] for i in layers])
    student.bert.config.num_hidden_layers = len(layers)
    return student


def _scores(model: Any, part: Any, device: str, n: int) -> dict[str, float]:
    from pipeline.train import predict_logits

    preds = predict_logits(model, part, device=device).argmax(axis=1)
    acc = float(np.mean(preds == np.asarray(part.targets)))
    return {"accuracy": round(acc, 4), "macro_f1": round(macro_f1(part.targets, preds.tolist(), n), 4)}


def _recorder(data: dict[str, Any], train_lengths: list[int], device: str, n: int) -> Any:
    """An observer of the training loop: padded tokens, accuracy history, best-by-accuracy
    weights and the last weights' test scores (the sweep's extra figures)."""
    from pipeline.train import Observer

    class Record(Observer):
        def __init__(self) -> None:
            self.tokens = self.epochs = 0
            self.best_acc, self.best_acc_state, self.last = -1.0, None, None
            self.history: list[tuple[int, float, float]] = []

        def epoch(self, batches: list[list[int]]) -> None:
            self.tokens += padded_tokens(train_lengths, batches)
            self.epochs += 1

        def check(self, step: int, total: int, model: Any, predictions: list[int]) -> None:
            targets = data["validation"].targets
            acc = float(np.mean(np.asarray(predictions) == np.asarray(targets)))
            self.history.append((step, round(macro_f1(targets, predictions, n), 4), round(acc, 4)))
            if acc > self.best_acc:
                self.best_acc, self.best_acc_state = acc, copy.deepcopy(model.state_dict())
            if step == total:
                self.last = _scores(model, data["test"], device, n)

    return Record()


def _fit(
    model: Any,
    data: dict[str, Any],
    *,
    lr: float,
    epochs: int,
    trial: Trial,
    device: str,
    soft: Any = None,
) -> dict[str, Any]:
    """The build's own training loop (``pipeline.train.train_loop``) with the trial's knobs:
    batch order and size, seed, label handling, smoothing, head learning rate, device; all
    epochs run (no early stopping), so the last weights are scored too."""
    import torch

    from pipeline.train import Encoded, cross_entropy_loss, distillation_loss, train_loop

    n = int(model.head.out_features)
    train: Encoded = data["train"]
    weights = None
    if soft is None and trial.labels == "confident":
        keep = [i for i, c in enumerate(data["train_confidence"]) if c >= 0.7]
        train = Encoded([train.ids[i] for i in keep], [train.targets[i] for i in keep])
    elif soft is None and trial.labels == "weighted":
        weights = torch.tensor(data["train_confidence"], dtype=torch.float32, device=device)
    recipe = replace(
        _DATA["recipe"],
        seed=trial.seed,
        batch_size=trial.batch_size,
        bucket_window=_window(trial.order),
        patience=sys.maxsize,
    )
    if soft is None:
        loss_fn = cross_entropy_loss(train, device, label_smoothing=trial.label_smoothing, weights=weights)
    else:
        loss_fn = distillation_loss(
            train, soft, recipe.distil_temperature, recipe.distil_alpha, device,
            label_smoothing=trial.label_smoothing,
        )  # fmt: skip
    groups = None
    if trial.head_lr_mult != 1.0:
        head = [p for name, p in model.named_parameters() if name.startswith("head.")]
        body = [p for name, p in model.named_parameters() if not name.startswith("head.")]
        groups = [{"params": body}, {"params": head, "lr": lr * trial.head_lr_mult}]
    record = _recorder(data, [len(x) for x in train.ids], device, n)
    result = train_loop(
        model, train, data["validation"], lr=lr, epochs=epochs, settings=recipe, loss_fn=loss_fn,
        desc=trial.label, progress=False, device=device, param_groups=groups, observer=record,
    )  # fmt: skip
    by_f1 = _scores(model, data["test"], device, n)
    best_f1_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(record.best_acc_state)
    by_acc = _scores(model, data["test"], device, n)
    model.load_state_dict(best_f1_state)
    return {
        "test": by_f1,
        "test_best_by_val_accuracy": by_acc,
        "test_last": record.last,
        "history": record.history,
        "padded_tokens_per_epoch": record.tokens // max(1, record.epochs),
        "steps": result.steps,
    }


def run_trial(args: tuple[Trial, str, float]) -> dict[str, Any]:
    trial, device, deadline = args
    if time.time() > deadline:
        return {"trial": asdict(trial), "skipped": "past the sweep's time budget"}
    import torch

    from pipeline.train import predict_logits

    started = time.perf_counter()
    data = _split(trial.split_seed)
    n = len(_DATA["dataset"].labels)
    torch.manual_seed(trial.seed)
    teacher = _classifier(trial.pooling, n, device)
    t = _fit(teacher, data, lr=trial.lr, epochs=trial.epochs, trial=trial, device=device)
    soft = torch.from_numpy(predict_logits(teacher, data["train"], device=device)).to(device)
    student = _student(teacher, _DATA["recipe"].student_layers)
    del teacher
    s = _fit(
        student, data, lr=trial.student_lr, epochs=trial.student_epochs, trial=trial, device=device, soft=soft
    )
    return {
        "trial": asdict(trial),
        "label": trial.label,
        "max_length": data["max_length"],
        "teacher": t,
        "student": s,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--budget", type=float, default=600.0, help="seconds; no trial starts after it")
    parser.add_argument("--limit", type=int, default=None, help="keep this many examples (a quick try)")
    parser.add_argument("--grid", type=int, choices=(1, 2), default=1)
    parser.add_argument("--first", type=int, default=None, help="run only the first N trials of the grid")
    parser.add_argument("--out", type=Path, default=Path("loadtests/reports/sweep.jsonl"))
    args = parser.parse_args(argv)
    grid = (default_grid() if args.grid == 1 else second_grid())[: args.first]
    deadline = time.time() + args.budget
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.workers, initializer=_load, initargs=(args.limit,)) as pool, args.out.open("w") as out:
        for r in pool.imap_unordered(run_trial, [(t, args.device, deadline) for t in grid]):
            out.write(json.dumps(r) + "\n")
            out.flush()
            results.append(r)
            if "skipped" not in r:
                print(_row(r), flush=True)
    print("\n" + "\n".join(_table(results)))
    return 0


def _row(r: dict[str, Any]) -> str:
    t, s = r["teacher"], r["student"]
    return (
        f"{r['label']:48} T acc {t['test']['accuracy']:.4f} f1 {t['test']['macro_f1']:.4f} "
        f"(by-val-acc {t['test_best_by_val_accuracy']['accuracy']:.4f}, "
        f"last {t['test_last']['accuracy']:.4f}) "
        f"S acc {s['test']['accuracy']:.4f} tok/ep {t['padded_tokens_per_epoch']} {r['seconds']}s"
    )


def _table(results: list[dict[str, Any]]) -> Iterator[str]:
    done = [r for r in results if "skipped" not in r]
    done.sort(
        key=lambda r: (
            r["trial"]["split_seed"] != 13,
            r["trial"]["split_seed"],
            -r["teacher"]["test"]["accuracy"],
        )
    )
    yield f"{len(done)} trials done, {len(results) - len(done)} skipped"
    yield from (_row(r) for r in done)


if __name__ == "__main__":
    sys.exit(main())
