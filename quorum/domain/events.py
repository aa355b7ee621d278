"""Prefect events quorum emits and reacts to: names, resources and payloads (DESIGN.md §5).

Builders are pure (a `QuorumEvent` from a task result, a batch report or a request) so they are
tested without a server; `quorum.prefect_api.events` sends them to Prefect. Payloads carry outcomes, counts,
costs and artifact keys, never secrets: repository URLs lose any credentials they carry.

Resources:
- a task result:   `quorum.task.<batch>.<task>`, related to its repository and batch;
- a batch:         `quorum.batch.<batch>`;
- a request/push:  the repository, `quorum.repo.<host>/<owner>/<name>` (or `quorum.repo.local/<path>`),
  with its clone URL in the label `quorum.repo.url`.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field

from quorum.domain.artifacts import slug
from quorum.domain.models import BatchReport, TaskResult

TASK_REQUESTED = "quorum.task.requested"
TASK_RESOLVED = "quorum.task.resolved"
TASK_APPROVED_UNVERIFIED = "quorum.task.approved_unverified"
TASK_ESCALATED = "quorum.task.escalated"
TASK_FAILED = "quorum.task.failed"
TASK_ERROR = "quorum.task.error"
TASK_SKIPPED = "quorum.task.skipped"
BATCH_STARTED = "quorum.batch.started"
BATCH_COMPLETED = "quorum.batch.completed"
BATCH_CRASHED = "quorum.batch.crashed"
REPO_PUSHED = "quorum.repo.pushed"

# Task status value -> event name (string keys, so the map does not depend on which statuses exist).
TASK_EVENTS: dict[str, str] = {
    "resolved": TASK_RESOLVED,
    "approved_unverified": TASK_APPROVED_UNVERIFIED,
    "escalated": TASK_ESCALATED,
    "failed": TASK_FAILED,
    "error": TASK_ERROR,
    "skipped": TASK_SKIPPED,
}
ALL_EVENTS = frozenset({TASK_REQUESTED, BATCH_STARTED, BATCH_COMPLETED, BATCH_CRASHED, REPO_PUSHED, *TASK_EVENTS.values()})

REPO_URL_LABEL = "quorum.repo.url"
MAX_TEXT = 65_536  # GitHub's own cap on an issue body; a task text longer than this is cut and flagged
MAX_REASON = 1_000
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")  # git@github.com:acme/widgets.git


class QuorumEvent(BaseModel):
    """What `prefect.events.emit_event` takes: name, primary resource, payload, related resources."""

    event: str
    resource: dict[str, str]
    payload: dict[str, Any] = Field(default_factory=dict)
    related: list[dict[str, str]] = Field(default_factory=list)

    @property
    def resource_id(self) -> str:
        return self.resource["prefect.resource.id"]


# ------------------------------------------------------------------------------------------ naming


def redact_url(url: str) -> str:
    """A repository URL without credentials: 'https://tok@github.com/a/b' -> 'https://github.com/a/b'."""
    parts = urlsplit(url)
    if parts.scheme and parts.netloc and "@" in parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


def repo_key(repo: str) -> str:
    """A stable, readable key for a repository: 'github.com/acme/widgets', or 'local/<path>'."""
    repo = repo.strip()
    parts = urlsplit(repo)
    if parts.scheme in ("http", "https", "ssh", "git") and parts.hostname:
        host, path = parts.hostname, parts.path
    elif parts.scheme == "file":
        host, path = "local", parts.path
    elif (scp := _SCP_LIKE.match(repo)) and "/" not in repo.split(":", 1)[0]:
        host, path = scp.group("host"), scp.group("path")
    else:
        host, path = "local", repo
    path = path.strip("/").removesuffix(".git").strip("/")
    return f"{host.lower()}/{path}" if path else host.lower()


def repo_resource(repo: str, *, role: str | None = None, name: str | None = None) -> dict[str, str]:
    key = repo_key(repo)
    resource = {
        "prefect.resource.id": f"quorum.repo.{key}",
        "prefect.resource.name": name or key.split("/", 1)[-1],
        REPO_URL_LABEL: redact_url(repo.strip()),
    }
    if role:
        resource["prefect.resource.role"] = role
    return resource


def task_resource_id(batch_id: str, task_id: str) -> str:
    return f"quorum.task.{slug(batch_id)}.{slug(task_id)}"


def batch_resource(batch_id: str, *, role: str | None = None) -> dict[str, str]:
    resource = {"prefect.resource.id": f"quorum.batch.{slug(batch_id)}", "prefect.resource.name": batch_id}
    if role:
        resource["prefect.resource.role"] = role
    return resource


def task_event_name(status: str) -> str:
    """The event for a final task status ('resolved' -> 'quorum.task.resolved')."""
    value = getattr(status, "value", status)
    try:
        return TASK_EVENTS[value]
    except KeyError:
        raise ValueError(f"no quorum event for task status {value!r}; known: {', '.join(TASK_EVENTS)}") from None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------- builders


def task_result_event(result: TaskResult, *, store: str | None = None) -> QuorumEvent:
    """`quorum.task.<status>` for a finished task: outcome, rounds, cost and where its artifacts are."""
    decision = result.decision
    payload: dict[str, Any] = {
        "batch_id": result.batch_id,
        "task_id": result.task_id,
        "repo": redact_url(result.repo),
        "outcome": result.status.value,
        "reason": _cut(result.reason, MAX_REASON),
        "rounds": result.rounds,
        "decision": decision.outcome.value if decision else None,
        "policy_version": result.policy_version or (decision.policy_version if decision else ""),
        "cost_usd": round(result.cost.total.cost_usd, 6),
        "simulated": result.cost.simulated,
        "llm_calls": result.cost.total.calls,
        "fresh_llm_calls": result.cost.total.fresh_calls,
        "artifacts": dict(result.artifacts),
    }
    if store:
        payload["store"] = redact_url(store)
    return QuorumEvent(
        event=task_event_name(result.status),
        resource={
            "prefect.resource.id": task_resource_id(result.batch_id, result.task_id),
            "prefect.resource.name": result.task_id,
            "quorum.batch.id": result.batch_id,
            "quorum.task.outcome": result.status.value,
        },
        payload=payload,
        related=[repo_resource(result.repo, role="repository"), batch_resource(result.batch_id, role="batch")],
    )


def batch_started_event(batch_id: str, *, tasks: int, roster: str, store: str, mode: str = "in-process") -> QuorumEvent:
    return QuorumEvent(
        event=BATCH_STARTED,
        resource=batch_resource(batch_id),
        payload={"batch_id": batch_id, "tasks": tasks, "roster": roster, "store": redact_url(store), "mode": mode},
    )


def batch_completed_event(report: BatchReport, *, report_key: str | None = None) -> QuorumEvent:
    """`quorum.batch.completed`: counts per outcome, resolve rate, cost per resolved task, report key."""
    payload = {
        "batch_id": report.batch_id,
        "tasks": report.tasks,
        "counts": dict(report.counts),
        "resolved_rate": report.resolved_rate,
        "cost_usd": round(report.cost.total.cost_usd, 6),
        "cost_per_task_usd": report.cost_per_task_usd,
        "cost_per_resolved_usd": report.cost_per_resolved_usd,
        "simulated": report.cost.simulated,
        "fresh_llm_calls": report.fresh_llm_calls,
        "cached_llm_calls": report.cached_llm_calls,
        "reused_results": report.reused_results,
        "duration_s": round(report.finished_at - report.started_at, 3),
        "roster": report.roster,
        "store": redact_url(report.store),
        "report": report_key or f"runs/{slug(report.batch_id)}/report.json",
    }
    related = [repo_resource(repo, role="repository") for repo in report.repos[:20]]
    resource = batch_resource(report.batch_id)
    return QuorumEvent(event=BATCH_COMPLETED, resource=resource, payload=payload, related=related)


def task_requested_event(
    repo: str,
    task: str,
    *,
    task_id: str,
    title: str = "",
    ref: str | None = None,
    source: str = "manual",
    source_url: str | None = None,
    repo_name: str | None = None,
    requested_by: str | None = None,
    extra: dict[str, Any] | None = None,
) -> QuorumEvent:
    """`quorum.task.requested`: run `task` (text) on `repo` (clone URL or path); the repository is the resource."""
    if not task.strip():
        raise ValueError("a task request needs a non-empty task text")
    payload: dict[str, Any] = {
        "task_id": task_id,
        "title": _cut(title, 300),
        "task": _cut(task, MAX_TEXT),
        "task_truncated": len(task) > MAX_TEXT,
        "repo": redact_url(repo.strip()),
        "ref": ref,
        "source": source,
        "source_url": source_url,
        "requested_by": requested_by,
    }
    payload.update(extra or {})
    return QuorumEvent(event=TASK_REQUESTED, resource=repo_resource(repo, name=repo_name), payload=payload)


def repo_pushed_event(
    repo: str,
    *,
    ref: str,
    before: str,
    after: str,
    repo_name: str | None = None,
    pusher: str | None = None,
    commits: int = 0,
    head_message: str = "",
    compare_url: str | None = None,
) -> QuorumEvent:
    return QuorumEvent(
        event=REPO_PUSHED,
        resource=repo_resource(repo, name=repo_name),
        payload={
            "repo": redact_url(repo.strip()),
            "ref": ref,
            "before": before,
            "after": after,
            "commits": commits,
            "head_message": _cut(head_message, MAX_REASON),
            "pusher": pusher,
            "compare_url": compare_url,
        },
    )


def resume_hint(batch_id: str, deployment: str = "quorum-batch-from-files/nightly") -> str:
    """What to do after a batch crashed: run it again with its id (finished tasks are kept, paid calls cached)."""
    return (
        f"nothing finished is lost: resume batch {batch_id!r} by running it again with the same id, "
        f"e.g. `prefect deployment run '{deployment}' --param batch_id={batch_id}` (or in the UI: Run > Custom run, "
        f"batch_id = {batch_id}), or `quorum batch <manifest> --batch-id {batch_id}`; its finished tasks are kept "
        "and every LLM call already paid is served from the cache"
    )


def batch_crashed_event(batch_id: str, *, message: str, flow_run_id: str = "") -> QuorumEvent:
    """`quorum.batch.crashed`: the batch's process ended before its report (the worker stopped or died)."""
    payload = {"batch_id": batch_id, "message": _cut(message, 500), "resume": resume_hint(batch_id),
               "flow_run_id": flow_run_id}  # fmt: skip
    return QuorumEvent(event=BATCH_CRASHED, resource=batch_resource(batch_id), payload=payload)
