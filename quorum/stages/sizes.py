"""How large each stage's prompt is for a task, measured by building the real prompts (for estimates and budgets)."""

from __future__ import annotations

from quorum.domain.estimate import TYPICAL_PATCH_CHARS, TYPICAL_PLAN_CHARS, TYPICAL_REPORT_CHARS, messages_chars
from quorum.domain.edit_format import EditFormat
from quorum.domain.models import Plan, PlanStep
from quorum.stages.implement import build_implement_messages
from quorum.stages.plan import build_plan_messages
from quorum.stages.review import build_review_messages


# The whole-file instructions include the SEARCH/REPLACE ones (for longer files): the longest prompt,
# so the estimate holds whatever format the roster asks for.
LONGEST_INSTRUCTIONS = EditFormat.whole_file


def _placeholder_plan() -> Plan:
    return Plan(summary="x" * (TYPICAL_PLAN_CHARS // 2), steps=[PlanStep(description="x" * (TYPICAL_PLAN_CHARS // 2))])


def prompt_sizes(task_text: str, files: dict[str, str]) -> dict[str, int]:
    """Characters of each stage's prompt for this task, built with the stages' own prompt builders."""
    plan = _placeholder_plan()
    return {
        "plan": messages_chars(build_plan_messages(task_text, files)),
        "implement": messages_chars(
            build_implement_messages(task_text, files, plan, 1, [], [], edit_format=LONGEST_INSTRUCTIONS)
        ),
        "review": messages_chars(
            build_review_messages(task_text, files, plan, "x" * TYPICAL_PATCH_CHARS, "x" * TYPICAL_REPORT_CHARS)
        ),
    }
