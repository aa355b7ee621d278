"""The plan stage as a cached, retryable Prefect task."""

from __future__ import annotations

from prefect import task

from quorum.domain.manifest import TaskSpec
from quorum.domain.roster import StageModel
from quorum.stages.plan import PROMPT_VERSION, PlanOutput, run_plan
from quorum.tasks.llm_options import LLM_TASK_OPTIONS, log_stage


@task(name="plan", task_run_name="plan · {spec.id} · {planner.model}", **LLM_TASK_OPTIONS)
def plan_task(spec: TaskSpec, planner: StageModel, context: str, prompt_version: str = PROMPT_VERSION) -> PlanOutput:
    planned = run_plan(spec, planner, context)
    log_stage("plan", planned.calls, f"{len(planned.plan.steps)} steps, {len(planned.plan.files_to_change)} files to change")
    return planned
