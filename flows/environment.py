"""Before round 1: the repository's own test environment, and the baseline of its tests on the base.

Composition only: `environment` (build or reuse, its own task: log and duration in the UI), then
`baseline` (the suite on the unmodified base, failures re-run once; for a SWE-bench instance also
FAIL_TO_PASS + PASS_TO_PASS on base + test_patch). A repository that declares no dependency gets
status `none` and is verified as before. A failed build is `env_error`: the task ends with that
reason before any model is paid, and never as a patch failure.
"""

from __future__ import annotations

from quorum.domain.artifacts import environment_artifacts, task_prefix
from quorum.domain.manifest import TaskSpec
from quorum.domain.run import RunContext
from quorum.environments.task_env import PreparedEnvironment, summary_of
from quorum.tasks.environment import baseline_task, environment_task
from quorum.tasks.store import save_artifacts_task
from quorum.tasks.workspace import prepare_task

ENV_ERROR = "env_error"


def prepare_environment(spec: TaskSpec, run: RunContext, work_root: str) -> PreparedEnvironment:
    """The task's environment with its baselines; its summary, build log and baseline go to the store."""
    workspace = prepare_task(spec, work_root, purpose="environment").path
    force = spec.instance is not None  # an instance is judged by node ids: always its own environment
    prepared = environment_task(workspace, spec.environment, force=force, label=spec.id)
    if prepared.active:
        prepared = baseline_task(prepared, workspace, spec.instance, label=spec.id)
    if prepared.status != "none":
        save_artifacts_task(
            run.store,
            environment_artifacts(task_prefix(run.batch_id, spec.id), summary_of(prepared, spec.instance),
                                  prepared.log, prepared.baseline),
            label=f"{spec.id} environment",
        )  # fmt: skip
    return prepared
