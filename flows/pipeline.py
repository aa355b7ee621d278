"""One (repository, task) pair: prepare → localize → plan → rounds of (implement → apply → verify → review →
aggregate) → acceptance.

Composition only: every side effect is a task in `quorum.tasks`, every rule a pure function in
`quorum.domain`; `RunContext` carries the store, the batch's spend account and the progress sink.
Each LLM stage is given its own repository context (quorum.context), recorded per round in context.json.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run

from quorum.domain.artifacts import (
    context_artifacts,
    decision_artifacts,
    localize_artifacts,
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
    RoundContext,
    RoundRecord,
    StageContextRecord,
    TaskResult,
    TaskStatus,
    VerificationReport,
)
from quorum.domain.outcome_states import task_state_spec
from quorum.domain.policy import AggregationInput, Policy
from quorum.domain.results import render_task_markdown, ui_key
from quorum.domain.resume import spec_digest
from quorum.context.models import Localization, StageContext
from quorum.domain.roster import Roster, StageModel
from quorum.domain.run import RunContext
from quorum.domain.story import TaskStory
from quorum.environments.task_env import PreparedEnvironment, summary_of
from quorum.flows.environment import ENV_ERROR, prepare_environment
from quorum.flows.verify import verify_acceptance, verify_round
from quorum.llm.client import StructuredOutputError
from quorum.llm.pricing import litellm_price
from quorum.prefect_api.result_cache import cache_storage
from quorum.prefect_api.stage_runs import StageFuture, run_stage
from quorum.prefect_api.states import state_for
from quorum.stages.plan import render_plan_markdown
from quorum.stages.prompting import stable_text
from quorum.stages.review import render_tool_report
from quorum.stages.sizes import implement_prompt_chars, localize_prompt_chars, plan_prompt_chars, review_prompt_chars
from quorum.tasks.aggregate import aggregate_task
from quorum.tasks.apply import apply_reply_task
from quorum.tasks.context import (
    deterministic_localization_task,
    implementer_context_task,
    localize_input_task,
    planner_context_task,
    reviewer_context_task,
)
from quorum.tasks.events import emit_task_event_task
from quorum.tasks.implement import implement_task
from quorum.tasks.localize import localize_task
from quorum.tasks.plan import plan_task
from quorum.tasks.review import review_task
from quorum.tasks.store import save_artifacts_task
from quorum.tasks.ui import publish_markdown_task
from quorum.tasks.workspace import cleanup_task, prepare_task
from quorum.verify.sarif import to_sarif


@flow(name="quorum-task", flow_run_name="{spec.id}", log_prints=True)
def task_pipeline(spec: TaskSpec, roster: Roster, policy: Policy, run: RunContext) -> State:
    """Run one task to a final outcome; infrastructure failures become an `error` result, never a crash.

    The run ends in a state named by the outcome (quorum.domain.outcome_states: `Resolved` is green,
    `Escalated`/`Failed` red, `Error` orange, `Skipped` grey) whose result is the `TaskResult`: call it
    with `return_state=True` and take the result with `quorum.prefect_api.states.result_of`.
    """
    ledger = TaskLedger(run.budget, run.started_at)
    work_root = tempfile.mkdtemp(prefix=f"quorum-{spec.id}-")
    story = TaskStory()  # plan and rounds as they happen, for the task's markdown artifact
    run.report(spec.id, "started")
    try:
        result = _run_task(spec, roster, policy, run, ledger, work_root, story)
    except Exception as exc:  # the batch must go on; the reason is recorded, never dropped
        if isinstance(exc, StructuredOutputError):
            ledger.add(exc.calls)
        result = ledger.result(spec, run.batch_id, TaskStatus.error, f"{type(exc).__name__}: {exc}")
    finally:
        cleanup_task(work_root, label=spec.id)
    result.spec_digest = spec_digest(spec, roster, policy)
    result.flow_run_id = str(flow_run.id or "")
    result.artifacts["result"] = result_key(run.batch_id, spec.id)
    save_artifacts_task(run.store, {result.artifacts["result"]: to_json(result)}, label=f"{spec.id} result")
    publish_markdown_task(
        ui_key("quorum", run.batch_id, spec.id), render_task_markdown(result, run.store.url, story), f"quorum task {spec.id}"
    )
    emit_task_event_task(result, run.store_url)
    run.report(spec.id, result.status.value, result.reason, done=True)
    return state_for(task_state_spec(result.status, result.reason), result)


def run_task_pipeline(spec: TaskSpec, roster: Roster, policy: Policy, run: RunContext) -> State:
    """`task_pipeline` as a subflow whose LLM stages persist to the run's shared cache (quorum.prefect_api.result_cache),
    so whichever process runs it, on whichever machine, a call already paid is served from there. Returns its state."""
    cached = task_pipeline.with_options(result_storage=cache_storage(run.store, run.store_url))
    return cached(spec, roster, policy, run, return_state=True)


@dataclass(frozen=True)
class _Job:
    """What every stage of one task needs and no round changes."""

    spec: TaskSpec
    roster: Roster
    policy: Policy
    run: RunContext
    ledger: TaskLedger
    work_root: str
    source: str  # the task's workspace: the repository as it is before any patch
    environment: PreparedEnvironment

    def allows(self, stage: str, models: list[StageModel], prompt_chars: int | list[int]) -> BudgetCheck:
        """The stage's estimate, from its real prompt size(s), still fits the task's and the batch's budget."""
        return self.ledger.allows(stage, models, prompt_chars, litellm_price, self.policy.task_budget_usd)


