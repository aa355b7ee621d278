"""Context per stage, within a token budget (pure except for reading the files' text through the index).

Regions are line spans of files as they are on disk (1-based, inclusive). They are picked greedily in
priority order, merged when they overlap or nearly touch, and rendered with line numbers as blocks
(`quorum.context.render`; the pipeline passes the stages' delimited `<file>` renderer):

    ### src/click/core.py lines 2356-2420
    2356|    def get_default(self, ctx: Context, call: bool = True) -> t.Any:
    ...

Every budgeted function takes `count_tokens(text) -> int` (the pipeline passes the stage model's
tokenizer, litellm's `token_counter`); the default is an estimate of characters / 4. The rendered text
is what is counted, and a stage's whole text is counted again at the end (dropping the last regions
picked while it is over), so a budget is never exceeded whatever the counter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .index import RepoIndex
from .models import ContextRegion, Localization, StageContext, Symbol
from .python_symbols import split_lines
from .rank import Ranking, innermost
from .render import PLAIN, Block, Renderer, numbered

TokenCounter = Callable[[str], int]
MERGE_GAP = 3  # spans at most this many lines apart are merged (the gap is shown)
WHOLE_FILE_SHARE = (0.6, 0.3, 0.2)  # a file ranked 1st/2nd/3rd is shown whole when it takes at most this share


def estimate_tokens(text: str) -> int:
    """Default counter: characters / 4, rounded up."""
    return (len(text) + 3) // 4


def merge_spans(spans: Iterable[tuple[int, int]], gap: int = MERGE_GAP) -> list[tuple[int, int]]:
    """Sorted, merged spans: overlapping ones, and ones at most `gap` lines apart."""
    out: list[list[int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1] + gap + 1:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(s, e) for s, e in out]


def render_span(path: str, lines: list[str], start: int, end: int, note: str = "", renderer: Renderer = PLAIN) -> str:
    return renderer.block(Block(path, numbered(lines, start, end), "lines", start, min(end, len(lines)), note))


@dataclass
class _Picker:
    """Greedy picking of spans into a budget; the cost of a file is the rendering of its merged spans."""

    index: RepoIndex
    budget: int
    count: TokenCounter
    renderer: Renderer = PLAIN
    chosen: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    reasons: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)
    costs: dict[str, int] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # files in the order they were first picked
    _lines: dict[str, list[str]] = field(default_factory=dict)
    _span_cost: dict[tuple[str, int, int], int] = field(default_factory=dict)
    _history: list[tuple[str, list[tuple[int, int]] | None, int, int]] = field(default_factory=list)

    def lines(self, path: str) -> list[str]:
        if path not in self._lines:
            try:
                self._lines[path] = split_lines(self.index.text(path))
            except (OSError, UnicodeDecodeError):
                self._lines[path] = []
        return self._lines[path]

    def span_cost(self, path: str, start: int, end: int) -> int:
        key = (path, start, end)
        if key not in self._span_cost:
            self._span_cost[key] = self.count(render_span(path, self.lines(path), start, end, renderer=self.renderer))
        return self._span_cost[key]

    def file_cost(self, path: str, spans: list[tuple[int, int]]) -> int:
        return sum(self.span_cost(path, s, e) for s, e in spans)

    @property
    def used(self) -> int:
        return sum(self.costs.values())

    def clamp(self, path: str, start: int, end: int) -> tuple[int, int] | None:
        n = len(self.lines(path))
        start, end = max(1, start), min(end, n)
        return (start, end) if start <= end else None

    def try_add(self, path: str, spans: list[tuple[int, int]], reason: str) -> bool:
        """Add spans of one file if the whole still fits the budget; False (and no change) otherwise."""
        clamped = [c for c in (self.clamp(path, s, e) for s, e in spans) if c]
        if not clamped:
            return False
        current = self.chosen.get(path, [])
        merged = merge_spans(current + clamped)
        if merged == current:
            return True  # already inside
        cost = self.file_cost(path, merged)
        if self.used - self.costs.get(path, 0) + cost > self.budget:
            return False
        self._history.append((path, self.chosen.get(path), self.costs.get(path, 0), len(self.reasons.get(path, []))))
        if path not in self.chosen:
            self.order.append(path)
        self.chosen[path] = merged
        self.costs[path] = cost
        for s, e in clamped:
            self.reasons.setdefault(path, []).append((s, e, reason))
        return True

    def undo(self) -> bool:
        """Take back the last addition; False when there is none."""
        if not self._history:
            return False
        path, spans, cost, n_reasons = self._history.pop()
        if spans is None:
            del self.chosen[path], self.costs[path]
            self.order.remove(path)
        else:
            self.chosen[path], self.costs[path] = spans, cost
        del self.reasons.setdefault(path, [])[n_reasons:]
        return True

    def covers(self, path: str, start: int, end: int) -> bool:
        return any(s <= start and end <= e for s, e in self.chosen.get(path, []))

    def regions(self) -> list[ContextRegion]:
        out = []
        for path in self.order:
            for s, e in self.chosen[path]:
                why = [r for rs, re_, r in self.reasons.get(path, []) if rs <= e and re_ >= s]
                out.append(
                    ContextRegion(
                        path=path, start_line=s, end_line=e, tokens=self.span_cost(path, s, e),
                        reasons=list(dict.fromkeys(why))[:8],
                    )
                )  # fmt: skip
        return out

    def render(self) -> str:
        parts = []
        for path in self.order:
            for s, e in self.chosen[path]:
                parts.append(render_span(path, self.lines(path), s, e, renderer=self.renderer))
        return "".join(parts)


def _within_budget(picker: _Picker, compose: Callable[[], str], budget: int) -> str:
    """The stage's whole text, counted as a whole: drop the last regions picked while it is over the budget
    (a tokenizer need not count a concatenation as the sum of its parts)."""
    text = compose()
    while picker.count(text) > budget and picker.undo():
        text = compose()
    return text


def symbol_spans(sym: Symbol) -> list[tuple[int, int]]:
    """What showing a symbol means: a function whole; a class its own lines (header, attributes);
    a chunk its lines."""
    if sym.kind == "class":
        return list(sym.spans) or [(sym.start_line, sym.header_end or sym.start_line)]
    return [(sym.start_line, sym.end_line)]


def enclosing_headers(index: RepoIndex, path: str, number: int) -> list[tuple[int, int]]:
    """Header lines (signature and docstring) of the definitions around symbol `number`."""
    symbols = index.symbols(path)
    out = []
    parent = symbols[number].parent
    while parent >= 0:
        p = symbols[parent]
        out.append((p.start_line, max(p.header_end, p.start_line)))
        parent = p.parent
    return out


def file_header(index: RepoIndex, path: str) -> list[tuple[int, int]]:
    """The module's first top-level chunk (imports, constants) when it starts the file."""
    for sym in index.symbols(path):
        if sym.kind == "module" and sym.start_line <= 3:
            return [(sym.start_line, sym.end_line)]
    return []


