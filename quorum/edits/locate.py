"""Place a hunk in a file by its content alone (pure: lists of strings in, a placement or a refusal out).

A hunk's old side (context and removed lines) must appear in the file. Tried in this order, the
first that finds anything wins:

1. literally (an `... existing code ...` line, if any, taken as an ordinary line), then with each
   such line standing for zero or more unchanged lines ("elision");
2. within each: exact (line endings aside), then "whitespace" (trailing whitespace and runs of
   inner spaces ignored, indentation kept), then "indent" (all whitespace amounts ignored);
3. within each: with the hunk's soft tail (trailing blank/unprefixed context lines), then without.

The result must be unique: the changed parts of the hunk (removed lines, and where added lines go)
must land in exactly one place. Unchanged anchor parts of an elided hunk may match in several
places as long as the changes do not move. More than one place: "ambiguous" (the caller may still
narrow it down by the order of the hunks). A hunk that adds lines without any old line to anchor
them (0 context lines, or added lines between two elisions) cannot be placed.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from quorum.edits.models import Hunk, HunkLine, MatchKind, Op

TIERS = (MatchKind.exact, MatchKind.whitespace, MatchKind.indent)
MAX_ALTERNATIVES = 64


def key(text: str, tier: MatchKind) -> str:
    if tier == MatchKind.exact:
        return text
    if not text.strip():
        return ""
    if tier == MatchKind.whitespace:
        stripped = text.lstrip()
        return text[: len(text) - len(stripped)] + " ".join(stripped.split())
    return " ".join(text.split())


@dataclass
class Chunk:
    """A run of hunk lines between elisions."""

    lines: list[HunkLine]

    @property
    def old(self) -> list[str]:
        return [line.text for line in self.lines if line.op != Op.added]

    @property
    def changing(self) -> bool:
        return any(line.op in (Op.removed, Op.added) for line in self.lines)


@dataclass
class Splice:
    """Replace file[start:start+length] with `new` (raw texts); `added[i]` tells which are added lines."""

    start: int
    length: int
    new: list[str]
    added: list[bool]
    removed: list[int]  # file indices of removed lines
    no_eol: bool = False  # the last new line was marked '\ No newline at end of file'
    eol_marked: bool = False  # the hunk carried any '\ No newline' marker


@dataclass
class Placement:
    match: MatchKind
    tier: MatchKind
    splices: list[Splice]
    span: tuple[int, int]  # old-file lines [start, end) covered by the changing parts
    dropped_tail: int = 0
    reindent: int = 0  # columns added to the added lines (indent tier)
    placed_by: str = "content"
    chunks: int = 1


@dataclass
class Located:
    status: str  # "unique", "ambiguous", "missing", "unplaceable"
    placement: Placement | None = None
    alternatives: list[Placement] = field(default_factory=list)  # for "ambiguous": the places (up to a few)
    detail: str = ""


class FileView:
    """A file's lines with their keys per tier, computed once.

    `raw` lines have no '\n' but keep a '\r' (CRLF files); `lines` are compared, without the '\r'.
    """

    def __init__(self, raw: list[str]):
        self.raw = raw
        self.lines = [line.removesuffix("\r") for line in raw]
        self._keys: dict[MatchKind, list[str]] = {}
        self._index: dict[MatchKind, dict[str, list[int]]] = {}

    def keys(self, tier: MatchKind) -> list[str]:
        if tier not in self._keys:
            self._keys[tier] = [key(line, tier) for line in self.lines]
            index: dict[str, list[int]] = {}
            for position, value in enumerate(self._keys[tier]):
                index.setdefault(value, []).append(position)
            self._index[tier] = index
        return self._keys[tier]

    def candidates(self, old: list[str], tier: MatchKind, lo: int, hi: int) -> list[int]:
        """Start positions p in [lo, hi - len(old)] where every old line matches at this tier."""
        keys = self.keys(tier)
        wanted = [key(text, tier) for text in old]
        if not wanted:
            return []
        out = []
        for position in self._index[tier].get(wanted[0], []):
            if position < lo or position + len(wanted) > hi:
                continue
            if keys[position : position + len(wanted)] == wanted:
                out.append(position)
        return out


def locate(view: FileView, hunk: Hunk, *, window: tuple[int, int] | None = None, eol: str = "") -> Located:
    """Find the one place this hunk applies in `view` (within `window`, old-file line range)."""
    lo, hi = window if window is not None else (0, len(view.lines))
    passes = [False]
    if any(line.op == Op.elision for line in hunk.lines):
        passes.append(True)
    tails = [0] + ([hunk.soft_tail] if hunk.soft_tail else [])
    first_failure: Located | None = None
    for elide in passes:
        for tier in TIERS:
            for drop in tails:
                lines = hunk.lines[: len(hunk.lines) - drop] if drop else hunk.lines
                chunks = _chunks(lines, elide)
                if chunks is None:
                    first_failure = first_failure or Located(
                        status="unplaceable",
                        detail="it adds lines between two '...' lines (or right after a '...' line at its end), "
                        "so nothing says where they go",
                    )
                    continue
                if not any(c.old for c in chunks):
                    if not view.lines and not window:
                        return Located(status="unique", placement=_whole(chunks, tier, eol))
                    return Located(
                        status="unplaceable",
                        detail="it has no context or removed lines, so nothing says where its added lines go",
                    )
                if any(not c.old for c in chunks if c.changing):
                    return Located(
                        status="unplaceable",
                        detail="some added lines have no unchanged line next to them to anchor them",
                    )
                found = _assignments(view, chunks, tier, lo, hi)
                if not found:
                    continue
                match = MatchKind.elision if elide else tier
                placements = [_placement(view, chunks, positions, tier, match, drop, eol) for positions in found]
                if len(placements) == 1:
                    return Located(status="unique", placement=placements[0])
                return Located(status="ambiguous", alternatives=placements)
    return first_failure or Located(status="missing")


def _chunks(lines: list[HunkLine], elide: bool) -> list[Chunk] | None:
    if not elide:
        return [Chunk([HunkLine(op=Op.context, text=l.text) if l.op == Op.elision else l for l in lines])]
    chunks: list[Chunk] = []
    current: list[HunkLine] = []
    for line in lines:
        if line.op == Op.elision:
            chunks.append(Chunk(current))
            current = []
        else:
            current.append(line)
    chunks.append(Chunk(current))
    chunks = [c for c in chunks if c.lines]
    for chunk in chunks:
        if chunk.changing and not chunk.old:
            return None
    return chunks


def _whole(chunks: list[Chunk], tier: MatchKind, eol: str) -> Placement:
    lines = [l for c in chunks for l in c.lines]
    new = [l.text + eol for l in lines if l.op == Op.added]
    marked = any(l.no_eol for l in lines)
    splice = Splice(0, 0, new, [True] * len(new), [], no_eol=bool(lines and lines[-1].no_eol), eol_marked=marked)
    return Placement(match=tier, tier=tier, splices=[splice], span=(0, 0))


def _assignments(view: FileView, chunks: list[Chunk], tier: MatchKind, lo: int, hi: int) -> list[tuple[int, ...]]:
    """Distinct placements of the chunks, in order and without overlap (up to MAX_ALTERNATIVES).

    Two assignments that differ only in where unchanged anchor chunks sit count as one.
    Returned tuples hold a position for every chunk (the first found for anchors).
    """
    cands = [view.candidates(c.old, tier, lo, hi) for c in chunks]
    if any(not c for c in cands):
        return []
    sizes = [len(c.old) for c in chunks]
    # suffix[i][j]: {change-key: full positions from chunk i on} for chunk i placed at cands[i][j] or later.
    suffix: list[list[dict[tuple[int, ...], tuple[int, ...]]]] = [[] for _ in chunks]
    for i in range(len(chunks) - 1, -1, -1):
        rows: list[dict[tuple[int, ...], tuple[int, ...]]] = [{} for _ in range(len(cands[i]) + 1)]
        for j in range(len(cands[i]) - 1, -1, -1):
            position = cands[i][j]
            here: dict[tuple[int, ...], tuple[int, ...]] = {}
            if i == len(chunks) - 1:
                here[(position,) if chunks[i].changing else ()] = (position,)
            else:
                nxt = bisect.bisect_left(cands[i + 1], position + sizes[i])
                for change_key, full in suffix[i + 1][nxt].items():
                    ck = ((position,) + change_key) if chunks[i].changing else change_key
                    here.setdefault(ck, (position,) + full)
            merged = dict(rows[j + 1])
            for ck, full in here.items():
                if len(merged) >= MAX_ALTERNATIVES:
                    break
                merged.setdefault(ck, full)
            rows[j] = merged
        suffix[i] = rows
    return list(suffix[0][0].values())


def _placement(
    view: FileView, chunks: list[Chunk], positions: tuple[int, ...], tier: MatchKind, match: MatchKind, drop: int, eol: str
) -> Placement:
    splices: list[Splice] = []
    spans: list[tuple[int, int]] = []
    shift_columns = 0
    for chunk, position in zip(chunks, positions):
        if not chunk.changing:
            continue
        reindent = _reindent_rule(view, chunk, position) if tier == MatchKind.indent else None
        if reindent is not None:
            shift_columns = reindent[0]
        new: list[str] = []
        added: list[bool] = []
        removed: list[int] = []
        cursor = position
        for line in chunk.lines:
            if line.op == Op.added:
                text = _apply_reindent(line.text, reindent) if reindent else line.text
                new.append(text + eol)
                added.append(True)
            elif line.op == Op.removed:
                removed.append(cursor)
                cursor += 1
            else:
                new.append(view.raw[cursor])
                added.append(False)
                cursor += 1
        new_lines = [l for l in chunk.lines if l.op != Op.removed]
        splices.append(
            Splice(
                start=position,
                length=len(chunk.old),
                new=new,
                added=added,
                removed=removed,
                no_eol=bool(new_lines and new_lines[-1].no_eol),
                eol_marked=any(l.no_eol for l in chunk.lines),
            )
        )
        spans.append((position, position + len(chunk.old)))
    span = (min(s for s, _ in spans), max(e for _, e in spans)) if spans else (0, 0)
    return Placement(
        match=match, tier=tier, splices=splices, span=span, dropped_tail=drop, reindent=shift_columns, chunks=len(chunks)
    )


def _width(indent: str) -> int:
    return len(indent.expandtabs(4))


def _lead(text: str) -> str:
    return text[: len(text) - len(text.lstrip(" \t"))]


def _reindent_rule(view: FileView, chunk: Chunk, position: int) -> tuple[int, bool] | None:
    """(columns to add, use tabs) when the whole chunk is shifted uniformly against the file, else None.

    Only a uniform shift of every non-blank old line says the added lines were shifted too; when
    only some lines drifted, the added lines are taken as written.
    """
    deltas = set()
    file_tabs = False
    cursor = position
    for line in chunk.lines:
        if line.op == Op.added:
            continue
        file_line = view.lines[cursor]
        cursor += 1
        if not line.text.strip() or not file_line.strip():
            continue
        file_lead, hunk_lead = _lead(file_line), _lead(line.text)
        file_tabs = file_tabs or "\t" in file_lead
        deltas.add(_width(file_lead) - _width(hunk_lead))
    if len(deltas) != 1:
        return None
    delta = deltas.pop()
    added_use_tabs = any("\t" in _lead(l.text) for l in chunk.lines if l.op == Op.added)
    if delta == 0 and file_tabs == added_use_tabs:
        return None
    return delta, file_tabs


def _apply_reindent(text: str, rule: tuple[int, bool]) -> str:
    if not text.strip():
        return text
    delta, tabs = rule
    lead = _lead(text)
    width = max(0, _width(lead) + delta)
    new_lead = ("\t" * (width // 4) + " " * (width % 4)) if tabs else " " * width
    return new_lead + text[len(lead) :]
