"""The one error the build raises for problems a user can fix (data, model names)."""

from __future__ import annotations


class BuildError(Exception):
    """A model cannot be built; the message says which model, which file, and what to do."""
