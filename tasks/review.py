"""Review stage: an independent model reviews the patch with the verification reports in view."""

from __future__ import annotations

from prefect import task

from quorum.llm import ask_structured
from quorum.manifest import TaskSpec
from quorum.models import Plan, Review, ReviewResult, VerificationReport
from quorum.roster import StageModel
from tasks.llm_stage import LLM_TASK_OPTIONS
from tasks.implement import render_findings
from tasks.plan import render_plan_markdown
from tasks.prompting import DATA_RULE, stable_text, delimit, json_schema_hint, parse_model_reply, render_repository

PROMPT_VERSION = "review-2"


def render_tool_report(verification: list[VerificationReport]) -> str:
    """Verification as reviewers see it: stable text only (no durations), so review caching holds."""
    if not verification:
        return "(no verification reports)"
    return "\n".join(
        f"{report.tool}: {report.status.value} - {stable_text(report.summary)}\n{render_findings(report.findings)}"
        for report in verification
    )


def build_review_messages(
    task_text: str, files: dict[str, str], plan: Plan, diff: str, tool_report: str
) -> list[dict[str, str]]:
    system = (
        "You are an independent code reviewer. Review the patch against the task and plan: correctness, "
        "security, edge cases, tests. Report each problem as a finding with a severity (critical or high "
        "only for problems that must block merging), the file and line in the patched code, a short "
        "category slug and a message. The verdict is 'approve' unless you report a blocking finding. "
        f"{DATA_RULE}\nReply with one JSON object matching this JSON Schema: {json_schema_hint(Review)}"
    )
    parts = [
        delimit("task", task_text),
        delimit("plan", render_plan_markdown(plan)),
        delimit("patch", diff),
        delimit("report", tool_report),
        render_repository(files),
    ]
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def parse_review(text: str) -> Review:
    return parse_model_reply(text, Review)  # type: ignore[return-value]


@task(name="review", task_run_name="review · {spec.id} · round {round_no} · {reviewer.model}", **LLM_TASK_OPTIONS)
def review_task(
    spec: TaskSpec,
    reviewer: StageModel,
    files: dict[str, str],
    plan: Plan,
    diff: str,
    tool_report: str,
    round_no: int,
    prompt_version: str = PROMPT_VERSION,
) -> ReviewResult:
    messages = build_review_messages(spec.task, files, plan, diff, tool_report)
    review, calls = ask_structured("review", reviewer, messages, parse_review, script=spec.script, round_no=round_no)
    return ReviewResult(reviewer=reviewer.model, provider=reviewer.provider, review=review, calls=calls)
