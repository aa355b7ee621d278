"""Aggregation: a pure, versioned policy from verification reports and reviews to a Decision.

No LLM call happens here. The rules, in order (docs/policy.md explains them):

1. Budget spent -> fail.
2. Patch not applied -> revise with the reason while rounds remain, else fail.
3. Any verification report not `passed` (findings on added lines, failing tests, an incomplete
   or broken scan) -> revise with the findings while rounds remain, else fail. Reviews cannot
   override this gate.
4. A review finding is *blocking* when its severity is at least `blocking_severity`.
   A blocking finding is *confirmed* when a tool found something at the same place, or when at
   least `confirmations_needed` reviewers raised it. Confirmed blocking findings -> revise while
   rounds remain, else fail.
5. A blocking finding raised by fewer reviewers than needed and not confirmed by a tool means the
   reviewers disagree -> escalate to a human.
6. Otherwise -> approve (non-blocking findings are kept as notes).

Whatever the outcome, a report whose untrusted tests ran without a sandbox (the operator's
``QUORUM_SANDBOX_ALLOW_UNISOLATED=1``) puts a note on the decision (``Decision.notes``, shown in
the UI and result.json); notes never change the outcome and are not fed back to the implementer.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from quorum.domain.models import Decision, Finding, Outcome, ReviewResult, Severity, VerificationReport

POLICY_VERSION = "2026.11.1"
UNISOLATED_NOTE = "untrusted tests ran unisolated"
BanditLevel = Literal["low", "medium", "high"]
LINE_TOLERANCE = 3


class Policy(BaseModel):
    version: str = POLICY_VERSION
    max_rounds: int = Field(default=3, ge=1, description="Implementation rounds before a task fails.")
    blocking_severity: Severity = Severity.high
    confirmations_needed: int = Field(default=2, ge=1, description="Reviewers who must raise a finding to confirm it.")
    verify_before_review: bool = Field(default=True, description="Skip paid reviews when verification fails.")
    task_budget_usd: float | None = Field(default=None, gt=0, description="Stop a task (failed: budget) past this spend.")
    bandit_min_severity: BanditLevel = Field(default="medium", description="Bandit results below this severity never block.")
    bandit_min_confidence: BanditLevel = Field(default="medium", description="Bandit results below this confidence are ignored.")


class AggregationInput(BaseModel):
    round: int = Field(ge=1)
    patch_applied: bool = True
    patch_reason: str = ""
    verification: list[VerificationReport] = Field(default_factory=list)
    reviews: list[ReviewResult] = Field(default_factory=list)
    budget_exhausted: bool = False
    budget_reason: str = Field(default="", description="Which budget would be broken, and by what.")


def same_place(a: Finding, b: Finding) -> bool:
    """Two findings point at the same place: same file and lines within a small tolerance."""
    if not a.file or a.file != b.file:
        return False
    if not a.line or not b.line:
        return True
    return abs(a.line - b.line) <= LINE_TOLERANCE


def unisolated_tools(reports: list[VerificationReport]) -> list[str]:
    """Tools whose untrusted code ran without isolation (opted in), in report order."""
    return [r.tool for r in reports if r.sandbox.get("mode") == "none" and not r.sandbox.get("refused")]


def isolation_notes(reports: list[VerificationReport]) -> list[str]:
    tools = unisolated_tools(reports)
    if not tools:
        return []
    return [
        f"{UNISOLATED_NOTE} ({', '.join(tools)}): QUORUM_SANDBOX_ALLOW_UNISOLATED=1 was set where no sandbox "
        "is possible; they could read the worker's environment and files and use the network"
    ]


def is_blocking(finding: Finding, policy: Policy) -> bool:
    return finding.severity.rank >= policy.blocking_severity.rank


def decide(inputs: AggregationInput, policy: Policy | None = None) -> Decision:
    policy = policy or Policy()
    rounds_left = inputs.round < policy.max_rounds

    def decision(outcome: Outcome, reasons: list[str], findings: list[Finding] | None = None) -> Decision:
        return Decision(
            outcome=outcome,
            reasons=reasons,
            findings=findings or [],
            notes=isolation_notes(inputs.verification),
            policy_version=policy.version,
            round=inputs.round,
        )

    def revise_or_fail(reasons: list[str], findings: list[Finding]) -> Decision:
        if rounds_left:
            return decision(Outcome.revise, reasons, findings)
        return decision(Outcome.fail, [*reasons, f"no rounds left ({policy.max_rounds} used)"], findings)

    if inputs.budget_exhausted:
        return decision(Outcome.fail, [inputs.budget_reason or "budget exhausted"])

    if not inputs.patch_applied:
        finding = Finding(source="patch", rule="patch-rejected", severity=Severity.high, message=inputs.patch_reason)
        return revise_or_fail([f"patch not applied: {inputs.patch_reason}"], [finding])

    tool_findings = [f for report in inputs.verification for f in report.findings]
    failing = [report for report in inputs.verification if report.blocking]
    if failing:
        reasons = [f"{report.tool} {report.status.value}: {report.summary}".strip() for report in failing]
        driving = [f for report in failing for f in report.findings if f.in_patch] or [
            Finding(source=report.tool, rule=report.status.value, severity=Severity.high, message=report.summary)
            for report in failing
        ]
        return revise_or_fail(reasons, driving)

    if not inputs.reviews:
        return decision(Outcome.approve, ["verification passed; no reviews were run"])

    confirmed: list[Finding] = []
    disputed: list[Finding] = []
    for finding in _blocking_review_findings(inputs.reviews, policy):
        raisers = {
            review.reviewer
            for review in inputs.reviews
            if any(same_place(finding, other) and is_blocking(other, policy) for other in review.findings())
        }
        by_tool = any(same_place(finding, tool) for tool in tool_findings)
        if by_tool or len(raisers) >= min(policy.confirmations_needed, len(inputs.reviews)):
            if not any(same_place(finding, seen) for seen in confirmed):
                confirmed.append(finding)
        elif not any(same_place(finding, seen) for seen in disputed):
            disputed.append(finding)

    if confirmed:
        reasons = [f"confirmed blocking finding at {f.location()}: {f.message}" for f in confirmed]
        return revise_or_fail(reasons, confirmed)
    if disputed:
        reasons = [
            f"reviewers disagree on blocking finding at {f.location()} raised by {f.source}: {f.message}"
            for f in disputed
        ]
        return decision(Outcome.escalate, reasons, disputed)

    notes = [f for review in inputs.reviews for f in review.findings()]
    approvals = sum(1 for review in inputs.reviews if review.review.verdict == "approve")
    reasons = [f"verification passed; no blocking review findings ({approvals}/{len(inputs.reviews)} approved)"]
    return decision(Outcome.approve, reasons, notes)


def _blocking_review_findings(reviews: list[ReviewResult], policy: Policy) -> list[Finding]:
    return [f for review in reviews for f in review.findings() if is_blocking(f, policy)]

