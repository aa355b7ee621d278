"""A request for one task (from an event, the CLI or a batch fan-out), validated like a manifest entry."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pydantic import BaseModel, Field

from quorum.domain.manifest import TaskSpec
from quorum.inputs.manifests import parse_manifest


class TaskRequest(BaseModel):
    repo: str = Field(description="Repository folder; relative paths resolve against the working directory.")
    task: str = Field(description="The task text.")
    task_id: str | None = Field(default=None, description="Default: the repository's name and a digest of the task.")
    ref: str | None = None
    acceptance: str | None = None
    script: str | None = None


def request_id(repo: str, task: str) -> str:
    """A stable, readable id for a request without one: `<repo name>-<8 hex of the task text>`."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(repo.rstrip("/")).name or "repo").strip("-.") or "repo"
    return f"{name[:60]}-{hashlib.sha256(task.encode()).hexdigest()[:8]}"


def request_spec(request: TaskRequest, base: Path | None = None) -> TaskSpec:
    """The request as a TaskSpec; raises ManifestError (one line, naming the field) on bad input."""
    # Event templates render a missing value as "": treat it as not given.
    entry = {
        "id": request.task_id or request_id(request.repo, request.task),
        "repo": request.repo,
        "task": request.task,
        "ref": request.ref,
        "acceptance": request.acceptance,
        "script": request.script,
    }
    raw = {"batch": "request", "tasks": [{k: v for k, v in entry.items() if v not in (None, "")}]}
    manifest = parse_manifest(raw, base=(base or Path.cwd()).resolve(), label="request", source="request")
    return manifest.tasks[0]
