"""End to end, the way a team runs quorum: a real Prefect server, `prefect deploy --all` from the real
prefect.yaml, a process work pool with two workers, runs started by API and by event, one worker
killed mid-batch and the batch resumed. Scripted models; everything else is real.

The server keeps its data in SQLite here; tests/test_deploy_e2e_postgres.py runs every test of this
file again on a server with PostgreSQL (a file of its own, so `pytest -n 2 --dist loadfile` can run the
two on different workers).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

from tests.support.devstack import REPO_ROOT, LocalPrefectStack
from tests.support.postgres import LocalPostgres

BATCH = "quorum-batch-from-files/nightly"
REQUEST = "quorum-task-request/on-request"
SHARD = "quorum-batch-shard/shard"
DEMO_CALLS = 16  # LLM calls of a cold demo batch: localize, plan, per round implement + reviews (tests/test_flow.py)


def running_stack(tmp_path_factory: pytest.TempPathFactory, database: str):
    """A stack whose server keeps its data in `database` ("sqlite", or "postgres": a throwaway cluster of
    Debian's PostgreSQL, tests/support/postgres.py), with the deployments and two workers; a generator
    for module fixtures. The Prefect stack stops first, then its database."""
    home = tmp_path_factory.mktemp(f"stack-{database}")
    store = home / "store"
    with contextlib.ExitStack() as cleanup:
        postgres = cleanup.enter_context(LocalPostgres()) if database == "postgres" else None
        stack = cleanup.enter_context(
            LocalPrefectStack(home, extra_env={"QUORUM_STORE": str(store)}, database_url=postgres and postgres.url)
        )
        stack.store = store  # type: ignore[attr-defined]
        stack.postgres = postgres  # type: ignore[attr-defined]
        stack.deploy_all()
        # INFO so each worker logs the runs it submits; a limit of 2 runs each makes a batch use both.
        for name in ("worker-a", "worker-b"):
            stack.env["PREFECT_LOGGING_LEVEL"] = "INFO"
            stack.start_worker(name, limit=2)
        stack.env["PREFECT_LOGGING_LEVEL"] = "WARNING"
        yield stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    yield from running_stack(tmp_path_factory, "sqlite")


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def read_rows(path: Path) -> list[dict]:
    """A batch report's rows (report.jsonl): one JSON object per task."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def submitted_by(stack: LocalPrefectStack, worker: str) -> set[str]:
    """Flow run ids a worker says it submitted (from its log)."""
    return set(re.findall(r"[Ss]ubmitting flow run '([0-9a-f-]{36})'", stack.log_text(worker)))


def test_deploy_registers_schedule_and_event_trigger(stack):
    nightly = stack.api("GET", "/deployments/name/quorum-batch-from-files/nightly")
    schedules = [s["schedule"] for s in nightly["schedules"]]
    assert schedules == [{"cron": "0 2 * * *", "timezone": "UTC", "day_or": True}]
    assert nightly["work_pool_name"] == "quorum-process"
    assert nightly["parameters"]["dated_batch_id"] is True

    shard = stack.api("GET", "/deployments/name/quorum-batch-shard/shard")
    assert shard["work_pool_name"] == "quorum-process"
    # its runs beat every 30 s, so a shard whose worker died is declared lost after 90 s
    assert shard["job_variables"] == {"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}}

    request = stack.api("GET", "/deployments/name/quorum-task-request/on-request")
    automations = stack.api("POST", "/automations/filter", {})
    linked = [
        a for a in automations
        if any(action.get("deployment_id") == request["id"] for action in a["actions"])
    ]  # fmt: skip
    assert len(linked) == 1
    trigger = linked[0]["trigger"]
    assert trigger["expect"] == ["quorum.task.requested"]
    assert trigger["match"] == {"prefect.resource.id": "quorum.repo.*"}


@pytest.mark.heavy
def test_batch_fans_out_over_both_workers(stack):
    run_id = stack.run_deployment(BATCH, {"fan_out": True, "batch_id": "e2e-fanout", "max_parallel": 3})
    run = stack.wait_final(run_id, timeout_s=600)
    assert (run["state"]["type"], run["state"]["name"]) == ("FAILED", "2 resolved · 1 escalated"), run["state"]
    assert run["name"] == "e2e-fanout"

    report = read_json(stack.store / "runs/e2e-fanout/report.json")
    assert report["mode"] == "fan-out"
    outcomes = {r["task_id"]: r["status"] for r in read_rows(stack.store / report["rows"])}
    assert outcomes == {
        "textkit-slugify": "resolved",
        "filestats-count-lines": "resolved",
        "userdir-permission-cache": "escalated",
    }
    # three tasks over two workers: shards of one task each, so each shard run is named by its task
    task_runs = [r for r in stack.flow_runs(deployment=SHARD) if r["parameters"].get("batch_id") == "e2e-fanout"]
    assert sorted(r["name"] for r in task_runs) == sorted(outcomes)
    assert {r["name"]: r["state"]["name"] for r in task_runs} == {
        "textkit-slugify": "1 resolved", "filestats-count-lines": "1 resolved", "userdir-permission-cache": "1 escalated"}
    assert all(r["parent_task_run_id"] for r in task_runs), "task runs should show under the batch run"

    ran = {r["id"] for r in task_runs} | {run_id}
    by_a, by_b = submitted_by(stack, "worker-a") & ran, submitted_by(stack, "worker-b") & ran
    assert by_a and by_b, f"both workers should share the batch: a={len(by_a)} b={len(by_b)}"
    assert by_a | by_b == ran


def test_event_triggers_the_single_task_deployment(stack):
    examples = REPO_ROOT / "examples" / "textkit"
    stack.python(
        "from quorum.domain.events import task_requested_event\nfrom quorum.prefect_api.events import emit\n"
        f"event = task_requested_event({str(examples / 'repo')!r}, {(examples / 'task.md').read_text()!r},"
        " task_id='event-textkit', source='test',"
        f" extra={{'script': {str(examples / 'script.yaml')!r}, 'acceptance': {str(examples / 'acceptance')!r}}})\n"
        "emit(event)\n"
    )
    deadline = time.monotonic() + 120
    runs: list[dict] = []
    while not runs and time.monotonic() < deadline:
        runs = [r for r in stack.flow_runs(deployment=REQUEST) if r["parameters"].get("task_id") == "event-textkit"]
        time.sleep(1)
    assert len(runs) == 1, "the event should start exactly one run of the single-task deployment"
    run = stack.wait_final(runs[0]["id"], timeout_s=300)
    assert (run["state"]["type"], run["state"]["name"]) == ("COMPLETED", "Resolved"), run["state"]
    result = read_json(stack.store / "runs/requests/event-textkit/result.json")
    assert result["status"] == "resolved"


@pytest.mark.heavy
def test_a_worker_run_after_a_cli_run_of_the_same_task_pays_no_call(stack, tmp_path):
    """The same task first through the CLI (its own home, its own Prefect result folder), then as a run of
    the on-request deployment on a worker: the worker's run is served every call from the store's cache."""
    import subprocess

    examples = REPO_ROOT / "examples" / "textkit"
    cli_env = {**stack.env, "HOME": str(tmp_path / "cli-home"), "PREFECT_HOME": str(tmp_path / "cli-home/.prefect"),
               "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(tmp_path / "cli-results")}  # fmt: skip
    (tmp_path / "cli-home").mkdir()
    cli = subprocess.run(
        [str(Path(sys.executable).with_name("quorum")), "run", "--id", "cli-textkit", "--repo", str(examples / "repo"),
         "--task-file", str(examples / "task.md"), "--script", str(examples / "script.yaml"),
         "--acceptance", str(examples / "acceptance"), "--store", str(stack.store), "--roster", "scripted"],
        cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stdout + cli.stderr
    by_cli = read_json(stack.store / "runs/single/cli-textkit/result.json")["cost"]["total"]
    assert by_cli["fresh_calls"] == by_cli["calls"] > 0

    run_id = stack.run_deployment(REQUEST, {
        "repo": str(examples / "repo"), "task": (examples / "task.md").read_text(), "task_id": "cli-textkit",
        "script": str(examples / "script.yaml"), "acceptance": str(examples / "acceptance"), "batch_id": "after-cli"})  # fmt: skip
    run = stack.wait_final(run_id, timeout_s=300)
    assert (run["state"]["type"], run["state"]["name"]) == ("COMPLETED", "Resolved"), run["state"]
    by_worker = read_json(stack.store / "runs/after-cli/cli-textkit/result.json")["cost"]["total"]
    assert by_worker["calls"] == by_cli["calls"] and by_worker["fresh_calls"] == 0, by_worker


def _bare_repo(tmp_path: Path, source: Path) -> str:
    """A git repository (branch main) holding `source`, as a file:// URL a worker can clone."""
    import shutil
    import subprocess

    work = tmp_path / "work"
    shutil.copytree(source, work)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "initial"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(tmp_path / "widgets.git")], check=True)
    return f"file://{tmp_path / 'widgets.git'}"


def test_signed_github_webhook_becomes_a_flow_run_and_unsigned_is_refused(stack, tmp_path):
    """The receiver runs as its own process, as deployed. An issue labelled `quorum` (GitHub's sample
    payload, pointed at a local clone URL) becomes a run of the single-task deployment that clones the
    repository and records its result; the same delivery unsigned is refused and starts nothing."""
    import urllib.error
    import urllib.request

    from tests.support.devstack import free_port
    from quorum.github_webhook.routing import sign

    payload = json.loads((Path(__file__).parent / "fixtures/github/issues_labeled.json").read_text())
    payload["repository"]["clone_url"] = _bare_repo(tmp_path, REPO_ROOT / "examples/textkit/repo")
    payload["issue"]["number"] = 4242
    body = json.dumps(payload).encode()
    secret = "e2e-webhook-secret"
    port = free_port()
    stack.env["QUORUM_GITHUB_WEBHOOK_SECRET"] = secret
    try:
        stack._spawn("webhook", [sys.executable, "-m", "quorum.github_webhook", "--port", str(port)])
    finally:
        del stack.env["QUORUM_GITHUB_WEBHOOK_SECRET"]

    def deliver(headers: dict[str, str]) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/", data=body, method="POST",
            headers={"Content-Type": "application/json", "X-GitHub-Event": "issues",
                     "X-GitHub-Delivery": "e2e-1", **headers},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                break
        except OSError:
            time.sleep(0.3)

    def runs_for_issue() -> list[dict]:
        return [r for r in stack.flow_runs(deployment=REQUEST) if r["parameters"].get("task_id") == "issue-4242"]

    assert deliver({}) == 401
    assert deliver({"X-Hub-Signature-256": sign("wrong-secret", body)}) == 403
    time.sleep(5)
    assert runs_for_issue() == [], "a refused delivery must start nothing"

    assert deliver({"X-Hub-Signature-256": sign(secret, body)}) == 200
    deadline = time.monotonic() + 120
    runs: list[dict] = []
    while not runs and time.monotonic() < deadline:
        runs = runs_for_issue()
        time.sleep(1)
    assert len(runs) == 1
    params = runs[0]["parameters"]
    assert params["repo"] == payload["repository"]["clone_url"] and params["ref"] == "main"
    assert params["task"].startswith(payload["issue"]["title"])
    run = stack.wait_final(runs[0]["id"], timeout_s=300)
    # The deployment's default roster is the scripted one, and a GitHub issue carries no script: the run
    # is refused at once (orange Error, saying which parameter to change) and the refusal is recorded.
    assert (run["state"]["type"], run["state"]["name"]) == ("CRASHED", "Error"), run["state"]
    assert "set the deployment's `roster` parameter" in run["state"]["message"]
    result = read_json(stack.store / "runs/requests/issue-4242/result.json")
    assert result["status"] == "error" and result["reason"].startswith("refused: roster 'scripted' replays")
    assert "e2e-webhook-secret" not in stack.log_text("webhook")


@pytest.mark.heavy
def test_killed_worker_batch_resumes_without_paying_twice(stack):
    """A batch runs in-process on one worker; that worker (and its flow-run process) is SIGKILLed after
    the first task finished. Running the batch again with the same id keeps the finished result and
    pays no call for it; the remaining tasks finish on the surviving worker."""
    params = {"batch_id": "e2e-resume", "max_parallel": 1}
    first = stack.run_deployment(BATCH, params)
    first_result = stack.store / "runs/e2e-resume/textkit-slugify/result.json"
    deadline = time.monotonic() + 300
    while not first_result.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert first_result.exists(), stack.flow_run(first)["state"]
    assert not (stack.store / "runs/e2e-resume/report.json").exists()

    holder = next(w for w in ("worker-a", "worker-b") if first in submitted_by(stack, w))
    other = "worker-b" if holder == "worker-a" else "worker-a"
    stack.hard_kill(holder)
    time.sleep(3)
    assert not (stack.store / "runs/e2e-resume/report.json").exists(), "the killed batch must not have finished"
    assert stack.flow_run(first)["state"]["type"] == "RUNNING"  # what a crashed machine leaves behind

    # the resume runs on a worker of another "machine": its own home, its own Prefect result folder
    stack.kill(other)
    elsewhere = stack.home / "elsewhere"
    stack.env["PREFECT_LOGGING_LEVEL"] = "INFO"
    stack.start_worker("worker-c", limit=2, env={
        **stack.env, "HOME": str(elsewhere), "PREFECT_HOME": str(elsewhere / ".prefect"),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(elsewhere / "results")})  # fmt: skip
    stack.env["PREFECT_LOGGING_LEVEL"] = "WARNING"
    second = stack.run_deployment(BATCH, params)
    run = stack.wait_final(second, timeout_s=600)
    assert (run["state"]["type"], run["state"]["name"]) == ("FAILED", "2 resolved · 1 escalated"), run["state"]
    assert second in submitted_by(stack, "worker-c")

    report = read_json(stack.store / "runs/e2e-resume/report.json")
    by_id = {r["task_id"]: r for r in read_rows(stack.store / report["rows"])}
    assert len(by_id) == 3 and report["reused_results"] >= 1
    kept = by_id["textkit-slugify"]
    assert kept["reused"] and kept["status"] == "resolved"
    assert kept["cost"]["total"]["calls"] > 0 and kept["cost"]["total"]["fresh_calls"] == 0
    assert {r["status"] for r in by_id.values()} == {"resolved", "escalated"}
    assert report["fresh_llm_calls"] < DEMO_CALLS - kept["cost"]["total"]["calls"] + 1

    # every call either run paid is in the store's cache: the same tasks as a new batch pay nothing
    third = stack.wait_final(stack.run_deployment(BATCH, {"batch_id": "e2e-resume-again", "max_parallel": 3}), timeout_s=600)
    assert third["state"]["name"] == "2 resolved · 1 escalated", third["state"]
    again = read_json(stack.store / "runs/e2e-resume-again/report.json")
    assert again["fresh_llm_calls"] == 0 and again["cached_llm_calls"] == DEMO_CALLS, again
    assert os.environ.get("QUORUM_STORE") is None  # the stack's settings stayed in its own processes


def test_the_runs_are_in_the_stacks_own_database(stack):
    """Last in the module: every finished flow run the API knows is a row of the database the stack was
    given (PostgreSQL's `flow_run` table, or the SQLite file), so the PostgreSQL variant really ran on it."""
    import sqlite3

    finished = {
        r["id"]
        for r in stack.api("POST", "/flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}})
    }
    assert finished
    query = "SELECT id FROM flow_run WHERE state_type = 'COMPLETED'"
    if stack.postgres is not None:
        stored = set(stack.postgres.query(query).split())
        assert not (stack.home / "prefect.db").exists()
    else:
        with contextlib.closing(sqlite3.connect(stack.home / "prefect.db")) as db:
            stored = {str(row[0]) for row in db.execute(query)}
    assert finished <= stored, f"finished runs missing from the database: {sorted(finished - stored)}"
