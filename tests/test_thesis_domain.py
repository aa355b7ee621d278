"""The pure parts of the thesis commands, with hand-computed numbers: Wilson intervals, Pareto fronts,
the finding-to-defect matching rule, touched lines, per-reviewer scores and per-roster rows."""

from __future__ import annotations

import pytest

from quorum.domain.change import ChangeReview, LabelledChange, LabelledDefect
from quorum.domain.estimate import PromptSizes
from quorum.domain.compare import RosterRow, check_distinct_names, estimate_compare, mark_pareto, roster_row, shared_stages
from quorum.domain.labels import touched_lines
from quorum.domain.models import (
    BatchReport,
    CostSummary,
    Decision,
    Finding,
    LLMCall,
    Outcome,
    PatchResult,
    Review,
    ReviewFinding,
    ReviewResult,
    Severity,
    StageCost,
    TaskResult,
    TaskStatus,
)
from quorum.domain.policy import Policy
from quorum.domain.results import build_batch_report
from quorum.domain.review_eval import match_findings, score_set
from quorum.domain.roster import Roster
from quorum.domain.stats import f1_score, pareto_front, ratio, wilson_interval

# ------------------------------------------------------------------------------------------- stats


def test_wilson_interval_by_hand():
    # 2 of 3: p = 2/3, z² = 3.8415; centre = (0.66667 + 0.64025) / 2.28049 = 0.57309;
    # half = 1.95996 / 2.28049 * sqrt(0.074074 + 0.106708) = 0.36543
    low, high = wilson_interval(2, 3)
    assert low == pytest.approx(0.2077, abs=1e-4)
    assert high == pytest.approx(0.9385, abs=1e-4)
    # 0 of 10: centre = half = 0.19207 / 1.38415 = 0.13877 -> (0, 0.2775); 10 of 10 mirrors it
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(4, 3)


def test_ratio_f1_and_pareto_front():
    assert ratio(1, 0) is None and ratio(1, 4) == 0.25
    assert f1_score(0.5, 0.25) == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert f1_score(0.0, 0.0) == 0.0 and f1_score(None, 0.5) is None
    # (cost, outcome): B dominates D (cheaper, same outcome); A and C trade off; E equals A (both stay)
    points = [(2.0, 1.0), (0.5, 0.67), (0.2, 0.33), (0.6, 0.67), (2.0, 1.0)]
    assert pareto_front(points) == [2, 1, 0, 4]


# ---------------------------------------------------------------------------------------- matching

DEFECT = LabelledDefect(file="pkg/a.py", lines=[10])
WINDOW = 3


def finding(file: str, line: int, severity: Severity = Severity.high) -> Finding:
    return Finding(source="r", severity=severity, file=file, line=line, message="m")


@pytest.mark.parametrize(
    ("where", "tp", "fp"),
    [
        (("pkg/a.py", 10), 1, 0),  # on the labelled line
        (("pkg/a.py", 13), 1, 0),  # off by exactly the window
        (("pkg/a.py", 7), 1, 0),  # off by the window, above
        (("pkg/a.py", 14), 0, 1),  # off by the window + 1
        (("pkg/b.py", 10), 0, 1),  # the right line in the wrong file
        (("./pkg/a.py", 11), 1, 0),  # a ./ prefix is the same file
        (("pkg/a.py", 0), 0, 1),  # a file without a line points at nothing
        (("", 10), 0, 1),  # no file
    ],
)
def test_one_finding_against_one_defect(where, tp, fp):
    result = match_findings([finding(*where)], [DEFECT], WINDOW)
    assert (result.true_positives, result.false_positives, result.duplicates) == (tp, fp, 0)
    assert result.false_negatives == 1 - tp


