"""Review stage: an independent model reviews the patch with the verification reports in view."""

from __future__ import annotations

import sys

from quorum.domain.manifest import TaskSpec
from quorum.domain.models import Plan, Review, ReviewResult, VerificationReport
from quorum.domain.roster import StageModel
from quorum.llm.client import ask_structured
from quorum.llm.prompt_cache import user_message
from quorum.stages import prompting
from quorum.stages.implement import render_findings
from quorum.stages.plan import render_plan_markdown
from quorum.stages.prompting import delimit, json_schema_hint, parse_model_reply, render_context, stable_text
from quorum.stages.templates import load_template


def render_tool_report(verification: list[VerificationReport]) -> str:
    """Verification as reviewers see it: stable text only (no durations), so review caching holds."""
    if not verification:
        return "(no verification reports)"
    return "\n".join(
        f"{report.tool}: {report.status.value} - {stable_text(report.summary)}\n{render_findings(report.findings)}"
        for report in verification
    )


def build_review_messages(
    task_text: str, context: str, plan: Plan, diff: str, tool_report: str
) -> list[dict[str, str]]:
    """`context`: the reviewer's repository context (the patched regions, callers and tests, after the patch).

    Stable first (task and plan: the same for every reviewer and every round), then what the round's patch
    decides (its regions, the patch, the reports)."""
    system = TEMPLATE.render("system", schema=json_schema_hint(Review))
    stable = [delimit("task", task_text), delimit("plan", render_plan_markdown(plan))]
    variable = [render_context(context), delimit("patch", diff), delimit("report", tool_report)]
    return [{"role": "system", "content": system}, user_message(stable, variable)]


def parse_review(text: str) -> Review:
    return parse_model_reply(text, Review)  # type: ignore[return-value]


def run_review(
    spec: TaskSpec, reviewer: StageModel, context: str, plan: Plan, diff: str, tool_report: str, round_no: int
) -> ReviewResult:
    messages = build_review_messages(spec.task, context, plan, diff, tool_report)
    review, calls = ask_structured("review", reviewer, messages, parse_review, script=spec.script, round_no=round_no,
                                  schema=Review)
    return ReviewResult(reviewer=reviewer.model, provider=reviewer.provider, review=review, calls=calls)


TEMPLATE = load_template("review", sys.modules[__name__], prompting)
PROMPT_VERSION = TEMPLATE.version
