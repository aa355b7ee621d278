"""Scoring reviews against labelled defects (pure): the matching rule, and precision/recall per reviewer.

The rule (docs/thesis.md states it for readers):

* Only **blocking** findings count (severity at or above the policy's ``blocking_severity``, high by
  default): they are the ones that decide a verdict. Notes below it are neither right nor wrong.
* A finding **hits** a labelled defect when it names the same file (``./`` prefixes ignored) and a
  line within ``window`` lines of one of the defect's labelled lines: ``|line - labelled| <= window``.
  A finding without a file or without a line (line 0) hits nothing.
* Each defect is credited to at most one finding, and each finding to at most one defect: the
  pairing is a maximum matching between findings and the defects they hit (so one finding between
  two defects cannot take the credit another finding needed).
* A matched finding is a **true positive**. An unmatched finding that hits a defect already credited
  to another finding is a **duplicate**: counted separately, neither true nor false positive. Any
  other finding is a **false positive**. A defect no finding is matched to is a **false negative**.
* Precision = TP / (TP + FP), recall = TP / (TP + FN), F1 their harmonic mean, all pooled over
  the set (micro-averaged); undefined (None) when their denominator is 0.
* A change is **blocked** by a reviewer alone when it raised at least one blocking finding, and by
  a panel when the policy's decision is not ``approve``; a panel's findings are the blocking ones
  among those that drove its decision (`blocks_decision`: reviewer findings at ``blocking_severity``,
  scanner findings at the scanner's blocking threshold on added lines, every test failure). A
  *false approval* is a defective change not blocked; a *false block* a clean change blocked.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field

from quorum.domain.change import ChangeReview, LabelledChange, LabelledDefect
from quorum.domain.compare import SIMULATED_NOTE
from quorum.domain.cost import format_usd, summarize_calls
from quorum.domain.models import Finding, LLMCall, Outcome, ReviewResult, Severity
from quorum.domain.policy import Policy, is_blocking
from quorum.domain.stats import f1_score, pareto_front, ratio, wilson_interval


class MatchResult(BaseModel):
    """How one reviewer's blocking findings on one change met the change's labelled defects."""

    true_positives: int = 0
    false_positives: int = 0
    duplicates: int = 0
    false_negatives: int = 0
    matched: dict[int, int] = Field(default_factory=dict, description="Finding index -> defect index it is credited to.")


def _norm(path: str) -> str:
    path = path.strip().replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path


def distance(finding: Finding, defect: LabelledDefect) -> int | None:
    """Lines between the finding and the defect's nearest labelled line; None when it is another file or unlocated."""
    if not finding.file or finding.line < 1 or _norm(finding.file) != _norm(defect.file):
        return None
    return min(abs(finding.line - line) for line in defect.lines)


def hits(finding: Finding, defect: LabelledDefect, window: int) -> bool:
    gap = distance(finding, defect)
    return gap is not None and gap <= window


def match_findings(findings: list[Finding], defects: list[LabelledDefect], window: int) -> MatchResult:
    """Pair findings with the defects they hit (maximum matching; see the module docstring)."""
    candidates = [
        sorted((i for i, defect in enumerate(defects) if hits(finding, defect, window)),
               key=lambda i: (distance(finding, defects[i]), i))
        for finding in findings
    ]  # fmt: skip
    owner: dict[int, int] = {}  # defect -> finding

    def augment(f: int, seen: set[int]) -> bool:
        for d in candidates[f]:
            if d in seen:
                continue
            seen.add(d)
            if d not in owner or augment(owner[d], seen):
                owner[d] = f
                return True
        return False

    for f in range(len(findings)):
        augment(f, set())
    matched = {f: d for d, f in owner.items()}
    duplicates = sum(1 for f in range(len(findings)) if f not in matched and candidates[f])
    false_positives = sum(1 for f in range(len(findings)) if not candidates[f])
    return MatchResult(
        true_positives=len(matched),
        false_positives=false_positives,
        duplicates=duplicates,
        false_negatives=len(defects) - len(matched),
        matched=dict(sorted(matched.items())),
    )


