"""The libraries the base install (and so the CPU image) must not contain."""

from __future__ import annotations

HEAVY = ("torch", "transformers", "onnx")

#: ``python -c`` code that prints which of them are installed and exits 1 if any is.
CHECK_ABSENT = (
    "import importlib.util, sys; "
    f"found = [m for m in {HEAVY!r} if importlib.util.find_spec(m)]; "
    "print(found); sys.exit(1 if found else 0)"
)
