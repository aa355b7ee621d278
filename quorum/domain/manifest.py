"""Batch manifests: a list of (repository, task) entries. The models and their rules; loading is `quorum.inputs.manifests`."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

TASK_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


REMOTE_REPO = re.compile(r"^(?:(?:https?|ssh|git|file)://|[\w.-]+@[\w.-]+:)")


def is_remote_repo(repo: str) -> bool:
    """A repository named by URL (`https://`, `ssh://`, `git://`, `file://`, `git@host:owner/name`), cloned per task."""
    return bool(REMOTE_REPO.match(repo))


class ManifestError(ValueError):
    """A manifest that cannot be run; the message names the entry and the problem."""


class TaskSpec(BaseModel):
    """One (repository, task) pair, resolved to absolute paths and with the task text loaded."""

    model_config = ConfigDict(frozen=True)

    id: str
    repo: str = Field(description="Absolute path of the repository (a git repo or a plain directory), or a git URL.")
    ref: str | None = Field(default=None, description="Git ref to check out when repo is a git repository.")
    task: str = Field(min_length=1, description="The task text the planner sees.")
    acceptance: str | None = Field(default=None, description="Held-out acceptance tests directory; never shown to a model.")
    script: str | None = Field(default=None, description="Script file for scripted models.")
    script_sha256: str = Field(default="", description="Digest of the script, so a changed script misses the cache.")

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        if not TASK_ID_PATTERN.match(value):
            raise ValueError(f"task id {value!r} must be 1-80 letters, digits, '.', '_' or '-'")
        return value


class _ManifestEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    repo: str
    ref: str | None = None
    task: str | None = None
    task_file: str | None = None
    acceptance: str | None = None
    script: str | None = None


class _Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch: str = "batch"
    roster: str | None = None
    tasks: list[_ManifestEntry] = Field(min_length=1)


class Manifest(BaseModel):
    batch: str
    roster: str | None
    source: str
    tasks: list[TaskSpec]


def _describe_location(raw: dict, loc: tuple) -> str:
    if len(loc) >= 2 and loc[0] == "tasks" and isinstance(loc[1], int):
        entries = raw.get("tasks") or []
        entry = entries[loc[1]] if loc[1] < len(entries) else None
        name = entry.get("id") if isinstance(entry, dict) else None
        rest = ".".join(str(p) for p in loc[2:])
        label = f"task #{loc[1] + 1}" + (f" ({name!r})" if name else "")
        return f"{label} field {rest!r}" if rest else label
    return ".".join(str(p) for p in loc) or "top level"