def blocking_findings(review: ReviewResult, policy: Policy) -> list[Finding]:
    return [finding for finding in review.findings() if is_blocking(finding, policy)]


# The scanners' own blocking thresholds on added lines (quorum.verify.semgrep.BLOCKING; Bandit's is the policy's).
SEMGREP_BLOCKING = Severity.medium


def blocks_decision(finding: Finding, policy: Policy) -> bool:
    """Whether a finding that drove a decision was itself blocking.

    A decision lists every in-patch finding of a failing scan (they go back to the implementer),
    notes included; only the ones that made the scan fail are scored: Semgrep at medium or above,
    Bandit at the policy's `bandit_min_severity` or above, on added lines; every pytest, acceptance
    or patch finding (a failure is a failure). A reviewer's finding: at `blocking_severity` or above.
    """
    if finding.source == "semgrep":
        return finding.in_patch and finding.severity.rank >= SEMGREP_BLOCKING.rank
    if finding.source == "bandit":
        return finding.in_patch and finding.severity.rank >= Severity(policy.bandit_min_severity).rank
    if finding.is_tool:
        return True
    return is_blocking(finding, policy)


class Verdict(BaseModel):
    """One scorer's verdict on one change, with its match against the labels."""

    change_id: str
    defective: bool
    blocked: bool
    findings: int
    match: MatchResult
    cost_usd: float = 0.0
    error: str = ""


class ReviewerScore(BaseModel):
    """One row of the review-eval table: a reviewer alone, a panel's aggregate, or the tools alone."""

    name: str
    kind: str = Field(description="'reviewer' (one model alone), 'panel' (the policy over a roster's reviewers and the tools) or 'tools'.")
    models: list[str] = Field(default_factory=list)
    simulated: bool = False
    changes: int = 0
    defective: int = 0
    clean: int = 0
    errors: int = Field(default=0, description="Changes this scorer gave no verdict on (a reviewer's failed call); left out of every rate.")
    true_positives: int = 0
    false_positives: int = 0
    duplicates: int = 0
    false_negatives: int = 0
    precision: float | None = None
    recall: float | None = None
    recall_low: float | None = None
    recall_high: float | None = None
    f1: float | None = None
    false_approvals: int = 0
    false_approval_rate: float | None = None
    false_blocks: int = 0
    false_block_rate: float | None = None
    cost_usd: float = 0.0
    cost_per_review_usd: float | None = None
    llm_calls: int = 0
    calls_made: int = 0
    calls_cached: int = 0
    pareto: bool = False
    verdicts: list[Verdict] = Field(default_factory=list)


def score(
    name: str, kind: str, models: list[str], verdicts: list[Verdict], calls: Iterable[LLMCall], run_started_at: float
) -> ReviewerScore:
    """Pool one scorer's verdicts into its row (errors left out of every rate, their calls still paid)."""
    cost = summarize_calls(calls, run_started_at=run_started_at)
    judged = [v for v in verdicts if not v.error]
    defective = [v for v in judged if v.defective]
    clean = [v for v in judged if not v.defective]
    tp = sum(v.match.true_positives for v in judged)
    fp = sum(v.match.false_positives for v in judged)
    fn = sum(v.match.false_negatives for v in judged)
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    low, high = wilson_interval(tp, tp + fn) if tp + fn else (None, None)
    false_approvals = sum(1 for v in defective if not v.blocked)
    false_blocks = sum(1 for v in clean if v.blocked)
    return ReviewerScore(
        name=name, kind=kind, models=models, simulated=cost.simulated,
        changes=len(verdicts), defective=len(defective), clean=len(clean), errors=len(verdicts) - len(judged),
        true_positives=tp, false_positives=fp, duplicates=sum(v.match.duplicates for v in judged), false_negatives=fn,
        precision=precision, recall=recall, recall_low=low, recall_high=high, f1=f1_score(precision, recall),
        false_approvals=false_approvals, false_approval_rate=ratio(false_approvals, len(defective)),
        false_blocks=false_blocks, false_block_rate=ratio(false_blocks, len(clean)),
        cost_usd=cost.total.cost_usd, cost_per_review_usd=ratio(cost.total.cost_usd, len(verdicts)),
        llm_calls=cost.total.calls, calls_made=cost.total.fresh_calls,
        calls_cached=cost.total.calls - cost.total.fresh_calls, verdicts=verdicts,
    )  # fmt: skip


