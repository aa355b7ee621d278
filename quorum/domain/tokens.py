"""The one rough token estimate used where a model's own tokenizer is not consulted: characters / 4."""

from __future__ import annotations

CHARS_PER_TOKEN = 4


def tokens_for(text_chars: int) -> int:
    """Tokens for this many characters, rounded up (at least 1)."""
    return max(1, -(-text_chars // CHARS_PER_TOKEN))
