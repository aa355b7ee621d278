"""Full flow runs under a real (temporary) Prefect server with the scripted provider."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from quorum.flows.batch import batch_pipeline
from quorum.inputs.manifests import load_manifest
from quorum.inputs.rosters import load_roster
from quorum.domain.policy import Policy
from tests.support.reports import report_rows, task_results

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {
    "textkit-slugify": ("resolved", 1),
    "filestats-count-lines": ("resolved", 2),
    "userdir-permission-cache": ("escalated", 1),
}


@pytest.fixture(scope="module")
def demo_runs(prefect_harness, tmp_path_factory):
    """The demo batch, run twice against one store: cold, then warm (every task run again, not resumed)."""
    from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings

    store = tmp_path_factory.mktemp("store")
    manifest = load_manifest(ROOT / "examples" / "demo.yaml")
    roster = load_roster("scripted")
    # A result cache of its own: other tests run the same demo tasks, and "cold" must really be cold.
    with temporary_settings({PREFECT_RESULTS_LOCAL_STORAGE_PATH: tmp_path_factory.mktemp("results")}):
        cold = batch_pipeline(manifest, roster, str(store), Policy(), max_parallel=3)
        warm = batch_pipeline(manifest, roster, str(store), Policy(), max_parallel=3, resume=False)
    return store, cold, warm


def test_demo_batch_reaches_the_three_outcomes(demo_runs):
    _, cold, _ = demo_runs
    outcomes = {r.task_id: (r.status.value, r.rounds) for r in report_rows(cold)}
    assert outcomes == EXPECTED
    assert cold.counts["resolved"] == 2 and cold.counts["escalated"] == 1
    assert cold.resolved_rate == pytest.approx(2 / 3)


def test_revision_was_forced_by_bandit_and_skipped_paid_reviews(demo_runs):
    store, cold, _ = demo_runs
    result = next(r for r in report_rows(cold) if r.task_id == "filestats-count-lines")
    round1 = json.loads((store / "runs/demo/filestats-count-lines/1/decision.json").read_text())
    assert round1["outcome"] == "revise"
    assert any(f["rule"] == "B602" and f["source"] == "bandit" for f in round1["findings"])
    assert not (store / "runs/demo/filestats-count-lines/1/reviews").exists()
    assert result.cost.by_stage["review"].calls == 2  # round 2 only
    bandit_raw = json.loads((store / "runs/demo/filestats-count-lines/1/verify/bandit.json").read_text())
    assert any(r["test_id"] == "B602" for r in bandit_raw["results"])


def test_escalation_names_the_disputed_finding(demo_runs):
    _, cold, _ = demo_runs
    result = next(r for r in task_results(cold) if r.task_id == "userdir-permission-cache")
    assert result.decision.outcome.value == "escalate"
    assert result.decision.findings[0].source == "scripted/gpt-5-mini"
    assert "disagree" in result.reason


def test_every_artifact_is_written(demo_runs):
    store, cold, _ = demo_runs
    base = store / "runs/demo/textkit-slugify"
    for name in ("1/plan.md", "1/plan.json", "1/patch.diff", "1/apply.json", "1/decision.json",
                 "1/verify/semgrep.json", "1/verify/bandit.json", "1/verify/pytest.xml", "1/verify/pytest.log",
                 "1/verify/quorum.sarif", "verify/acceptance.log",
                 "1/reviews/scripted_gpt-5-mini.json", "1/reviews/scripted_gemini-2.5-flash.json",
                 "verify/acceptance.xml", "result.json", "1/context.json", "1/localization.json"):  # fmt: skip
        assert (base / name).is_file(), name
    calls = sorted(p.name for p in (base / "1/calls").iterdir())
    assert calls == [
        "implement-scripted_deepseek-chat-attempt1.json",
        "localize-scripted_gemini-2.5-flash-attempt1.json",
        "plan-scripted_claude-sonnet-4-5-attempt1.json",
        "review-scripted_gemini-2.5-flash-attempt1.json",
        "review-scripted_gpt-5-mini-attempt1.json",
    ]
    result = json.loads((base / "result.json").read_text())
    assert result["status"] == "resolved" and result["policy_version"]
    assert result["acceptance"]["raw"] == "" and result["acceptance"]["log"] == ""  # saved as their own files
    sarif = json.loads((base / "1/verify/quorum.sarif").read_text())
    assert sarif["version"] == "2.1.0" and {run["tool"]["driver"]["name"] for run in sarif["runs"]} == {"semgrep", "bandit", "pytest"}
    rows = [json.loads(line) for line in (store / "runs/demo/report.jsonl").read_text().splitlines()]
    assert [r["task_id"] for r in rows] == list(EXPECTED)
    assert json.loads((store / "runs/demo/report.json").read_text())["rows"] == "runs/demo/report.jsonl"


def test_cost_and_tokens_are_accounted_per_stage_task_and_batch(demo_runs):
    _, cold, _ = demo_runs
    assert cold.cost.simulated
    for result in report_rows(cold):
        stages = result.cost.by_stage
        assert stages["plan"].calls == 1 and stages["plan"].cost_usd > 0
        assert result.cost.total.cost_usd == pytest.approx(sum(s.cost_usd for s in stages.values()))
        assert result.cost.total.prompt_tokens > 0
    assert cold.cost.total.cost_usd == pytest.approx(sum(r.cost.total.cost_usd for r in report_rows(cold)))
    assert cold.cost_per_resolved_usd == pytest.approx(cold.cost.total.cost_usd / 2)
    assert cold.fresh_llm_calls == cold.cost.total.calls == 5 + 6 + 5  # localize, plan, per round implement + reviews


def test_second_run_makes_zero_llm_calls(demo_runs):
    _, cold, warm = demo_runs
    assert [(r.task_id, r.status) for r in report_rows(warm)] == [(r.task_id, r.status) for r in report_rows(cold)]
    assert warm.fresh_llm_calls == 0 and warm.reused_results == 0
    assert warm.cached_llm_calls == cold.fresh_llm_calls
    assert warm.cost.total.cost_usd == pytest.approx(cold.cost.total.cost_usd)


def _one_task_manifest(tmp_path: Path, script: dict, task_id: str = "broken") -> Path:
    shutil.copytree(ROOT / "examples/textkit/repo", tmp_path / "repo")
    (tmp_path / "script.yaml").write_text(yaml.safe_dump(script))
    manifest = {"batch": "edge", "tasks": [{"id": task_id, "repo": "repo", "task": "Add slugify.", "script": "script.yaml"}]}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(manifest))
    return tmp_path / "m.yaml"


def test_unusable_plan_ends_the_task_as_error_without_crashing_the_batch(prefect_harness, tmp_path):
    path = _one_task_manifest(tmp_path, {"plan": "I refuse to answer in JSON"})
    report = batch_pipeline(load_manifest(path), load_roster("scripted"), str(tmp_path / "store"), Policy())
    (result,) = report_rows(report)
    assert result.status.value == "error"
    assert "no usable reply after 3 attempts" in result.reason
    assert result.cost.by_stage["plan"].calls == 3  # the re-asks are paid for and counted
    assert (tmp_path / "store/runs/edge/broken/result.json").is_file()


def test_patch_that_never_applies_fails_with_gits_reason(prefect_harness, tmp_path):
    bad = "```diff\n--- a/textkit/nope.py\n+++ b/textkit/nope.py\n@@ -1,2 +1,2 @@\n-old line\n+new line\n same\n```\n"
    plan = {"summary": "s", "steps": [{"description": "d"}]}
    path = _one_task_manifest(tmp_path, {"plan": plan, "implement": {1: bad, 2: bad}})
    report = batch_pipeline(load_manifest(path), load_roster("scripted"), str(tmp_path / "store"), Policy(max_rounds=2))
    (result,) = report_rows(report)
    assert result.status.value == "failed"
    assert result.rounds == 2
    assert "patch not applied" in result.reason and "nope.py" in result.reason
    assert "no rounds left" in result.reason
    applied = json.loads((tmp_path / "store/runs/edge/broken/1/apply.json").read_text())
    assert applied["applied"] is False


def test_batch_writes_its_artifacts_to_s3(prefect_harness, tmp_path, monkeypatch):
    """The same pipeline with an s3:// store (boto3 against moto): result, plan and report land in the bucket."""
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    manifest = load_manifest(ROOT / "examples" / "demo.yaml")
    one = manifest.model_copy(update={"tasks": manifest.tasks[:1], "batch": "s3demo"})
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="quorum-test")
        report = batch_pipeline(one, load_roster("scripted"), "s3://quorum-test/nightly", Policy())
        keys = {o["Key"] for o in boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket="quorum-test")["Contents"]}
        rows = report_rows(report)
        # the LLM stages' cache is in the bucket too: the same task in another batch (another process's home
        # would do the same) pays no call
        again = batch_pipeline(one, load_roster("scripted"), "s3://quorum-test/nightly", Policy(), batch_id="s3demo-again")
    assert rows[0].status.value == "resolved"
    assert any(key.startswith("nightly/cache/") for key in keys)
    assert report.fresh_llm_calls > 0 and again.fresh_llm_calls == 0
    assert again.cached_llm_calls == report.fresh_llm_calls
    for key in ("runs/s3demo/report.json", "runs/s3demo/textkit-slugify/result.json",
                "runs/s3demo/textkit-slugify/1/plan.md", "runs/s3demo/textkit-slugify/1/patch.diff"):  # fmt: skip
        assert f"nightly/{key}" in keys


