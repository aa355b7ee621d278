"""Pure parts of batch running: budgets, estimates, resume rules, requests, remote repos, fan-out results."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from quorum.domain.budget import BatchBudget, check_stage
from quorum.domain.estimate import estimate_batch, estimate_task, stage_estimate
from quorum.domain.tokens import tokens_for
from quorum.stages.sizes import estimated_prompt_sizes
from quorum.domain.manifest import ManifestError
from quorum.inputs.manifests import load_manifest
from quorum.domain.models import CostSummary, StageCost, TaskResult, TaskStatus
from quorum.inputs.requests import TaskRequest, request_id, request_spec
from quorum.domain.resume import as_reused, reusable, spec_digest
from quorum.inputs.rosters import load_roster
from quorum.domain.policy import Policy

ROOT = Path(__file__).resolve().parents[1]


def flat_price(model: str, prompt_tokens: int, completion_tokens: int, cached: int = 0, written: int = 0) -> float:
    return (prompt_tokens - 0.9 * cached + 0.25 * written + 2 * completion_tokens) / 1e6


# ------------------------------------------------------------------------------------------- budgets


def test_stage_starts_only_if_it_fits_the_task_budget():
    assert check_stage(stage="plan", estimate_usd=0.4, task_spent_usd=0.5, task_budget_usd=1.0, batch=None).allowed
    refused = check_stage(stage="review", estimate_usd=0.6, task_spent_usd=0.5, task_budget_usd=1.0, batch=None)
    assert not refused.allowed and refused.scope == "task"
    assert refused.reason == "budget: task budget $1.0000 would be exceeded by review (spent $0.5000, review estimated $0.6000)"


def test_batch_budget_is_shared_and_refuses_once_spent():
    budget = BatchBudget(1.0)
    assert check_stage(stage="plan", estimate_usd=0.9, task_spent_usd=0, task_budget_usd=None, batch=budget).allowed
    budget.charge(0.7)
    refused = check_stage(stage="plan", estimate_usd=0.5, task_spent_usd=0, task_budget_usd=None, batch=budget)
    assert not refused.allowed and refused.scope == "batch" and "$0.3000 left" in refused.reason
    budget.charge(0.5)
    assert budget.exhausted() and budget.remaining_usd() == 0.0
    assert not BatchBudget(None).exhausted() and BatchBudget(None).remaining_usd() is None


# ----------------------------------------------------------------------------------------- estimates


def _estimated_sizes(tmp_path: Path, roster):
    """Prompt sizes for a small repository, built as the pipeline builds each stage's prompt."""
    (tmp_path / "repo/pkg").mkdir(parents=True)
    (tmp_path / "repo/pkg/mod.py").write_text("x = 1\n" * 100)
    return estimated_prompt_sizes("Add a function.", tmp_path / "repo", tmp_path / "index", roster)


def test_estimate_uses_real_prompts_typical_replies_and_the_rosters_prices(tmp_path):
    roster = load_roster("scripted").model_copy(update={"localizer": None})
    sizes = _estimated_sizes(tmp_path, roster)
    assert sizes.localize == 0 and len(sizes.review) == len(roster.reviewers)
    assert sizes.plan > 600 and sizes.implement > sizes.plan and min(sizes.review) > sizes.implement
    plan = stage_estimate("plan", roster.planner, sizes.plan, flat_price)
    assert plan.prompt_tokens == tokens_for(sizes.plan) and plan.completion_tokens == 800
    task = estimate_task("t", sizes, roster, 3, flat_price)
    per_round = sum(s.cost_usd for s in task.stages if s.stage != "plan")
    later = sum(s.cost_usd for s in task.later_round)
    assert task.expected_usd == pytest.approx(plan.cost_usd + per_round)
    assert task.worst_usd == pytest.approx(plan.cost_usd + per_round + 2 * later)
    assert later < per_round  # rounds 2+ read the implementer's stable prefix from the (DeepSeek-priced) cache
    batch = estimate_batch([task, task], roster, 3)
    assert batch.expected_usd == pytest.approx(2 * task.expected_usd)
    assert set(batch.by_stage_expected_usd) == {"plan", "implement", "review"}
    assert any("characters / 4" in line for line in batch.assumptions)


def test_the_localize_stage_is_estimated_once_per_task_from_its_map(tmp_path):
    roster = load_roster("scripted")
    sizes = _estimated_sizes(tmp_path, roster)
    assert sizes.localize > 0
    task = estimate_task("t", sizes, roster, 3, flat_price)
    assert [s.stage for s in task.stages] == ["localize", "plan", "implement", "review", "review"]
    localize = task.stages[0]
    assert localize.model == "scripted/gemini-2.5-flash" and localize.completion_tokens == 400
    once = localize.cost_usd + task.stages[1].cost_usd
    per_round = sum(s.cost_usd for s in task.stages[2:])
    assert task.expected_usd == pytest.approx(once + per_round)
    assert task.worst_usd == pytest.approx(once + per_round + 2 * sum(s.cost_usd for s in task.later_round))
    assert set(estimate_batch([task], roster, 3).by_stage_expected_usd) == {"localize", "plan", "implement", "review"}