def test_duplicate_findings_on_one_defect_count_once_and_are_not_false_positives():
    result = match_findings([finding("pkg/a.py", 10), finding("pkg/a.py", 11), finding("pkg/a.py", 9)], [DEFECT], WINDOW)
    assert (result.true_positives, result.false_positives, result.duplicates, result.false_negatives) == (1, 0, 2, 0)


def test_matching_is_maximal_not_greedy():
    # F1 at 13 hits both defects (distance 3 to each); F2 at 10 hits only the first.
    # Greedy in order would give F1 the first defect and leave F2 a duplicate: 1 TP, 1 FN.
    defects = [LabelledDefect(file="pkg/a.py", lines=[10]), LabelledDefect(file="pkg/a.py", lines=[16])]
    result = match_findings([finding("pkg/a.py", 13), finding("pkg/a.py", 10)], defects, WINDOW)
    assert (result.true_positives, result.false_positives, result.duplicates, result.false_negatives) == (2, 0, 0, 0)
    assert result.matched == {0: 1, 1: 0}


def test_a_defect_with_several_lines_matches_any_of_them():
    defect = LabelledDefect(file="pkg/a.py", lines=[40, 20, 20])
    assert defect.lines == [20, 40]
    assert match_findings([finding("pkg/a.py", 43)], [defect], WINDOW).true_positives == 1
    assert match_findings([finding("pkg/a.py", 30)], [defect], WINDOW).false_positives == 1


def test_window_zero_needs_the_exact_line():
    assert match_findings([finding("pkg/a.py", 11)], [DEFECT], 0).false_positives == 1
    assert match_findings([finding("pkg/a.py", 10)], [DEFECT], 0).true_positives == 1


# ---------------------------------------------------------------------------------- touched lines

REPLACE = """\
diff --git a/pkg/a.py b/pkg/a.py
index 1111111..2222222 100644
--- a/pkg/a.py
+++ b/pkg/a.py
@@ -8,5 +8,5 @@ def f(x):
 one
 two
-    if x:
+    if x and x.ready:
 three
 four
"""

ADD = """\
diff --git a/pkg/a.py b/pkg/a.py
--- a/pkg/a.py
+++ b/pkg/a.py
@@ -20,4 +20,6 @@
 a
 b
+    if y is None:
+        return 0
 c
 d
"""

REMOVE = """\
diff --git a/pkg/a.py b/pkg/a.py
--- a/pkg/a.py
+++ b/pkg/a.py
@@ -20,6 +20,4 @@
 a
 b
-    if y is None:
-        return 0
 c
 d
"""

NEW_AND_DELETED = """\
diff --git a/pkg/new.py b/pkg/new.py
new file mode 100644
--- /dev/null
+++ b/pkg/new.py
@@ -0,0 +1,2 @@
+x = 1
+y = 2
diff --git a/pkg/old.py b/pkg/old.py
deleted file mode 100644
--- a/pkg/old.py
+++ /dev/null
@@ -1,2 +0,0 @@
-x = 1
-y = 2
diff --git a/pkg/tail.py b/pkg/tail.py
--- a/pkg/tail.py
+++ b/pkg/tail.py
@@ -5,2 +4,0 @@ def g():
-    extra()
-    more()
"""


def test_touched_lines_replaced_added_removed():
    assert touched_lines(REPLACE) == {"pkg/a.py": [10]}
    assert touched_lines(ADD) == {"pkg/a.py": [22, 23]}
    # the reverse of ADD leaves a gap between new lines 21 ('b') and 22 ('c'): both are touched
    assert touched_lines(REMOVE) == {"pkg/a.py": [21, 22]}
    # a new file: its lines; a deleted file: nothing; lines removed after new line 4: 4 and 5
    assert touched_lines(NEW_AND_DELETED) == {"pkg/new.py": [1, 2], "pkg/tail.py": [4, 5]}


# -------------------------------------------------------------------------------------- scoring


def call(model: str, cost: float, started_at: float = 100.0) -> LLMCall:
    return LLMCall(stage="review", model=model, provider=model.split("/")[0], priced_as=model, simulated=True,
                   cost_usd=cost, started_at=started_at)  # fmt: skip