def _fit_window(picker: _Picker, path: str, sym: Symbol, budget_left: int, focus: int | None) -> list[tuple[int, int]]:
    """The largest window of a too-big symbol that fits: its header and the lines around `focus`."""
    lines = picker.lines(path)
    if not lines or budget_left <= 0:
        return []
    head_end = max(sym.header_end, sym.start_line)
    centre = focus or head_end
    lo, hi = max(sym.start_line, centre - 20), min(sym.end_line, centre + 20)
    spans = [(sym.start_line, head_end), (lo, hi)]
    if picker.file_cost(path, merge_spans(spans)) > budget_left:
        return []
    step = 20
    while True:
        grown = [(sym.start_line, head_end), (max(sym.start_line, lo - step), min(sym.end_line, hi + step))]
        if grown[1] == (lo, hi) or picker.file_cost(path, merge_spans(spans[:1] + grown[1:])) > budget_left:
            return merge_spans(spans)
        lo, hi = grown[1]
        spans = grown


def select(
    index: RepoIndex,
    ranking: Ranking,
    budget: int,
    count_tokens: TokenCounter = estimate_tokens,
    *,
    kinds: tuple[str, ...] = ("source", "test", "build", "example", "other"),
    max_files: int = 12,
    whole_file_share: tuple[float, ...] = WHOLE_FILE_SHARE,
    file_focus: float = 2.0,
    renderer: Renderer = PLAIN,
) -> _Picker:
    """Regions of the ranked files into `budget`: whole top files when they fit their share, else the
    best regions (with their enclosing class headers and the file's import header)."""
    picker = _Picker(index=index, budget=budget, count=count_tokens, renderer=renderer)
    file_rank = {f.path: i for i, f in enumerate(ranking.files)}
    near_top = ranking.files[0].score * 0.9 if ranking.files else 0.0
    allowed_files = [
        f.path
        for f in ranking.files
        if f.score > 0 and f.path in index.indexed and (index.files[f.path].kind in kinds or f.score >= near_top)
    ][:max_files]
    allowed = set(allowed_files)
    # 1. whole files for the top ones when they are small enough
    for rank_pos, path in enumerate(allowed_files[: len(whole_file_share)]):
        whole = index.indexed[path].lines
        if whole and picker.file_cost(path, [(1, whole)]) <= budget * whole_file_share[rank_pos]:
            why = ranking.files[file_rank[path]].reasons[:1]
            picker.try_add(path, [(1, whole)], f"whole file (rank {file_rank[path] + 1})" + "".join(f": {r[:120]}" for r in why))
    # 2. regions by score, weighted by their file's standing (files -> regions, as in hierarchical localization)
    top_score = ranking.files[0].score if ranking.files and ranking.files[0].score > 0 else 1.0
    file_score = {f.path: f.score for f in ranking.files}
    candidates = sorted(
        ranking.regions,
        key=lambda r: -r.score * (max(file_score.get(r.path, 0.0), 0.0) / top_score) ** file_focus,
    )
    headers_done: set[str] = set()
    for region in candidates:
        path = region.path
        if path not in allowed:
            continue
        if picker.used >= budget:
            break
        number = _symbol_number(index, path, region.start_line, region.end_line, region.qualname)
        if number is None:
            continue
        sym = index.symbol(path, number)
        spans = symbol_spans(sym)
        reason = f"{sym.qualname} ({region.score:.2f}): " + "; ".join(region.reasons[:2])[:160]
        extras = enclosing_headers(index, path, number)
        if path not in headers_done and file_rank.get(path, 99) < 3:
            extras = extras + file_header(index, path)
        if not picker.try_add(path, spans + extras, reason):
            if not picker.try_add(path, spans, reason):
                left = budget - picker.used + picker.costs.get(path, 0)
                window = _fit_window(picker, path, sym, left - picker.costs.get(path, 0), _focus_line(region))
                if window:
                    picker.try_add(path, window, reason + " (part)")
                continue
        headers_done.add(path)
    return picker


