"""Counting functions. Each takes a path and reads the file itself."""

from __future__ import annotations

import os
from pathlib import Path


def count_bytes(path: str | os.PathLike[str]) -> int:
    """Size of the file in bytes (what `wc -c` prints)."""
    return Path(path).stat().st_size


def count_words(path: str | os.PathLike[str]) -> int:
    """Whitespace-separated words in the file (what `wc -w` prints for ASCII text)."""
    with open(path, "rb") as handle:
        return sum(len(line.split()) for line in handle)
