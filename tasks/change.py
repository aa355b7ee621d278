"""An existing change's workspace as tasks: the repository at the change's base, and the files it touches."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from quorum.domain.change import ChangeSpec
from quorum.workspace.change import read_files
from quorum.workspace.workspace import Workspace, prepare_workspace


@task(name="prepare-change", task_run_name="prepare · {change.id}")
def prepare_change_task(change: ChangeSpec, work_root: str) -> Workspace:
    root = Path(work_root)
    root.mkdir(parents=True, exist_ok=True)
    return prepare_workspace(Path(change.repo), root, ref=change.base)


@task(name="read-changed-files", task_run_name="read changed files · {label}")
def read_files_task(workspace: str, paths: list[str], label: str = "") -> dict[str, str]:
    """Content, not paths, so the review cache holds across runs."""
    return read_files(Path(workspace), paths)