def _run_task(
    spec: TaskSpec, roster: Roster, policy: Policy, run: RunContext, ledger: TaskLedger, work_root: str, story: TaskStory
) -> TaskResult:
    run.report(spec.id, "prepare")
    with ledger.timed("prepare"):
        source = prepare_task(spec, work_root, purpose="context").path
    with ledger.timed("environment"):  # the repository's own test environment and its baseline
        environment = prepare_environment(spec, run, work_root)
    if environment.status == ENV_ERROR:  # never a patch failure, and nothing paid for
        return ledger.result(spec, run.batch_id, TaskStatus.error, f"{ENV_ERROR}: {environment.error}",
                             environment=summary_of(environment, spec.instance))  # fmt: skip
    job = _Job(spec, roster, policy, run, ledger, work_root, source, environment)
    localization, seen = _localize(job)
    with ledger.timed("context"):
        shown = planner_context_task(source, run.store_url, spec.task, localization, roster.planner, label=spec.id)
    seen.append(shown.record())

    allowed = job.allows("plan", [roster.planner], plan_prompt_chars(spec.task, shown.text))
    if not allowed.allowed:  # nothing paid yet: when the batch ran out, the task is skipped, not failed
        status = TaskStatus.skipped if allowed.scope == "batch" and not ledger.calls else TaskStatus.failed
        return ledger.result(spec, run.batch_id, status, allowed.reason, contexts=[RoundContext(round=1, stages=seen)])

    run.report(spec.id, "plan", roster.planner.model)
    with ledger.timed("plan"):
        planned = run_stage(roster.planner.provider, "plan", lambda: plan_task(spec, roster.planner, shown.text))
    ledger.add(planned.calls)
    story.plan = planned.plan
    first = round_prefix(run.batch_id, spec.id, 1)
    save_artifacts_task(
        run.store, plan_artifacts(first, planned.plan, render_plan_markdown(planned.plan), planned.calls),
        label=f"{spec.id} plan",
    )  # fmt: skip
    with ledger.timed("context"):
        implementer_view = implementer_context_task(
            source, run.store_url, spec.task, planned.plan, localization, roster.implementer, label=spec.id
        )

    artifacts = {"plan": f"{first}/plan.md"}
    records: list[RoundRecord] = []
    contexts: list[RoundContext] = []
    feedback: list[str] = []
    findings: list[Finding] = []
    workspace = ""
    for round_no in range(1, policy.max_rounds + 1):
        prompt = implement_prompt_chars(spec.task, implementer_view.text, planned.plan, roster.implementer.resolved_edit_format)
        allowed = job.allows("implement", [roster.implementer], prompt)
        if not allowed.allowed:
            decision = aggregate_task(
                AggregationInput(round=round_no, budget_exhausted=True, budget_reason=allowed.reason), policy, spec.id
            )
            contexts.append(RoundContext(round=round_no, stages=seen))
            prefix = round_prefix(run.batch_id, spec.id, round_no)
            save_artifacts_task(run.store, {**decision_artifacts(prefix, decision), **context_artifacts(prefix, contexts[-1])},
                                label=f"{spec.id} r{round_no}")  # fmt: skip
            break
        record, workspace, context = _run_round(job, planned.plan, implementer_view, round_no, feedback, findings, seen)
        seen = []  # localize and plan belong to round 1
        records.append(record)
        story.rounds.append(record)
        contexts.append(context)
        artifacts[f"round{round_no}"] = round_prefix(run.batch_id, spec.id, round_no)
        decision = record.decision
        if decision.outcome != Outcome.revise:
            break
        feedback = [stable_text(reason) for reason in decision.reasons]
        findings = decision.findings

    done = {"decision": decision, "rounds": len(records), "artifacts": artifacts, "contexts": contexts,
            "environment": summary_of(environment, spec.instance) if environment.status != "none" else None}
    if decision.outcome == Outcome.approve:
        return _acceptance(spec, run, ledger, workspace, done, environment)
    status = {Outcome.escalate: TaskStatus.escalated, Outcome.fail: TaskStatus.failed}[decision.outcome]
    return ledger.result(spec, run.batch_id, status, "; ".join(decision.reasons), **done)


