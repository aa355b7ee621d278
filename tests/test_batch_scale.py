"""Batches of any size (issue 17): shards, the streamed report, resume listing, inputs by reference, cheap skips.

Pure logic first (shard assignment, the report's format and tally), then the store's side (listing,
concurrent gets, the row spool, on a folder and on S3 through moto), then one batch under the
session's Prefect server whose manifest is larger than Prefect's parameter limit.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest

from quorum.domain.batch_inputs import decode_specs, encode_specs
from quorum.domain.budget import BatchBudget, SpendGate, close_to_new_tasks
from quorum.domain.manifest import TaskSpec
from quorum.domain.models import CostSummary, ReportRow, StageCost, TaskResult, TaskStatus
from quorum.domain.report import MAX_NEEDS_HUMAN, BatchTally, decode_rows, encode_row, report_row
from quorum.domain.results import MAX_UI_REASON, render_batch_markdown, result_row
from quorum.domain.shards import MAX_SHARD_TASKS, assign_shards, shard_size, shard_timeout_s

ROOT = Path(__file__).resolve().parents[1]
PARAMETER_LIMIT = 524_288  # Prefect's default server.api.max_parameter_size


# ---------------------------------------------------------------------------------------------- shards


def test_shard_size_follows_the_batch_size_and_the_workers():
    assert shard_size(3, workers=2) == 1  # 2 shards per worker: four places for three tasks
    assert shard_size(20, workers=2) == 5
    assert shard_size(20, workers=0) == 10  # no worker online yet: as if there were one
    assert shard_size(3000, workers=30) == 50
    assert shard_size(5000, workers=2) == MAX_SHARD_TASKS  # never more ids than a parameter should carry
    assert shard_size(20, workers=2, per_worker=1) == 10
    assert shard_size(0, workers=2) == 1


def test_shards_cover_every_task_once_in_manifest_order():
    ids = [f"t{n:04d}" for n in range(1001)]
    shards = assign_shards(ids, 250)
    assert [len(s.task_ids) for s in shards] == [250, 250, 250, 250, 1]
    assert [task for s in shards for task in s.task_ids] == ids
    assert [(s.index, s.count) for s in shards] == [(n, 5) for n in range(1, 6)]
    assert shards[2].label == "shard 3/5"
    assert assign_shards([], 4) == []
    # the worst case a shard's parameters can be: MAX_SHARD_TASKS ids of the longest allowed length
    longest = ["x" * 80 + str(n) for n in range(MAX_SHARD_TASKS)]
    assert len(json.dumps(assign_shards(longest, MAX_SHARD_TASKS)[0].task_ids)) < PARAMETER_LIMIT / 20
    with pytest.raises(ValueError, match="at least one"):
        assign_shards(ids, 0)
    with pytest.raises(ValueError, match="at most"):
        assign_shards(ids, MAX_SHARD_TASKS + 1)
    with pytest.raises(ValueError, match="unique"):
        assign_shards(["a", "a"], 2)


def test_a_shards_deadline_is_one_task_timeout_per_wave():
    assert shard_timeout_s(10, parallel=4, task_timeout_s=60) == 180
    assert shard_timeout_s(1, parallel=4, task_timeout_s=60) == 60


# ---------------------------------------------------------------------------------------------- report


def _row(task_id: str, status: TaskStatus, cost: float = 0.01, repo: str = "/r/a", reason: str = "why") -> ReportRow:
    summary = CostSummary(total=StageCost(calls=2, fresh_calls=1, cost_usd=cost), by_stage={"plan": StageCost(calls=2, cost_usd=cost)})
    return ReportRow(task_id=task_id, repo=repo, status=status, reason=reason, cost=summary, result=f"runs/b/{task_id}/result.json")


def test_report_rows_are_one_json_line_each_and_read_back_the_same():
    rows = [_row("a", TaskStatus.resolved), _row("b", TaskStatus.failed, reason="two\nlines | and a pipe")]
    text = "".join(encode_row(row) for row in rows)
    assert text.count("\n") == 2 and all(json.loads(line)["task_id"] for line in text.splitlines())
    assert list(decode_rows(text.splitlines() + [""])) == rows
    result = TaskResult(batch_id="b", task_id="c", repo="/r", status=TaskStatus.escalated, reason="r", rounds=2,
                        reused=True, artifacts={"result": "runs/b/c/result.json"})  # fmt: skip
    row = report_row(result)
    assert (row.task_id, row.status, row.rounds, row.reused, row.result) == ("c", TaskStatus.escalated, 2, True, "runs/b/c/result.json")


def test_the_tally_keeps_totals_and_only_the_first_rows_that_need_a_person():
    tally = BatchTally(keep_needs_human=3, keep_repos=2)
    outcomes = [TaskStatus.resolved, TaskStatus.escalated, TaskStatus.failed, TaskStatus.skipped, TaskStatus.error]
    order = list(range(50))[::-1]  # rows arrive in reverse manifest order, as shards may finish
    for index in order:
        tally.add(index, _row(f"t{index:02d}", outcomes[index % 5], repo=f"/r/{string.ascii_lowercase[index % 7]}"))
    report = tally.report(batch_id="b", started_at=0, finished_at=1, roster="r", store="s", rows_key="runs/b/report.jsonl")
    assert report.tasks == 50 and report.counts["resolved"] == 10 and report.counts["skipped"] == 10
    assert report.cost.total.cost_usd == pytest.approx(0.5) and report.cost.by_stage["plan"].calls == 100
    assert report.fresh_llm_calls == 50 and report.cached_llm_calls == 50
    assert report.needs_human_total == 30
    assert [r.task_id for r in report.needs_human] == ["t01", "t02", "t04"]  # the first three, manifest order
    assert report.repos == ["/r/a", "/r/b"] and report.rows == "runs/b/report.jsonl"


def test_the_ui_summary_stays_small_whatever_the_batch_size():
    tally = BatchTally()
    for index in range(5000):
        tally.add(index, _row(f"task-{index:05d}", TaskStatus.escalated, reason="x" * 5000))
    report = tally.report(batch_id="big", started_at=0, finished_at=1, roster="r", store="s3://b/q")
    markdown = render_batch_markdown(report, "s3://b/q/runs/big/report.jsonl")
    assert len(report.needs_human) == MAX_NEEDS_HUMAN and report.needs_human_total == 5000
    assert "## Needs a person: 5000" in markdown and "4900 more in the full report" in markdown
    assert "s3://b/q/runs/big/report.jsonl" in markdown
    assert len(markdown) < 64_000 and len(report.model_dump_json()) < 200_000
    table = [result_row(row) for row in report.needs_human]
    assert len(table) == MAX_NEEDS_HUMAN and all(len(str(r["reason"])) <= MAX_UI_REASON for r in table)


# ---------------------------------------------------------------------------------------------- budget


def test_a_spent_answer_is_remembered_briefly_and_a_budget_that_cannot_start_a_task_is_closed():
    now = [0.0]
    budget = BatchBudget(1.0)
    gate = SpendGate(budget, memory_s=1.0, clock=lambda: now[0])
    assert not gate.spent()
    close_to_new_tasks(budget)  # what is left cannot pay for a first stage
    assert budget.remaining_usd() == 0.0 and gate.spent()
    budget._limit = 2.0  # the operator raises the budget (on the server: the limit of quorum-budget-<batch>)
    assert gate.spent()  # remembered for a second
    now[0] = 1.5
    assert not gate.spent()
    unlimited = BatchBudget(None)
    close_to_new_tasks(unlimited)
    assert not SpendGate(unlimited).spent()


# ----------------------------------------------------------------------------------------------- store


def _spec(n: int, text: str = "do it") -> TaskSpec:
    return TaskSpec(id=f"task-{n:04d}", repo="/srv/repo", task=f"{text} #{n}")


def test_specs_by_reference_round_trip_and_load_by_id():
    specs = [_spec(n, "é\nmulti-line") for n in range(5)]
    text = encode_specs(specs)
    assert text.count("\n") == 5
    assert list(decode_specs(text)) == specs
    assert [s.id for s in decode_specs(text, {"task-0003", "task-0001"})] == ["task-0001", "task-0003"]


def _result(n: int, status: TaskStatus = TaskStatus.resolved) -> TaskResult:
    return TaskResult(batch_id="b", task_id=f"task-{n:04d}", repo="/srv/repo", status=status, spec_digest=f"d{n}",
                      artifacts={"result": f"runs/b/task-{n:04d}/result.json"})  # fmt: skip


def _exercise_store(store) -> None:
    """The batch-level store calls on one backend: inputs, listing + concurrent gets, spooled rows."""
    from quorum.domain.policy import Policy
    from quorum.inputs.rosters import load_roster
    from quorum.store.batches import BatchInputsMissing, RowSpool, finished_results, read_inputs, read_rows, read_specs, write_inputs, write_rows

    specs = [_spec(n) for n in range(12)]
    inputs = write_inputs(store, "b", "m.yaml", specs, load_roster("scripted"), Policy(max_rounds=2))
    assert read_inputs(store, "b") == inputs and inputs.tasks == 12 and inputs.policy.max_rounds == 2
    assert read_specs(store, inputs) == specs
    assert [s.id for s in read_specs(store, inputs, ["task-0011", "task-0002"])] == ["task-0002", "task-0011"]
    with pytest.raises(BatchInputsMissing, match="no task"):
        read_specs(store, inputs, ["task-0002", "nope"])
    with pytest.raises(BatchInputsMissing, match="no inputs"):
        read_inputs(store, "other")

    for n in range(10):  # ten tasks started; 0-7 finished, 8 has only a plan, 9 an unreadable result
        store.put_text(f"runs/b/task-{n:04d}/1/plan.md", "plan")
        if n < 8:
            store.put_text(f"runs/b/task-{n:04d}/result.json", _result(n).model_dump_json())
    store.put_text("runs/b/task-0009/result.json", "{not json")
    store.put_text("runs/b/report.json", "{}")
    assert store.list_children("runs/b/") == ["_inputs"] + [f"task-{n:04d}" for n in range(10)]
    found = sorted(r.task_id for r in finished_results(store, "b", {s.id for s in specs} - {"task-0003"}))
    assert found == [f"task-{n:04d}" for n in (0, 1, 2, 4, 5, 6, 7)]
    got = dict(store.get_many(["runs/b/report.json", "runs/b/missing.json"], workers=4))
    assert got == {"runs/b/report.json": b"{}", "runs/b/missing.json": None}

    spool = RowSpool()
    rows = [_row(f"task-{n:04d}", TaskStatus.resolved) for n in range(6)]
    for index in (3, 0, 5, 1, 4, 2):  # as tasks finish
        spool.add(index, rows[index])
    with pytest.raises(ValueError, match="already added"):
        spool.add(3, rows[3])
    write_rows(store, "runs/b/report.jsonl", spool)
    spool.close()
    assert list(read_rows(store, "runs/b/report.jsonl")) == rows


def test_batch_records_on_a_folder_store(tmp_path):
    from quorum.store import open_store

    _exercise_store(open_store(str(tmp_path / "store")))


def test_predictions_are_written_in_manifest_order_from_the_rows_with_each_last_round_patch(tmp_path):
    from quorum.domain.manifest import InstanceTests
    from quorum.store import open_store
    from quorum.store.batches import write_predictions

    store = open_store(str(tmp_path / "store"))
    specs = [
        TaskSpec(id="a", repo="r", task="t"),
        TaskSpec(id="b", repo="r", task="t", instance=InstanceTests(instance_id="owner__repo-2")),
        TaskSpec(id="c", repo="r", task="t"),
        TaskSpec(id="d", repo="r", task="t"),
    ]
    store.put_text("runs/p/a/2/patch.diff", "diff a2\n")
    store.put_text("runs/p/b/1/patch.diff", "diff b1\n")
    rows = [  # as report.jsonl gives them; c never ran a round, d's patch is missing
        ReportRow(task_id=task_id, repo="r", status=TaskStatus.escalated, rounds=rounds)
        for task_id, rounds in (("a", 2), ("b", 1), ("c", 0), ("d", 1))
    ]
    key = write_predictions(store, "p", specs, iter(rows), "openai/gpt-5-mini", chunk=3)
    assert key == "runs/p/predictions.jsonl"
    lines = [json.loads(line) for line in store.get_text(key).splitlines()]
    assert [(line["instance_id"], line["model_patch"]) for line in lines] == [
        ("a", "diff a2\n"), ("owner__repo-2", "diff b1\n"), ("c", ""), ("d", ""),
    ]  # fmt: skip
    assert {line["model_name_or_path"] for line in lines} == {"openai/gpt-5-mini"}
    assert set(lines[0]) == {"instance_id", "model_name_or_path", "model_patch"}


def test_batch_records_on_s3_list_in_pages_and_fetch_concurrently(monkeypatch):
    import boto3
    from moto import mock_aws

    from quorum.store import open_store

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="quorum-scale")
        store = open_store("s3://quorum-scale/nightly")
        store.page_size = 3  # eleven folders: four pages of a delimited listing
        calls: list[dict] = []
        store.client.meta.events.register("before-parameter-build.s3.ListObjectsV2", lambda params, **_: calls.append(dict(params)))
        _exercise_store(store)
        listed = [c for c in calls if c.get("Delimiter") == "/"]
        assert len(listed) >= 4 and all(c["MaxKeys"] == 3 for c in listed)


# ------------------------------------------------------------------------------------- a whole batch


def write_big_manifest(path: Path, tasks: int, text_bytes: int = 2048, batch: str = "scale") -> Path:
    """`tasks` tasks over the textkit example, each with its own task text of about `text_bytes` bytes."""
    import yaml

    example = ROOT / "examples" / "textkit"
    filler = "Keep the public API unchanged and add tests for every edge case you can think of. "
    entries = []
    for n in range(tasks):
        text = (f"Task {n}: add slugify(text) to textkit. " + filler * (text_bytes // len(filler)))[:text_bytes]
        entries.append({"id": f"{batch}-{n:04d}", "repo": str(example / "repo"), "script": str(example / "script.yaml"), "task": text})
    path.write_text(yaml.safe_dump({"batch": batch, "tasks": entries}, sort_keys=False))
    return path


def test_a_manifest_larger_than_the_parameter_limit_runs_through_the_cli_and_skips_cheaply(
    prefect_harness, tmp_path, monkeypatch, capsys
):
    """300 tasks with 2 KB texts (over Prefect's 512 KB parameter limit if passed as parameters) through
    `quorum batch` with a budget too small for any plan: the first tasks (one per place in flight) are
    refused inside their pipeline, which closes the budget; every other task is skipped before it
    costs a subflow run or a workspace. The report lists all 300, the batch's run parameters stay tiny."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterName

    from quorum.cli.main import main
    from quorum.inputs.manifests import load_manifest

    manifest_path = write_big_manifest(tmp_path / "big.yaml", 300)
    manifest = load_manifest(manifest_path)
    assert len(json.dumps(manifest.model_dump(mode="json"))) > PARAMETER_LIMIT  # too big to be a parameter
    store = tmp_path / "store"
    monkeypatch.chdir(tmp_path)
    code = main(["batch", str(manifest_path), "--roster", "scripted", "--store", str(store), "--parallel", "3",
                 "--batch-budget", "0.00001", "--batch-id", "scale-cli"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1, out
    assert "outcomes: skipped 300" in out

    summary = json.loads((store / "runs/scale-cli/report.json").read_text())
    assert summary["tasks"] == 300 and summary["counts"]["skipped"] == 300 and summary["rows"] == "runs/scale-cli/report.jsonl"
    rows = [json.loads(line) for line in (store / "runs/scale-cli/report.jsonl").read_text().splitlines()]
    assert [r["task_id"] for r in rows] == [spec.id for spec in manifest.tasks]
    assert all(r["status"] == "skipped" and r["reason"].startswith("budget: batch budget") for r in rows)
    assert all((store / r["result"]).is_file() for r in rows)  # every task has its result.json, skipped too
    inputs = json.loads((store / "runs/scale-cli/_inputs/batch.json").read_text())
    assert inputs["tasks"] == 300 and inputs["tasks_key"] == "runs/scale-cli/_inputs/tasks.jsonl"

    with get_client(sync_client=True) as client:
        (batch_run,) = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["quorum-batch"])),
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["scale-cli"])),
        )
        task_runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["quorum-task"])),
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_="scale-0")),
            limit=200,
        )
    assert batch_run.state.is_completed()
    assert len(json.dumps(batch_run.parameters, default=str)) < 2_000  # references, not tasks
    assert len(task_runs) <= 3, "only the tasks already in flight when the budget closed may start a subflow"


