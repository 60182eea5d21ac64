"""API and admin keys: where they come from and how a presented one is checked (no HTTP here).

Keys come from a setting (several at once) and/or from a folder holding one key per file, as
a Kubernetes Secret mounted as a volume: the kubelet updates such a folder in place (it writes
a new ``..<timestamp>`` folder and swaps the ``..data`` symlink), so the folder is reread at
most every ``reread_s`` seconds, on the first check after that. Files whose name starts with
``.`` (the kubelet's own) are skipped; surrounding whitespace is stripped; an empty file is no
key. A Secret mounted with ``subPath`` is never updated by the kubelet: mount the folder.

A presented key is compared with every configured one with :func:`hmac.compare_digest` over
their SHA-256 digests (equal lengths, no early exit), so the time taken tells nothing about
any key. Keys are never logged; ``repr`` shows only how many there are.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger("sluice.keys")

REREAD_S = 2.0
MAX_KEY_FILE_BYTES = 4096
BEARER = b"bearer "


def _digest(key: str | bytes) -> bytes:
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(raw).digest()


def read_key_folder(folder: Path) -> list[str]:
    """The keys in ``folder``, one per (non-hidden) file; a missing folder holds none."""
    keys: list[str] = []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return keys
    for path in entries:
        if path.name.startswith("."):
            continue
        try:
            if not path.is_file() or path.stat().st_size > MAX_KEY_FILE_BYTES:
                continue
            key = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if key:
            keys.append(key)
    return keys


class KeySet:
    """The keys of one role (API, admin): fixed ones plus those in a folder, reread as it changes."""

    def __init__(
        self,
        keys: Iterable[str] = (),
        folder: Path | None = None,
        *,
        reread_s: float = REREAD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fixed = [_digest(k) for k in keys if k]
        self._folder = folder
        self._reread_s = reread_s
        self._clock = clock
        self._next_read = float("-inf")
        self._digests: tuple[bytes, ...] = tuple(self._fixed)
        self._refresh()

    def __repr__(self) -> str:
        return f"KeySet({len(self._digests)} keys, folder={self._folder})"

    def _refresh(self) -> None:
        if self._folder is None:
            return
        now = self._clock()
        if now < self._next_read:
            return
        self._next_read = now + self._reread_s
        from_folder = [_digest(k) for k in read_key_folder(self._folder)]
        digests = tuple(self._fixed + from_folder)
        if len(digests) != len(self._digests) or set(digests) != set(self._digests):
            log.info("keys in %s changed: %d key(s) now", self._folder, len(digests))
        self._digests = digests

    @property
    def enabled(self) -> bool:
        """At least one key is configured (so a key is required)."""
        self._refresh()
        return bool(self._digests)

    def accepts(self, presented: str | bytes, *, refresh: bool = True) -> bool:
        """``presented`` is one of the keys (constant time in the key's content).
        ``refresh=False``: right after ``enabled``, which has just looked at the folder."""
        if refresh:
            self._refresh()
        candidate = _digest(presented)
        found = False
        for digest in self._digests:
            found |= hmac.compare_digest(candidate, digest)
        return found


def bearer_token(authorization: bytes | None) -> bytes | None:
    """The token of an ``Authorization: Bearer <token>`` header value; None otherwise."""
    if authorization is None:
        return None
    scheme = authorization[:7]
    if scheme != b"Bearer " and scheme.lower() != BEARER:
        return None
    token = authorization[7:]
    if token[:1] == b" " or token[-1:] in (b" ", b"\t"):
        token = token.strip()
    return token or None
