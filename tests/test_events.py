"""quorum events: names, pure builders (no server), then emitting to a real Prefect server and the
prefect.yaml deployment trigger turning `quorum.task.requested` into flow-run parameters."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from prefect.events import Event

from quorum.domain import events
from quorum.prefect_api import events as prefect_events
from quorum.domain.events import (
    batch_completed_event,
    batch_started_event,
    redact_url,
    repo_key,
    task_event_name,
    task_requested_event,
    task_result_event,
)
from quorum.domain.models import CostSummary, Decision, Outcome, StageCost, TaskResult, TaskStatus
from quorum.domain.results import build_batch_report
from tests.event_helpers import read_events, wait_for_events

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKEN = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"


def _result(status: TaskStatus = TaskStatus.resolved, repo: str = "/srv/repos/widgets", **extra) -> TaskResult:
    decision = Decision(outcome=Outcome.approve, reasons=["all reviewers approve"], policy_version="p3", round=2)
    fields = {
        "batch_id": "nightly-2025-11-28",
        "task_id": "fix-parse-size",
        "repo": repo,
        "status": status,
        "reason": "approved and acceptance tests pass",
        "rounds": 2,
        "decision": decision,
        "cost": CostSummary(simulated=True, total=StageCost(calls=6, fresh_calls=4, cost_usd=0.0123456789)),
        "artifacts": {"plan": "runs/nightly-2025-11-28/fix-parse-size/1/plan.md"},
        "policy_version": "p3",
    }
    return TaskResult(**{**fields, **extra})


# ----------------------------------------------------------------------------------------- names


def test_every_task_status_has_an_event_and_names_follow_the_grammar():
    for status in TaskStatus:
        assert task_event_name(status) == f"quorum.task.{status.value}"
    assert events.TASK_REQUESTED == "quorum.task.requested"
    assert {events.BATCH_STARTED, events.BATCH_COMPLETED} == {"quorum.batch.started", "quorum.batch.completed"}
    assert all(name.startswith("quorum.") for name in events.ALL_EVENTS)
    with pytest.raises(ValueError, match="no quorum event for task status 'pending'"):
        task_event_name("pending")


@pytest.mark.parametrize(
    ("repo", "key"),
    [
        ("https://github.com/acme/widgets.git", "github.com/acme/widgets"),
        ("https://GitHub.com/acme/widgets/", "github.com/acme/widgets"),
        (f"https://x-access-token:{TOKEN}@github.com/acme/widgets.git", "github.com/acme/widgets"),
        ("git@github.com:acme/widgets.git", "github.com/acme/widgets"),
        ("ssh://git@gitlab.example.com:2222/team/tools.git", "gitlab.example.com/team/tools"),
        ("file:///srv/repos/widgets", "local/srv/repos/widgets"),
        ("/srv/repos/widgets/", "local/srv/repos/widgets"),
        ("examples/repos/calc", "local/examples/repos/calc"),
    ],
)
def test_repo_key(repo: str, key: str):
    assert repo_key(repo) == key


def test_redact_url_drops_credentials_only():
    assert redact_url(f"https://{TOKEN}@github.com/a/b.git") == "https://github.com/a/b.git"
    assert redact_url("https://github.com/a/b.git") == "https://github.com/a/b.git"
    assert redact_url("git@github.com:a/b.git") == "git@github.com:a/b.git"


# -------------------------------------------------------------------------------------- builders


def test_task_result_event_carries_outcome_rounds_cost_and_artifacts():
    event = task_result_event(_result(), store="s3://quorum-artifacts/team")
    assert event.event == "quorum.task.resolved"
    assert event.resource_id == "quorum.task.nightly-2025-11-28.fix-parse-size"
    assert event.resource["quorum.task.outcome"] == "resolved"
    payload = event.payload
    assert (payload["outcome"], payload["rounds"], payload["decision"]) == ("resolved", 2, "approve")
    assert payload["cost_usd"] == 0.012346 and payload["simulated"] is True
    assert (payload["llm_calls"], payload["fresh_llm_calls"]) == (6, 4)
    assert payload["artifacts"] == {"plan": "runs/nightly-2025-11-28/fix-parse-size/1/plan.md"}
    assert payload["store"] == "s3://quorum-artifacts/team"
    roles = {r["prefect.resource.role"]: r["prefect.resource.id"] for r in event.related}
    assert roles == {"repository": "quorum.repo.local/srv/repos/widgets", "batch": "quorum.batch.nightly-2025-11-28"}


@pytest.mark.parametrize("status", list(TaskStatus))
def test_every_outcome_builds_an_event_prefect_accepts(status: TaskStatus):
    event = task_result_event(_result(status=status))
    assert event.event == f"quorum.task.{status.value}"
    Event(event=event.event, resource=event.resource, payload=event.payload, related=event.related)


def test_events_carry_no_credentials_from_repository_urls():
    url = f"https://x-access-token:{TOKEN}@github.com/acme/widgets.git"
    built = [
        task_result_event(_result(repo=url), store=f"https://{TOKEN}@minio.example.com/bucket"),
        task_requested_event(url, "fix it", task_id="issue-1"),
        events.repo_pushed_event(url, ref="refs/heads/main", before="a" * 40, after="b" * 40),
    ]
    for event in built:
        assert TOKEN not in event.model_dump_json()


def test_long_reasons_and_task_texts_are_cut_and_flagged():
    event = task_result_event(_result(reason="x" * 5000))
    assert len(event.payload["reason"]) == events.MAX_REASON
    request = task_requested_event("/srv/r", "y" * (events.MAX_TEXT + 10), task_id="big")
    assert len(request.payload["task"]) == events.MAX_TEXT and request.payload["task_truncated"] is True


def test_batch_events():
    started = batch_started_event("nightly", tasks=3, roster="block:nightly", store=".quorum", mode="fan-out")
    assert (started.event, started.resource_id) == ("quorum.batch.started", "quorum.batch.nightly")
    assert started.payload == {
        "batch_id": "nightly", "tasks": 3, "roster": "block:nightly", "store": ".quorum", "mode": "fan-out",
    }  # fmt: skip

    results = [_result(), _result(status=TaskStatus.escalated, repo="https://github.com/acme/gadgets.git")]
    report = build_batch_report(
        batch_id="nightly", started_at=100.0, finished_at=160.5, roster="scripted", store=".quorum", results=results
    )
    completed = batch_completed_event(report)
    assert completed.event == "quorum.batch.completed"
    payload = completed.payload
    assert payload["tasks"] == 2 and payload["counts"]["resolved"] == 1 and payload["counts"]["escalated"] == 1
    assert payload["resolved_rate"] == 0.5 and payload["duration_s"] == 60.5
    assert payload["report"] == "runs/nightly/report.json"
    assert sorted(r["prefect.resource.id"] for r in completed.related) == [
        "quorum.repo.github.com/acme/gadgets", "quorum.repo.local/srv/repos/widgets",
    ]  # fmt: skip
    Event(event=completed.event, resource=completed.resource, payload=payload, related=completed.related)


def test_task_requested_event_puts_the_repository_in_the_resource_and_the_task_in_the_payload():
    event = task_requested_event(
        "https://github.com/acme/widgets.git",
        "Fix parse_size\n\nNegative sizes must raise.",
        task_id="issue-42",
        title="Fix parse_size",
        ref="main",
        source="github",
        source_url="https://github.com/acme/widgets/issues/42",
        repo_name="acme/widgets",
    )
    assert event.event == "quorum.task.requested"
    assert event.resource == {
        "prefect.resource.id": "quorum.repo.github.com/acme/widgets",
        "prefect.resource.name": "acme/widgets",
        "quorum.repo.url": "https://github.com/acme/widgets.git",
    }
    assert event.payload["task"].startswith("Fix parse_size") and event.payload["task_id"] == "issue-42"
    assert event.payload["repo"] == "https://github.com/acme/widgets.git" and event.payload["ref"] == "main"
    with pytest.raises(ValueError, match="non-empty task"):
        task_requested_event("/srv/r", "   ", task_id="empty")


# ------------------------------------------------------------------------------ real Prefect server


@pytest.fixture(scope="module")
def server(prefect_harness) -> None:
    return None


def test_emit_inside_a_flow_reaches_the_server(server):
    from prefect import flow

    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    built = task_result_event(_result(status=TaskStatus.escalated))

    @flow(name="quorum-events-probe")
    def probe() -> str:
        emitted = prefect_events.emit(built)
        return str(emitted.id)

    event_id = probe()
    stored = wait_for_events("quorum.task.escalated", resource_id=built.resource_id, since=since)
    assert [str(e.id) for e in stored] == [event_id]
    assert stored[0].payload["rounds"] == 2
    related_roles = {r.role for r in stored[0].related}
    assert {"repository", "batch", "flow-run"} <= related_roles  # Prefect adds the flow run it came from


def test_post_event_is_confirmed_by_the_server(server):
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    request = task_requested_event("/srv/repos/widgets", "add a --json flag", task_id="json-flag")
    event_id = prefect_events.post_event(request)
    stored = wait_for_events(events.TASK_REQUESTED, resource_id=request.resource_id, since=since)
    assert event_id in [str(e.id) for e in stored]


def _on_request_triggers() -> list[dict]:
    config = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in config["deployments"]}
    assert "on-request" in by_name, "prefect.yaml has no 'on-request' deployment for quorum.task.requested"
    return by_name["on-request"]["triggers"]


def test_the_prefect_yaml_trigger_turns_a_requested_task_into_flow_run_parameters(server):
    """Deploy-time trigger creation as `prefect deploy` does it, then the server's own automation run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.events import DeploymentTriggerTypes
    from pydantic import TypeAdapter

    triggers = [TypeAdapter(DeploymentTriggerTypes).validate_python(spec) for spec in _on_request_triggers()]
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("quorum-task-request-probe")
        deployment_id = client.create_deployment(
            flow_id=flow_id, name="on-request-probe", parameters={"roster": "scripted"}
        )
        for trigger in triggers:
            trigger.set_deployment_id(deployment_id)
            client.create_automation(trigger.as_automation())

    request = task_requested_event(
        "https://github.com/acme/widgets.git",
        "parse_size() accepts negative sizes\n\nReject them.",
        task_id="issue-42",
        ref="main",
        source="github",
        repo_name="acme/widgets",
    )
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    deadline = time.monotonic() + 90
    runs = []
    with get_client(sync_client=True) as client:
        # The triggers service loads new automations asynchronously: re-send until one fires.
        while not runs and time.monotonic() < deadline:
            prefect_events.post_event(request)
            for _ in range(10):
                runs = client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
                )
                failures = read_events("prefect.automation.action.failed", since=since)
                assert not failures, f"the trigger's action failed: {failures[0].payload.get('reason')}"
                if runs:
                    break
                time.sleep(0.5)
    assert runs, "no flow run was created from quorum.task.requested within 90 s"
    parameters = runs[0].parameters
    assert parameters["repo"] == "https://github.com/acme/widgets.git"
    assert parameters["task"] == "parse_size() accepts negative sizes\n\nReject them."
    assert parameters["task_id"] == "issue-42" and parameters["ref"] == "main"
    assert parameters["roster"] == "scripted"  # the deployment's own parameters still apply

