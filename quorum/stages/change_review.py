"""Review of an existing change (``quorum review``): an independent model reviews a diff it did not write.

The same structured output (``Review``) and parser as the pipeline's review stage, so the same
policy aggregates it; the prompt differs: there is no plan, only the change's description, and
reviewers see the regions the change touches in the files *after* the change, with their line
numbers, so a finding's line is a line of the changed code (what labelled review sets score).
"""

from __future__ import annotations

import sys

from quorum.domain.models import Review, ReviewResult
from quorum.domain.roster import StageModel
from quorum.llm.client import ask_structured
from quorum.stages import prompting
from quorum.stages.prompting import delimit, json_schema_hint, render_repository
from quorum.stages.review import parse_review
from quorum.stages.templates import load_template

DEFAULT_RADIUS = 30
DEFAULT_MAX_CHARS = 60_000
NO_DESCRIPTION = "(no description was given; judge the change on its own)"


def _ranges(lines: list[int], radius: int, last: int) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for line in sorted(set(lines)):
        start, end = max(1, line - radius), min(last, line + radius)
        if start > end:
            continue
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def changed_regions(
    files: dict[str, str], touched: dict[str, list[int]], *, radius: int = DEFAULT_RADIUS, max_chars: int = DEFAULT_MAX_CHARS
) -> dict[str, str]:
    """For each changed file (its content after the change), the lines within `radius` of a touched line, numbered.

    Regions of one file are joined with a `...` line; files are taken in path order until `max_chars`
    is reached (a file that would not fit is left out whole, and later smaller ones may still fit).
    """
    regions: dict[str, str] = {}
    total = 0
    for path in sorted(files):
        lines = files[path].splitlines()
        spans = _ranges(touched.get(path, []), radius, len(lines)) or ([(1, min(len(lines), 2 * radius))] if lines else [])
        parts = []
        for start, end in spans:
            parts.append("\n".join(f"{number:>6}  {lines[number - 1]}" for number in range(start, end + 1)))
        text = "\n   ...\n".join(parts)
        if total + len(text) > max_chars:
            continue
        regions[path] = text
        total += len(text)
    return regions


def build_change_review_messages(
    description: str, diff: str, tool_report: str, regions: dict[str, str]
) -> list[dict[str, str]]:
    system = TEMPLATE.render("system", schema=json_schema_hint(Review))
    parts = [
        delimit("task", description.strip() or NO_DESCRIPTION),
        delimit("patch", diff),
        delimit("report", tool_report),
        render_repository(regions),
    ]
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def run_change_review(
    reviewer: StageModel, description: str, diff: str, regions: dict[str, str], tool_report: str, script: str | None
) -> ReviewResult:
    messages = build_change_review_messages(description, diff, tool_report, regions)
    review, calls = ask_structured("review", reviewer, messages, parse_review, script=script, round_no=1, schema=Review)
    return ReviewResult(reviewer=reviewer.model, provider=reviewer.provider, review=review, calls=calls)


TEMPLATE = load_template("change_review", sys.modules[__name__], prompting)
PROMPT_VERSION = TEMPLATE.version
