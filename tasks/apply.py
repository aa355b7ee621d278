"""Applying a patch to a workspace, with the safety rules, as a task."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from quorum.domain.models import PatchResult
from quorum.edits.patching import apply_patch


@task(name="apply-patch", task_run_name="apply · {label}")
def apply_patch_task(workspace: str, diff: str, label: str = "") -> PatchResult:
    return apply_patch(Path(workspace), diff)
