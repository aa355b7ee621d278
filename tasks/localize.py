"""The localize stage as a cached, retryable Prefect task (its deterministic fallback is part of the stage)."""

from __future__ import annotations

from prefect import task

from quorum.context.models import Localization
from quorum.domain.manifest import TaskSpec
from quorum.domain.roster import StageModel
from quorum.stages.localize import PROMPT_VERSION, LocalizeOutput, run_localize
from quorum.tasks.llm_options import LLM_TASK_OPTIONS, log_stage


@task(name="localize", task_run_name="localize · {spec.id} · {localizer.model}", **LLM_TASK_OPTIONS)
def localize_task(
    spec: TaskSpec,
    localizer: StageModel,
    map_text: str,
    paths: list[str],
    fallback: Localization,
    prompt_version: str = PROMPT_VERSION,
) -> LocalizeOutput:
    localized = run_localize(spec, localizer, map_text, paths, fallback)
    where = localized.localization
    log_stage("localize", localized.calls, f"{len(where.edit_files)} file(s) to edit, {len(where.read_files)} to read ({where.source})")
    return localized
