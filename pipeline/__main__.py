"""``python -m pipeline build [MODEL ...] --repository PATH --profile full|smoke --force``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import BuildError


def main(argv: Sequence[str] | None = None) -> int:
    from pipeline.build import DEFAULT_MODELS, build
    from pipeline.settings import PROFILES

    parser = argparse.ArgumentParser(prog="python -m pipeline")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the default models into a model repository")
    b.add_argument("models", nargs="*", metavar="MODEL", help=f"default: {' '.join(DEFAULT_MODELS)}")
    b.add_argument("--repository", type=Path, default=Path("model_repository"))
    b.add_argument("--profile", choices=PROFILES, default="full")
    b.add_argument("--force", action="store_true", help="rebuild even if the stamp matches")
    b.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    # INFO for our stages only: ONNX Runtime's quantizer logs every tensor on the root logger.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("sluice.pipeline").setLevel(logging.INFO)
    started = time.perf_counter()
    try:
        written = build(
            args.models or None,
            args.repository,
            profile=args.profile,
            force=args.force,
            progress=not args.no_progress,
        )
    except BuildError as e:
        print(f"sluice build: error: {e}", file=sys.stderr)
        return 2
    for path in written:
        print(f"built {path}")
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
