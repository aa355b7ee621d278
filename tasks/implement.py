"""The implement stage as a cached, retryable Prefect task."""

from __future__ import annotations

from prefect import task

from quorum.domain.manifest import TaskSpec
from quorum.domain.models import Finding, Plan
from quorum.domain.roster import StageModel
from quorum.stages.implement import PROMPT_VERSION, ImplementOutput, run_implement
from quorum.tasks.llm_options import LLM_TASK_OPTIONS


@task(name="implement", task_run_name="implement · {spec.id} · round {round_no} · {implementer.model}", **LLM_TASK_OPTIONS)
def implement_task(
    spec: TaskSpec,
    implementer: StageModel,
    context: str,
    plan: Plan,
    round_no: int,
    feedback: list[str],
    findings: list[Finding],
    prompt_version: str = PROMPT_VERSION,
) -> ImplementOutput:
    return run_implement(spec, implementer, context, plan, round_no, feedback, findings)