# ----------------------------------------------------------------------------------- watching shards


class FakeRuns:
    """The few Prefect client calls the shard watcher makes, over runs whose states the test sets."""

    def __init__(self, runs, heartbeats):
        self.runs = {run.id: run for run in runs}
        self.heartbeats = heartbeats  # run id -> datetime of its last heartbeat
        self.set_states: list[tuple[object, str, str]] = []
        self.event_reads = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def read_flow_runs(self, flow_run_filter, limit):
        wanted = set(flow_run_filter.id.any_)
        return [run for run_id, run in self.runs.items() if run_id in wanted][:limit]

    def read_events(self, filter, limit):
        from types import SimpleNamespace

        self.event_reads += 1
        run_id = filter.resource.id[0].removeprefix("prefect.flow-run.")
        beat = next((t for rid, t in self.heartbeats.items() if str(rid) == run_id), None)
        return SimpleNamespace(events=[SimpleNamespace(occurred=beat)] if beat else [])

    def set_flow_run_state(self, run_id, state, force):
        self.set_states.append((run_id, state.type.value, state.message))


def test_the_shard_watcher_reports_finished_overdue_and_lost_runs():
    from datetime import datetime, timedelta, timezone

    from prefect.client.schemas.objects import FlowRun, State, StateType

    from quorum.prefect_api.runs import watch_runs

    now = datetime(2026, 12, 1, 3, 0, tzinfo=timezone.utc)

    def run(name, state, started_min_ago=None):
        start = now - timedelta(minutes=started_min_ago) if started_min_ago is not None else None
        return FlowRun(name=name, flow_id="00000000-0000-0000-0000-000000000000", state=State(type=state),
                       start_time=start, created=now - timedelta(hours=1))  # fmt: skip

    done = run("done", StateType.COMPLETED, 30)
    overdue = run("overdue", StateType.RUNNING, 30)  # deadline 10 min
    silent = run("silent", StateType.RUNNING, 5)  # last heartbeat 4 min ago
    alive = run("alive", StateType.RUNNING, 5)  # last heartbeat 20 s ago
    queued = run("queued", StateType.SCHEDULED)  # waiting for a worker: never a fault
    client = FakeRuns([done, overdue, silent, alive, queued],
                      {silent.id: now - timedelta(minutes=4), alive.id: now - timedelta(seconds=20)})  # fmt: skip
    ids = [r.id for r in (done, overdue, silent, alive, queued)]
    watched = watch_runs(ids, deadline_s={overdue.id: 600, silent.id: 3600, alive.id: 3600}, stale_after_s=90,
                         poll_s=0, client_factory=lambda: client, now=lambda: now)  # fmt: skip
    ended = [next(watched) for _ in range(3)]
    assert [(e.flow_run.name, e.why.split(":")[0].split(" ")[0]) for e in ended] == [
        ("done", ""), ("overdue", "still"), ("silent", "lost"),
    ]  # fmt: skip
    assert "no heartbeat for 240s" in ended[2].why and "deadline 600s" in ended[1].why
    assert [(s[0], s[1]) for s in client.set_states] == [(overdue.id, "CANCELLING"), (silent.id, "CRASHED")]
    # the live and the queued runs are still watched; once they end, the watcher does too
    alive.state, queued.state = State(type=StateType.COMPLETED), State(type=StateType.FAILED)
    assert sorted(e.flow_run.name for e in watched) == ["alive", "queued"]