def test_each_run_ends_in_a_state_named_by_its_outcome(demo_runs):
    """The runs list tells outcomes apart: a task's run is named by its id and its state by its outcome
    (green Resolved, red Escalated); the batch's run is named by the batch id, its state by the counts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId, FlowRunFilterParentTaskRunId,
    )  # fmt: skip

    store, cold, _ = demo_runs
    with get_client(sync_client=True) as client:
        batches = [r for r in client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["quorum-batch"])))
                   if r.parameters.get("store_url") == str(store)]  # fmt: skip
        # each task's run is a subflow: its parent is a task run of one of these batch runs
        parents = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[r.id for r in batches])))
        tasks = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_task_run_id=FlowRunFilterParentTaskRunId(any_=[t.id for t in parents])))  # fmt: skip
    assert len(tasks) == 2 * len(EXPECTED) and len(batches) == 2  # cold and warm
    expected = {"Resolved": "COMPLETED", "Escalated": "FAILED"}
    for run in tasks:
        name = {"resolved": "Resolved", "escalated": "Escalated"}[EXPECTED[run.name][0]]
        assert (run.state.name, run.state.type.value) == (name, expected[name]), run.name
        assert run.state.message.startswith(EXPECTED[run.name][0])
    for run in batches:
        assert run.name == "demo"
        assert (run.state.name, run.state.type.value) == ("2 resolved · 1 escalated", "FAILED")
        assert run.state.message.startswith("batch demo: 3 task(s)")
# ------------------------------------------------------------------------------ what the Prefect UI shows


def _all(read, **filters) -> list:
    """Every item of a Prefect read_* call, page by page (the API returns at most 200 at once)."""
    items: list = []
    while page := read(**filters, limit=200, offset=len(items)):
        items += page
    return items


def test_every_task_run_of_a_task_names_the_task_and_never_a_temp_path(demo_runs):
    """The UI lists task runs by name: each run inside a task's pipeline carries its task id; no name shows
    the task's temporary work folder (`cleanup · /tmp/quorum-…` was one)."""
    import tempfile

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId

    _, cold, warm = demo_runs
    work_roots = f"{tempfile.gettempdir()}/quorum-"
    with get_client(sync_client=True) as client:
        flows = FlowFilter(name=FlowFilterName(any_=["quorum-task"]))
        runs = {run.id: run for run in _all(client.read_flow_runs, flow_filter=flows)}
        task_ids = {run_id: run.parameters["spec"]["id"] for run_id, run in runs.items()}
        task_runs = _all(client.read_task_runs, flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(runs))))
        everything = _all(client.read_task_runs)
    demo_runs_ids = {str(run_id) for run_id, task_id in task_ids.items() if task_id in EXPECTED}
    assert {row.flow_run_id for row in report_rows(cold) + report_rows(warm)} <= demo_runs_ids  # rows link their run
    assert all(row.flow_run_id for row in report_rows(cold))
    names = sorted({run.name.split(" · ")[0] for run in task_runs})
    assert {"aggregate", "cleanup", "plan", "implement", "review", "prepare", "semgrep", "ui"} <= set(names), names
    unnamed = [run.name for run in task_runs if task_ids[run.flow_run_id] not in run.name]
    assert not unnamed, f"task runs without their task id: {unnamed}"
    assert not [run.name for run in everything if work_roots in run.name]


