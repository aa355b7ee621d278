"""One (repository, task) pair: prepare → plan → rounds of (implement → apply → verify → review → aggregate) → acceptance.

Composition only: every side effect is a task in `quorum.tasks`, every rule a pure function in
`quorum.domain`; `RunContext` carries the store, the batch's spend account and the progress sink.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass

from prefect import flow, tags

from quorum.domain.artifacts import (
    decision_artifacts,
    plan_artifacts,
    result_key,
    round_artifacts,
    round_prefix,
    task_prefix,
    to_json,
    verification_artifacts,
    without_outputs,
)
from quorum.domain.budget import BudgetCheck
from quorum.domain.ledger import TaskLedger
from quorum.domain.manifest import TaskSpec
from quorum.domain.models import (
    Finding,
    Outcome,
    Plan,
    ReviewResult,
    RoundRecord,
    TaskResult,
    TaskStatus,
    VerificationReport,
)
from quorum.domain.policy import AggregationInput, Policy
from quorum.domain.results import render_task_markdown, ui_key
from quorum.domain.resume import spec_digest
from quorum.domain.roster import Roster, StageModel
from quorum.domain.run import RunContext
from quorum.environments.task_env import PreparedEnvironment, summary_of
from quorum.flows.environment import ENV_ERROR, prepare_environment
from quorum.flows.verify import verify_acceptance, verify_round
from quorum.llm.client import StructuredOutputError
from quorum.llm.pricing import litellm_price
from quorum.stages.plan import render_plan_markdown
from quorum.stages.prompting import stable_text
from quorum.stages.review import render_tool_report
from quorum.stages.sizes import prompt_sizes
from quorum.tasks.aggregate import aggregate_task
from quorum.tasks.apply import apply_patch_task
from quorum.tasks.context import read_context_task
from quorum.tasks.events import emit_task_event_task
from quorum.tasks.implement import implement_task
from quorum.tasks.plan import plan_task
from quorum.tasks.review import review_task
from quorum.tasks.store import save_artifacts_task
from quorum.tasks.ui import publish_markdown_task
from quorum.tasks.workspace import cleanup_task, prepare_task
from quorum.verify.sarif import to_sarif


@flow(name="quorum-task", flow_run_name="{spec.id}", log_prints=True)
def task_pipeline(spec: TaskSpec, roster: Roster, policy: Policy, run: RunContext) -> TaskResult:
    """Run one task to a final outcome; infrastructure failures become an `error` result, never a crash."""
    ledger = TaskLedger(run.budget, run.started_at)
    work_root = tempfile.mkdtemp(prefix=f"quorum-{spec.id}-")
    run.report(spec.id, "started")
    try:
        result = _run_task(spec, roster, policy, run, ledger, work_root)
    except Exception as exc:  # the batch must go on; the reason is recorded, never dropped
        if isinstance(exc, StructuredOutputError):
            ledger.add(exc.calls)
        result = ledger.result(spec, run.batch_id, TaskStatus.error, f"{type(exc).__name__}: {exc}")
    finally:
        cleanup_task(work_root, label=spec.id)
    result.spec_digest = spec_digest(spec, roster, policy)
    result.artifacts["result"] = result_key(run.batch_id, spec.id)
    save_artifacts_task(run.store, {result.artifacts["result"]: to_json(result)}, label=f"{spec.id} result")
    publish_markdown_task(
        ui_key("quorum", run.batch_id, spec.id), render_task_markdown(result, run.store_url), f"quorum task {spec.id}"
    )
    emit_task_event_task(result, run.store_url)
    run.report(spec.id, result.status.value, result.reason, done=True)
    return result


@dataclass(frozen=True)
class _Job:
    """What every stage of one task needs and no round changes."""

    spec: TaskSpec
    roster: Roster
    policy: Policy
    run: RunContext
    ledger: TaskLedger
    work_root: str
    files: dict[str, str]
    prompt_chars: dict[str, int]
    environment: PreparedEnvironment

    def allows(self, stage: str, models: list[StageModel]) -> BudgetCheck:
        """The stage's estimate, from the real prompt sizes, still fits the task's and the batch's budget."""
        return self.ledger.allows(stage, models, self.prompt_chars[stage], litellm_price, self.policy.task_budget_usd)


