"""Repository side effects as tasks: prepare a throwaway workspace, read it, apply a patch safely."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from quorum.domain.manifest import TaskSpec
from quorum.domain.models import PatchResult
from quorum.edits.patching import apply_patch
from quorum.workspace.remote import is_remote, mirror
from quorum.workspace.workspace import Workspace, prepare_workspace, read_context


@task(name="prepare-workspace", task_run_name="prepare · {spec.id} · {purpose}")
def prepare_task(spec: TaskSpec, work_root: str, purpose: str = "context") -> Workspace:
    root = Path(work_root)
    root.mkdir(parents=True, exist_ok=True)
    source = mirror(spec.repo, root) if is_remote(spec.repo) else Path(spec.repo)
    return prepare_workspace(source, root, ref=spec.ref)


@task(name="read-context", task_run_name="read context · {label}")
def read_context_task(workspace: str, label: str = "") -> dict[str, str]:
    """The repository text the models see (content, so LLM caching holds across runs)."""
    return read_context(Path(workspace))


@task(name="apply-patch", task_run_name="apply · {label}")
def apply_patch_task(workspace: str, diff: str, label: str = "") -> PatchResult:
    return apply_patch(Path(workspace), diff)


@task(name="cleanup-workspaces", task_run_name="cleanup · {work_root}")
def cleanup_task(work_root: str) -> None:
    import shutil

    shutil.rmtree(work_root, ignore_errors=True)
