"""A front end's tokenizers: one per served text-model version, so the front end sends token
ids (:class:`TokenIds`) and the engine process only pads them.

Each is loaded from the model repository (``<repository>/<model>/<version>/tokenizer.json``,
where the engine loaded it from) with the version's ``max_length`` as the engine serves it,
the first time a request needs it (in a thread; concurrent askers share the load), and
dropped once the engine's snapshot no longer serves that version. One that cannot be loaded
is remembered as missing: its requests go as texts and the engine tokenizes them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path

from engines.tokenization import TextEncoder, TokenIds

log = logging.getLogger("sluice.frontend")

Key = tuple[str, int, int]  # (model, version, max_length)

#: Requests with more characters than this are tokenized in a thread, not on the event loop.
INLINE_CHARS = 8192


class FrontendTokenizers:
    def __init__(self, repository: Path) -> None:
        self.repository = repository
        self._encoders: dict[Key, TextEncoder | None] = {}
        self._loading: dict[Key, asyncio.Task[TextEncoder | None]] = {}

    def _load(self, key: Key) -> TextEncoder | None:
        name, version, max_length = key
        folder = self.repository / name / str(version)
        try:
            encoder = TextEncoder.from_dir(folder, max_length)
        except Exception as e:  # the engine tokenizes this version's requests instead
            log.warning("front end cannot load the tokenizer of %s version %d (%s); the "
                        "engine process tokenizes its requests", name, version, e)
            return None
        log.info("front end loaded the tokenizer of %s version %d (max_length %d)", name,
                 version, max_length)
        return encoder

    async def encoder(self, key: Key) -> TextEncoder | None:
        if key in self._encoders:
            return self._encoders[key]
        task = self._loading.get(key)
        if task is None:
            task = asyncio.create_task(asyncio.to_thread(self._load, key))
            self._loading[key] = task
        try:
            encoder = await asyncio.shield(task)
        finally:
            if task.done():
                self._loading.pop(key, None)
        self._encoders[key] = encoder
        return encoder

    async def encode(self, key: Key, texts: tuple[str, ...]) -> TokenIds | None:
        """``texts`` tokenized by ``key``'s tokenizer; None when it has none."""
        encoder = await self.encoder(key)
        if encoder is None:
            return None
        if sum(len(t) for t in texts) <= INLINE_CHARS:
            return encoder.encode_ids(texts)
        return await asyncio.to_thread(encoder.encode_ids, texts)

    def keep(self, live: Iterable[Key]) -> None:
        """Drop the tokenizers of versions no longer served."""
        alive = set(live)
        for key in [k for k in self._encoders if k not in alive]:
            del self._encoders[key]

    def loaded(self) -> list[Key]:
        return [k for k, v in self._encoders.items() if v is not None]
