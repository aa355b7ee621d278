"""Entry points: index + rank + assemble in one call, and the stable JSON of `quorum context`."""

from __future__ import annotations

import os
from pathlib import Path

from .assemble import TokenCounter, estimate_tokens, planner_context, select
from .index import build_index
from .localize import localize_fallback
from .rank import rank


def default_cache_dir() -> Path:
    """The index cache every run shares (QUORUM_INDEX_CACHE, else `index` in the local store's folder)."""
    from quorum.settings import settings

    return settings().index_cache_dir()


def context_json(
    repo: str | os.PathLike,
    task: str,
    budget: int = 16_000,
    *,
    cache_dir: str | os.PathLike | None = None,
    count_tokens: TokenCounter = estimate_tokens,
    top_files: int = 20,
) -> dict:
    """`{"files": [{"path", "score", "reasons"}], "context": [{"path", "start_line", "end_line", "tokens"}],
    "tokens": N}`: the ranking (at least the top `top_files`) and the planner's code regions within `budget`."""
    index = build_index(repo, cache_dir if cache_dir is not None else default_cache_dir())
    ranking = rank(index, task)
    picker = select(index, ranking, budget, count_tokens)
    regions = picker.regions()
    return {
        "files": [
            {"path": f.path, "score": f.score, "reasons": f.reasons} for f in ranking.files[: max(top_files, 20)]
        ],
        "context": [
            {"path": r.path, "start_line": r.start_line, "end_line": r.end_line, "tokens": r.tokens} for r in regions
        ],
        "tokens": sum(r.tokens for r in regions),
    }


__all__ = ["build_index", "context_json", "default_cache_dir", "localize_fallback", "planner_context", "rank"]
