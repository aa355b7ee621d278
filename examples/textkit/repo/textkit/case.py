"""Identifier case conversions."""

from __future__ import annotations

import re

# A lowercase letter or digit followed by an uppercase letter starts a new word: "userId" -> "user", "Id".
_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[\s_\-]+")


def _words(text: str) -> list[str]:
    spaced = _BOUNDARY.sub(" ", text)
    return [word for word in _SEPARATORS.split(spaced) if word]


def snake_case(text: str) -> str:
    """'HTTP Response-code' -> 'http_response_code', 'userId' -> 'user_id'."""
    return "_".join(word.lower() for word in _words(text))


def camel_case(text: str) -> str:
    """'user id' -> 'userId', 'HTTP_response' -> 'httpResponse'."""
    words = [word.lower() for word in _words(text)]
    if not words:
        return ""
    return words[0] + "".join(word.capitalize() for word in words[1:])
