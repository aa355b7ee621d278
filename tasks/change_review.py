"""The review of an existing change as a cached, retryable Prefect task (one run per reviewer)."""

from __future__ import annotations

from prefect import task

from quorum.domain.models import ReviewResult
from quorum.domain.roster import StageModel
from quorum.domain.story import review_detail
from quorum.stages.change_review import PROMPT_VERSION, run_change_review
from quorum.tasks.llm_options import LLM_TASK_OPTIONS, log_stage


@task(name="review-change", task_run_name="review · {label} · {reviewer.model}", **LLM_TASK_OPTIONS)
def review_change_task(
    reviewer: StageModel,
    description: str,
    diff: str,
    regions: dict[str, str],
    tool_report: str,
    script: str | None,
    script_sha256: str = "",
    label: str = "",
    prompt_version: str = PROMPT_VERSION,
) -> ReviewResult:
    """Its cache key is what the reviewer sees and its own model: nothing of the roster or the run."""
    reviewed = run_change_review(reviewer, description, diff, regions, tool_report, script)
    log_stage("review", reviewed.calls, review_detail(reviewed))
    return reviewed
