"""Review an existing change: the verification tools and independent reviewers, aggregated by the same policy.

`review_change` is `quorum review`'s flow, and `quorum review-eval` runs it once per change of a
labelled set: prepare the repository at the change's base → apply the diff safely → verify
(Semgrep, Bandit, pytest; here or on the sandbox work pool) → every reviewer at once (each its own
cached task) → one decision per panel (a roster's reviewers) and, for evaluation, one for the
tools alone → artifacts (patch, reports, reviews, calls, decisions, review.md/json/sarif).
"""

from __future__ import annotations

import json
import tempfile
import time

from prefect import flow

from quorum.domain.artifacts import call_artifacts, review_artifacts, slug, to_json, verification_artifacts, without_outputs
from quorum.domain.change import TOOLS_PANEL, ChangeReview, ChangeSpec, render_change_review_markdown, union_reviewers
from quorum.domain.cost import summarize_calls
from quorum.domain.labels import touched_lines
from quorum.domain.models import PatchResult, ReviewResult, VerificationReport, VerificationStatus
from quorum.domain.policy import AggregationInput, Policy
from quorum.domain.results import ui_key
from quorum.domain.roster import Roster
from quorum.flows.verify import ROUND_TOOLS, submit_round_tool, verify_remotely
from quorum.llm.client import LLMError
from quorum.prefect_api.stage_runs import StageFuture
from quorum.sandbox.isolation import verify_deployment
from quorum.stages.change_review import changed_regions
from quorum.stages.review import render_tool_report
from quorum.tasks.aggregate import aggregate_task
from quorum.tasks.apply import apply_reply_task
from quorum.tasks.change import prepare_change_task, read_files_task
from quorum.tasks.change_review import review_change_task
from quorum.tasks.limits import ensure_limits_task
from quorum.tasks.store import open_store_task, save_artifacts_task
from quorum.tasks.ui import publish_markdown_task
from quorum.tasks.workspace import cleanup_task
from quorum.verify.sarif import to_sarif