def _run_task(
    spec: TaskSpec, roster: Roster, policy: Policy, run: RunContext, ledger: TaskLedger, work_root: str
) -> TaskResult:
    run.report(spec.id, "prepare")
    with ledger.timed("prepare"):
        files = read_context_task(prepare_task(spec, work_root, purpose="context").path, label=spec.id)
    with ledger.timed("environment"):  # the repository's own test environment and its baseline
        environment = prepare_environment(spec, run, work_root)
    if environment.status == ENV_ERROR:  # never a patch failure, and nothing paid for
        return ledger.result(spec, run.batch_id, TaskStatus.error, f"{ENV_ERROR}: {environment.error}",
                             environment=summary_of(environment, spec.instance))  # fmt: skip
    job = _Job(spec, roster, policy, run, ledger, work_root, files, prompt_sizes(spec.task, files), environment)

    allowed = job.allows("plan", [roster.planner])
    if not allowed.allowed:  # nothing spent yet: when the batch ran out, the task is skipped, not failed
        status = TaskStatus.skipped if allowed.scope == "batch" else TaskStatus.failed
        return ledger.result(spec, run.batch_id, status, allowed.reason)

    run.report(spec.id, "plan", roster.planner.model)
    with ledger.timed("plan"), tags(f"provider:{roster.planner.provider}", "stage:plan"):
        planned = plan_task(spec, roster.planner, files)
    ledger.add(planned.calls)
    first = round_prefix(run.batch_id, spec.id, 1)
    save_artifacts_task(
        run.store, plan_artifacts(first, planned.plan, render_plan_markdown(planned.plan), planned.calls),
        label=f"{spec.id} plan",
    )  # fmt: skip

    artifacts = {"plan": f"{first}/plan.md"}
    records: list[RoundRecord] = []
    feedback: list[str] = []
    findings: list[Finding] = []
    workspace = ""
    for round_no in range(1, policy.max_rounds + 1):
        allowed = job.allows("implement", [roster.implementer])
        if not allowed.allowed:
            decision = aggregate_task(
                AggregationInput(round=round_no, budget_exhausted=True, budget_reason=allowed.reason), policy
            )
            save_artifacts_task(run.store, decision_artifacts(round_prefix(run.batch_id, spec.id, round_no), decision),
                                label=f"{spec.id} r{round_no}")  # fmt: skip
            break
        record, workspace = _run_round(job, planned.plan, round_no, feedback, findings)
        records.append(record)
        artifacts[f"round{round_no}"] = round_prefix(run.batch_id, spec.id, round_no)
        decision = record.decision
        if decision.outcome != Outcome.revise:
            break
        feedback = [stable_text(reason) for reason in decision.reasons]
        findings = decision.findings

    done = {"decision": decision, "rounds": len(records), "artifacts": artifacts,
            "environment": summary_of(environment, spec.instance) if environment.status != "none" else None}
    if decision.outcome == Outcome.approve:
        return _acceptance(spec, run, ledger, workspace, done, environment)
    status = {Outcome.escalate: TaskStatus.escalated, Outcome.fail: TaskStatus.failed}[decision.outcome]
    return ledger.result(spec, run.batch_id, status, "; ".join(decision.reasons), **done)