def test_the_ui_shows_the_plan_patch_reviews_and_formatted_table(demo_runs):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    store, _, warm = demo_runs  # the artifacts shown are the latest run's
    with get_client(sync_client=True) as client:
        def latest(key: str):
            (artifact,) = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                                limit=1, sort="CREATED_DESC")  # fmt: skip
            return artifact.data

        markdown = latest("quorum-demo-filestats-count-lines")
        table = latest("quorum-demo-needs-human")
    table = json.loads(table) if isinstance(table, str) else table
    task_dir = (store / "runs/demo/filestats-count-lines").as_uri()
    assert f"- artifacts: `{task_dir}`" in markdown
    assert "## Plan" in markdown and "## Patch (round 2)\n\n```diff\ndiff --git " in markdown
    assert "## Round 1: revise" in markdown and "bandit/B602" in markdown and "## Round 2: approve" in markdown
    assert "- **scripted/gpt-5-mini** (openai): **approve**" in markdown and "## Acceptance tests" in markdown
    assert "- **scripted/gemini-2.5-flash** (gemini): **approve**" in markdown
    assert "| scripted/claude-sonnet-4-5 | 1 | " in markdown and "| latency per call |" in markdown
    (row,) = table
    full = next(r for r in report_rows(warm) if r.task_id == "userdir-permission-cache")
    assert row["task"] == "userdir-permission-cache" and row["reason"] == full.reason  # whole, as in report.jsonl
    assert row["cost"].startswith("$0.") and row["cost"].endswith("(simulated)")
    assert row["result"] == (store / "runs/demo/userdir-permission-cache/result.json").as_uri()
    assert full.flow_run_id and row["flow_run"].endswith(full.flow_run_id)  # a UI link when PREFECT_UI_URL is known
