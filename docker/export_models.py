"""Copy what a built model repository serves into a clean folder (the bundled image's /models).

    python export_models.py SOURCE DEST MODEL [MODEL ...]

Per model: its config.yaml and model cards, and the version folders its version_policy serves;
the build's intermediate files (``build/``) and the variants it does not serve stay behind.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from server.errors import ConfigError
from server.repository.loader import read_config, select_versions

CARD_FILES = ("config.yaml", "MODEL_CARD.md", "model_card.json")


def export(source: Path, dest: Path, models: list[str]) -> list[Path]:
    written = []
    for name in models:
        folder = source / name
        versions = select_versions(folder, read_config(folder))
        target = dest / name
        target.mkdir(parents=True, exist_ok=False)
        for card in CARD_FILES:
            if (folder / card).is_file():
                shutil.copy2(folder / card, target / card)
        for version in versions:
            shutil.copytree(folder / str(version), target / str(version))
            written.append(target / str(version))
    return written


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        written = export(Path(argv[0]), Path(argv[1]), argv[2:])
    except (ConfigError, OSError) as e:
        print(f"export_models: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(f"exported {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