def _localize(job: _Job) -> tuple[Localization, list[StageContextRecord]]:
    """The localize stage on the repository map. The deterministic ranking stands in when the roster has
    no localizer, when the budget leaves no room for it, or when the model's answer cannot be used."""
    spec, roster, run, ledger = job.spec, job.roster, job.run, job.ledger
    calls = []
    with ledger.timed("localize"):
        if roster.localizer is None:
            localization = deterministic_localization_task(job.source, run.store_url, spec.task, label=spec.id)
            record = StageContextRecord(stage="localize", notes=["no localizer in the roster: the ranking localizes"])
        else:
            localizer = roster.localizer
            given = localize_input_task(job.source, run.store_url, spec.task, localizer, label=spec.id)
            allowed = job.allows("localize", [localizer], localize_prompt_chars(spec.task, given.map_text))
            if allowed.allowed:
                run.report(spec.id, "localize", localizer.model)
                localized = run_stage(localizer.provider, "localize", lambda: localize_task(
                    spec, localizer, given.map_text, given.paths, given.fallback))
                ledger.add(localized.calls)
                localization, calls = localized.localization, localized.calls
            else:
                localization = given.fallback.standing_in(allowed.reason)
            record = given.record(localizer.model, localization)
    first = round_prefix(run.batch_id, spec.id, 1)
    save_artifacts_task(run.store, localize_artifacts(first, localization, calls), label=f"{spec.id} localize")
    return localization, [record]