def review(model: str, findings: list[tuple[str, int, str]], cost: float, started_at: float = 100.0) -> ReviewResult:
    return ReviewResult(
        reviewer=model, provider=model.split("/")[0],
        review=Review(verdict="approve", findings=[
            ReviewFinding(severity=Severity(sev), file=f, line=line, message="m") for f, line, sev in findings
        ]),
        calls=[call(model, cost, started_at)],
    )  # fmt: skip


def test_score_set_by_hand():
    """Two changes: one defective (pkg/a.py:10), one clean. Reviewer A: a hit, a duplicate, a note and a
    miss elsewhere on the defective one; blocks the clean one. Reviewer B: only a medium note on both."""
    defective = LabelledChange(id="bad", repo="/r", diff="d", defects=[LabelledDefect(file="pkg/a.py", lines=[10])])
    clean = LabelledChange(id="good", repo="/r", diff="d")
    a, b = "x/a", "y/b"
    approve = Decision(outcome=Outcome.approve, reasons=["ok"], policy_version="p", round=1)
    block = Decision(outcome=Outcome.escalate, reasons=["r"], policy_version="p", round=1,
                     findings=[finding("pkg/a.py", 11)])  # fmt: skip
    reviews = {
        "bad": ChangeReview(
            change_id="bad", patch=PatchResult(applied=True),
            reviews=[review(a, [("pkg/a.py", 10, "high"), ("pkg/a.py", 12, "critical"), ("pkg/a.py", 10, "low"),
                                ("pkg/z.py", 3, "high")], 0.25),
                     review(b, [("pkg/a.py", 10, "medium")], 0.5, started_at=1.0)],
            decisions={"panel": block}, panels={"panel": [a, b]},
        ),
        "good": ChangeReview(
            change_id="good", patch=PatchResult(applied=True),
            reviews=[review(a, [("pkg/c.py", 1, "high")], 0.25), review(b, [("pkg/c.py", 1, "medium")], 0.5)],
            decisions={"panel": approve}, panels={"panel": [a, b]},
        ),
    }  # fmt: skip
    rows = score_set([defective, clean], reviews, [a, b], {"panel": [a, b]}, window=3, policy=Policy(),
                     run_started_at=50.0)  # fmt: skip
    ra, rb, panel = rows
    # A: TP 1 (line 10), duplicate 1 (line 12), the low note ignored, FP 2 (pkg/z.py and the clean change's finding)
    assert (ra.true_positives, ra.duplicates, ra.false_positives, ra.false_negatives) == (1, 1, 2, 0)
    assert ra.precision == pytest.approx(1 / 3) and ra.recall == 1.0 and ra.f1 == pytest.approx(0.5)
    assert (ra.false_approvals, ra.false_approval_rate, ra.false_blocks, ra.false_block_rate) == (0, 0.0, 1, 1.0)
    assert ra.cost_usd == pytest.approx(0.5) and ra.cost_per_review_usd == pytest.approx(0.25)
    assert (ra.llm_calls, ra.calls_made, ra.calls_cached) == (2, 2, 0)
    # B: nothing blocking: precision undefined, recall 0, the defective change falsely approved
    assert rb.precision is None and rb.recall == 0.0 and rb.f1 is None
    assert (rb.false_approvals, rb.false_blocks) == (1, 0)
    assert (rb.calls_made, rb.calls_cached) == (1, 1)  # its call on "bad" started before the run: cached
    # the panel: blocks the defective change with a finding at line 11 (TP), approves the clean one
    assert (panel.true_positives, panel.false_positives, panel.precision, panel.recall) == (1, 0, 1.0, 1.0)
    assert (panel.false_approvals, panel.false_blocks) == (0, 0)
    assert panel.cost_usd == pytest.approx(1.5) and panel.cost_per_review_usd == pytest.approx(0.75)


