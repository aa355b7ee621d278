"""How large each stage's prompt is, measured by building the real prompts (for budget checks and estimates).

Before a stage runs, the pipeline knows its real context and measures its real prompt (`*_prompt_chars`).
A dry run has no model answers yet, so `estimated_prompt_sizes` builds every stage's context as the
pipeline would (each model's budget and tokenizer), with the deterministic localization standing in
for the localizer's, a placeholder plan, and for reviewers the localized edit targets with their tests
(as the patched regions will be) next to a placeholder patch.
"""

from __future__ import annotations

import os

from quorum.domain.edit_format import EditFormat
from quorum.domain.estimate import (
    TYPICAL_PATCH_CHARS,
    TYPICAL_PLAN_CHARS,
    TYPICAL_REPORT_CHARS,
    PromptSizes,
    messages_chars,
)
from quorum.domain.models import Plan, PlanStep
from quorum.domain.roster import Roster
from quorum.stages.implement import build_implement_messages
from quorum.stages.localize import build_localize_messages
from quorum.stages.plan import build_plan_messages
from quorum.llm.prompt_cache import stable_prefix
from quorum.stages.prompting import PROMPT_RENDERER
from quorum.stages.review import build_review_messages


# The whole-file instructions include the SEARCH/REPLACE ones (for longer files): the longest prompt,
# so the estimate holds whatever format the roster asks for.
LONGEST_INSTRUCTIONS = EditFormat.whole_file


def _placeholder_plan() -> Plan:
    return Plan(summary="x" * (TYPICAL_PLAN_CHARS // 2), steps=[PlanStep(description="x" * (TYPICAL_PLAN_CHARS // 2))])


def localize_prompt_chars(task_text: str, map_text: str) -> int:
    return messages_chars(build_localize_messages(task_text, map_text))


def plan_prompt_chars(task_text: str, context: str) -> int:
    return messages_chars(build_plan_messages(task_text, context))


def implement_prompt_chars(task_text: str, context: str, plan: Plan, edit_format: EditFormat = LONGEST_INSTRUCTIONS) -> int:
    return messages_chars(build_implement_messages(task_text, context, plan, 1, [], [], edit_format=edit_format))


def review_prompt_chars(task_text: str, context: str, plan: Plan, diff: str, tool_report: str) -> int:
    return messages_chars(build_review_messages(task_text, context, plan, diff, tool_report))


def implement_stable_chars(task_text: str, context: str, plan: Plan, edit_format: EditFormat = LONGEST_INSTRUCTIONS) -> int:
    """Characters of the implementer's prompt that every round repeats (what a prompt cache can serve)."""
    return len(stable_prefix(build_implement_messages(task_text, context, plan, 1, [], [], edit_format=edit_format)))


def review_stable_chars(task_text: str, plan: Plan) -> int:
    """Characters of a reviewer's prompt that every round repeats (system, task, plan)."""
    return len(stable_prefix(build_review_messages(task_text, "", plan, "", "")))


def estimated_prompt_sizes(
    task_text: str, workspace: str | os.PathLike, index_cache: str | os.PathLike | None, roster: Roster
) -> PromptSizes:
    """Every stage's prompt size for a task on a prepared workspace, without a model call (see module doc)."""
    from quorum.context import views
    from quorum.llm.tokens import token_counter

    render = PROMPT_RENDERER
    localize_chars = 0
    if roster.localizer is not None:
        given = views.localize_input(workspace, index_cache, task_text, roster.localizer.context_budget("localize"),
                                     token_counter(roster.localizer), render)  # fmt: skip
        localize_chars = localize_prompt_chars(task_text, given.map_text)
        localization = given.fallback
    else:
        localization = views.deterministic_localization(workspace, index_cache, task_text)
    planner = views.planner_view(workspace, index_cache, task_text, localization,
                                 roster.planner.context_budget("plan"), token_counter(roster.planner), render)  # fmt: skip
    plan = _placeholder_plan()
    implementer = views.implementer_view(
        workspace, index_cache, task_text, "", [], localization, roster.implementer.context_budget("implement"),
        token_counter(roster.implementer), render,
    )  # fmt: skip
    patch, report = "x" * TYPICAL_PATCH_CHARS, "x" * TYPICAL_REPORT_CHARS
    reviews = []
    for reviewer in roster.reviewers:
        count = token_counter(reviewer)
        budget = max(0, reviewer.context_budget("review") - count(patch))
        regions = views.implementer_view(workspace, index_cache, task_text, "", [], localization, budget, count, render)
        reviews.append(review_prompt_chars(task_text, regions.text, plan, patch, report))
    return PromptSizes(
        localize=localize_chars,
        plan=plan_prompt_chars(task_text, planner.text),
        implement=implement_prompt_chars(task_text, implementer.text, plan, roster.implementer.resolved_edit_format),
        review=reviews,
        implement_stable=implement_stable_chars(task_text, implementer.text, plan, roster.implementer.resolved_edit_format),
        review_stable=[review_stable_chars(task_text, plan)] * len(reviews),
    )
