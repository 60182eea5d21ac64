"""Sweep the teacher's (and its student's) training settings on one data set, on any torch device.

The build runs on 2 CPU cores, where one airline teacher takes five minutes; this runs the same
recipe (AdamW, linear warm-up and decay, clipping, best checkpoint by validation macro-F1) many
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
import math
import multiprocessing as mp
import os
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.metrics import macro_f1
from pipeline.train import batch_order as train_batch_order
from pipeline.train import padded_tokens

BUCKET_WINDOW = 50
"""Batches per window in ``bucketed`` order: sorted by length inside a window of this many."""


@dataclass(frozen=True)
class Trial:
    pooling: str = "cls"
    order: str = "random"
    lr: float = 8e-5
    epochs: int = 1
    batch_size: int = 32
    split_seed: int = 13
    student_lr: float = 1e-4
    student_epochs: int = 1
    seed: int = 13
    """Seed of the head's initialisation, dropout and batch order."""
    labels: str = "all"
    """Teacher's training labels: ``all``; ``weighted`` by annotator confidence; ``confident``
    keeps the training examples whose confidence is at least 0.7 (test and validation untouched)."""
    label_smoothing: float = 0.0
    head_lr_mult: float = 1.0

    @property
    def label(self) -> str:
        return (
            f"{self.pooling:4} {self.order:8} lr={self.lr:.0e} ep={self.epochs} "
            f"bs={self.batch_size} split={self.split_seed} seed={self.seed}"
            + (f" labels={self.labels}" if self.labels != "all" else "")
            + (f" ls={self.label_smoothing}" if self.label_smoothing else "")
            + (f" head_lr_x{self.head_lr_mult:g}" if self.head_lr_mult != 1.0 else "")
        )


def batch_order(lengths: Sequence[int], size: int, order: str, rng: random.Random) -> list[list[int]]:
    """The build's batch order (``pipeline.train.batch_order``) by name: random or bucketed."""
    if order not in ("random", "bucketed"):
        raise ValueError(f"unknown batch order '{order}'")
    return train_batch_order(lengths, size, BUCKET_WINDOW if order == "bucketed" else 0, rng)


# --- everything below needs torch and runs inside a worker process -----------------------------

_DATA: dict[str, Any] = {}


