"""The implement stage as a cached, retryable Prefect task."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from quorum.domain.manifest import TaskSpec
from quorum.domain.models import Finding, Plan
from quorum.domain.roster import StageModel
from quorum.domain.story import implement_detail
from quorum.stages.implement import PROMPT_VERSION, ImplementOutput, run_implement
from quorum.tasks.llm_options import LLM_TASK_OPTIONS, log_stage

# The workspace is where replies are dry-run: a fresh temporary directory per run, so its path is
# left out of the cache key; `repo_digest` (its content, Workspace.files_digest) is in it.
IMPLEMENT_CACHE_POLICY = LLM_TASK_OPTIONS["cache_policy"] - "workspace"


@task(
    name="implement",
    task_run_name="implement · {spec.id} · round {round_no} · {implementer.model}",
    **{**LLM_TASK_OPTIONS, "cache_policy": IMPLEMENT_CACHE_POLICY},
)
def implement_task(
    spec: TaskSpec,
    implementer: StageModel,
    context: str,
    plan: Plan,
    round_no: int,
    feedback: list[str],
    findings: list[Finding],
    prompt_version: str = PROMPT_VERSION,
    repo_digest: str = "",
    workspace: str = "",
) -> ImplementOutput:
    """`workspace`: a clean copy of the repository whose content `repo_digest` names; replies are dry-run there."""
    if workspace and not repo_digest:
        raise ValueError("implement_task: a workspace needs its repo_digest (the cache key must name its content)")
    implemented = run_implement(spec, implementer, context, plan, round_no, feedback, findings, Path(workspace) if workspace else None)
    log_stage("implement", implemented.calls, implement_detail(implemented.diff, implemented.refused, dry_run=bool(workspace)))
    return implemented
