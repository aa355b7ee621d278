"""Applying the implementer's reply to a workspace (all edits or none, with the safety rules), as a task."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from quorum.domain.models import PatchResult
from quorum.edits import apply_reply


@task(name="apply-reply", task_run_name="apply · {label}")
def apply_reply_task(workspace: str, reply: str, label: str = "") -> PatchResult:
    return apply_reply(Path(workspace), reply)