def test_a_reviewer_error_is_left_out_of_its_rates_but_its_calls_are_paid():
    defective = LabelledChange(id="bad", repo="/r", diff="d", defects=[LabelledDefect(file="pkg/a.py", lines=[10])])
    failed = ChangeReview(change_id="bad", patch=PatchResult(applied=True), errors={"x/a": "no usable reply"},
                          failed_calls=[call("x/a", 0.1)])  # fmt: skip
    (row,) = score_set([defective], {"bad": failed}, ["x/a"], {}, window=3, policy=Policy(), run_started_at=0.0)
    assert row.errors == 1 and row.defective == 0 and row.recall is None and row.false_approval_rate is None
    assert row.cost_usd == pytest.approx(0.1)


# ------------------------------------------------------------------------------------------- compare


def roster(name: str, planner: str, implementer: str) -> Roster:
    def m(model: str) -> dict:
        return {"model": f"scripted/{model}", "priced_as": {"sonnet": "anthropic/claude-sonnet-4-5",
                "deepseek": "deepseek/deepseek-chat", "mini": "openai/gpt-5-mini", "flash": "gemini/gemini-2.5-flash"}[model]}  # fmt: skip

    return Roster(name=name, planner=m(planner), implementer=m(implementer), reviewers=[m("mini"), m("flash")])


def cost(plan: float, implement: float, review: float, calls: int, fresh: int) -> CostSummary:
    stages = {"plan": StageCost(calls=1, cost_usd=plan), "implement": StageCost(calls=1, cost_usd=implement),
              "review": StageCost(calls=calls - 2, cost_usd=review)}  # fmt: skip
    return CostSummary(simulated=True, by_stage=stages,
                       total=StageCost(calls=calls, fresh_calls=fresh, cost_usd=plan + implement + review))  # fmt: skip


def test_roster_row_by_hand():
    results = [
        TaskResult(batch_id="b", task_id="t1", repo="r", status=TaskStatus.resolved, rounds=1, cost=cost(0.1, 0.02, 0.03, 4, 3)),
        TaskResult(batch_id="b", task_id="t2", repo="r", status=TaskStatus.resolved, rounds=2, cost=cost(0.1, 0.04, 0.03, 5, 4)),
        TaskResult(batch_id="b", task_id="t3", repo="r", status=TaskStatus.escalated, rounds=1, cost=cost(0.1, 0.02, 0.06, 4, 3)),
    ]  # fmt: skip
    report: BatchReport = build_batch_report(batch_id="b", started_at=10.0, finished_at=25.5, roster="r1", store="s",
                                             results=results)  # fmt: skip
    calls = [call("scripted/sonnet", 0.1, started_at=5.0), call("scripted/deepseek", 0.2, started_at=11.0)]
    row = roster_row(report, roster("r1", "sonnet", "deepseek"), calls, rows=results)
    assert (row.tasks, row.resolved, row.escalated) == (3, 2, 1)
    assert row.resolved_rate == pytest.approx(2 / 3)
    assert (row.resolved_low, row.resolved_high) == pytest.approx((0.2077, 0.9385), abs=1e-4)
    assert row.planner_usd_per_task == pytest.approx(0.1)
    assert row.impl_review_usd_per_task == pytest.approx((0.05 + 0.07 + 0.08) / 3)
    assert row.total_usd_per_task == pytest.approx(0.5 / 3)
    assert row.usd_per_resolved == pytest.approx(0.25)
    assert row.mean_rounds == pytest.approx(4 / 3) and row.escalation_rate == pytest.approx(1 / 3)
    assert (row.llm_calls, row.calls_made, row.calls_cached) == (13, 10, 3)
    assert row.paid_now_usd == pytest.approx(0.2)  # only the call made after the batch started
    assert row.wall_s == 15.5


