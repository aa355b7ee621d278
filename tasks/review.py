"""The review stage as a cached, retryable Prefect task (one run per reviewer)."""

from __future__ import annotations

from prefect import task

from quorum.domain.manifest import TaskSpec
from quorum.domain.models import Plan, ReviewResult
from quorum.domain.roster import StageModel
from quorum.domain.story import review_detail
from quorum.stages.review import PROMPT_VERSION, run_review
from quorum.tasks.llm_options import LLM_TASK_OPTIONS, log_stage


@task(name="review", task_run_name="review · {spec.id} · round {round_no} · {reviewer.model}", **LLM_TASK_OPTIONS)
def review_task(
    spec: TaskSpec,
    reviewer: StageModel,
    context: str,
    plan: Plan,
    diff: str,
    tool_report: str,
    round_no: int,
    prompt_version: str = PROMPT_VERSION,
) -> ReviewResult:
    reviewed = run_review(spec, reviewer, context, plan, diff, tool_report, round_no)
    log_stage("review", reviewed.calls, review_detail(reviewed))
    return reviewed
