"""An existing change to review (``quorum review``), and labelled sets of them (``quorum review-eval``).

A change is a diff and the repository state it applies to. Its review is the same evidence the
pipeline aggregates for its own patches (verification reports and independent reviews), decided
by the same policy; a *panel* is one set of reviewers whose reviews are aggregated together.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from quorum.domain.manifest import TASK_ID_PATTERN
from quorum.domain.roster import Roster, StageModel
from quorum.domain.models import CostSummary, Decision, LLMCall, Outcome, PatchResult, ReviewResult, VerificationReport

TOOLS_PANEL = "tools only"


class ChangeSpec(BaseModel):
    """One change: its diff (content, so the review cache holds) and the repository state it applies to."""

    model_config = ConfigDict(frozen=True)

    id: str
    repo: str = Field(description="Absolute path of the repository (a git repository or a plain folder).")
    base: str | None = Field(default=None, description="Commit the diff applies to (None: HEAD, or a plain copy).")
    diff: str = Field(min_length=1, description="The change as a git-style unified diff.")
    description: str = Field(default="", description="What the change is meant to do (a PR's title and body).")
    script: str | None = Field(default=None, description="Script file, for scripted reviewers.")
    script_sha256: str = Field(default="", description="Digest of the script, so a changed script misses the cache.")

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        if not TASK_ID_PATTERN.match(value):
            raise ValueError(f"change id {value!r} must be 1-80 letters, digits, '.', '_' or '-'")
        return value


class LabelledDefect(BaseModel):
    """A known defect of a change: its file and the lines (in the changed code) that hold it."""

    model_config = ConfigDict(frozen=True)

    file: str = Field(min_length=1)
    lines: list[int] = Field(min_length=1, description="1-based line numbers in the file after the change.")
    note: str = ""

    @field_validator("lines")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(line < 1 for line in value):
            raise ValueError("defect lines are 1-based")
        return sorted(set(value))


class LabelledChange(ChangeSpec):
    """A change with its known defects; none means the change is clean."""

    defects: list[LabelledDefect] = Field(default_factory=list)

    @property
    def defective(self) -> bool:
        return bool(self.defects)


class ReviewSet(BaseModel):
    name: str
    source: str = Field(description="Where the set was loaded from.")
    window: int = Field(default=3, ge=0, description="A finding within this many lines of a labelled line matches it.")
    changes: list[LabelledChange] = Field(min_length=1)


class ChangeReview(BaseModel):
    """Everything one review of one change produced."""

    change_id: str
    patch: PatchResult
    verification: list[VerificationReport] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list, description="The verification tools that ran.")
    reviews: list[ReviewResult] = Field(default_factory=list)
    errors: dict[str, str] = Field(default_factory=dict, description="Reviewer model -> why it gave no review.")
    failed_calls: list[LLMCall] = Field(default_factory=list, description="Calls paid for by reviewers that gave no review.")
    decisions: dict[str, Decision] = Field(default_factory=dict, description="Panel name -> the policy's decision.")
    panels: dict[str, list[str]] = Field(default_factory=dict, description="Panel name -> its reviewer models.")
    cost: CostSummary = Field(default_factory=CostSummary)
    artifacts: dict[str, str] = Field(default_factory=dict)

    def calls(self) -> list[LLMCall]:
        return [call for review in self.reviews for call in review.calls] + list(self.failed_calls)


def union_reviewers(rosters: list[Roster]) -> list[StageModel]:
    """Every distinct reviewer of the rosters, in order; one model string must mean one configuration."""
    seen: dict[str, StageModel] = {}
    for roster in rosters:
        for reviewer in roster.reviewers:
            known = seen.get(reviewer.model)
            if known is not None and known != reviewer:
                raise ValueError(f"reviewer {reviewer.model} is configured differently in two rosters; "
                                 "its scores would mix two reviewers")  # fmt: skip
            seen.setdefault(reviewer.model, reviewer)
    return list(seen.values())


VERDICTS = {
    Outcome.approve: "approve",
    Outcome.revise: "request_changes",
    Outcome.fail: "request_changes",
    Outcome.escalate: "escalate",
}


def verdict(decision: Decision) -> str:
    """What a decision on an existing change means: approve, request_changes, or escalate (to a human)."""
    return VERDICTS[decision.outcome]


def render_change_review_markdown(change: ChangeSpec, review: ChangeReview, panel: str, *, simulated: bool) -> str:
    """What a person reads about one reviewed change: the verdict, why, the tools, every reviewer's findings, cost."""
    from quorum.domain.cost import format_usd

    decision = review.decisions[panel]
    label = " (simulated: scripted models priced as the real ones they stand in for)" if simulated else ""
    lines = [
        f"# Review of {change.id}: {verdict(decision)}",
        "",
        f"- repository: `{change.repo}`" + (f" at `{change.base[:12]}`" if change.base else ""),
        f"- files: {', '.join(f'`{p}`' for p in review.patch.files) or '-'}",
        f"- policy: {decision.policy_version}; reviewers: {', '.join(review.panels.get(panel, [])) or 'none'}",
        f"- cost{label}: {format_usd(review.cost.total.cost_usd)} ({review.cost.total.calls} LLM calls, "
        f"{review.cost.total.fresh_calls} made now)",
        "",
        "## Decision",
        "",
        *[f"- {reason}" for reason in decision.reasons],
    ]
    if not review.patch.applied:
        lines += ["", f"The change does not apply: {review.patch.reason}"]
    if review.verification:
        lines += ["", "## Verification", "", "| tool | status | summary |", "|---|---|---|"]
        lines += [f"| {r.tool} | {r.status.value} | {r.summary} |" for r in review.verification]
    findings = [(r.reviewer, f) for r in review.reviews for f in r.review.findings]
    tool_findings = [f for r in review.verification for f in r.findings if f.in_patch]
    if findings or tool_findings:
        lines += ["", "## Findings", "", "| source | severity | location | message |", "|---|---|---|---|"]
        lines += [f"| {f.source} | {f.severity.value} | {f.location()} | {f.message} |" for f in tool_findings]
        lines += [
            f"| {who} | {f.severity.value} | {f.file or '-'}{':' + str(f.line) if f.line else ''} | {f.message} |"
            for who, f in findings
        ]
    if review.errors:
        lines += ["", "## Reviewers without a review", ""]
        lines += [f"- {model}: {why}" for model, why in review.errors.items()]
    return "\n".join(lines) + "\n"
