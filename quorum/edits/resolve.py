"""Settle hunks whose content matches several places: by the order of the hunks, then by confirmed line numbers.

Neither ever places a hunk whose content matches nowhere; each only picks one of the places the
content matches, and only when exactly one is consistent. What stays ambiguous is refused.
"""

from __future__ import annotations

import itertools
import re

from quorum.edits.locate import MAX_ALTERNATIVES, FileView, Located, Placement, locate
from quorum.edits.models import Hunk, Op


def resolve_ambiguous(view: FileView, hunks: list[Hunk], found: list[Located], eol: str) -> None:
    """Hunks are listed in file order: use that to place ambiguous hunks among their neighbours.

    Only when the hunks placed uniquely are themselves in listed order. A candidate place of a hunk
    is kept when some placement of the hunks before it ends before it and some placement of the
    hunks after it starts after it (interval chains: exact). A hunk left with one place is placed
    ("hunk order"). Ambiguous hunks are also looked for again between their placed neighbours.
    Then `_resolve_by_numbers` may settle what is still ambiguous.
    """
    if any(f.status == "ambiguous" for f in found):
        for _ in range(len(found) + 2):
            if not _order_pass(view, hunks, found, eol):
                break
    _resolve_by_numbers(view, hunks, found, eol)


def _order_pass(view: FileView, hunks: list[Hunk], found: list[Located], eol: str) -> bool:
    """One round of narrowing by order; True when it placed a hunk."""
    spans = [f.placement.span if f.status == "unique" and f.placement else None for f in found]
    known = [sp for sp in spans if sp is not None]
    if any(a[1] > b[0] for a, b in itertools.pairwise(known)):
        return False  # the listed order is not the file order: do not use it
    changed = False
    # 1. Look for ambiguous hunks again between their placed neighbours.
    for index, located in enumerate(found):
        if located.status != "ambiguous":
            continue
        before = [sp for sp in spans[:index] if sp is not None]
        after = [sp for sp in spans[index + 1 :] if sp is not None]
        lo = before[-1][1] if before else 0
        hi = after[0][0] if after else len(view.lines)
        if lo == 0 and hi == len(view.lines):
            continue
        narrowed = locate(view, hunks[index], window=(lo, hi), eol=eol)
        if narrowed.status == "unique" and narrowed.placement is not None:
            narrowed.placement.placed_by = "hunk order"
            found[index] = narrowed
            spans[index] = narrowed.placement.span
            changed = True
        elif narrowed.status == "ambiguous" and len(narrowed.alternatives) < len(located.alternatives):
            found[index] = narrowed
    # 2. Chain feasibility over every hunk with a known list of places.
    options: list[list[Placement] | None] = []
    for located in found:
        if located.status == "unique" and located.placement is not None:
            options.append([located.placement])
        elif located.status == "ambiguous" and len(located.alternatives) < MAX_ALTERNATIVES:
            options.append(located.alternatives)
        else:
            options.append(None)
    chain = [i for i, o in enumerate(options) if o is not None]
    min_end: dict[int, int] = {}
    last = 0
    for i in chain:
        ends = [p.span[1] for p in options[i] or [] if p.span[0] >= last]
        if not ends:
            return changed  # no placement in listed order exists
        last = min_end[i] = min(ends)
    max_start: dict[int, int] = {}
    first = len(view.lines)
    for i in reversed(chain):
        starts = [p.span[0] for p in options[i] or [] if p.span[1] <= first]
        if not starts:
            return changed
        first = max_start[i] = max(starts)
    for position, i in enumerate(chain):
        if found[i].status != "ambiguous":
            continue
        lo = min_end[chain[position - 1]] if position else 0
        hi = max_start[chain[position + 1]] if position + 1 < len(chain) else len(view.lines)
        feasible = [p for p in options[i] or [] if p.span[0] >= lo and p.span[1] <= hi]
        if len(feasible) == 1:
            feasible[0].placed_by = "hunk order"
            found[i] = Located(status="unique", placement=feasible[0])
            changed = True
    return changed


_NUMBERS = re.compile(r"^@@+ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _resolve_by_numbers(view: FileView, hunks: list[Hunk], found: list[Located], eol: str) -> None:
    """Line numbers never place a hunk on their own; they may pick one of the places its content matches.

    Only for a hunk with context lines and numbers in its @@ header, without elisions, and only when
    the numbers are confirmed: every hunk of the same diff placed by its content alone lies exactly
    where its own numbers say, give or take one common offset (0 when no other hunk is placed). The
    hunk is then placed where its numbers plus that offset point, if the content matches there.
    """
    offsets = set()
    for hunk, located in zip(hunks, found):
        numbers = _NUMBERS.match(hunk.header)
        placement = located.placement
        by_content = located.status == "unique" and placement and placement.placed_by == "content"
        if by_content and numbers and placement.chunks == 1:
            offsets.add(placement.span[0] - (int(numbers.group(1)) - 1))
    if len(offsets) > 1:
        return  # the numbers disagree with the content: not trusted
    offset = offsets.pop() if offsets else 0
    for index, (hunk, located) in enumerate(zip(hunks, found)):
        numbers = _NUMBERS.match(hunk.header)
        if located.status != "ambiguous" or not numbers:
            continue
        if not any(line.op == Op.context for line in hunk.lines) or any(line.op == Op.elision for line in hunk.lines):
            continue
        target = int(numbers.group(1)) - 1 + offset
        size = sum(1 for line in hunk.lines if line.op != Op.added)
        if target < 0 or size == 0:
            continue
        there = locate(view, hunk, window=(target, target + size), eol=eol)
        if (
            there.status == "unique"
            and there.placement is not None
            and there.placement.span[0] == target
            and there.placement.match == located.alternatives[0].match  # no looser match than the ambiguous ones
        ):
            there.placement.placed_by = "line numbers"
            found[index] = there
