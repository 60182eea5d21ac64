"""Model names and versions as they may appear in a request path or a repository folder."""

from __future__ import annotations

MAX_DIGITS = 18
"""ASCII digits of a number in a header, a version or a parameter: below 2**63."""
MAX_NAME_CHARS = 128
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def check_model_name(name: str) -> str | None:
    """Why ``name`` cannot be a model's name (a folder of the repository), or None.

    ASCII letters, digits, ``_ . -``, starting with a letter or digit, at most 128 characters:
    no ``..``, no separators, nothing that reaches outside the repository.
    """
    if not name or len(name) > MAX_NAME_CHARS or not _NAME_CHARS.issuperset(name) or \
            not name[0].isalnum():
        return (f"model name must be 1..{MAX_NAME_CHARS} ASCII letters, digits, '_', '.' or '-', "
                "starting with a letter or digit")
    return None


def check_version(version: str) -> str | None:
    """Why ``version`` cannot be a model version (ASCII digits, bounded), or None."""
    if not version or len(version) > MAX_DIGITS or not version.isascii() or \
            not version.isdigit():
        return f"version must be 1..{MAX_DIGITS} ASCII digits"
    return None