@flow(name="quorum-review", flow_run_name="review · {change.id}", log_prints=True)
def review_change(
    change: ChangeSpec,
    rosters: list[Roster],
    store_url: str,
    prefix: str,
    policy: Policy | None = None,
    tools: list[str] | None = None,
    always_review: bool = False,
    run_started_at: float | None = None,
    publish: bool = True,
    ensure_limits: bool = True,
    panel_prefix: str = "",
) -> ChangeReview:
    """Review one change by every reviewer of the rosters; one decision per roster (its *panel*), named
    `<panel_prefix><roster name>`, and one for the tools alone.

    With `always_review` every reviewer reviews even when the tools block (review evaluation scores
    each reviewer alone); otherwise the policy's `verify_before_review` skips paid reviews then.
    `ensure_limits` creates the rosters' provider limits first (a caller reviewing many changes does it once).
    """
    reviewers = union_reviewers(rosters)
    panels = {f"{panel_prefix}{roster.name}": [m.model for m in roster.reviewers] for roster in rosters}
    if ensure_limits:
        for roster in rosters:
            ensure_limits_task(roster)
    policy = policy or Policy()
    tools = list(ROUND_TOOLS if tools is None else tools)
    started = run_started_at if run_started_at is not None else time.time()
    store = open_store_task(store_url)
    work_root = tempfile.mkdtemp(prefix=f"quorum-review-{change.id}-")
    reports: list[VerificationReport] = []
    reviews: list[ReviewResult] = []
    errors: dict[str, str] = {}
    failed_calls = []
    workspace = ""
    try:
        workspace = prepare_change_task(change, work_root).path
        patch: PatchResult = apply_reply_task(workspace, change.diff, label=change.id)
        if patch.applied and tools:
            reports = _verify(workspace, patch, tools, policy=policy, store_url=store_url, prefix=prefix, label=change.id)
        blocked = any(report.blocking for report in reports)
        if patch.applied and reviewers and (always_review or not (blocked and policy.verify_before_review)):
            files = read_files_task(workspace, patch.files, label=change.id)
            regions = changed_regions(files, touched_lines(change.diff))
            tool_report = render_tool_report(reports)
            futures = [
                (reviewer, StageFuture(reviewer.provider, "review", lambda reviewer=reviewer: review_change_task.submit(
                    reviewer, change.description, change.diff, regions, tool_report, change.script,
                    change.script_sha256, label=change.id,
                )))
                for reviewer in reviewers
            ]  # fmt: skip
            for reviewer, future in futures:
                try:
                    reviews.append(future.result())
                except LLMError as exc:  # no usable review: recorded with the calls it paid for, never dropped
                    errors[reviewer.model] = f"{type(exc).__name__}: {exc}"
                    failed_calls.extend(exc.calls)
    finally:
        cleanup_task(work_root, label=change.id)

    decisions = {}
    for panel, models in panels.items():
        evidence = AggregationInput(
            round=1, patch_applied=patch.applied, patch_reason=patch.reason, verification=reports,
            reviews=[r for r in reviews if r.reviewer in models],
        )  # fmt: skip
        decisions[panel] = aggregate_task(evidence, policy, f"{change.id} · {panel}")
    if tools:
        evidence = AggregationInput(round=1, patch_applied=patch.applied, patch_reason=patch.reason, verification=reports)
        decisions[TOOLS_PANEL] = aggregate_task(evidence, policy, f"{change.id} · {TOOLS_PANEL}")

    result = ChangeReview(
        change_id=change.id, patch=patch, verification=[without_outputs(r) for r in reports], tools=tools,
        reviews=reviews, errors=errors, failed_calls=failed_calls, decisions=decisions,
        panels={**panels, **({TOOLS_PANEL: []} if tools else {})},
        cost=summarize_calls([c for r in reviews for c in r.calls] + failed_calls, run_started_at=started),
    )  # fmt: skip
    result.artifacts = {"review_md": f"{prefix}/review.md", "review_json": f"{prefix}/review.json",
                        "review_sarif": f"{prefix}/review.sarif"}  # fmt: skip
    first_panel = next(iter(panels), TOOLS_PANEL if tools else None)
    markdown = render_change_review_markdown(change, result, first_panel, simulated=result.cost.simulated) if first_panel else ""
    sarif = to_sarif(reports + [_as_report(r) for r in reviews], strip_prefixes=[workspace] if workspace else [])
    items = {
        f"{prefix}/patch.diff": change.diff,
        f"{prefix}/apply.json": to_json(patch),
        **verification_artifacts(prefix, reports),
        **review_artifacts(prefix, reviews),
        **call_artifacts(prefix, failed_calls),
        **{f"{prefix}/decisions/{slug(panel)}.json": to_json(decision) for panel, decision in decisions.items()},
        f"{prefix}/review.json": to_json(result.model_copy(update={"reviews": [r.model_copy(update={"calls": []}) for r in reviews]})),
        f"{prefix}/review.sarif": json.dumps(sarif, indent=2) + "\n",
        **({f"{prefix}/review.md": markdown} if markdown else {}),
    }  # fmt: skip
    save_artifacts_task(store, items, label=f"{change.id} review")
    if publish and markdown:
        publish_markdown_task(ui_key("quorum-review", prefix), markdown, f"quorum review {change.id}")
    return result


def _verify(
    workspace: str, patch: PatchResult, tools: list[str], *, policy: Policy, store_url: str, prefix: str, label: str
) -> list[VerificationReport]:
    """The requested tools, as the pipeline runs them: local tasks, or the sandbox work pool (QUORUM_VERIFY_DEPLOYMENT)."""
    deployment = verify_deployment()
    if deployment is not None:
        return verify_remotely(deployment, workspace, None, tools, store_url=store_url, prefix=prefix, label=label,
                               files=patch.files, added_lines=patch.added_lines, policy=policy)  # fmt: skip
    futures = [
        submit_round_tool(tool, workspace, patch.files, patch.added_lines, label=label,
                          bandit_min_severity=policy.bandit_min_severity, bandit_min_confidence=policy.bandit_min_confidence)
        for tool in tools
    ]  # fmt: skip
    return [future.result() for future in futures]


def _as_report(review: ReviewResult) -> VerificationReport:
    """A reviewer's findings as one SARIF run (the driver is the reviewer model)."""
    return VerificationReport(
        tool=review.reviewer, status=VerificationStatus.passed, summary=review.review.summary,
        findings=review.findings(),
    )  # fmt: skip
