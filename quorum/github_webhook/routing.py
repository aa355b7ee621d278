"""GitHub webhook deliveries -> quorum events, as pure functions (no sockets, no Prefect).

`route_delivery(headers, body, settings)` is the whole decision for one delivery: check the size,
the `X-Hub-Signature-256` HMAC (before anything else is read), the JSON, the event type, and map
what is left to a `QuorumEvent`. The HTTP server in `quorum.github_webhook.server` only moves bytes and emits.

What maps to what:
- `issues` with action `labeled`, the label being the configured AI label (default `quorum`), on an
  open issue -> `quorum.task.requested` (repository = resource; issue title + body = the task);
- `push` to a branch (not a deletion) -> `quorum.repo.pushed`, with the ref as a resource label so an
  automation or deployment trigger can match one branch;
- `ping` -> 200 "pong"; every other event or action -> 202 with the reason it was ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from quorum.domain.events import QuorumEvent, repo_pushed_event, task_requested_event

SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
DEFAULT_LABEL = "quorum"
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
SIGNATURE_PREFIX = "sha256="


class WebhookSettings(BaseModel):
    """How the receiver decides; the secret is a SecretStr so it never shows in a repr or a log."""

    model_config = ConfigDict(frozen=True)

    secret: SecretStr = Field(description="The webhook secret configured on GitHub.")
    label: str = Field(default=DEFAULT_LABEL, min_length=1, description="The issue label that asks quorum for work.")
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0, description="Larger deliveries get 413.")
    allowed_repos: frozenset[str] = Field(
        default=frozenset(), description="Repository full names (owner/name) accepted; empty accepts any."
    )

    def accepts_repo(self, full_name: str) -> bool:
        return not self.allowed_repos or full_name.lower() in {r.lower() for r in self.allowed_repos}


class WebhookResult(BaseModel):
    """The HTTP answer for one delivery, and the event to emit when there is one."""

    status: int
    body: dict[str, Any]
    event: QuorumEvent | None = None


# ----------------------------------------------------------------------------------- signatures


def sign(secret: str | bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return SIGNATURE_PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def signature_problem(secret: str | bytes, body: bytes, header: str | None) -> str | None:
    """None when `header` is the right signature of `body`; else why not (never echoing the header)."""
    if not header:
        return "missing"
    if not header.startswith(SIGNATURE_PREFIX) or len(header) != len(SIGNATURE_PREFIX) + 64:
        return "malformed"
    if not hmac.compare_digest(sign(secret, body).encode(), header.encode()):
        return "mismatch"
    return None


# ------------------------------------------------------------------------------ GitHub payloads


class _Owner(BaseModel):
    login: str = ""


class GitHubRepository(BaseModel):
    full_name: str
    clone_url: str
    html_url: str = ""
    default_branch: str = "main"
    private: bool = False


class _Label(BaseModel):
    name: str


class _Issue(BaseModel):
    number: int
    title: str
    body: str | None = None
    html_url: str = ""
    state: str = "open"
    user: _Owner = Field(default_factory=_Owner)
    labels: list[_Label] = Field(default_factory=list)
    pull_request: dict[str, Any] | None = None


class IssuesPayload(BaseModel):
    action: str
    issue: _Issue
    repository: GitHubRepository
    label: _Label | None = None
    sender: _Owner = Field(default_factory=_Owner)


class _Commit(BaseModel):
    id: str = ""
    message: str = ""


class PushPayload(BaseModel):
    ref: str
    before: str
    after: str
    repository: GitHubRepository
    deleted: bool = False
    compare: str | None = None
    pusher: dict[str, Any] = Field(default_factory=dict)
    sender: _Owner = Field(default_factory=_Owner)
    commits: list[_Commit] = Field(default_factory=list)
    head_commit: _Commit | None = None


def task_text(title: str, body: str | None) -> str:
    """The task a planner sees for an issue: its title, then its body."""
    body = (body or "").strip()
    return f"{title.strip()}\n\n{body}" if body else title.strip()


def issue_event(payload: IssuesPayload, settings: WebhookSettings, delivery: str = "") -> QuorumEvent | str:
    """`quorum.task.requested` for an issue labelled with the AI label, else the reason it is ignored."""
    if payload.action != "labeled":
        return f"issues action {payload.action!r} is not 'labeled'"
    label = payload.label.name if payload.label else ""
    if label.lower() != settings.label.lower():
        return f"label {label!r} is not the AI label {settings.label!r}"
    if payload.issue.state != "open":
        return f"issue #{payload.issue.number} is {payload.issue.state}"
    if payload.issue.pull_request is not None:
        return "pull requests are not tasks (label the issue instead)"
    issue = payload.issue
    return task_requested_event(
        payload.repository.clone_url,
        task_text(issue.title, issue.body),
        task_id=f"issue-{issue.number}",
        title=issue.title,
        ref=payload.repository.default_branch,
        source="github",
        source_url=issue.html_url or None,
        repo_name=payload.repository.full_name,
        requested_by=payload.sender.login or None,
        extra={
            "repo_full_name": payload.repository.full_name,
            "issue_number": issue.number,
            "issue_author": issue.user.login or None,
            "labels": [lbl.name for lbl in issue.labels],
            "github_delivery": delivery or None,
        },
    )


def push_event(payload: PushPayload, delivery: str = "") -> QuorumEvent | str:
    """`quorum.repo.pushed` for a branch push, else the reason it is ignored."""
    if payload.deleted:
        return f"{payload.ref} was deleted"
    if not payload.ref.startswith("refs/heads/"):
        return f"{payload.ref} is not a branch"
    event = repo_pushed_event(
        payload.repository.clone_url,
        ref=payload.ref,
        before=payload.before,
        after=payload.after,
        repo_name=payload.repository.full_name,
        pusher=payload.pusher.get("name") or payload.sender.login or None,
        commits=len(payload.commits),
        head_message=payload.head_commit.message if payload.head_commit else "",
        compare_url=payload.compare,
    )
    event.resource["quorum.git.ref"] = payload.ref
    event.resource["quorum.git.branch"] = payload.ref.removeprefix("refs/heads/")
    event.payload.update({"repo_full_name": payload.repository.full_name, "github_delivery": delivery or None})
    return event


# ------------------------------------------------------------------------------------- routing


def route_delivery(headers: Mapping[str, str], body: bytes, settings: WebhookSettings) -> WebhookResult:
    """Decide one delivery: the status to answer, and the event to emit when there is one."""
    lowered = {str(name).lower(): value for name, value in headers.items()}
    header = {name: lowered.get(name.lower()) or "" for name in (SIGNATURE_HEADER, EVENT_HEADER, DELIVERY_HEADER)}
    if len(body) > settings.max_body_bytes:
        return WebhookResult(status=413, body={"error": f"body larger than {settings.max_body_bytes} bytes"})
    problem = signature_problem(settings.secret.get_secret_value(), body, header[SIGNATURE_HEADER])
    if problem in ("missing", "malformed"):
        return WebhookResult(status=401, body={"error": f"{problem} {SIGNATURE_HEADER} header"})
    if problem:
        return WebhookResult(status=403, body={"error": f"{SIGNATURE_HEADER} does not match the body"})

    kind = header[EVENT_HEADER].strip()
    delivery = header[DELIVERY_HEADER].strip()[:100]
    if not kind:
        return WebhookResult(status=400, body={"error": f"missing {EVENT_HEADER} header"})
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        hint = "body is not JSON (set the webhook's content type to application/json)"
        return WebhookResult(status=400, body={"error": hint})
    if not isinstance(data, dict):
        return WebhookResult(status=400, body={"error": "body is not a JSON object"})

    if kind == "ping":
        return WebhookResult(status=200, body={"ok": "pong"})
    if kind not in ("issues", "push"):
        return _ignored(f"event {kind!r} is not handled (only issues and push)")
    model = IssuesPayload if kind == "issues" else PushPayload
    try:
        payload = model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return WebhookResult(status=400, body={"error": f"{kind} payload: {where}: {err['msg']}"})
    if not settings.accepts_repo(payload.repository.full_name):
        return _ignored(f"repository {payload.repository.full_name!r} is not in the allowed list")
    mapped = issue_event(payload, settings, delivery) if kind == "issues" else push_event(payload, delivery)
    if isinstance(mapped, str):
        return _ignored(mapped)
    return WebhookResult(status=200, body={"emitted": mapped.event, "resource": mapped.resource_id}, event=mapped)


def _ignored(reason: str) -> WebhookResult:
    return WebhookResult(status=202, body={"ignored": reason})
