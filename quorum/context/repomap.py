"""The repository map a `localize` model reads (pure over the index): every path, and skeletons of the
top-ranked files, within a token budget. Rendered with `PLAIN` (the pipeline renders the same blocks as
delimited `<file view="paths">` / `<file view="skeleton">` blocks):

    ## Files (indexed; * = ranked candidates)
    src/click/: __init__.py _compat.py core.py* ...
    ## Skeletons (line numbers as on disk)
    src/click/core.py (3681 lines)
      1050 class Command  # The command is the basic type of command in Click.
      1120   def parse_args(self, ctx: Context, args: list[str]) -> list[str]

When every path does not fit its share, directories far from the candidates are folded into
`dir/ (N files)` lines. A skeleton that does not fit whole keeps the definitions the ranking scored
(and the classes around them).
"""

from __future__ import annotations

from collections.abc import Callable

from .index import RepoIndex
from .models import RepoMap, Symbol
from .rank import Ranking
from .render import PLAIN, Block, Renderer

PATH_SHARE = 0.35  # of the map budget, at most, for the path listing
SKELETON_SHARE = 0.5  # a whole skeleton takes at most this share of what is left, else only its scored definitions


def _estimate(text: str) -> int:
    return (len(text) + 3) // 4


def skeleton_line(sym: Symbol, depth: int) -> str:
    doc = f"  # {sym.doc}" if sym.doc else ""
    return f"{sym.start_line:>6} {'  ' * depth}{sym.signature}{doc}"


def file_skeleton(index: RepoIndex, path: str, keep: set[int] | None = None, renderer: Renderer = PLAIN) -> str:
    """Signature + first docstring line of each definition (only those in `keep` and their parents), as a block."""
    symbols = index.symbols(path)
    wanted: set[int] | None = None
    if keep is not None:
        wanted = set()
        for i in keep:
            while i >= 0 and i not in wanted:
                wanted.add(i)
                i = symbols[i].parent
    out = []
    for i, sym in enumerate(symbols):
        if sym.kind not in ("class", "function", "method"):
            continue
        if wanted is not None and i not in wanted:
            continue
        depth, parent = 0, sym.parent
        while parent >= 0:
            depth, parent = depth + 1, symbols[parent].parent
        out.append(skeleton_line(sym, depth))
    return renderer.block(Block(path, "\n".join(out), "skeleton", note=f"{index.indexed[path].lines} lines"))


def path_listing(paths: list[str], marked: set[str], depth: int | None = None, keep: set[str] | None = None) -> str:
    """Paths grouped by directory. With `depth`, a directory deeper than `depth` (and not in `keep`) is
    folded into its ancestor at that depth, shown as `ancestor/ (N files)`."""
    listed: dict[str, list[str]] = {}
    folded: dict[str, int] = {}
    keep = keep or set()
    for path in paths:
        directory, _, name = path.rpartition("/")
        level = directory.count("/") + 1 if directory else 0
        if depth is None or directory in keep or level <= depth:
            listed.setdefault(directory, []).append(name + ("*" if path in marked else ""))
        else:
            folded_at = "/".join(directory.split("/")[:depth]) if depth else "."
            folded[folded_at] = folded.get(folded_at, 0) + 1
    rows = []
    for directory in sorted(set(listed) | set(folded)):
        label = (directory + "/") if directory and directory != "." else "./"
        if directory in listed:
            rows.append(f"{label}: {' '.join(listed[directory])}")
        if directory in folded:
            rows.append(f"{label} (+{folded[directory]} files in subfolders)")
    return "\n".join(rows)


def repo_map(
    index: RepoIndex,
    ranking: Ranking,
    budget: int = 2_500,
    count_tokens: Callable[[str], int] = _estimate,
    *,
    max_skeletons: int = 8,
    renderer: Renderer = PLAIN,
    skip_skeletons: frozenset[str] = frozenset(),
) -> RepoMap:
    """Every path, then skeletons of the top-ranked Python files with definitions (not those in
    `skip_skeletons`, e.g. files the reader is shown whole anyway), within `budget`."""
    paths = sorted(index.indexed)
    marked = {f.path for f in ranking.files[:10] if f.score > 0}

    def paths_block(listing: str) -> str:
        return renderer.block(Block(".", listing, "paths", note="* = ranked candidates"))

    # -- paths: all of them, else fold deep directories (never those holding a candidate)
    path_budget = int(budget * PATH_SHARE)
    listing = path_listing(paths, marked)
    if count_tokens(paths_block(listing)) > path_budget:
        keep = {p.rpartition("/")[0] for p in marked}
        deepest = max((p.count("/") for p in paths), default=0)
        for depth in range(deepest - 1, -1, -1):
            listing = path_listing(paths, marked, depth, keep)
            if count_tokens(paths_block(listing)) <= path_budget:
                break
        if count_tokens(paths_block(listing)) > path_budget:
            listing = path_listing(sorted(marked), marked) + f"\n(and {len(paths) - len(marked)} more files)"
    head = renderer.heading("Files (indexed; * = ranked candidates)") + paths_block(listing)
    head += renderer.heading("Skeletons (line numbers as on disk)")
    used = count_tokens(head)
    parts: list[str] = []
    shown: list[str] = []
    scored: dict[str, set[int]] = {}
    for path, number in ranking.region_scores:
        scored.setdefault(path, set()).add(number)
    candidates = [f for f in ranking.files if f.path not in skip_skeletons][:max_skeletons]
    for f in candidates:
        if f.score <= 0 or f.path not in index.indexed or index.files[f.path].language != "python":
            continue
        if not any(sym.kind in ("class", "function", "method") for sym in index.symbols(f.path)):
            continue
        room = (budget - used) * SKELETON_SHARE
        full = file_skeleton(index, f.path, renderer=renderer)
        cost = count_tokens(full)
        if cost > room:
            # only the definitions the ranking scored, best first, as many as fit (with their classes)
            scored_here = [
                i for i in scored.get(f.path, set()) if index.symbol(f.path, i).kind in ("class", "function", "method")
            ]
            ordered = sorted(scored_here, key=lambda i: (-ranking.region_scores.get((f.path, i), 0.0), i))
            chosen: set[int] = set()
            for i in ordered:
                if count_tokens(file_skeleton(index, f.path, chosen | {i}, renderer)) > room:
                    break
                chosen.add(i)
            if not chosen:
                continue
            full = file_skeleton(index, f.path, chosen, renderer)
            cost = count_tokens(full)
        parts.append(full)
        used += cost
        shown.append(f.path)
    text = head + "".join(parts)
    while parts and count_tokens(text) > budget:  # counters need not be additive: drop from the end
        parts.pop()
        shown.pop()
        text = head + "".join(parts)
    return RepoMap(text=text, tokens=count_tokens(text), paths=len(paths), skeletons=shown)