def reviewer_verdict(change: LabelledChange, review: ChangeReview, model: str, window: int, policy: Policy) -> Verdict:
    """A reviewer alone: it blocks when it raised a blocking finding."""
    found = next((r for r in review.reviews if r.reviewer == model), None)
    calls = [c for c in review.calls() if c.model == model or _fallback_of(c, model)]
    cost = sum(c.cost_usd for c in calls)
    if found is None or not review.patch.applied:
        reason = review.errors.get(model, "no review")
        if not review.patch.applied:
            reason = f"the change did not apply: {review.patch.reason}"
        return Verdict(change_id=change.id, defective=change.defective, blocked=False, findings=0,
                       match=MatchResult(), cost_usd=cost, error=reason)  # fmt: skip
    blocking = blocking_findings(found, policy)
    return Verdict(
        change_id=change.id, defective=change.defective, blocked=bool(blocking), findings=len(blocking),
        match=match_findings(blocking, change.defects, window), cost_usd=cost,
    )  # fmt: skip


def panel_verdict(change: LabelledChange, review: ChangeReview, panel: str, window: int, policy: Policy) -> Verdict:
    """A panel (or the tools alone): the policy's decision blocks unless it approves; its blocking driving findings are scored."""
    models = review.panels.get(panel, [])
    cost = sum(c.cost_usd for c in review.calls() if c.model in models or any(_fallback_of(c, m) for m in models))
    decision = review.decisions.get(panel)
    if decision is None or not review.patch.applied:
        reason = f"the change did not apply: {review.patch.reason}" if not review.patch.applied else "no decision"
        return Verdict(change_id=change.id, defective=change.defective, blocked=False, findings=0,
                       match=MatchResult(), cost_usd=cost, error=reason)  # fmt: skip
    missing = [m for m in models if m in review.errors]
    blocked = decision.outcome != Outcome.approve
    findings = [f for f in decision.findings if blocks_decision(f, policy)] if blocked else []
    return Verdict(
        change_id=change.id, defective=change.defective, blocked=blocked, findings=len(findings),
        match=match_findings(findings, change.defects, window), cost_usd=cost,
        error=f"no review from {', '.join(missing)}" if missing else "",
    )  # fmt: skip


def _fallback_of(call: LLMCall, model: str) -> bool:
    return call.fallback_from == model


def score_set(
    review_set_changes: list[LabelledChange],
    reviews: dict[str, ChangeReview],
    reviewers: list[str],
    panels: dict[str, list[str]],
    *,
    window: int,
    policy: Policy,
    run_started_at: float,
    tools_panel: str | None = None,
) -> list[ReviewerScore]:
    """Rows for every reviewer alone, every panel, and (when it ran) the tools alone, in that order."""
    rows = []
    for model in reviewers:
        verdicts = [reviewer_verdict(c, reviews[c.id], model, window, policy) for c in review_set_changes]
        calls = [call for c in review_set_changes for call in reviews[c.id].calls()
                 if call.model == model or _fallback_of(call, model)]  # fmt: skip
        rows.append(score(model, "reviewer", [model], verdicts, calls, run_started_at))
    for panel, models in panels.items():
        verdicts = [panel_verdict(c, reviews[c.id], panel, window, policy) for c in review_set_changes]
        calls = [call for c in review_set_changes for call in reviews[c.id].calls()
                 if call.model in models or any(_fallback_of(call, m) for m in models)]  # fmt: skip
        rows.append(score(panel, "panel", models, verdicts, calls, run_started_at))
    if tools_panel is not None:
        verdicts = [panel_verdict(c, reviews[c.id], tools_panel, window, policy) for c in review_set_changes]
        rows.append(score(tools_panel, "tools", [], verdicts, [], run_started_at))
    return rows


# ------------------------------------------------------------------------------------------- report


