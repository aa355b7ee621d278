"""Entry points: index + rank + assemble in one call, and the stable JSON of `quorum context`."""

from __future__ import annotations

import os
from pathlib import Path

from .assemble import TokenCounter, estimate_tokens, planner_context, select
from .index import RepoIndex, build_index
from .models import Localization, SymbolRef
from .rank import Ranking, rank


def default_cache_dir() -> Path:
    """The index cache every run shares (QUORUM_INDEX_CACHE, else `index` in the local store's folder)."""
    from quorum.settings import settings

    return settings().index_cache_dir()


def localize_fallback(index: RepoIndex, ranking: Ranking, *, max_read: int = 6, max_symbols: int = 6) -> Localization:
    """Deterministic stand-in for the `localize` stage: the top source files to edit, their neighbours
    and tests to read, and the best-scored definitions in the files to edit."""
    sources = [f for f in ranking.files if f.score > 0 and index.files[f.path].kind == "source"]
    if not sources:
        sources = [f for f in ranking.files if f.score > 0]
    edit: list[str] = []
    if sources:
        top = sources[0].score
        edit = [f.path for f in sources[:3] if f.score >= 0.8 * top]
    read = list(edit)
    for f in ranking.files:
        if len(read) >= max_read or f.score <= 0:
            break
        if f.path not in read:
            read.append(f.path)
    symbols: list[SymbolRef] = []
    for region in ranking.regions:
        if region.path in edit and region.kind in ("function", "method", "class"):
            symbols.append(
                SymbolRef(
                    path=region.path, qualname=region.qualname, start_line=region.start_line, end_line=region.end_line
                )
            )
            if len(symbols) >= max_symbols:
                break
    return Localization(read_files=read, edit_files=edit, symbols=symbols, source="deterministic")


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
