"""One (repository, task) pair through plan -> implement -> apply -> verify -> review -> aggregate.

Composition only: every side effect is a task in `tasks/`, every rule a pure function.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict

from prefect import flow, tags

from quorum.domain import progress
from quorum.domain.budget import BudgetCheck, batch_budget, check_stage
from quorum.domain.estimate import litellm_price, prompt_sizes, stage_estimate
from quorum.domain.resume import spec_digest
from quorum.domain.artifacts import (
    call_artifacts,
    review_artifacts,
    round_prefix,
    task_prefix,
    to_json,
    verification_artifacts,
    without_outputs,
)
from quorum.domain.cost import summarize_calls
from quorum.llm.client import StructuredOutputError
from quorum.domain.manifest import TaskSpec
from quorum.domain.models import Decision, LLMCall, Outcome, RoundRecord, TaskResult, TaskStatus
from quorum.domain.results import render_task_markdown, ui_key
from quorum.domain.roster import Roster, StageModel
from quorum.domain.policy import AggregationInput, Policy
from quorum.tasks.aggregate import aggregate_task
from quorum.tasks.events import emit_task_event_task
from quorum.tasks.implement import implement_task
from quorum.stages.plan import render_plan_markdown
from quorum.tasks.plan import plan_task
from quorum.stages.prompting import stable_text
from quorum.tasks.workspace import apply_patch_task, cleanup_task, prepare_task, read_context_task
from quorum.stages.review import render_tool_report
from quorum.tasks.review import review_task
from quorum.verify.sarif import to_sarif
from quorum.tasks.store import publish_markdown_task, save_artifacts_task
from quorum.tasks.verify import acceptance_task, bandit_task, pytest_task, semgrep_task


class _Ledger:
    """Calls paid for and time spent, per stage, while one task runs; fresh spend is charged to the batch."""

    def __init__(self, batch_id: str, run_started_at: float) -> None:
        self.calls: list[LLMCall] = []
        self.timings: dict[str, float] = defaultdict(float)
        self.batch = batch_budget(batch_id)
        self.run_started_at = run_started_at

    def add(self, calls: list[LLMCall]) -> None:
        self.calls.extend(calls)
        if self.batch is not None:
            self.batch.charge(sum(c.cost_usd for c in calls if c.started_at >= self.run_started_at))

    def spent(self) -> float:
        return sum(call.cost_usd for call in self.calls)

    def timed(self, stage: str, started: float) -> None:
        self.timings[stage] += time.time() - started


@flow(name="quorum-task", flow_run_name="{spec.id}", log_prints=True)
def task_pipeline(
    spec: TaskSpec,
    roster: Roster,
    policy: Policy,
    store_url: str,
    batch_id: str,
    run_started_at: float | None = None,
) -> TaskResult:
    """Run one task to a final outcome; infrastructure failures become an `error` result, never a crash."""
    run_started_at = run_started_at or time.time()
    ledger = _Ledger(batch_id, run_started_at)
    work_root = tempfile.mkdtemp(prefix=f"quorum-{spec.id}-")
    progress.report(spec.id, "started")
    try:
        result = _run_rounds(spec, roster, policy, store_url, batch_id, ledger, work_root, run_started_at)
    except Exception as exc:  # the batch must go on; the reason is recorded, never dropped
        if isinstance(exc, StructuredOutputError):
            ledger.add(exc.calls)
        result = _result(spec, batch_id, TaskStatus.error, f"{type(exc).__name__}: {exc}", ledger, run_started_at)
    finally:
        cleanup_task(work_root)
    result.spec_digest = spec_digest(spec, roster, policy)
    result.artifacts["result"] = f"{task_prefix(batch_id, spec.id)}/result.json"
    save_artifacts_task(store_url, {result.artifacts["result"]: to_json(result)}, label=f"{spec.id} result")
    publish_markdown_task(
        ui_key("quorum", batch_id, spec.id), render_task_markdown(result, store_url), f"quorum task {spec.id}"
    )
    emit_task_event_task(result, store_url)
    progress.report(spec.id, result.status.value, result.reason, done=True)
    return result


def _run_rounds(
    spec: TaskSpec,
    roster: Roster,
    policy: Policy,
    store_url: str,
    batch_id: str,
    ledger: _Ledger,
    work_root: str,
    run_started_at: float,
) -> TaskResult:
    started = time.time()
    progress.report(spec.id, "prepare")
    files = read_context_task(prepare_task(spec, work_root, purpose="context").path, label=spec.id)
    ledger.timed("prepare", started)
    sizes = prompt_sizes(spec.task, files)

    def budget_allows(stage: str, models: list[StageModel]) -> BudgetCheck:
        estimate = sum(stage_estimate(stage, model, sizes[stage], litellm_price).cost_usd for model in models)
        return check_stage(
            stage=stage, estimate_usd=estimate, task_spent_usd=ledger.spent(),
            task_budget_usd=policy.task_budget_usd, batch=ledger.batch,
        )  # fmt: skip

    allowed = budget_allows("plan", [roster.planner])
    if not allowed.allowed:  # nothing spent yet: when the batch ran out, the task is skipped, not failed
        status = TaskStatus.skipped if allowed.scope == "batch" else TaskStatus.failed
        return _result(spec, batch_id, status, allowed.reason, ledger, run_started_at)

    started = time.time()
    progress.report(spec.id, "plan", roster.planner.model)
    with tags(f"provider:{roster.planner.provider}", "stage:plan"):
        planned = plan_task(spec, roster.planner, files)
    ledger.add(planned.calls)
    ledger.timed("plan", started)
    first = round_prefix(batch_id, spec.id, 1)
    artifacts = {"plan": f"{first}/plan.md"}
    save_artifacts_task(
        store_url,
        {
            f"{first}/plan.md": render_plan_markdown(planned.plan),
            f"{first}/plan.json": to_json(planned.plan),
            **call_artifacts(first, planned.calls),
        },
        label=f"{spec.id} plan",
    )

    feedback: list[str] = []
    findings = []
    records: list[RoundRecord] = []
    decision: Decision | None = None
    for round_no in range(1, policy.max_rounds + 1):
        prefix = round_prefix(batch_id, spec.id, round_no)
        allowed = budget_allows("implement", [roster.implementer])
        if not allowed.allowed:
            decision = aggregate_task(
                AggregationInput(round=round_no, budget_exhausted=True, budget_reason=allowed.reason), policy
            )
            save_artifacts_task(store_url, {f"{prefix}/decision.json": to_json(decision)}, label=f"{spec.id} r{round_no}")
            break

        started = time.time()
        progress.report(spec.id, "implement", f"round {round_no}")
        with tags(f"provider:{roster.implementer.provider}", "stage:implement"):
            implemented = implement_task(
                spec, roster.implementer, files, planned.plan, round_no, feedback, findings
            )
        ledger.add(implemented.calls)
        ledger.timed("implement", started)

        started = time.time()
        label = f"{spec.id} · round {round_no}"
        workspace = prepare_task(spec, work_root, purpose=f"round {round_no}")
        patch = apply_patch_task(workspace.path, implemented.diff, label=label)
        ledger.timed("apply", started)

        reports = []
        if patch.applied:
            started = time.time()
            progress.report(spec.id, "verify", f"round {round_no}")
            futures = [
                semgrep_task.submit(workspace.path, patch.files, patch.added_lines, label=label),
                bandit_task.submit(
                    workspace.path, patch.files, patch.added_lines, label=label,
                    min_severity=policy.bandit_min_severity, min_confidence=policy.bandit_min_confidence,
                ),
                pytest_task.submit(workspace.path, label=label),
            ]
            reports = [future.result() for future in futures]
            ledger.timed("verify", started)

        reviews = []
        verification_failed = any(report.blocking for report in reports)
        wants_review = patch.applied and not (verification_failed and policy.verify_before_review)
        allowed = budget_allows("review", roster.reviewers) if wants_review else BudgetCheck(allowed=True)
        if wants_review and allowed.allowed:
            started = time.time()
            progress.report(spec.id, "review", f"round {round_no}")
            tool_report = render_tool_report(reports)
            futures = []
            for reviewer in roster.reviewers:
                with tags(f"provider:{reviewer.provider}", "stage:review"):
                    futures.append(
                        review_task.submit(
                            spec, reviewer, files, planned.plan, implemented.diff, tool_report, round_no
                        )
                    )
            reviews = [future.result() for future in futures]
            for review in reviews:
                ledger.add(review.calls)
            ledger.timed("review", started)

        decision = aggregate_task(
            AggregationInput(
                round=round_no,
                patch_applied=patch.applied,
                patch_reason=patch.reason,
                verification=reports,
                reviews=reviews,
                budget_exhausted=not allowed.allowed,
                budget_reason=allowed.reason,
            ),
            policy,
        )
        records.append(
            RoundRecord(
                round=round_no,
                patch_applied=patch.applied,
                patch_reason=patch.reason,
                verification=reports,
                reviews=reviews,
                decision=decision,
            )
        )
        save_artifacts_task(
            store_url,
            {
                f"{prefix}/patch.diff": implemented.diff,
                f"{prefix}/implement.md": implemented.reply,
                f"{prefix}/apply.json": to_json(patch),
                f"{prefix}/decision.json": to_json(decision),
                **call_artifacts(prefix, implemented.calls),
                **verification_artifacts(prefix, reports),
                **({f"{prefix}/verify/quorum.sarif": sarif_text(reports, workspace.path)} if reports else {}),
                **review_artifacts(prefix, reviews),
            },
            label=label,
        )
        artifacts[f"round{round_no}"] = prefix
        progress.report(spec.id, "decision", f"round {round_no}: {decision.outcome.value}")

        if decision.outcome != Outcome.revise:
            break
        feedback = [stable_text(reason) for reason in decision.reasons]
        findings = decision.findings

    assert decision is not None  # max_rounds >= 1
    rounds = len(records)
    if decision.outcome == Outcome.approve:
        return _finish_approved(spec, batch_id, store_url, ledger, run_started_at, decision, rounds, artifacts, workspace.path)
    status = {Outcome.escalate: TaskStatus.escalated, Outcome.fail: TaskStatus.failed}[decision.outcome]
    return _result(
        spec, batch_id, status, "; ".join(decision.reasons), ledger, run_started_at,
        decision=decision, rounds=rounds, artifacts=artifacts,
    )  # fmt: skip


def sarif_text(reports, workspace_path: str) -> str:
    """All verification findings of a round as SARIF 2.1.0 (for GitHub code scanning), paths repo-relative."""
    return json.dumps(to_sarif(reports, strip_prefixes=[workspace_path]), indent=2) + "\n"


def _finish_approved(spec, batch_id, store_url, ledger, run_started_at, decision, rounds, artifacts, workspace_path):
    if not spec.acceptance:
        return _result(
            spec, batch_id, TaskStatus.approved_unverified, "approved; no acceptance tests", ledger, run_started_at,
            decision=decision, rounds=rounds, artifacts=artifacts,
        )  # fmt: skip
    started = time.time()
    progress.report(spec.id, "acceptance")
    report = acceptance_task(workspace_path, spec.acceptance, label=spec.id)
    ledger.timed("acceptance", started)
    prefix = task_prefix(batch_id, spec.id)
    save_artifacts_task(store_url, verification_artifacts(prefix, [report]), label=f"{spec.id} acceptance")
    artifacts["acceptance"] = f"{prefix}/verify/{report.raw_name}"
    if report.status.value == "passed":
        status, reason = TaskStatus.resolved, "approved and acceptance tests passed"
    else:
        status, reason = TaskStatus.failed, f"approved but acceptance tests {report.status.value}: {report.summary[:300]}"
    result = _result(
        spec, batch_id, status, reason, ledger, run_started_at,
        decision=decision, rounds=rounds, artifacts=artifacts,
    )  # fmt: skip
    result.acceptance = without_outputs(report)
    return result


def _result(spec, batch_id, status, reason, ledger, run_started_at, *, decision=None, rounds=0, artifacts=None):
    return TaskResult(
        batch_id=batch_id,
        task_id=spec.id,
        repo=spec.repo,
        status=status,
        reason=reason,
        rounds=rounds,
        decision=decision,
        cost=summarize_calls(ledger.calls, run_started_at=run_started_at),
        timings_s={stage: round(seconds, 3) for stage, seconds in ledger.timings.items()},
        artifacts=dict(artifacts or {}),
        policy_version=decision.policy_version if decision else "",
    )