def _run_round(
    job: _Job, plan: Plan, implementer_view: StageContext, round_no: int, feedback: list[str], findings: list[Finding],
    seen: list[StageContextRecord],
) -> tuple[RoundRecord, str, RoundContext]:  # fmt: skip
    """implement → apply → verify → (reviews) → aggregate, and the round's artifacts; returns the workspace
    and what each stage saw of the repository too."""
    spec, roster, policy, run, ledger = job.spec, job.roster, job.policy, job.run, job.ledger
    label = f"{spec.id} · round {round_no}"
    with ledger.timed("prepare"):  # a clean copy: implement dry-runs its replies there (re-asking on a refusal)
        prepared = prepare_task(spec, job.work_root, purpose=f"round {round_no}")
    workspace = prepared.path
    run.report(spec.id, "implement", f"round {round_no}")
    with ledger.timed("implement"):
        implemented = run_stage(roster.implementer.provider, "implement", lambda: implement_task(
            spec, roster.implementer, implementer_view.text, plan, round_no, feedback, findings,
            repo_digest=prepared.files_digest, workspace=workspace))  # fmt: skip
    ledger.add(implemented.calls)
    seen = [*seen, implementer_view.record()]

    with ledger.timed("apply"):
        patch = apply_reply_task(workspace, implemented.reply, label=label)

    reports: list[VerificationReport] = []
    if patch.applied:
        run.report(spec.id, "verify", f"round {round_no}")
        with ledger.timed("verify"):  # here, or on the sandbox work pool (QUORUM_VERIFY_DEPLOYMENT)
            prefix = round_prefix(run.batch_id, spec.id, round_no)
            reports = verify_round(workspace, patch, label=label, policy=policy, store_url=run.store_url, prefix=prefix,
                                   environment=job.environment)  # fmt: skip

    reviews = []
    wants_review = patch.applied and not (any(r.blocking for r in reports) and policy.verify_before_review)
    allowed = BudgetCheck(allowed=True)
    if wants_review:
        tool_report = render_tool_report(reports)
        with ledger.timed("context"):  # on the patched workspace: line numbers after the patch
            shown = [reviewer_context_task(workspace, run.store_url, patch.diff, reviewer, label=label)
                     for reviewer in roster.reviewers]  # fmt: skip
        seen += [view.record() for view in shown]
        sizes = [review_prompt_chars(spec.task, view.text, plan, patch.diff, tool_report) for view in shown]
        allowed = job.allows("review", roster.reviewers, sizes)
        if allowed.allowed:
            run.report(spec.id, "review", f"round {round_no}")
            with ledger.timed("review"):
                reviews = _review(job, plan, patch.diff, tool_report, round_no, shown)
            for review in reviews:
                ledger.add(review.calls)

    evidence = AggregationInput(
        round=round_no, patch_applied=patch.applied, patch_reason=patch.reason, verification=reports,
        reviews=reviews, budget_exhausted=not allowed.allowed, budget_reason=allowed.reason,
    )  # fmt: skip
    decision = aggregate_task(evidence, policy, spec.id)
    sarif = json.dumps(to_sarif(reports, strip_prefixes=[workspace]), indent=2) + "\n" if reports else None
    context = RoundContext(round=round_no, stages=seen)
    prefix = round_prefix(run.batch_id, spec.id, round_no)
    save_artifacts_task(
        run.store,
        {**round_artifacts(
            prefix, diff=patch.diff, reply=implemented.reply,
            patch=patch, calls=implemented.calls, reports=reports, sarif=sarif, reviews=reviews, decision=decision,
        ), **context_artifacts(prefix, context)},
        label=label,
    )  # fmt: skip
    run.report(spec.id, "decision", f"round {round_no}: {decision.outcome.value}")
    record = RoundRecord(round=round_no, patch_applied=patch.applied, patch_reason=patch.reason,
                         verification=reports, reviews=reviews, decision=decision, diff=patch.diff)  # fmt: skip
    return record, workspace, context


def _review(
    job: _Job, plan: Plan, diff: str, tool_report: str, round_no: int, shown: list[StageContext]
) -> list[ReviewResult]:
    """Every reviewer at once, each its own cached task with the context built for its model."""
    futures = [
        StageFuture(reviewer.provider, "review",
                    lambda reviewer=reviewer, view=view: review_task.submit(job.spec, reviewer, view.text, plan, diff,
                                                                            tool_report, round_no))
        for reviewer, view in zip(job.roster.reviewers, shown, strict=True)
    ]  # fmt: skip
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