class ReviewEvalReport(BaseModel):
    eval_id: str
    set_name: str
    set_source: str
    window: int
    blocking_severity: str
    policy_version: str
    changes: int
    defective: int
    clean: int
    tools: list[str]
    simulated: bool
    store: str
    started_at: float
    finished_at: float
    rows: list[ReviewerScore]
    artifacts: dict[str, str] = Field(default_factory=dict)


def mark_pareto(rows: list[ReviewerScore]) -> list[ReviewerScore]:
    """Flag the rows on the cost-vs-F1 Pareto front (lower $ per review, higher F1; undefined F1 counts as 0)."""
    front = set(pareto_front([(row.cost_per_review_usd or 0.0, row.f1 or 0.0) for row in rows]))
    return [row.model_copy(update={"pareto": i in front}) for i, row in enumerate(rows)]


EVAL_COLUMNS = [
    "reviewer", "kind", "precision", "recall", "recall 95% CI", "F1", "TP", "FP", "dup", "FN",
    "false approvals", "false blocks", "$/review", "LLM calls", "made now", "served from cache",
]  # fmt: skip


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def eval_cells(row: ReviewerScore) -> list[str]:
    ci = "n/a" if row.recall_low is None else f"{row.recall_low:.0%}-{row.recall_high:.0%}"
    return [
        row.name + (" *" if row.pareto else ""), row.kind, _pct(row.precision), _pct(row.recall), ci, _pct(row.f1),
        str(row.true_positives), str(row.false_positives), str(row.duplicates), str(row.false_negatives),
        f"{row.false_approvals}/{row.defective} ({_pct(row.false_approval_rate)})",
        f"{row.false_blocks}/{row.clean} ({_pct(row.false_block_rate)})",
        "n/a" if row.cost_per_review_usd is None else format_usd(row.cost_per_review_usd),
        str(row.llm_calls), str(row.calls_made), str(row.calls_cached),
    ]  # fmt: skip


def eval_table_rows(report: ReviewEvalReport) -> list[dict]:
    """The Prefect table artifact: one dict per row."""
    return [
        {
            "reviewer": row.name, "kind": row.kind, "simulated": row.simulated, "precision": row.precision,
            "recall": row.recall, "f1": row.f1, "tp": row.true_positives, "fp": row.false_positives,
            "duplicates": row.duplicates, "fn": row.false_negatives, "false_approval_rate": row.false_approval_rate,
            "false_block_rate": row.false_block_rate, "usd_per_review": row.cost_per_review_usd,
            "llm_calls": row.llm_calls, "calls_made": row.calls_made, "calls_cached": row.calls_cached,
            "errors": row.errors, "pareto": row.pareto,
        }
        for row in report.rows
    ]  # fmt: skip


def render_eval_markdown(report: ReviewEvalReport) -> str:
    label = f" — **simulated** ({SIMULATED_NOTE})" if report.simulated else ""
    errors = [row for row in report.rows if row.errors]
    lines = [
        f"# Review evaluation {report.eval_id}{label}",
        "",
        f"- set: `{report.set_name}` ({report.set_source}): {report.changes} changes, "
        f"{report.defective} defective, {report.clean} clean",
        f"- matching: a blocking finding (severity >= {report.blocking_severity}) is a true positive when it names "
        f"the defect's file and a line within {report.window} lines of a labelled line; each defect counts once "
        "(further hits on it are duplicates, neither TP nor FP); pooled over the set",
        f"- verification tools: {', '.join(report.tools) or 'none'}; policy {report.policy_version}",
        "- a reviewer alone blocks a change when it raises a blocking finding; a panel when the policy does not "
        "approve (the findings that drove its decision and blocked are scored)",
        "- `*`: on the cost-vs-F1 Pareto front",
        *[f"- {row.name}: no verdict on {row.errors} change(s), left out of its rates" for row in errors],
        "",
        "| " + " | ".join(EVAL_COLUMNS) + " |",
        "|" + "---|" * len(EVAL_COLUMNS),
    ]
    lines += ["| " + " | ".join(eval_cells(row)) + " |" for row in report.rows]
    if report.artifacts.get("plot_png"):
        lines += ["", f"![cost per review vs F1]({report.artifacts['plot_png'].rsplit('/', 1)[-1]})"]
    return "\n".join(lines) + "\n"
