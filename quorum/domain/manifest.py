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


class TaskEnvironment(BaseModel):
    """What a task or manifest adds to the repository's own declarations of its test environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    python_deps: list[str] = Field(default_factory=list, description="Extra requirement strings (PEP 508).")
    python: str | None = Field(default=None, description="Interpreter version prefix, e.g. '3.10'.")
    test_command: str | None = Field(default=None, description="Replaces the test command, e.g. 'pytest tests -k \"not slow\"'.")

    @property
    def empty(self) -> bool:
        return not self.python_deps and self.python is None and self.test_command is None

    def merged(self, other: TaskEnvironment | None) -> TaskEnvironment:
        """``other`` (more specific: a task or instance) on top of this one (the manifest)."""
        if other is None:
            return self
        return TaskEnvironment(
            python_deps=[*self.python_deps, *other.python_deps],
            python=other.python or self.python,
            test_command=other.test_command if other.test_command is not None else self.test_command,
        )


class InstanceTests(BaseModel):
    """A SWE-bench instance's held-out acceptance: ``test_patch`` applied after the model's patch,
    judged by node ids. Never shown to a model."""

    model_config = ConfigDict(frozen=True)

    instance_id: str
    base_commit: str = ""
    test_patch: str = ""
    fail_to_pass: list[str] = Field(default_factory=list)
    pass_to_pass: list[str] = Field(default_factory=list)


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
    environment: TaskEnvironment = Field(
        default_factory=TaskEnvironment, description="Additions to the repository's declared test environment."
    )
    instance: InstanceTests | None = Field(default=None, description="Set for SWE-bench instances (acceptance by node ids).")

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
    python_deps: list[str] = Field(default_factory=list)
    python: str | None = None
    test_command: str | None = None


class _Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch: str = "batch"
    roster: str | None = None
    tasks: list[_ManifestEntry] = Field(default_factory=list)
    instances: str | None = Field(default=None, description="A SWE-bench-format .jsonl file (relative to the manifest).")
    repos: dict[str, str] = Field(
        default_factory=dict,
        description="Instances' repositories: 'owner/name' -> a local git repository or a git URL (checked out at "
        "base_commit). Without one: the instance's 'snapshot' directory, else https://github.com/<owner/name>.git.",
    )
    environment: TaskEnvironment = Field(default_factory=TaskEnvironment, description="Added to every task's environment.")


class RejectedTask(BaseModel):
    """A manifest entry that cannot run (its repository is missing, its task file unreadable...): a batch that
    keeps going reports it as an `error` with this reason instead of refusing the whole manifest."""

    id: str
    repo: str = ""
    reason: str


class Manifest(BaseModel):
    batch: str
    roster: str | None
    source: str
    tasks: list[TaskSpec]
    instances: str | None = Field(default=None, description="Absolute path of the instances file, when one was named.")
    rejected: list[RejectedTask] = Field(
        default_factory=list, description="Entries set aside by a lenient load (a deployment's), each with its reason."
    )


def _describe_location(raw: dict, loc: tuple) -> str:
    if len(loc) >= 2 and loc[0] == "tasks" and isinstance(loc[1], int):
        entries = raw.get("tasks") or []
        entry = entries[loc[1]] if loc[1] < len(entries) else None
        name = entry.get("id") if isinstance(entry, dict) else None
        rest = ".".join(str(p) for p in loc[2:])
        label = f"task #{loc[1] + 1}" + (f" ({name!r})" if name else "")
        return f"{label} field {rest!r}" if rest else label
    return ".".join(str(p) for p in loc) or "top level"
