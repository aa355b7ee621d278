"""The aggregation policy: each rule, and that reviews can never bypass the deterministic gates."""

from __future__ import annotations

from quorum.domain.models import Finding, Outcome, Review, ReviewFinding, ReviewResult, Severity, VerificationReport, VerificationStatus
from quorum.domain.policy import POLICY_VERSION, AggregationInput, Policy, decide, same_place


def passed(tool: str) -> VerificationReport:
    return VerificationReport(tool=tool, status=VerificationStatus.passed, summary="clean")


def clean_reports() -> list[VerificationReport]:
    return [passed("semgrep"), passed("bandit"), passed("pytest")]


def review(reviewer: str, verdict: str = "approve", *findings: ReviewFinding) -> ReviewResult:
    return ReviewResult(
        reviewer=reviewer, provider=reviewer.split("/")[0], review=Review(verdict=verdict, findings=list(findings))
    )


def high(file: str = "app.py", line: int = 10, message: str = "cache never invalidated") -> ReviewFinding:
    return ReviewFinding(severity=Severity.high, file=file, line=line, category="correctness", message=message)


def test_all_clean_and_approved_is_approved_with_policy_version():
    decision = decide(AggregationInput(round=1, verification=clean_reports(), reviews=[review("openai/a"), review("gemini/b")]))
    assert decision.outcome == Outcome.approve
    assert decision.policy_version == POLICY_VERSION
    assert decision.round == 1
    assert "2/2 approved" in decision.reasons[0]


def test_verification_failure_revises_and_cannot_be_overridden_by_reviews():
    bandit = VerificationReport(
        tool="bandit", status=VerificationStatus.failed, summary="1 finding",
        findings=[Finding(source="bandit", rule="B602", severity=Severity.high, file="x.py", line=3, message="shell=True")],
    )
    inputs = AggregationInput(
        round=1, verification=[passed("semgrep"), bandit, passed("pytest")],
        reviews=[review("openai/a"), review("gemini/b")],
    )
    decision = decide(inputs)
    assert decision.outcome == Outcome.revise
    assert [f.rule for f in decision.findings] == ["B602"]


def test_verification_failure_in_last_round_fails():
    failing = VerificationReport(tool="pytest", status=VerificationStatus.failed, summary="1 failed")
    decision = decide(AggregationInput(round=3, verification=[failing]), Policy(max_rounds=3))
    assert decision.outcome == Outcome.fail
    assert any("no rounds left" in reason for reason in decision.reasons)


def test_incomplete_scan_blocks_approval():
    incomplete = VerificationReport(tool="semgrep", status=VerificationStatus.incomplete, summary="1 error")
    decision = decide(AggregationInput(round=1, verification=[incomplete, passed("bandit")], reviews=[review("openai/a"), review("gemini/b")]))
    assert decision.outcome == Outcome.revise
    assert "semgrep incomplete" in decision.reasons[0]


def test_patch_not_applied_revises_with_reason_then_fails():
    inputs = AggregationInput(round=1, patch_applied=False, patch_reason="error: patch failed: a.py:3")
    decision = decide(inputs)
    assert decision.outcome == Outcome.revise
    assert "patch failed: a.py:3" in decision.reasons[0]
    last = decide(inputs.model_copy(update={"round": 2}), Policy(max_rounds=2))
    assert last.outcome == Outcome.fail


def test_single_reviewer_blocking_finding_is_disagreement_and_escalates():
    decision = decide(
        AggregationInput(round=1, verification=clean_reports(), reviews=[review("openai/a", "request_changes", high()), review("gemini/b")])
    )
    assert decision.outcome == Outcome.escalate
    assert "disagree" in decision.reasons[0]
    assert decision.findings[0].source == "openai/a"


def test_blocking_finding_raised_by_two_reviewers_is_confirmed_and_revises():
    decision = decide(
        AggregationInput(
            round=1, verification=clean_reports(),
            reviews=[review("openai/a", "request_changes", high(line=10)), review("gemini/b", "request_changes", high(line=12))],
        )
    )
    assert decision.outcome == Outcome.revise
    assert len(decision.findings) == 1
    assert "confirmed" in decision.reasons[0]


