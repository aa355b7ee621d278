"""The GitHub webhook receiver: signature checks and payload mapping as pure functions, the HTTP
server on an ephemeral port, and deliveries that reach (or, unsigned, never reach) a real Prefect server."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from quorum.domain.events import REPO_PUSHED, TASK_REQUESTED, QuorumEvent
from quorum.github_webhook.routing import WebhookSettings, route_delivery, sign, signature_problem, task_text
from quorum.github_webhook.server import SECRET_ENV, running_server
from tests.event_helpers import read_events, wait_for_events

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "github"
SECRET = "It's a Secret to Everybody"
SETTINGS = WebhookSettings(secret=SecretStr(SECRET))


def fixture(name: str, **changes) -> dict:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    for dotted, value in changes.items():
        target = data
        *path, last = dotted.split("__")
        for part in path:
            target = target[part]
        target[last] = value
    return data


def delivery(event: str, payload: dict | bytes, *, secret: str | None = SECRET) -> tuple[dict[str, str], bytes]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "Content-Type": "application/json",
    }
    if secret is not None:
        headers["X-Hub-Signature-256"] = sign(secret, body)
    return headers, body


# ----------------------------------------------------------------------------------- signatures


def test_signature_matches_githubs_documented_example():
    # From GitHub's "Validating webhook deliveries" documentation.
    assert sign(SECRET, b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (None, "missing"),
        ("", "missing"),
        ("sha1=" + "0" * 40, "malformed"),
        ("sha256=abc", "malformed"),
        (sign("another secret", b"body"), "mismatch"),
        (sign(SECRET, b"body!"), "mismatch"),
        (sign(SECRET, b"body"), None),
    ],
)
def test_signature_problems(header: str | None, problem: str | None):
    assert signature_problem(SECRET, b"body", header) == problem


def test_settings_never_show_the_secret():
    assert SECRET not in repr(SETTINGS) and SECRET not in SETTINGS.model_dump_json()


# -------------------------------------------------------------------------------------- mapping


def test_a_labelled_issue_becomes_a_task_request():
    headers, body = delivery("issues", fixture("issues_labeled"))
    result = route_delivery(headers, body, SETTINGS)
    assert result.status == 200 and result.event is not None
    event = result.event
    assert event.event == TASK_REQUESTED
    assert event.resource == {
        "prefect.resource.id": "quorum.repo.github.com/acme/widgets",
        "prefect.resource.name": "acme/widgets",
        "quorum.repo.url": "https://github.com/acme/widgets.git",
    }
    payload = event.payload
    assert payload["task"] == task_text(
        "parse_size() accepts negative sizes",
        '`parse_size("-5MB")` returns -5242880 instead of raising `ValueError`.\r\n\r\n'
        "Expected: negative sizes are rejected with a message naming the input.",
    )
    assert payload["task"].startswith("parse_size() accepts negative sizes\n\n`parse_size")
    assert (payload["task_id"], payload["issue_number"], payload["ref"]) == ("issue-42", 42, "main")
    assert payload["source_url"] == "https://github.com/acme/widgets/issues/42"
    assert (payload["requested_by"], payload["issue_author"]) == ("hubot", "octocat")
    assert payload["labels"] == ["bug", "quorum"] and payload["source"] == "github"
    assert payload["github_delivery"] == headers["X-GitHub-Delivery"]
    assert result.body == {"emitted": TASK_REQUESTED, "resource": "quorum.repo.github.com/acme/widgets"}


def test_header_names_are_case_insensitive():
    headers, body = delivery("issues", fixture("issues_labeled"))
    result = route_delivery({name.lower(): value for name, value in headers.items()}, body, SETTINGS)
    assert result.status == 200 and result.event is not None


def test_a_branch_push_becomes_a_pushed_event_matchable_by_branch():
    result = route_delivery(*delivery("push", fixture("push")), SETTINGS)
    assert result.status == 200 and result.event is not None
    event = result.event
    assert event.event == REPO_PUSHED
    assert event.resource["prefect.resource.id"] == "quorum.repo.github.com/acme/widgets"
    assert (event.resource["quorum.git.ref"], event.resource["quorum.git.branch"]) == ("refs/heads/main", "main")
    assert event.payload["after"] == "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    assert (event.payload["commits"], event.payload["pusher"]) == (1, "octocat")
    assert event.payload["head_message"] == "Reject negative sizes in parse_size"


@pytest.mark.parametrize(
    ("event", "payload", "reason"),
    [
        ("issues", fixture("issues_labeled", action="opened"), "action 'opened' is not 'labeled'"),
        ("issues", fixture("issues_labeled", label__name="bug"), "label 'bug' is not the AI label 'quorum'"),
        ("issues", fixture("issues_labeled", issue__state="closed"), "issue #42 is closed"),
        ("issues", fixture("issues_labeled", issue__pull_request={"url": "x"}), "pull requests are not tasks"),
        ("push", fixture("push", deleted=True), "refs/heads/main was deleted"),
        ("push", fixture("push", ref="refs/tags/v1.0"), "refs/tags/v1.0 is not a branch"),
        ("pull_request", {"action": "opened"}, "event 'pull_request' is not handled"),
    ],
)
def test_other_deliveries_are_ignored_with_202_and_a_reason(event: str, payload: dict, reason: str):
    result = route_delivery(*delivery(event, payload), SETTINGS)
    assert (result.status, result.event) == (202, None)
    assert reason in result.body["ignored"]


def test_the_ai_label_and_the_repository_allow_list_are_configurable():
    custom = WebhookSettings(secret=SecretStr(SECRET), label="ai-fix", allowed_repos=frozenset({"acme/gadgets"}))
    labelled = fixture("issues_labeled", label__name="AI-Fix")
    assert "not in the allowed list" in route_delivery(*delivery("issues", labelled), custom).body["ignored"]
    labelled["repository"]["full_name"] = "Acme/Gadgets"
    assert route_delivery(*delivery("issues", labelled), custom).status == 200


def test_ping_is_answered():
    result = route_delivery(*delivery("ping", {"zen": "Keep it logically awesome.", "hook_id": 1}), SETTINGS)
    assert (result.status, result.body, result.event) == (200, {"ok": "pong"}, None)


@pytest.mark.parametrize(
    ("secret", "body", "event", "status", "error"),
    [
        (None, None, "issues", 401, "missing X-Hub-Signature-256"),
        ("wrong secret", None, "issues", 403, "does not match"),
        (SECRET, b"{not json", "issues", 400, "not JSON"),
        (SECRET, b"[1, 2]", "issues", 400, "not a JSON object"),
        (SECRET, b'{"action": "labeled"}', "issues", 400, "issues payload: issue: Field required"),
        (SECRET, None, "", 400, "missing X-GitHub-Event"),
    ],
)
def test_refused_deliveries(secret, body, event, status, error):
    headers, signed_body = delivery(event, body if body is not None else fixture("issues_labeled"), secret=secret)
    result = route_delivery(headers, signed_body, SETTINGS)
    assert (result.status, result.event) == (status, None)
    assert error in result.body["error"]


def test_a_tampered_body_is_refused():
    headers, body = delivery("issues", fixture("issues_labeled"))
    tampered = body.replace(b"negative sizes", b"rm -rf / please")
    assert route_delivery(headers, tampered, SETTINGS).status == 403


def test_oversized_bodies_are_refused_before_the_signature_is_computed():
    small = WebhookSettings(secret=SecretStr(SECRET), max_body_bytes=100)
    result = route_delivery(*delivery("issues", fixture("issues_labeled")), small)
    assert (result.status, result.event) == (413, None)


# ------------------------------------------------------------------------------ the HTTP server


class Recorder:
    def __init__(self, fail: bool = False):
        self.events: list[QuorumEvent] = []
        self.fail = fail

    def __call__(self, event: QuorumEvent) -> str:
        if self.fail:
            raise ConnectionError("Prefect is down")
        self.events.append(event)
        return f"id-{len(self.events)}"


def post(url: str, event: str, payload: dict | bytes, *, secret: str | None = SECRET) -> httpx.Response:
    headers, body = delivery(event, payload, secret=secret)
    return httpx.post(url, content=body, headers=headers, timeout=30)


def test_http_server_emits_signed_deliveries_and_refuses_the_rest(caplog):
    caplog.set_level(logging.DEBUG, logger="quorum.github_webhook.server")
    recorder = Recorder()
    settings = WebhookSettings(secret=SecretStr(SECRET), max_body_bytes=64 * 1024)
    with running_server(settings, emitter=recorder) as server:
        assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
        good = post(server.url + "/", "issues", fixture("issues_labeled"))
        assert good.status_code == 200
        assert good.json() == {
            "emitted": TASK_REQUESTED, "resource": "quorum.repo.github.com/acme/widgets", "event_id": "id-1",
        }  # fmt: skip

        bad_headers, bad_body = delivery("issues", fixture("issues_labeled"), secret="guess")
        assert httpx.post(server.url + "/github", content=bad_body, headers=bad_headers).status_code == 403
        assert post(server.url + "/webhook", "issues", fixture("issues_labeled"), secret=None).status_code == 401
        assert post(server.url, "issues", fixture("issues_labeled", action="opened")).status_code == 202
        assert post(server.url, "issues", b"\xff\xfe not json").status_code == 400
        assert post(server.url, "issues", b"x" * (200 * 1024)).status_code == 413
        assert httpx.get(server.url + "/").status_code == 405
        assert httpx.get(server.url + "/admin").status_code == 404
        assert httpx.put(server.url + "/", content=b"{}").status_code == 405
    assert [e.event for e in recorder.events] == [TASK_REQUESTED]
    assert SECRET not in caplog.text and bad_headers["X-Hub-Signature-256"].split("=")[1] not in caplog.text
    assert "POST /github" in caplog.text and "403" in caplog.text  # requests are logged, without headers


def test_http_server_needs_a_content_length():
    with running_server(SETTINGS, emitter=Recorder()) as server:
        host, port = server.server_address[:2]
        with socket.create_connection((host, port), timeout=10) as conn:
            conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            answer = conn.recv(4096).decode()
    assert answer.startswith("HTTP/1.0 411") or answer.startswith("HTTP/1.1 411")


def test_http_server_answers_503_when_prefect_does_not_take_the_event():
    with running_server(SETTINGS, emitter=Recorder(fail=True)) as server:
        answer = post(server.url, "push", fixture("push"))
    assert answer.status_code == 503
    assert "could not deliver quorum.repo.pushed to Prefect (ConnectionError)" in answer.json()["error"]


def test_the_cli_refuses_to_start_without_a_secret():
    env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
    run = subprocess.run(
        [sys.executable, "-m", "quorum.github_webhook", "--port", "0"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode != 0
    assert f"refusing to start without a webhook secret: set {SECRET_ENV}" in run.stderr


# ----------------------------------------------------------------------- with a real Prefect server


@pytest.fixture(scope="module")
def prefect_api(prefect_harness) -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def _unique_repo(payload: dict) -> str:
    name = f"widgets-{uuid.uuid4().hex[:8]}"
    payload["repository"].update(full_name=f"acme/{name}", clone_url=f"https://github.com/acme/{name}.git")
    return f"quorum.repo.github.com/acme/{name}"


def test_a_signed_delivery_becomes_a_prefect_event_and_an_unsigned_one_does_not(prefect_api):
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    unsigned_payload, signed_payload = fixture("issues_labeled"), fixture("issues_labeled")
    unsigned_resource, signed_resource = _unique_repo(unsigned_payload), _unique_repo(signed_payload)
    with running_server(SETTINGS) as server:  # the real emitter: POST /api/events
        assert post(server.url, "issues", unsigned_payload, secret=None).status_code == 401
        answer = post(server.url, "issues", signed_payload)
    assert answer.status_code == 200, answer.text

    stored = wait_for_events(TASK_REQUESTED, resource_id=signed_resource, since=since)
    assert [str(e.id) for e in stored] == [answer.json()["event_id"]]
    assert stored[0].payload["task_id"] == "issue-42" and stored[0].resource["quorum.repo.url"].endswith(".git")
    # sent before the signed one, so it would be stored by now: nothing arrived
    assert read_events(TASK_REQUESTED, resource_id=unsigned_resource, since=since) == []


def test_python_dash_m_quorum_webhook_end_to_end(prefect_api):
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    env = {**os.environ, SECRET_ENV: SECRET, "PREFECT_API_URL": prefect_api}
    process = subprocess.Popen(
        [sys.executable, "-m", "quorum.github_webhook", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        banner = process.stdout.readline()
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", banner)
        assert found, banner + process.stderr.read()
        payload = fixture("push")
        resource = _unique_repo(payload)
        answer = post(found.group(1), "push", payload)
        assert answer.status_code == 200, answer.text
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert SECRET not in stderr
    stored = wait_for_events(REPO_PUSHED, resource_id=resource, since=since)
    assert [str(e.id) for e in stored] == [answer.json()["event_id"]]
    assert stored[0].resource["quorum.git.branch"] == "main"