def test_pareto_marking_shared_planners_and_names():
    a, b, c = roster("a", "sonnet", "sonnet"), roster("b", "sonnet", "deepseek"), roster("c", "deepseek", "deepseek")
    assert shared_stages([a, b, c]) == ["plan: b reuses a's plans (scripted/sonnet) from the cache"]
    with pytest.raises(ValueError, match="given twice"):
        check_distinct_names([a, a])
    with pytest.raises(ValueError, match="at least two"):
        check_distinct_names([a])

    def price(model: str, prompt: int, completion: int, *cache: int) -> float:
        return {"anthropic/claude-sonnet-4-5": 1.0}.get(model, 0.1)

    sizes = {"t1": PromptSizes(plan=400, implement=400, review=[400, 400])}
    estimates = estimate_compare([sizes] * 3, [a, b, c], max_rounds=3, price=price)
    # a pays everything; b's plan (same planner) comes from the cache; c's planner differs
    assert estimates[0].expected_paid_usd == estimates[0].expected_usd == pytest.approx(1 + 1 + 0.2)
    assert estimates[1].expected_usd == pytest.approx(1 + 0.1 + 0.2)
    assert estimates[1].expected_paid_usd == pytest.approx(0.1 + 0.2)
    assert estimates[2].expected_paid_usd == estimates[2].expected_usd == pytest.approx(0.4)


def test_mark_pareto_on_rows():
    def row(name: str, cost_per_task: float, rate: float) -> RosterRow:
        return RosterRow(roster=name, batch_id=name, planner="p", implementer="i", reviewers=[], tasks=3,
                         resolved=round(rate * 3), resolved_rate=rate, resolved_low=0, resolved_high=1,
                         planner_usd_per_task=0, impl_review_usd_per_task=0, total_usd_per_task=cost_per_task,
                         usd_per_resolved=None, total_usd=0, mean_rounds=1, escalated=0, escalation_rate=0,
                         llm_calls=0, calls_made=0, calls_cached=0, wall_s=0)  # fmt: skip

    marked = mark_pareto([row("premium", 0.2, 1.0), row("mixed", 0.05, 2 / 3), row("worse", 0.06, 2 / 3)])
    assert [r.pareto for r in marked] == [True, True, False]


def test_a_panel_scores_only_the_findings_that_blocked():
    """A failing scan drives the decision with every in-patch finding (notes too); only blocking ones are scored."""
    defective = LabelledChange(id="bad", repo="/r", diff="d", defects=[LabelledDefect(file="pkg/a.py", lines=[23])])
    findings = [
        Finding(source="bandit", rule="B602", severity=Severity.high, file="pkg/a.py", line=23),
        Finding(source="semgrep", rule="shell", severity=Severity.high, file="pkg/a.py", line=23),
        Finding(source="bandit", rule="B404", severity=Severity.low, file="pkg/a.py", line=6),  # a note: not scored
        Finding(source="bandit", rule="B101", severity=Severity.medium, file="tests/t.py", line=8, in_patch=False),
        Finding(source="scripted/x", severity=Severity.medium, file="pkg/a.py", line=1),  # below blocking: not scored
        Finding(source="pytest", rule="failed", severity=Severity.high),  # a failure without a place: a false positive
    ]
    decision = Decision(outcome=Outcome.revise, reasons=["r"], policy_version="p", round=1, findings=findings)
    review = ChangeReview(change_id="bad", patch=PatchResult(applied=True), decisions={"tools only": decision},
                          panels={"tools only": []})  # fmt: skip
    (row,) = score_set([defective], {"bad": review}, [], {}, window=3, policy=Policy(), run_started_at=0.0,
                       tools_panel="tools only")  # fmt: skip
    assert (row.true_positives, row.duplicates, row.false_positives, row.false_negatives) == (1, 1, 1, 0)
    assert row.kind == "tools" and row.cost_usd == 0.0 and row.false_approvals == 0
