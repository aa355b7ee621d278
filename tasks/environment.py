"""The repository's own test environment as Prefect tasks (thin wrappers over quorum.environments.task_env).

`environment` builds or reuses it (its log and duration show in the UI); `baseline` runs the tests on
the unmodified base; `repo-tests` and `instance-acceptance` run them on a patched workspace, judged
against the baseline; `evict-environments` trims the cache (nightly). Not cached by Prefect: the
environment cache and the baseline cache are keyed by content already.
"""

from __future__ import annotations

from prefect import task
from prefect.logging import get_run_logger

from quorum.domain.manifest import InstanceTests, TaskEnvironment
from quorum.domain.models import VerificationReport
from quorum.environments import task_env
from quorum.environments.build import EvictionReport, evict
from quorum.environments.task_env import PreparedEnvironment
from quorum.settings import settings


@task(name="environment", task_run_name="environment · {label}")
def environment_task(workspace: str, environment: TaskEnvironment, force: bool = False, label: str = "") -> PreparedEnvironment:
    prepared = task_env.prepare(workspace, environment, force=force)
    logger = get_run_logger()
    if prepared.status == "none":
        logger.info("no declared dependencies: the tests run as before, with quorum's interpreter")
    elif prepared.status == "env_error":
        logger.error("env_error: %s\n%s", prepared.error, prepared.log[-8000:])
    else:
        logger.info("environment %s %s (python %s) in %.2fs\n%s", prepared.key[:12], prepared.status,
                    prepared.python_version, prepared.duration_s, "\n".join(prepared.sources))  # fmt: skip
        if prepared.status == "built":
            logger.info("build log:\n%s", prepared.log[-8000:])
    return prepared


@task(name="baseline", task_run_name="baseline · {label}")
def baseline_task(
    prepared: PreparedEnvironment, workspace: str, instance: InstanceTests | None = None, label: str = ""
) -> PreparedEnvironment:
    result = task_env.take_baselines(prepared, workspace, instance)
    if result.baseline is not None:
        get_run_logger().info("%s (cached: %s)", result.baseline.summary(), result.baseline.cached)
    if result.acceptance_baseline is not None:
        get_run_logger().info("acceptance %s", result.acceptance_baseline.summary())
    return result


@task(name="repo-tests", task_run_name="pytest · {label}")
def repo_tests_task(prepared: PreparedEnvironment, workspace: str, files: list[str], label: str = "") -> VerificationReport:
    return task_env.verify_round(prepared, workspace, files)


@task(name="instance-acceptance", task_run_name="acceptance · {label}")
def instance_acceptance_task(
    prepared: PreparedEnvironment, workspace: str, instance: InstanceTests, label: str = ""
) -> VerificationReport:
    return task_env.verify_instance(prepared, workspace, instance)


@task(name="evict-environments", task_run_name="evict environments")
def evict_environments_task() -> EvictionReport:
    configured = settings()
    report = evict(task_env.cache_dir(), max_age_s=configured.env_max_age_days * 86400,
                   max_total_bytes=int(configured.env_max_total_gb * (1 << 30)))  # fmt: skip
    get_run_logger().info("environments evicted: %d, kept: %d, in use: %d, freed %.1f MiB", len(report.removed),
                          len(report.kept), len(report.skipped_in_use), report.freed_bytes / (1 << 20))  # fmt: skip
    return report