def _load(example_limit: int | None) -> None:
    """Per worker: the airline data set, split by each seed on demand, tokenized once."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoTokenizer

    from pipeline.build import _base_model_dir
    from pipeline.data import load_airline

    torch.set_num_threads(max(1, min(4, (os.cpu_count() or 2) // 4)))
    base = _base_model_dir()
    _DATA.update(
        confidence=_airline_confidence(),
        dataset=load_airline(),
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
    from pipeline.split import split

    if seed not in _DATA["splits"]:
        ds, tok = _DATA["dataset"], _DATA["tokenizer"]
        parts = split(ds.texts, ds.targets, validation=0.1, test=0.1, seed=seed, limit=_DATA["limit"])
        lengths = sorted(len(x) for x in tok(parts.train.texts)["input_ids"])
        max_length = min(128, max(8, math.ceil(lengths[int(0.995 * (len(lengths) - 1))] / 8) * 8))

        def enc(p: Any) -> tuple[list[list[int]], list[int]]:
            return list(tok(p.texts, truncation=True, max_length=max_length)["input_ids"]), list(p.targets)

        _DATA["splits"][seed] = {
            "train": enc(parts.train),
            "train_confidence": [_DATA["confidence"].get(t, 1.0) for t in parts.train.texts],
            "validation": enc(parts.validation),
            "test": enc(parts.test),
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

        def forward(self, ids: Any, mask: Any) -> Any:
            out = self.bert(input_ids=ids, attention_mask=mask)
            if pooling == "cls":
                pooled = out.pooler_output
            else:
                m = mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
                pooled = (out.last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1.0)
            return self.head(self.dropout(pooled))

    return Classifier().to(device)


def _student(teacher: Any, layers: Sequence[int]) -> Any:
    from torch import nn

    student = copy.deepcopy(teacher)
    student.bert.encoder.layer = nn.ModuleList([student.bert.encoder.layer[i] for i in layers])
    student.bert.config.num_hidden_layers = len(layers)
    return student


def _pad(ids: Sequence[Sequence[int]], device: str) -> tuple[Any, Any]:
    import torch

    longest = max(len(x) for x in ids)
    arr = np.zeros((len(ids), longest), dtype=np.int64)
    mask = np.zeros((len(ids), longest), dtype=np.int64)
    for r, seq in enumerate(ids):
        arr[r, : len(seq)] = seq
        mask[r, : len(seq)] = 1
    return torch.from_numpy(arr).to(device), torch.from_numpy(mask).to(device)


def _logits(model: Any, ids: list[list[int]], device: str) -> np.ndarray:
    import torch

    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: np.ndarray | None = None
    with torch.inference_mode():
        for s in range(0, len(order), 128):
            idx = order[s : s + 128]
            logits = model(*_pad([ids[i] for i in idx], device)).float().cpu().numpy()
            if out is None:
                out = np.zeros((len(ids), logits.shape[1]), dtype=np.float32)
            out[idx] = logits
    assert out is not None
    return out


def _scores(model: Any, part: tuple[list[list[int]], list[int]], device: str, n: int) -> dict[str, float]:
    preds = _logits(model, part[0], device).argmax(axis=1)
    acc = float(np.mean(preds == np.asarray(part[1])))
    return {"accuracy": round(acc, 4), "macro_f1": round(macro_f1(part[1], preds.tolist(), n), 4)}


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
    """The pipeline's recipe: AdamW, warm-up 6%, linear decay, clip 1.0, 3 checks per epoch."""
    import torch
    import torch.nn.functional as F

    n = int(model.head.out_features)
    ids, targets_list = data["train"]
    conf = data["train_confidence"]
    weights = None
    if soft is None and trial.labels == "confident":
        keep = [i for i, c in enumerate(conf) if c >= 0.7]
        ids, targets_list = [ids[i] for i in keep], [targets_list[i] for i in keep]
    elif soft is None and trial.labels == "weighted":
        weights = torch.tensor(conf, dtype=torch.float32, device=device)
    lengths = [len(x) for x in ids]
    targets = torch.tensor(targets_list, dtype=torch.int64, device=device)
    rng = random.Random(trial.seed)
    torch.manual_seed(trial.seed)
    steps_per_epoch = math.ceil(len(ids) / trial.batch_size)
    total, eval_every = steps_per_epoch * epochs, max(1, math.ceil(steps_per_epoch / 3))
    warmup = max(1, int(total * 0.06))
    head = [p for name, p in model.named_parameters() if name.startswith("head.")]
    body = [p for name, p in model.named_parameters() if not name.startswith("head.")]
    opt = torch.optim.AdamW(
        [{"params": body}, {"params": head, "lr": lr * trial.head_lr_mult}], lr=lr, weight_decay=0.01
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    best_f1, best_acc_val, best_state, best_acc_state, step, tokens = -1.0, -1.0, None, None, 0, 0
    history = []
    for _ in range(epochs):
        batches = batch_order(lengths, trial.batch_size, trial.order, rng)
        tokens += padded_tokens(lengths, batches)
        for b in batches:
            model.train()
            x, m = _pad([ids[i] for i in b], device)
            logits = model(x, m)
            if weights is not None:
                per = F.cross_entropy(logits, targets[b], reduction="none")
                loss = (per * weights[b]).sum() / weights[b].sum()
            else:
                loss = F.cross_entropy(logits, targets[b], label_smoothing=trial.label_smoothing)
            if soft is not None:
                t = 2.0
                kd = F.kl_div(
                    F.log_softmax(logits / t, -1), F.softmax(soft[b] / t, -1), reduction="batchmean"
                ) * (t * t)
                loss = 0.7 * kd + 0.3 * loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if step % eval_every == 0 or step == total:
                val = _scores(model, data["validation"], device, n)
                history.append((step, val["macro_f1"], val["accuracy"]))
                if val["macro_f1"] > best_f1:
                    best_f1, best_state = val["macro_f1"], copy.deepcopy(model.state_dict())
                if val["accuracy"] > best_acc_val:
                    best_acc_val, best_acc_state = val["accuracy"], copy.deepcopy(model.state_dict())
    last = _scores(model, data["test"], device, n)
    model.load_state_dict(best_acc_state)
    by_acc = _scores(model, data["test"], device, n)
    model.load_state_dict(best_state)
    by_f1 = _scores(model, data["test"], device, n)
    return {
        "test": by_f1,
        "test_best_by_val_accuracy": by_acc,
        "test_last": last,
        "history": history,
        "padded_tokens_per_epoch": tokens // epochs,
        "steps": step,
    }


def run_trial(args: tuple[Trial, str, float]) -> dict[str, Any]:
    trial, device, deadline = args
    if time.time() > deadline:
        return {"trial": asdict(trial), "skipped": "past the sweep's time budget"}
    import torch

    started = time.perf_counter()
    data = _split(trial.split_seed)
    n = len(_DATA["dataset"].labels)
    torch.manual_seed(trial.seed)
    teacher = _classifier(trial.pooling, n, device)
    t = _fit(teacher, data, lr=trial.lr, epochs=trial.epochs, trial=trial, device=device)
    soft = torch.from_numpy(_logits(teacher, data["train"][0], device)).to(device)
    student = _student(teacher, (0, 2, 4))
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


def default_grid() -> list[Trial]:
    """Priority order: the main grid on the build's split, then split variance, then extras."""
    grid = [
        Trial(pooling=p, order=o, lr=lr, epochs=ep)
        for ep in (1, 2)
        for lr in (8e-5, 5e-5, 1.2e-4)
        for p in ("cls", "mean")
        for o in ("random", "bucketed")
    ]
    for seed in (1, 2, 3, 4):
        grid += [Trial(split_seed=seed), Trial(pooling="mean", order="bucketed", split_seed=seed)]
    grid += [
        Trial(pooling=p, order="bucketed", lr=lr, batch_size=bs)
        for p in ("cls", "mean")
        for lr, bs in ((5e-5, 16), (2e-4, 32))
    ]
    return grid


def second_grid() -> list[Trial]:
    """After the first grid: init-seed spread, confidence-aware labels, smoothing, head lr."""
    grid = [Trial(pooling=p, seed=s) for s in (1, 2, 3) for p in ("mean", "cls")]
    grid += [
        Trial(pooling=p, order="bucketed", labels=lab)
        for lab in ("weighted", "confident")
        for p in ("mean", "cls")
    ]
    grid += [Trial(pooling="mean", labels=lab) for lab in ("weighted", "confident")]
    grid += [Trial(pooling="mean", order="bucketed", seed=s) for s in (1, 2, 3)]
    grid += [Trial(pooling=p, order="bucketed", label_smoothing=0.1) for p in ("mean", "cls")]
    grid += [Trial(pooling=p, order="bucketed", head_lr_mult=10.0) for p in ("mean", "cls")]
    for seed in (3, 4):
        grid += [Trial(split_seed=seed), Trial(pooling="mean", order="bucketed", split_seed=seed)]
    grid += [Trial(pooling="mean", labels="confident", seed=s) for s in (1, 2)]
    return grid


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
