"""Batch behaviour beyond one task: resuming an interrupted batch, batch and task budgets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import quorum.flows.pipeline
from quorum.flows.batch import batch_pipeline
from quorum.inputs.manifests import load_manifest
from quorum.inputs.rosters import load_roster
from quorum.domain.policy import Policy
from tests.support.reports import report_rows

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo():
    return load_manifest(ROOT / "examples" / "demo.yaml"), load_roster("scripted")


def uncached(manifest, tag: str):
    """The same tasks with a changed task text, so no LLM result cached by another test is reused."""
    tasks = [spec.model_copy(update={"task": f"{spec.task}\n\n({tag})"}) for spec in manifest.tasks]
    return manifest.model_copy(update={"tasks": tasks})


def test_rerun_keeps_finished_results_and_reruns_the_rest_from_cache(prefect_harness, tmp_path, demo):
    manifest, roster = demo
    manifest = manifest.model_copy(update={"tasks": manifest.tasks[:2]})  # textkit (1 round), filestats (2)
    store = tmp_path / "store"
    cold = batch_pipeline(manifest, roster, str(store), Policy(), batch_id="resume")
    # As if the batch had been killed before its second task finished and before the report was written.
    (store / "runs/resume/filestats-count-lines/result.json").unlink()
    (store / "runs/resume/report.json").unlink()

    resumed = batch_pipeline(manifest, roster, str(store), Policy(), batch_id="resume")

    by_id = {r.task_id: r for r in report_rows(resumed)}
    assert resumed.reused_results == 1
    assert by_id["textkit-slugify"].reused
    rerun = by_id["filestats-count-lines"]
    assert not rerun.reused and rerun.status.value == "resolved" and rerun.rounds == 2
    assert resumed.fresh_llm_calls == 0  # the re-run task's calls come from the persisted cache
    assert resumed.cost.total.calls == cold.cost.total.calls
    assert json.loads((store / "runs/resume/report.json").read_text())["reused_results"] == 1


def test_changed_policy_does_not_reuse_results(prefect_harness, tmp_path, demo):
    manifest, roster = demo
    one = manifest.model_copy(update={"tasks": manifest.tasks[:1]})
    store = str(tmp_path / "store")
    batch_pipeline(one, roster, store, Policy(), batch_id="policy")
    again = batch_pipeline(one, roster, store, Policy(max_rounds=2), batch_id="policy")
    assert again.reused_results == 0 and not report_rows(again)[0].reused


def test_spent_batch_budget_stops_new_calls_and_reports_the_rest_as_skipped(prefect_harness, tmp_path, demo, monkeypatch):
    """Every stage is estimated at a nanodollar, so a stage starts while any budget is left. The first
    task's localize and plan calls spend more than the whole budget: no further call starts anywhere in
    the batch (the other tasks' localize stages are refused too, and the ranking stands in for them)."""
    monkeypatch.setattr(quorum.flows.pipeline, "litellm_price", lambda model, prompt, completion, *cache: 1e-9)
    manifest, roster = demo
    store = tmp_path / "store"
    report = batch_pipeline(
        uncached(manifest, "batch budget"), roster, str(store), Policy(), max_parallel=1, batch_budget_usd=0.001
    )

    first, *rest = report_rows(report)
    assert first.status.value == "failed" and first.reason.startswith("budget: batch budget")
    assert first.cost.total.calls == 2 and first.cost.by_stage["plan"].calls == 1
    assert first.cost.by_stage["localize"].calls == 1
    assert (store / "runs/demo/textkit-slugify/1/plan.md").is_file()  # what was paid for is kept
    assert [r.status.value for r in rest] == ["skipped", "skipped"]
    assert all("batch budget" in r.reason and r.cost.total.calls == 0 for r in rest)
    assert report.counts["skipped"] == 2 and report.fresh_llm_calls == 2
    assert report.batch_budget_usd == 0.001


def test_task_budget_stops_before_the_stage_that_would_exceed_it(prefect_harness, tmp_path, demo, monkeypatch):
    """Localization and plans are estimated free, patches at $1: with a $0.50 task budget the plan is made
    and kept, then the task stops as failed (budget) before any implementation call."""

    def price(model: str, prompt: int, completion: int, *cache: int) -> float:
        return 1.0 if "deepseek" in model else 0.0

    monkeypatch.setattr(quorum.flows.pipeline, "litellm_price", price)
    manifest, roster = demo
    one = manifest.model_copy(update={"tasks": manifest.tasks[:1]})
    store = tmp_path / "store"
    report = batch_pipeline(one, roster, str(store), Policy(task_budget_usd=0.5))

    (result,) = report_rows(report)
    assert result.status.value == "failed"
    assert result.reason.startswith("budget: task budget $0.5000 would be exceeded by implement")
    assert set(result.cost.by_stage) == {"localize", "plan"}
    decision = json.loads((store / "runs/demo/textkit-slugify/1/decision.json").read_text())
    assert decision["outcome"] == "fail" and decision["reasons"] == [result.reason]
    assert (store / "runs/demo/textkit-slugify/1/plan.json").is_file()
