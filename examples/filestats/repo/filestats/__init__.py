"""filestats: count words and bytes in files, like a tiny `wc`."""

from filestats.stats import count_bytes, count_words

__all__ = ["count_bytes", "count_words"]
