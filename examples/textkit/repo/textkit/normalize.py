"""Whitespace and length normalisation."""

from __future__ import annotations

import re

_WHITESPACE = re.compile(r"\s+")


def collapse_whitespace(text: str) -> str:
    """Replace every run of whitespace with a single space and trim both ends."""
    return _WHITESPACE.sub(" ", text).strip()


def truncate(text: str, width: int, placeholder: str = "...") -> str:
    """Shorten `text` to at most `width` characters, ending with `placeholder` when it is cut."""
    if width < 0:
        raise ValueError("width must be >= 0")
    if len(text) <= width:
        return text
    if width <= len(placeholder):
        return placeholder[:width]
    return text[: width - len(placeholder)].rstrip() + placeholder