def test_the_estimate_assumes_the_prompt_cache_where_the_provider_offers_one(tmp_path):
    roster = load_roster("scripted").model_copy(update={"localizer": None})
    sizes = _estimated_sizes(tmp_path, roster)
    assert 0 < sizes.implement_stable <= sizes.implement and all(0 < s < r for s, r in zip(sizes.review_stable, sizes.review))
    task = estimate_task("t", sizes, roster, 3, flat_price)
    implement, later = task.stages[1], task.later_round[0]
    assert implement.cached_tokens == implement.cache_write_tokens == 0  # DeepSeek: automatic, nothing written
    assert later.cached_tokens > 0.8 * later.prompt_tokens and later.cost_usd < implement.cost_usd
    claude = roster.implementer.model_copy(update={"priced_as": "anthropic/claude-sonnet-4-5"})
    reviewers = [r.model_copy(update={"priced_as": p}) for r, p in zip(roster.reviewers, ["openai/gpt-5-mini", "gemini/gemini-2.5-flash"])]
    anthropic = roster.model_copy(update={"implementer": claude, "reviewers": reviewers})
    task = estimate_task("t", sizes, anthropic, 3, flat_price)
    first, again = task.stages[1], task.later_round[0]
    assert first.cache_write_tokens == again.cached_tokens > 0  # written in round 1, read after
    assert first.cost_usd > again.cost_usd
    assumption = estimate_batch([task], anthropic, 3).assumptions[-1]
    assert assumption.startswith("prompt cache assumed for") and "anthropic" in assumption
    no_cache = roster.model_copy(update={"implementer": roster.implementer.model_copy(update={"priced_as": "mistral/mistral-small-latest"})})
    assert estimate_task("t", sizes, no_cache, 3, flat_price).later_round[0].cached_tokens == 0


def test_completion_estimate_is_capped_at_max_tokens():
    model = load_roster("scripted").planner.model_copy(update={"max_tokens": 100})
    assert stage_estimate("plan", model, 4000, flat_price).completion_tokens == 100


# -------------------------------------------------------------------------------------------- resume


def _result(status: TaskStatus, digest: str) -> TaskResult:
    cost = CostSummary(total=StageCost(calls=4, fresh_calls=4, cost_usd=0.01), by_stage={"plan": StageCost(calls=1, fresh_calls=1)})
    return TaskResult(batch_id="b", task_id="t", repo="/r", status=status, spec_digest=digest, cost=cost)


def test_only_finished_results_of_the_same_task_roster_and_policy_are_reused():
    manifest = load_manifest(ROOT / "examples/demo.yaml")
    spec, roster = manifest.tasks[0], load_roster("scripted")
    digest = spec_digest(spec, roster, Policy())
    assert digest == spec_digest(spec, roster, Policy())
    assert digest != spec_digest(spec, roster, Policy(max_rounds=2))
    assert digest != spec_digest(manifest.tasks[1], roster, Policy())
    assert reusable(_result(TaskStatus.escalated, digest), digest)
    assert not reusable(_result(TaskStatus.error, digest), digest)
    assert not reusable(_result(TaskStatus.skipped, digest), digest)
    assert not reusable(_result(TaskStatus.resolved, "other"), digest)
    assert not reusable(None, digest)
    kept = as_reused(_result(TaskStatus.resolved, digest))
    assert kept.reused and kept.cost.total.calls == 4 and kept.cost.total.fresh_calls == 0
    assert kept.cost.by_stage["plan"].fresh_calls == 0 and kept.cost.total.cost_usd == 0.01


# ------------------------------------------------------------------------------------------ requests


def test_request_becomes_a_validated_task_spec(tmp_path):
    repo = ROOT / "examples/textkit/repo"
    spec = request_spec(TaskRequest(repo=str(repo), task="Add slugify.", task_id="", ref=None, script=""))
    assert spec.id == request_id(str(repo), "Add slugify.") and spec.id.startswith("repo-")
    assert spec.repo == str(repo) and spec.script is None and spec.ref is None
    with pytest.raises(ManifestError, match="repository path .* does not exist"):
        request_spec(TaskRequest(repo=str(tmp_path / "nope"), task="x"))
    with pytest.raises(ManifestError, match="task text is empty"):
        request_spec(TaskRequest(repo=str(repo), task="   "))


