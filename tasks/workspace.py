"""Throwaway workspaces as tasks: prepare one from the task's repository, remove them all at the end."""

from __future__ import annotations

import shutil
from pathlib import Path

from prefect import task

from quorum.domain.manifest import TaskSpec
from quorum.workspace.remote import is_remote, mirror
from quorum.workspace.workspace import Workspace, prepare_workspace


@task(name="prepare-workspace", task_run_name="prepare · {spec.id} · {purpose}")
def prepare_task(spec: TaskSpec, work_root: str, purpose: str = "context") -> Workspace:
    root = Path(work_root)
    root.mkdir(parents=True, exist_ok=True)
    source = mirror(spec.repo, root) if is_remote(spec.repo) else Path(spec.repo)
    return prepare_workspace(source, root, ref=spec.ref)


@task(name="cleanup-workspaces", task_run_name="cleanup · {label}")
def cleanup_task(work_root: str, label: str) -> None:
    """`label` (the task id) names the run: never the temporary folder it removes."""
    shutil.rmtree(work_root, ignore_errors=True)
