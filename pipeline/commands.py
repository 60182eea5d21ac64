"""The pipeline's commands as ``sluice`` reaches them: entry points of the group ``sluice.tools``
(pyproject.toml), so the server imports nothing from the pipeline (``server/tools.py``).

- ``build``: ``sluice build [MODEL ...]`` (and ``python -m pipeline build``).
- ``build-missing``: what ``sluice serve`` runs first: build the default models of the catalogue
  whose folder is in the repository but whose served artifacts are not (README set-up, ``make
  serve``).

Importing this module is light (no torch): the heavy libraries load only when a build starts.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.catalogue import BY_NAME, DEFAULT_MODELS
from pipeline.errors import BuildError
from pipeline.settings import PROFILES

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def build_parser(prog: str = "sluice build") -> argparse.ArgumentParser:
    b = argparse.ArgumentParser(
        prog=prog, description="fine-tune, distil, quantize and export the default models"
    )
    b.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help=f"models to build (default: all default models: {' '.join(DEFAULT_MODELS)})",
    )
    b.add_argument("--repository", type=Path, default=Path("model_repository"))
    b.add_argument(
        "--profile",
        default="full",
        choices=PROFILES,
        help="smoke: a few hundred examples and one epoch, for tests",
    )
    b.add_argument(
        "--force",
        action="store_true",
        help="rebuild even if up to date, and rewrite the committed config and card from this "
        "build's figures (without it, a card that describes the same recipe is kept)",
    )
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    return b  # fmt: skip


def build_main(argv: Sequence[str], prog: str = "sluice build") -> int:
    """``sluice build``: 0 when every model is built (or up to date), 1 on a BuildError."""
    args = build_parser(prog).parse_args(list(argv))
    # INFO for our stages only: ONNX Runtime's quantizer logs every tensor on the root logger.
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    logging.getLogger("sluice.pipeline").setLevel(logging.INFO)
    started = time.perf_counter()
    try:
        from pipeline.requirements import check_build_libraries

        check_build_libraries()
        from pipeline.build import build

        written = build(args.models or None, args.repository, profile=args.profile, force=args.force,
                        progress=not args.no_progress)  # fmt: skip
    except BuildError as e:
        print(f"sluice build: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(f"built {path}")
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


def defaults_to_build(repository: Path, only: Sequence[str]) -> list[str]:
    """Default models whose served artifacts are missing: those asked for by name, else those
    whose folder (config.yaml) is in the repository, so a repository of your own is left alone."""
    from pipeline.build import missing_models

    if only:
        wanted = [n for n in only if n in BY_NAME and BY_NAME[n].build_by_default]
    else:
        wanted = [n for n in DEFAULT_MODELS if (repository / n / "config.yaml").is_file()]
    return missing_models(repository, wanted) if wanted else []


def build_missing(repository: Path, only: Sequence[str]) -> int:
    """Build the default models not built yet (``sluice serve`` without --no-build): 0 when
    there is nothing left to build, 2 when the build libraries are missing, 1 when a build fails."""
    from pipeline.requirements import check_build_libraries

    missing = defaults_to_build(repository, only)
    if not missing:
        return 0
    try:
        check_build_libraries()
    except BuildError as e:
        print(f"sluice: default models not built yet: {', '.join(missing)}; {e}\n"
              f"  Or build them elsewhere and serve the repository with --no-build.",
              file=sys.stderr)  # fmt: skip
        return 2
    from pipeline.build import build

    print(f"sluice: building missing default models first: {', '.join(missing)}", file=sys.stderr)
    try:
        build(missing, repository, profile="full", progress=True)
    except BuildError as e:
        print(f"sluice: building {', '.join(missing)} failed: {e}\n"
              f"  Retry with:  sluice build {' '.join(missing)} --repository {repository}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0