def test_a_git_url_is_cloned_once_and_prepared_like_a_local_repo(tmp_path):
    from quorum.workspace.remote import is_remote, mirror
    from quorum.workspace.workspace import prepare_workspace, read_context

    origin = tmp_path / "origin"
    subprocess.run(["git", "init", "-q", "-b", "main", str(origin)], check=True)
    (origin / "mod.py").write_text("VALUE = 1\n")
    subprocess.run(["git", "-C", str(origin), "add", "."], check=True)
    subprocess.run(["git", "-C", str(origin), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"], check=True)
    url = f"file://{origin}"
    assert is_remote(url) and is_remote("git@github.com:acme/widgets.git") and not is_remote(str(origin))
    spec = request_spec(TaskRequest(repo=url, task="Change VALUE."))
    assert spec.repo == url
    work = tmp_path / "work"
    work.mkdir()
    clone = mirror(url, work)
    assert mirror(url, work) == clone  # made once per task
    workspace = prepare_workspace(clone, work, ref="main")
    assert read_context(Path(workspace.path)) == {"mod.py": "VALUE = 1\n"}


def test_unreachable_git_url_is_a_clear_error(tmp_path):
    from quorum.workspace.remote import mirror
    from quorum.workspace.workspace import WorkspaceError

    with pytest.raises(WorkspaceError, match="could not clone file:///nowhere"):
        mirror("file:///nowhere/repo.git", tmp_path)


# ------------------------------------------------------------------------------------------ S3 input


def test_manifest_is_read_from_s3(tmp_path, monkeypatch):
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    text = (ROOT / "examples/demo.yaml").read_text()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="manifests")
        s3.put_object(Bucket="manifests", Key="nightly/demo.yaml", Body=text.encode())
        manifest = load_manifest("s3://manifests/nightly/demo.yaml", base=ROOT / "examples")
        assert [t.id for t in manifest.tasks] == ["textkit-slugify", "filestats-count-lines", "userdir-permission-cache"]
        assert manifest.source == "s3://manifests/nightly/demo.yaml"
        with pytest.raises(ManifestError, match="does not exist"):
            load_manifest("s3://manifests/nightly/missing.yaml")
        with pytest.raises(ManifestError, match="needs a bucket and a key"):
            load_manifest("s3://manifests")


# ------------------------------------------------------------------------------------ batch plumbing


def test_nightly_batch_ids_are_dated_in_utc():
    from quorum.flows.batch import dated_id

    late = datetime(2026, 11, 28, 23, 30, tzinfo=timezone.utc)
    assert dated_id("nightly", late) == "nightly-2026-11-28"


def test_shard_results_come_from_the_store_and_unfinished_tasks_are_errors(tmp_path):
    """A shard's tasks are read back from the store; one without a result.json (or with another run's, for other
    inputs) never finished, and is reported as an error saying how its shard's run ended."""
    from prefect.client.schemas.objects import FlowRun, State, StateType

    from quorum.domain.run import RunContext
    from quorum.domain.shards import Shard
    from quorum.store import open_store
    from quorum.tasks.fan_out import run_ending, shard_outcome, shard_parameters

    first, second, third = load_manifest(ROOT / "examples/demo.yaml").tasks
    finished = TaskResult(batch_id="b", task_id=first.id, repo=first.repo, status=TaskStatus.resolved, spec_digest="d1")
    stale = TaskResult(batch_id="b", task_id=third.id, repo=third.repo, status=TaskStatus.resolved, spec_digest="old")
    shard = Shard(index=2, count=3, task_ids=[first.id, second.id, third.id])
    expected = {first.id: (first.repo, "d1"), second.id: (second.repo, "d2"), third.id: (third.repo, "d3")}
    found = {first.id: finished, third.id: stale}

    def run(state_type: StateType, message: str = "") -> FlowRun:
        return FlowRun(name="brave-otter", flow_id="00000000-0000-0000-0000-000000000000", state=State(type=state_type, message=message))

    def outcome(flow_run: FlowRun, found: dict, why: str = "") -> list[TaskResult]:
        return shard_outcome(flow_run.name, run_ending(flow_run, why), shard, "b", found, expected, "d/x")

    done = outcome(run(StateType.COMPLETED), found)
    assert [r.task_id for r in done] == shard.task_ids and done[0] is finished
    assert [r.status for r in done[1:]] == [TaskStatus.error, TaskStatus.error]
    assert "shard 2/3 (run brave-otter of d/x) completed but wrote no result" in done[1].reason
    assert done[1].repo == second.repo and done[1].spec_digest == "d2"  # a resumed batch runs it again
    crashed = outcome(run(StateType.CRASHED, "worker lost"), found)
    assert crashed[0].status == TaskStatus.resolved  # finished before the crash: kept
    assert "did not finish (crashed: worker lost)" in crashed[1].reason and crashed[2].status == TaskStatus.error
    lost = outcome(run(StateType.RUNNING), {}, why="lost: no heartbeat for 95s")
    assert all(r.status == TaskStatus.error and r.reason.endswith("lost: no heartbeat for 95s") for r in lost)

    store = tmp_path / "store"
    context = RunContext(batch_id="b", store_url=str(store), store=open_store(str(store)), started_at=1.0)
    params = shard_parameters(shard, context, 4, "quorum-budget-b")
    assert params == {
        "store_url": str(store), "batch_id": "b", "task_ids": shard.task_ids, "shard": "shard 2/3",
        "max_parallel": 4, "run_started_at": 1.0, "budget_account": "quorum-budget-b",
    }  # fmt: skip
    # by reference: no task text, repository path or roster in a shard run's parameters
    assert first.task not in json.dumps(params) and "roster" not in params
