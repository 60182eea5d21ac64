"""Tweet-like sample texts of different lengths, for tests that need real text."""

from __future__ import annotations

#: Five texts: ordinary, short, empty, longer than TINY_MAX_LENGTH tokens, emoji and hashtag.
SAMPLE_TEXTS: tuple[str, ...] = (
    "@united thanks for nothing, 3 hours on the tarmac and no water",
    "great crew!",
    "",
    "@JetBlue my bag went to Denver and I went to Boston. again. " * 6,
    "Flight Cancelled Flightled 😡 #fail",
)