def test_blocking_finding_confirmed_by_tool_note_revises():
    tool_note = Finding(source="semgrep", rule="quorum.x", severity=Severity.low, file="app.py", line=11, message="note", in_patch=True)
    semgrep = VerificationReport(tool="semgrep", status=VerificationStatus.passed, findings=[tool_note])
    decision = decide(
        AggregationInput(round=1, verification=[semgrep, passed("bandit")], reviews=[review("openai/a", "request_changes", high()), review("gemini/b")])
    )
    assert decision.outcome == Outcome.revise


def test_non_blocking_findings_do_not_block_and_are_kept_as_notes():
    medium = ReviewFinding(severity=Severity.medium, file="a.py", line=1, message="naming")
    decision = decide(AggregationInput(round=1, verification=clean_reports(), reviews=[review("openai/a", "request_changes", medium), review("gemini/b")]))
    assert decision.outcome == Outcome.approve
    assert [f.message for f in decision.findings] == ["naming"]


def test_budget_exhausted_fails():
    decision = decide(AggregationInput(round=1, budget_exhausted=True))
    assert decision.outcome == Outcome.fail
    assert decision.reasons == ["budget exhausted"]


def test_blocking_threshold_is_configurable():
    medium = ReviewFinding(severity=Severity.medium, file="a.py", line=1, message="naming")
    policy = Policy(blocking_severity=Severity.medium)
    decision = decide(AggregationInput(round=1, verification=clean_reports(), reviews=[review("openai/a", "request_changes", medium), review("gemini/b")]), policy)
    assert decision.outcome == Outcome.escalate


def test_same_place_uses_file_and_line_tolerance():
    a = Finding(source="x", file="a.py", line=10)
    assert same_place(a, Finding(source="y", file="a.py", line=13))
    assert not same_place(a, Finding(source="y", file="a.py", line=14))
    assert not same_place(a, Finding(source="y", file="b.py", line=10))
    assert not same_place(Finding(source="x"), Finding(source="y"))


def _pytest_report(sandbox: dict, status: VerificationStatus = VerificationStatus.passed) -> VerificationReport:
    return VerificationReport(tool="pytest", status=status, summary="s", sandbox=sandbox)


def test_unisolated_tests_put_a_note_on_every_decision_and_never_change_it():
    from quorum.domain.policy import UNISOLATED_NOTE

    reports = [passed("semgrep"), passed("bandit"), _pytest_report({"mode": "none", "privilege_drop": False})]
    reviews = [review("openai/a"), review("gemini/b")]
    decision = decide(AggregationInput(round=1, verification=reports, reviews=reviews))
    isolated = decide(AggregationInput(round=1, verification=clean_reports(), reviews=reviews))
    assert decision.outcome == isolated.outcome == Outcome.approve and decision.reasons == isolated.reasons
    assert len(decision.notes) == 1 and decision.notes[0].startswith(f"{UNISOLATED_NOTE} (pytest)")
    assert "QUORUM_SANDBOX_ALLOW_UNISOLATED=1" in decision.notes[0]
    assert not any(UNISOLATED_NOTE in reason for reason in decision.reasons)  # never fed back to a model
    failing = _pytest_report({"mode": "none"}, VerificationStatus.failed)
    assert decide(AggregationInput(round=1, verification=[failing])).notes == decision.notes
    assert isolated.notes == []
    for sandbox in ({"mode": "root"}, {"mode": "userns"}, {"mode": "none", "refused": True}, {}):
        assert decide(AggregationInput(round=1, verification=[_pytest_report(sandbox)])).notes == [], sandbox


def test_the_task_markdown_warns_when_tests_ran_unisolated():
    from quorum.domain.models import TaskResult, TaskStatus
    from quorum.domain.results import render_task_markdown

    reports = [_pytest_report({"mode": "none"})]
    decision = decide(AggregationInput(round=1, verification=reports))
    result = TaskResult(batch_id="b", task_id="t", repo="r", status=TaskStatus.approved_unverified, decision=decision)
    text = render_task_markdown(result, "store")
    assert "> **Warning: untrusted tests ran unisolated (pytest)" in text and "## Notes" in text
    clean = result.model_copy(update={"decision": decide(AggregationInput(round=1, verification=clean_reports()))})
    assert "unisolated" not in render_task_markdown(clean, "store")
    accepted = clean.model_copy(update={"acceptance": _pytest_report({"mode": "none"}).model_copy(update={"tool": "acceptance"})})
    assert "> **Warning: untrusted tests ran unisolated (acceptance)" in render_task_markdown(accepted, "store")