def test_a_crashed_task_pipeline_leaves_its_error_result_in_the_store(tmp_path, monkeypatch):
    """A shard's batch collects results from the store, so a task whose subflow crashed (e.g. the server
    answered 503 to a concurrency slot) must leave its error there, with the reason."""
    import quorum.flows.batch as batch
    from quorum.domain.budget import UNLIMITED
    from quorum.domain.run import RunContext
    from quorum.store import open_store

    def crash(*_args, **_kwargs):
        raise RuntimeError("Unable to acquire concurrency slots: 503 Service Unavailable")

    monkeypatch.setattr(batch, "run_task_pipeline", crash)
    store = open_store(str(tmp_path / "store"))
    run = RunContext(batch_id="b", store_url=str(tmp_path / "store"), store=store, started_at=0.0, budget=UNLIMITED)
    result = batch._pipeline(TaskSpec(id="t1", repo="r", task="x"), None, None, run)  # type: ignore[arg-type]
    assert result.status == TaskStatus.error
    stored = TaskResult.model_validate_json(store.get_text("runs/b/t1/result.json"))
    assert stored.status == TaskStatus.error and "503 Service Unavailable" in stored.reason


def test_the_shard_watcher_declares_a_silent_run_lost_on_a_real_server(prefect_harness):
    """Against a real server (not a fake client): a RUNNING flow run with no heartbeat is declared lost and
    marked Crashed once `stale_after_s` passes; a run's heartbeat events are found where the watcher reads them."""
    import time as _time
    from datetime import datetime, timezone

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.events import emit_event
    from prefect.states import Running

    from quorum.prefect_api.runs import watch_runs

    @flow(name="quorum-watch-probe")
    def probe() -> None: ...

    with get_client(sync_client=True) as client:
        silent, beating = (client.create_flow_run(probe, name=name) for name in ("silent", "beating"))
        for run in (silent, beating):
            client.set_flow_run_state(run.id, Running(), force=True)
    started = datetime.now(timezone.utc)
    lost = []
    for ended in watch_runs([silent.id], deadline_s={}, stale_after_s=4, poll_s=0.5, heartbeat_check_s=0.5):
        lost.append((ended.flow_run.name, ended.why))
    assert lost and lost[0][0] == "silent" and lost[0][1].startswith("lost: no heartbeat")
    # a run that beats is not lost: its heartbeat events are what the watcher reads
    from quorum.prefect_api.runs import _last_heartbeat
    from tests.event_helpers import wait_for_events

    for _ in range(3):
        emit_event(event="prefect.flow-run.heartbeat", resource={"prefect.resource.id": f"prefect.flow-run.{beating.id}"})
    assert wait_for_events("prefect.flow-run.heartbeat", count=3, resource_id=f"prefect.flow-run.{beating.id}")
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(beating.id)
        beat = _last_heartbeat(client, run)
        assert beat is not None and (datetime.now(timezone.utc) - beat).total_seconds() < 30
        assert client.read_flow_run(silent.id).state.type.value == "CRASHED"
    assert (datetime.now(timezone.utc) - started).total_seconds() < 60
