"""The check run after every step of placing edits, before anything is written."""

from __future__ import annotations

from quorum.edits.locate import Splice


def verify_step(
    old: list[str], new: list[str], new_added: list[bool], old_added: list[bool], splices: list[Splice]
) -> list[str]:
    """Independent check of a step: every added line is where it was meant to go, and nothing else changed.

    1. Removing the lines this step added from the new file must give the old file minus the lines
       this step removed (so no other line changed, moved or vanished).
    2. The added lines, read back from the new file in order, are exactly the hunks' added lines.
    """
    problems: list[str] = []
    removed = {index for splice in splices for index in splice.removed}
    kept_old = [line for index, line in enumerate(old) if index not in removed]
    fresh: list[int] = []
    position = 0
    by_start = sorted(splices, key=lambda s: s.start)
    cursor_old = 0
    for splice in by_start:
        position += splice.start - cursor_old
        for offset, flag in enumerate(splice.added):
            if flag:
                fresh.append(position + offset)
        position += len(splice.new)
        cursor_old = splice.start + splice.length
    fresh_set = set(fresh)
    kept_new = [line for index, line in enumerate(new) if index not in fresh_set]
    if kept_new != kept_old:
        problems.append("lines other than the edited ones would change")
    wanted = [text for splice in by_start for text, flag in zip(splice.new, splice.added) if flag]
    got = [new[index] for index in fresh if index < len(new)]
    if got != wanted:
        problems.append("the added lines would not land where the edit puts them")
    if not all(new_added[index] for index in fresh if index < len(new_added)):
        problems.append("added-line bookkeeping is inconsistent")
    return problems
