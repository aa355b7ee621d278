"""What each pipeline stage is given of a repository, from a workspace folder.

These functions do the I/O around the pure parts (they read the tree through the shared index cache)
and keep the indexes and rankings of the last few trees in this process, so the stages of one task
index and rank a tree once: the localizer's map, the planner's and the implementer's contexts on the
task's workspace, each reviewer's on the patched workspace of its round.

Every function takes the stage model's token counter and the renderer the prompt uses, so what is
counted is exactly what the model is sent.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

from pydantic import BaseModel, Field

from .assemble import TokenCounter, estimate_tokens, implementer_context, plan_symbols, planner_context, reviewer_context
from .index import RepoIndex, build_index
from .localize import apply_localization, localize_fallback, resolve_localization
from quorum.domain.models import StageContextRecord

from .models import Localization, StageContext
from .rank import Ranking, rank
from .render import PLAIN, Renderer
from .repomap import repo_map

KEEP_INDEXES = 4
KEEP_RANKINGS = 16
_lock = threading.Lock()
_rankings: OrderedDict[tuple[str, str], Ranking] = OrderedDict()


class _Memo(OrderedDict):
    """The indexes of the last KEEP_INDEXES trees (least recently stored dropped first)."""

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > KEEP_INDEXES:
            self.popitem(last=False)


_indexes = _Memo()


def load_index(repo: str | os.PathLike, cache_dir: str | os.PathLike | None) -> RepoIndex:
    """The tree's index: from this process's memo, else the cache directory, else built (and cached)."""
    with _lock:
        return build_index(repo, cache_dir, memo=_indexes)


def ranking_for(index: RepoIndex, task: str) -> Ranking:
    key = (index.key, task)
    with _lock:
        found = _rankings.get(key)
    if found is None:
        found = rank(index, task)
        with _lock:
            _rankings[key] = found
            while len(_rankings) > KEEP_RANKINGS:
                _rankings.popitem(last=False)
    return found


class LocalizeInput(BaseModel):
    """What the localize stage reads (the map, rendered as the prompt shows it) and what stands in for it."""

    map_text: str
    map_tokens: int
    budget: int
    paths: list[str] = Field(description="Every indexed path: the files a localization may name.")
    skeletons: list[str] = Field(default_factory=list, description="Files whose skeleton the map shows.")
    fallback: Localization

    def record(self, model: str, localization: Localization) -> StageContextRecord:
        """What the localizer saw (the map) and what came of it, for context.json."""
        shown = ", ".join(self.skeletons) or "none"
        notes = [f"repository map: {len(self.paths)} paths, skeletons of {shown}", localization.summary(),
                 *localization.notes]  # fmt: skip
        return StageContextRecord(stage="localize", model=model, budget=self.budget, tokens=self.map_tokens, notes=notes)


def localize_input(
    repo: str | os.PathLike,
    cache_dir: str | os.PathLike | None,
    task: str,
    budget: int = 16_000,
    count_tokens: TokenCounter = estimate_tokens,
    renderer: Renderer = PLAIN,
) -> LocalizeInput:
    index = load_index(repo, cache_dir)
    ranking = ranking_for(index, task)
    rmap = repo_map(index, ranking, budget, count_tokens, max_skeletons=12, renderer=renderer)
    return LocalizeInput(
        map_text=rmap.text, map_tokens=rmap.tokens, budget=budget, paths=sorted(index.indexed),
        skeletons=rmap.skeletons, fallback=localize_fallback(index, ranking),
    )  # fmt: skip


def deterministic_localization(repo: str | os.PathLike, cache_dir: str | os.PathLike | None, task: str) -> Localization:
    """The fallback localization alone (a roster without a localizer, or a dry run)."""
    index = load_index(repo, cache_dir)
    return localize_fallback(index, ranking_for(index, task))


def planner_view(
    repo: str | os.PathLike,
    cache_dir: str | os.PathLike | None,
    task: str,
    localization: Localization,
    budget: int,
    count_tokens: TokenCounter = estimate_tokens,
    renderer: Renderer = PLAIN,
) -> StageContext:
    index = load_index(repo, cache_dir)
    return planner_context(index, ranking_for(index, task), budget, count_tokens, localization=localization,
                           renderer=renderer)  # fmt: skip


def implementer_view(
    repo: str | os.PathLike,
    cache_dir: str | os.PathLike | None,
    task: str,
    plan_text: str,
    plan_files: list[str],
    localization: Localization,
    budget: int,
    count_tokens: TokenCounter = estimate_tokens,
    renderer: Renderer = PLAIN,
) -> StageContext:
    """The regions the plan names (and the localized edit targets), their enclosing definitions and tests,
    then the localized ranking while there is room."""
    index = load_index(repo, cache_dir)
    loc = resolve_localization(index, localization)
    files = list(dict.fromkeys([*plan_files, *loc.edit_files]))
    symbols = plan_symbols(index, plan_text, files)
    symbols += [f"{ref.path}:{ref.qualname}" for ref in loc.symbols if ref.edit and ref.path in files]
    ranking = apply_localization(index, ranking_for(index, task), loc)
    context = implementer_context(index, files, list(dict.fromkeys(symbols)), budget, count_tokens, ranking=ranking,
                                  renderer=renderer)  # fmt: skip
    context.notes.append(f"plan names {len(symbols)} definition(s) in these files")
    return context


def reviewer_view(
    patched_repo: str | os.PathLike,
    cache_dir: str | os.PathLike | None,
    patch: str,
    budget: int,
    count_tokens: TokenCounter = estimate_tokens,
    renderer: Renderer = PLAIN,
) -> StageContext:
    """Built on the patched workspace: line numbers are after the patch. The patch itself is left out of the
    text (the review prompt has it in its own block) but counts against the budget."""
    index = load_index(patched_repo, cache_dir)
    return reviewer_context(index, patch, budget, count_tokens, include_patch=False, renderer=renderer)