def _run_round(
    job: _Job, plan: Plan, round_no: int, feedback: list[str], findings: list[Finding]
) -> tuple[RoundRecord, str]:
    """implement → apply → verify → (reviews) → aggregate, and the round's artifacts; returns the workspace too."""
    spec, roster, policy, run, ledger = job.spec, job.roster, job.policy, job.run, job.ledger
    label = f"{spec.id} · round {round_no}"
    run.report(spec.id, "implement", f"round {round_no}")
    with ledger.timed("implement"), tags(f"provider:{roster.implementer.provider}", "stage:implement"):
        implemented = implement_task(spec, roster.implementer, job.files, plan, round_no, feedback, findings)
    ledger.add(implemented.calls)

    with ledger.timed("apply"):
        workspace = prepare_task(spec, job.work_root, purpose=f"round {round_no}").path
        patch = apply_patch_task(workspace, implemented.diff, label=label)

    reports: list[VerificationReport] = []
    if patch.applied:
        run.report(spec.id, "verify", f"round {round_no}")
        with ledger.timed("verify"):  # here, or on the sandbox work pool (QUORUM_VERIFY_DEPLOYMENT)
            prefix = round_prefix(run.batch_id, spec.id, round_no)
            reports = verify_round(workspace, patch, label=label, policy=policy, store_url=run.store_url, prefix=prefix,
                                   environment=job.environment)  # fmt: skip

    reviews = []
    wants_review = patch.applied and not (any(r.blocking for r in reports) and policy.verify_before_review)
    allowed = job.allows("review", roster.reviewers) if wants_review else BudgetCheck(allowed=True)
    if wants_review and allowed.allowed:
        run.report(spec.id, "review", f"round {round_no}")
        with ledger.timed("review"):
            reviews = _review(job, plan, implemented.diff, render_tool_report(reports), round_no)
        for review in reviews:
            ledger.add(review.calls)

    evidence = AggregationInput(
        round=round_no, patch_applied=patch.applied, patch_reason=patch.reason, verification=reports,
        reviews=reviews, budget_exhausted=not allowed.allowed, budget_reason=allowed.reason,
    )  # fmt: skip
    decision = aggregate_task(evidence, policy)
    sarif = json.dumps(to_sarif(reports, strip_prefixes=[workspace]), indent=2) + "\n" if reports else None
    save_artifacts_task(
        run.store,
        round_artifacts(
            round_prefix(run.batch_id, spec.id, round_no), diff=implemented.diff, reply=implemented.reply,
            patch=patch, calls=implemented.calls, reports=reports, sarif=sarif, reviews=reviews, decision=decision,
        ),
        label=label,
    )  # fmt: skip
    run.report(spec.id, "decision", f"round {round_no}: {decision.outcome.value}")
    record = RoundRecord(round=round_no, patch_applied=patch.applied, patch_reason=patch.reason,
                         verification=reports, reviews=reviews, decision=decision)  # fmt: skip
    return record, workspace


def _review(job: _Job, plan: Plan, diff: str, tool_report: str, round_no: int) -> list[ReviewResult]:
    """Every reviewer at once, each its own cached task."""
    futures = []
    for reviewer in job.roster.reviewers:
        with tags(f"provider:{reviewer.provider}", "stage:review"):
            futures.append(review_task.submit(job.spec, reviewer, job.files, plan, diff, tool_report, round_no))
    return [future.result() for future in futures]


def _acceptance(
    spec: TaskSpec, run: RunContext, ledger: TaskLedger, workspace: str, done: dict, environment: PreparedEnvironment
) -> TaskResult:
    """The held-out acceptance tests on the approved patch decide whether the task is resolved."""
    if not spec.acceptance and not spec.instance:
        return ledger.result(spec, run.batch_id, TaskStatus.approved_unverified, "approved; no acceptance tests", **done)
    run.report(spec.id, "acceptance")
    with ledger.timed("acceptance"):
        prefix = task_prefix(run.batch_id, spec.id)
        report = verify_acceptance(workspace, spec.acceptance, label=spec.id, store_url=run.store_url, prefix=prefix,
                                   environment=environment, instance=spec.instance)  # fmt: skip
    save_artifacts_task(run.store, verification_artifacts(prefix, [report]), label=f"{spec.id} acceptance")
    done["artifacts"]["acceptance"] = f"{prefix}/verify/{report.raw_name}"
    if report.status.value == "passed":
        status, reason = TaskStatus.resolved, "approved and acceptance tests passed"
    else:
        status, reason = TaskStatus.failed, f"approved but acceptance tests {report.status.value}: {report.summary[:300]}"
    result = ledger.result(spec, run.batch_id, status, reason, **done)
    result.acceptance = without_outputs(report)
    return result
