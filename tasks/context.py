"""The repository text the models see, as a task."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from quorum.workspace.workspace import read_context


@task(name="read-context", task_run_name="read context · {label}")
def read_context_task(workspace: str, label: str = "") -> dict[str, str]:
    """Content, not paths, so LLM caching holds across runs."""
    return read_context(Path(workspace))
