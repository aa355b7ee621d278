"""Repository context for quorum's stages: find the code a task is about and give each model only what it needs.

    index = build_index(repo, cache_dir)          # files, Python symbols, import graph, BM25 (cached by content)
    ranking = rank(index, task_text)              # files and regions, each with its reasons
    planner_context(index, ranking, budget)       # map + localized regions, line-numbered
    implementer_context(index, plan_files, plan_symbols, budget)
    reviewer_context(index, patch, budget)
    repo_map(index, ranking, budget)              # what an LLM `localize` stage reads
    localize_fallback(index, ranking)             # deterministic Localization of the same shape
    apply_localization(index, ranking, loc)       # a (model's) localization first in the ranking
    context_json(repo, task, budget)              # the stable JSON of `quorum context --json`

Every budgeted function takes `count_tokens: Callable[[str], int]` (default: characters / 4).
Imports are lazy so that `import quorum.context` stays cheap.
"""

from __future__ import annotations

_EXPORTS = {
    "build_index": "index", "RepoIndex": "index",
    "rank": "rank", "Ranking": "rank", "Weights": "rank",
    "planner_context": "assemble", "implementer_context": "assemble", "reviewer_context": "assemble",
    "select": "assemble", "estimate_tokens": "assemble",
    "repo_map": "repomap",
    "context_json": "api", "default_cache_dir": "api",
    "localize_fallback": "localize", "resolve_localization": "localize", "apply_localization": "localize",
    "plan_symbols": "assemble", "PLAIN": "render", "Block": "render", "Renderer": "render",
    "parse_query": "query", "Query": "query",
    "RankedFile": "models", "RankedRegion": "models", "ContextRegion": "models", "StageContext": "models",
    "Localization": "models", "SymbolRef": "models", "RepoMap": "models", "Symbol": "models", "FileEntry": "models",
}  # fmt: skip

__all__ = sorted(_EXPORTS)  # noqa: PLE0605


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'quorum.context' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)
