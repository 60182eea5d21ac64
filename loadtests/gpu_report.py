"""The GPU benchmark's report: the environment it ran in, the JSON file and the printed tables.

Part of :mod:`loadtests.gpu_engines`; imports nothing from the server.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np


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
        f"{report['duration_s']} s per cell; max_length {report['max_length']}",
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
                what = "(reference)" if r["config"] == report["reference"] else "(no reference)"
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
