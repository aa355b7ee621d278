"""Localization over the index (pure): the deterministic fallback, resolving a model's answer to line
spans, and putting a localization first in a ranking.

The `localize` stage (quorum.stages.localize) asks a cheap long-context model which files and symbols
a task is about; `localize_fallback` answers the same question from the ranking alone, and stands in
whenever the model's answer cannot be used.
"""

from __future__ import annotations

from .index import RepoIndex
from .models import Localization, RankedFile, RankedRegion, SymbolRef
from .rank import Ranking

DEFINITIONS = ("class", "function", "method")


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
        if region.path in edit and region.kind in DEFINITIONS:
            symbols.append(
                SymbolRef(
                    path=region.path, qualname=region.qualname, start_line=region.start_line, end_line=region.end_line
                )
            )
            if len(symbols) >= max_symbols:
                break
    return Localization(read_files=read, edit_files=edit, symbols=symbols, source="deterministic")


def find_symbol(index: RepoIndex, path: str, name: str) -> int | None:
    """The definition `name` names in `path`: its qualified name, else a unique `.name` suffix or bare name."""
    if path not in index.indexed:
        return None
    symbols = index.symbols(path)
    exact = [i for i, sym in enumerate(symbols) if sym.kind in DEFINITIONS and sym.qualname == name]
    if exact:
        return exact[0]
    loose = [i for i, sym in enumerate(symbols)
             if sym.kind in DEFINITIONS and (sym.qualname.endswith("." + name) or sym.name == name)]  # fmt: skip
    return loose[0] if len(loose) == 1 else None


def resolve_localization(index: RepoIndex, localization: Localization) -> Localization:
    """Symbols resolved to their line spans in the index; files and symbols that are not in it are dropped
    with a note (a file to create belongs in `new_files`)."""
    notes = list(localization.notes)
    edit = [p for p in localization.edit_files if p in index.indexed]
    read = [p for p in localization.read_files if p in index.indexed]
    missing = [p for p in [*localization.edit_files, *localization.read_files] if p not in index.indexed]
    if missing:
        notes.append(f"not indexed, left out: {', '.join(dict.fromkeys(missing))}")
    symbols: list[SymbolRef] = []
    unresolved: list[str] = []
    for ref in localization.symbols:
        number = find_symbol(index, ref.path, ref.qualname)
        if number is None:
            unresolved.append(f"{ref.path}:{ref.qualname}")
            continue
        sym = index.symbol(ref.path, number)
        symbols.append(ref.model_copy(update={"qualname": sym.qualname, "start_line": sym.start_line,
                                              "end_line": sym.end_line}))  # fmt: skip
    if unresolved:
        notes.append(f"symbols not found, left out: {', '.join(unresolved[:10])}")
    return localization.model_copy(update={"edit_files": edit, "read_files": read, "symbols": symbols, "notes": notes})


def apply_localization(index: RepoIndex, ranking: Ranking, localization: Localization) -> Ranking:
    """The ranking with the localization first: its files to edit, then to read, then its symbols' regions
    (edit before read), each with the reason; the rest keep their order and evidence."""
    loc = resolve_localization(index, localization)
    label = "model" if loc.source == "model" else "deterministic"
    top_file = max((f.score for f in ranking.files), default=0.0)
    top_region = max((r.score for r in ranking.regions), default=0.0)
    by_path = {f.path: f for f in ranking.files}
    first: list[RankedFile] = []
    localized = [(p, "edit") for p in loc.edit_files] + [(p, "read") for p in loc.read_files]
    seen: set[str] = set()
    for position, (path, why) in enumerate(localized):
        if path in seen:
            continue
        seen.add(path)
        old = by_path.get(path)
        first.append(RankedFile.model_construct(
            path=path, score=round(top_file + 1.0 + 0.01 * (len(localized) - position), 4),
            reasons=[f"localized ({label}): {why}", *(old.reasons if old else [])],
        ))  # fmt: skip
    files = first + [f for f in ranking.files if f.path not in seen]

    region_scores = dict(ranking.region_scores)
    by_region = {(r.path, r.start_line, r.end_line, r.qualname): r for r in ranking.regions}
    first_regions: list[RankedRegion] = []
    placed: set[tuple] = set()
    ordered = sorted(loc.symbols, key=lambda ref: not ref.edit)
    for position, ref in enumerate(ordered):
        number = find_symbol(index, ref.path, ref.qualname)
        if number is None:
            continue
        sym = index.symbol(ref.path, number)
        key = (sym.path, sym.start_line, sym.end_line, sym.qualname)
        if key in placed:
            continue
        placed.add(key)
        score = round(top_region + 1.0 + 0.01 * (len(ordered) - position), 4)
        old = by_region.get(key)
        first_regions.append(RankedRegion.model_construct(
            path=sym.path, qualname=sym.qualname, kind=sym.kind, start_line=sym.start_line, end_line=sym.end_line,
            score=score, reasons=[f"localized ({label}): {'edit' if ref.edit else 'read'}", *(old.reasons if old else [])],
        ))  # fmt: skip
        region_scores[(sym.path, number)] = score
    regions = first_regions + [r for r in ranking.regions if (r.path, r.start_line, r.end_line, r.qualname) not in placed]
    return Ranking(query=ranking.query, files=files, regions=regions, region_scores=region_scores)
