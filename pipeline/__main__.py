"""``python -m pipeline build [MODEL ...] --repository PATH --profile full|smoke --force``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pipeline.commands import build_main


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "build":
        print("usage: python -m pipeline build [MODEL ...] [--repository PATH] [--profile full|smoke] "
              "[--force] [--no-progress]", file=sys.stderr)  # fmt: skip
        return 2
    return build_main(argv[1:], prog="python -m pipeline build")


if __name__ == "__main__":
    sys.exit(main())