def _focus_line(region) -> int | None:
    for r in region.reasons:
        m = re.search(r"line (\d+)", r)
        if m:
            return int(m.group(1))
    return None


def _symbol_number(index: RepoIndex, path: str, start: int, end: int, qualname: str) -> int | None:
    for i, sym in enumerate(index.symbols(path)):
        if sym.start_line == start and sym.end_line == end and sym.qualname == qualname:
            return i
    return None


# ------------------------------------------------------------------------------------------ stages


def planner_context(
    index: RepoIndex,
    ranking: Ranking,
    budget: int = 12_000,
    count_tokens: TokenCounter = estimate_tokens,
    *,
    localization: Localization | None = None,
    map_budget: int | None = None,
    renderer: Renderer = PLAIN,
) -> StageContext:
    """The planner's context within `budget`: the repository map (paths + skeletons of the top candidates,
    `map_budget`, by default min(2,500, budget / 7)) and the full text of the localized regions, whole
    files when they fit. With a `localization`, its files and symbols come first (docs, changelogs and CI
    files enter only when localized or ranked next to the top file)."""
    from .localize import apply_localization
    from .repomap import repo_map

    if localization is not None:
        ranking = apply_localization(index, ranking, localization)
    map_budget = min(2_500, budget // 7) if map_budget is None else map_budget
    head, middle = renderer.heading("Repository map"), "\n" + renderer.heading("Code (line numbers as on disk)")
    frame = count_tokens(head + middle)
    picker = select(index, ranking, max(0, budget - map_budget - frame), count_tokens, renderer=renderer)
    whole = frozenset(p for p in picker.order if picker.chosen[p] == [(1, index.indexed[p].lines)])
    rmap = repo_map(index, ranking, max(0, map_budget - frame), count_tokens, renderer=renderer, skip_skeletons=whole)
    text = _within_budget(picker, lambda: head + rmap.text + middle + picker.render(), budget)
    notes = [f"repository map: {rmap.paths} paths, skeletons of {', '.join(rmap.skeletons) or 'none'} ({rmap.tokens} tokens)"]
    if localization is not None:
        notes.append(localization.summary())
    return StageContext(stage="plan", budget=budget, regions=picker.regions(), text=text, tokens=count_tokens(text),
                        notes=notes)  # fmt: skip


def _resolve_symbol(index: RepoIndex, ref: str) -> list[tuple[str, int]]:
    """'path:Qual.name', 'Qual.name', 'name' or 'path:120-140' -> (path, symbol number) pairs."""
    path_part, _, name = ref.rpartition(":") if ":" in ref else ("", "", ref)
    if path_part and re.fullmatch(r"\d+(-\d+)?", name):
        return []
    out = []
    paths = [path_part] if path_part in index.indexed else list(index.indexed)
    for path in paths:
        for i, sym in enumerate(index.symbols(path)):
            if sym.kind in ("class", "function", "method") and (
                sym.qualname == name or sym.qualname.endswith("." + name) or sym.name == name
            ):
                out.append((path, i))
    return out[:8]


def implementer_context(
    index: RepoIndex,
    plan_files: list[str],
    plan_symbols: list[str],
    budget: int = 16_000,
    count_tokens: TokenCounter = estimate_tokens,
    *,
    ranking: Ranking | None = None,
    max_tests: int = 4,
    renderer: Renderer = PLAIN,
) -> StageContext:
    """What the implementer edits from: the regions the plan names (symbols as `path:Qual.name`,
    `Qual.name` or `path:START-END`), their enclosing definitions and the file's import header, then
    the tests that exercise them; whole plan files when they fit. Exact line numbers throughout."""
    picker = _Picker(index=index, budget=budget, count=count_tokens, renderer=renderer)
    targets: list[tuple[str, int]] = []
    ranges: list[tuple[str, int, int]] = []
    for ref in plan_symbols:
        m = re.fullmatch(r"(.+):(\d+)(?:-(\d+))?", ref)
        if m and m.group(1) in index.indexed:
            ranges.append((m.group(1), int(m.group(2)), int(m.group(3) or m.group(2))))
            continue
        targets.extend(_resolve_symbol(index, ref))
    files = [p for p in plan_files if p in index.indexed]
    for path, _, _ in ranges:
        if path not in files:
            files.append(path)
    for path, _ in targets:
        if path not in files:
            files.append(path)
    # whole plan files first when all of them fit in half the budget
    whole = [(p, index.indexed[p].lines) for p in files if index.indexed[p].lines]
    if whole and sum(picker.file_cost(p, [(1, n)]) for p, n in whole) <= budget // 2:
        for p, n in whole:
            picker.try_add(p, [(1, n)], "whole plan file")
    for path, start, end in ranges:
        symbols = index.symbols(path)
        inner = innermost(symbols, start)
        spans = [(start, end)]
        if inner is not None and symbols[inner].kind in ("function", "method"):
            spans = [(min(start, symbols[inner].start_line), max(end, symbols[inner].end_line))]
        extras = enclosing_headers(index, path, inner) if inner is not None else []
        picker.try_add(path, spans + extras + file_header(index, path), f"plan names {path}:{start}-{end}") or (
            picker.try_add(path, [(start, end)], f"plan names {path}:{start}-{end}")
        )
    for path, number in targets:
        sym = index.symbol(path, number)
        spans = symbol_spans(sym) if sym.kind != "class" else [(sym.start_line, sym.end_line)]
        reason = f"plan names {sym.qualname}"
        if not picker.try_add(path, spans + enclosing_headers(index, path, number) + file_header(index, path), reason):
            if not picker.try_add(path, spans, reason):
                window = _fit_window(picker, path, sym, budget - picker.used, None)
                if window:
                    picker.try_add(path, window, reason + " (part)")
    # tests that exercise the named symbols
    names = {index.symbol(p, i).name for p, i in targets} | {
        index.symbol(p, i).name
        for p, s, e in ranges
        for i in [innermost(index.symbols(p), s)]
        if i is not None and index.symbol(p, i).kind in ("function", "method", "class")
    }
    for path, number in exercising_tests(index, files, names)[:max_tests]:
        sym = index.symbol(path, number)
        picker.try_add(path, [(sym.start_line, sym.end_line)], f"test exercising {', '.join(sorted(names))[:80]}")
    # then whatever the ranking adds, while there is room
    if ranking is not None and picker.used < budget:
        rest = select(index, ranking, budget - picker.used, count_tokens, whole_file_share=(), renderer=renderer)
        for path in rest.order:
            for s, e in rest.chosen[path]:
                picker.try_add(path, [(s, e)], "ranked for the task")
    text = _within_budget(picker, picker.render, budget)
    unresolved = [ref for ref in plan_symbols if not re.fullmatch(r"(.+):(\d+)(?:-(\d+))?", ref)
                  and not _resolve_symbol(index, ref)]  # fmt: skip
    notes = [f"plan files: {', '.join(files) or 'none in the repository'}"]
    if unresolved:
        notes.append(f"not found in the repository: {', '.join(unresolved[:10])}")
    return StageContext(stage="implement", budget=budget, regions=picker.regions(), text=text,
                        tokens=count_tokens(text), notes=notes)  # fmt: skip


def plan_symbols(index: RepoIndex, plan_text: str, files: list[str]) -> list[str]:
    """The definitions a plan names (as code: backticks, calls, dotted or snake/Camel names) in the files it
    is about, as `path:Qual.name` refs; a dotted `Class.method` anywhere in the repository too."""
    from .query import parse_query

    query = parse_query(plan_text)
    out: list[str] = []
    for dotted in query.dotted:
        for path, number in _resolve_symbol(index, dotted):
            if index.symbol(path, number).qualname.endswith(dotted.split(".", 1)[-1]):
                out.append(f"{path}:{index.symbol(path, number).qualname}")
    names = set(query.code)
    for path in files:
        if path not in index.indexed:
            continue
        for sym in index.symbols(path):
            if sym.kind in ("class", "function", "method") and (sym.name in names or sym.qualname in names):
                out.append(f"{path}:{sym.qualname}")
    return list(dict.fromkeys(out))


def exercising_tests(index: RepoIndex, files: list[str], names: set[str]) -> list[tuple[str, int]]:
    """Test functions that mention any of `names`, those in the files' own test modules first."""
    from .graph import linked_tests
    from .rank import references

    test_paths = [p for p, e in index.files.items() if e.kind == "test" and p in index.indexed]
    linked = {t for f in files for t, _ in linked_tests(f, test_paths, index.imported_by)}
    found: dict[tuple[str, int], int] = {}
    for name in sorted(names):
        if name.startswith("__") or len(name) < 3:
            continue
        for u in references(index, name):
            path, number = index.units[u]
            if index.files[path].kind != "test":
                continue
            sym = index.symbol(path, number)
            if sym.kind not in ("function", "method"):
                continue
            found[(path, number)] = found.get((path, number), 0) + (2 if path in linked else 1)
    return sorted(found, key=lambda k: (-found[k], index.symbol(*k).end_line - index.symbol(*k).start_line, k))


_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def patched_lines(patch: str) -> dict[str, list[int]]:
    """New-side line numbers each file of a unified diff adds or changes (for a pure deletion, the line
    after it), by path in the patched tree."""
    out: dict[str, list[int]] = {}
    path = None
    new_line = 0
    for line in patch.splitlines():
        if line.startswith("+++ "):
            target = line[4:].strip()
            path = None if target == "/dev/null" else re.sub(r"^b/", "", target)
            continue
        if line.startswith("--- ") or line.startswith("diff "):
            continue
        m = _HUNK.match(line)
        if m:
            new_line = int(m.group(3))
            continue
        if path is None:
            continue
        if line.startswith("+"):
            out.setdefault(path, []).append(new_line)
            new_line += 1
        elif line.startswith("-"):
            out.setdefault(path, []).append(max(new_line, 1))
        elif line.startswith(" ") or line == "":
            new_line += 1
    return {p: sorted(set(v)) for p, v in out.items()}


def reviewer_context(
    index: RepoIndex,
    patch: str,
    budget: int = 16_000,
    count_tokens: TokenCounter = estimate_tokens,
    *,
    max_callers: int = 6,
    max_tests: int = 4,
    include_patch: bool = True,
    renderer: Renderer = PLAIN,
) -> StageContext:
    """What a reviewer judges: the patch, the patched definitions in full (in the patched tree: build the
    index on the workspace after the patch), then their callers and the tests that exercise them.

    The patch counts against the budget. With `include_patch=False` the text leaves it out (the review
    prompt carries it in a block of its own) but `tokens` still counts it."""
    patch_text = renderer.heading("Patch") + patch.rstrip("\n") + "\n"
    patch_cost = count_tokens(patch_text if include_patch else patch)
    picker = _Picker(index=index, budget=max(0, budget - patch_cost), count=count_tokens, renderer=renderer)
    changed = patched_lines(patch)
    touched: list[tuple[str, int]] = []
    for path, lines in changed.items():
        if path not in index.indexed:
            continue
        symbols = index.symbols(path)
        for line in lines:
            inner = innermost(symbols, line)
            if inner is None:
                picker.try_add(path, [(line - 3, line + 3)], "patched lines")
                continue
            sym = symbols[inner]
            # the smallest enclosing function or method, whole
            while sym.kind not in ("function", "method") and sym.parent >= 0:
                inner, sym = sym.parent, symbols[sym.parent]
            if sym.kind in ("function", "method"):
                if (path, inner) not in touched:
                    touched.append((path, inner))
                span = [(sym.start_line, sym.end_line)] + enclosing_headers(index, path, inner)
                if not picker.try_add(path, span, f"patched {sym.qualname}"):
                    picker.try_add(path, [(line - 10, line + 10)], f"patched {sym.qualname} (part)")
            else:
                picker.try_add(path, [(max(sym.start_line, line - 10), min(sym.end_line, line + 10))], "patched lines")
    names = {index.symbol(p, i).name for p, i in touched}
    from .rank import references

    callers: list[tuple[str, int]] = []
    for name in sorted(names):
        if name.startswith("__") or len(name) < 3:
            continue
        for u in references(index, name):
            path, number = index.units[u]
            sym = index.symbol(path, number)
            if (path, number) in touched or index.files[path].kind == "test" or sym.kind not in ("function", "method"):
                continue
            callers.append((path, number))
    for path, number in callers[:max_callers]:
        sym = index.symbol(path, number)
        picker.try_add(path, [(sym.start_line, sym.end_line)], f"calls {', '.join(sorted(names))[:60]}")
    for path, number in exercising_tests(index, list(changed), names)[:max_tests]:
        sym = index.symbol(path, number)
        picker.try_add(path, [(sym.start_line, sym.end_line)], "test exercising the patched code")
    head = (patch_text if include_patch else "") + renderer.heading(
        "Patched code and its neighbours (line numbers after the patch)"
    )
    extra = 0 if include_patch else patch_cost
    text = _within_budget(picker, lambda: head + picker.render(), budget - extra)
    notes = [f"patch: {patch_cost} tokens" + ("" if include_patch else " (in the prompt's own <patch> block)")]
    if patch_cost > budget:
        notes.append("the patch alone exceeds the budget: no other code shown")
    return StageContext(stage="review", budget=budget, regions=picker.regions(), text=text,
                        tokens=count_tokens(text) + extra, notes=notes)  # fmt: skip
