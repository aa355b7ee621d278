"""What happened in one task, as people read it in the UI (pure): the plan, the patch, what each tool and
each reviewer said, per round, and what every model cost. `render_task_markdown` (quorum.domain.results)
puts these sections into the task's markdown artifact.

Model output (plans, review findings) and patches are untrusted text: table cells are flattened, a
diff goes into a fence longer than any backtick run inside it, and big plans and patches are cut to a
size the UI renders comfortably, with a note and the absolute location of the whole file.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pydantic import BaseModel, Field

from quorum.domain.cost import format_usd
from quorum.domain.models import CostSummary, Plan, ReviewResult, RoundRecord, Severity, VerificationReport

MAX_PLAN_CHARS = 8_000  # of the plan's markdown in the task artifact (plan.md has it whole)
MAX_DIFF_CHARS = 20_000  # of the patch in the task artifact (patch.diff has it whole)
MAX_FINDINGS = 20  # listed per reviewer; the rest are counted (reviews/*.json has them)
MAX_TOOL_FINDINGS = 10  # tool findings on the patch's lines listed per round; the rest are counted (verify/*)

Locate = Callable[[str], str]  # a store key -> where a person finds it (file:///abs/... or s3://bucket/key)


class TaskStory(BaseModel):
    """What the pipeline learnt while one task ran, gathered for the task's markdown artifact.

    Filled as the task goes, so a task that ends early (an error, a budget stop) still shows what it got to.
    """

    plan: Plan | None = None
    rounds: list[RoundRecord] = Field(default_factory=list)


_EMPHASIS = re.compile(r"([\\*_])")


def escape_md(text: str) -> str:
    """Model-written text shown as markdown: `*` and `_` outside code spans stay literal, so
    `textkit/__init__.py` is not rendered as a bold `init`."""
    parts = text.split("`")
    return "`".join(part if index % 2 else _EMPHASIS.sub(r"\\\1", part) for index, part in enumerate(parts))


def render_plan_markdown(plan: Plan, level: int = 1) -> str:
    """The plan as markdown (plan.md, the implementer's prompt); `level` is its title's heading level."""
    title, section = "#" * level, "#" * (level + 1)
    lines = [f"{title} Plan\n\n{plan.summary}\n", f"{section} Steps\n"]
    for number, step in enumerate(plan.steps, start=1):
        files = f" ({', '.join(step.files)})" if step.files else ""
        lines.append(f"{number}. {step.description}{files}")
    if plan.files_to_change:
        lines.append(f"\n{section} Files to change\n")
        lines.extend(f"- `{path}`" for path in plan.files_to_change)
    if plan.risks:
        lines.append(f"\n{section} Risks\n")
        lines.extend(f"- {risk}" for risk in plan.risks)
    return "\n".join(lines) + "\n"


def capped(text: str, limit: int) -> tuple[str, bool]:
    """`text` cut to at most `limit` characters at a line end (mid-line only for a single huge line)."""
    if len(text) <= limit:
        return text, False
    head = text[:limit]
    cut = head.rfind("\n")
    return (head[: cut + 1] if cut > 0 else head), True


def fenced(text: str, language: str = "") -> list[str]:
    """A fenced code block whose fence no backtick run inside `text` can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{language}", text.rstrip("\n"), fence]


def cut_note(what: str, shown: int, total: int, location: str) -> str:
    return f"*{what} cut to {shown:,} of {total:,} characters; the whole of it: `{location}`*"


def plan_section(plan: Plan, location: str, limit: int = MAX_PLAN_CHARS) -> list[str]:
    text = render_plan_markdown(plan, level=2)
    shown, cut = capped(text, limit)
    shown = escape_md(shown)  # the UI's copy only: plan.md (and the implementer's prompt) stay as they are
    lines = ["", shown.rstrip("\n")]
    if cut:
        lines += ["", cut_note("The plan", len(shown), len(text), location)]
    return lines


def patch_section(record: RoundRecord, location: str, limit: int = MAX_DIFF_CHARS) -> list[str]:
    """The round's patch as a ```diff block, or why there is none."""
    lines = ["", f"## Patch (round {record.round})", ""]
    if not record.diff:
        reason = record.patch_reason or "the implementer's reply changed nothing"
        return lines + [f"No patch applied: {_flat(reason, 1_000)}"]
    shown, cut = capped(record.diff, limit)
    lines += fenced(shown, "diff")
    if cut:
        lines += ["", cut_note("The patch", len(shown), len(record.diff), location)]
    else:
        lines += ["", f"patch.diff: `{location}`"]
    return lines


def verification_table(reports: list[VerificationReport], limit: int = MAX_TOOL_FINDINGS) -> list[str]:
    """Each tool's status and summary, then its findings on the patch's lines, most severe first."""
    lines = ["| tool | status | findings | summary |", "|---|---|---|---|"]
    for report in reports:
        version = report.tool_version.removeprefix(f"{report.tool} ")
        named = f"{report.tool} {_cell(version, 40)}" if version else report.tool
        lines.append(f"| {named} | {report.status.value} | {len(report.findings)} | "
                     f"{_cell(report.summary or report.reason or '-', 500)} |")  # fmt: skip
    added = sorted((f for report in reports for f in report.findings if f.in_patch), key=lambda f: -f.severity.rank)
    if added:
        lines.append("")
    for finding in added[:limit]:
        rule = f"/{finding.rule}" if finding.rule else ""
        lines.append(f"- [{finding.severity.value}] {finding.source}{rule} at `{finding.location()}`: "
                     f"{_flat(finding.message, 500)}")  # fmt: skip
    if len(added) > limit:
        lines.append(f"- … and {len(added) - limit} more on the patch's lines (verify/ of the round)")
    return lines


def review_lines(review: ReviewResult) -> list[str]:
    """A reviewer's verdict, summary and findings."""
    verdict = review.review.verdict
    summary = f": {_flat(review.review.summary, 1_000)}" if review.review.summary else ""
    lines = [f"- **{review.reviewer}** ({review.provider}): **{verdict}**{summary}"]
    for finding in review.review.findings[:MAX_FINDINGS]:
        where = f"{finding.file}:{finding.line}" if finding.file and finding.line else finding.file or "(no location)"
        category = f" {_flat(finding.category, 60)}" if finding.category else ""
        lines.append(f"  - [{finding.severity.value}]{category} at `{where}`: {_flat(finding.message, 1_000)}")
    hidden = len(review.review.findings) - MAX_FINDINGS
    if hidden > 0:
        lines.append(f"  - … and {hidden} more (reviews/ of the round)")
    return lines


def rounds_section(rounds: list[RoundRecord]) -> list[str]:
    """Per round: the patch's fate, each tool's result, each reviewer's verdict and findings, the decision."""
    lines: list[str] = []
    for record in rounds:
        lines += ["", f"## Round {record.round}: {record.decision.outcome.value}"]
        if not record.patch_applied:
            lines += ["", f"The patch did not apply: {_flat(record.patch_reason or '-', 1_000)}"]
        lines += ["", "### Verification", ""]
        lines += verification_table(record.verification) if record.verification else ["Not run (no patch applied)."]
        lines += ["", "### Reviews", ""]
        if record.reviews:
            for review in record.reviews:
                lines += review_lines(review)
        else:
            lines.append("None this round (a blocking tool finding, no patch, or no budget left).")
    return lines


def acceptance_section(report: VerificationReport) -> list[str]:
    return ["", "## Acceptance tests", "", *verification_table([report])]


def model_table(cost: CostSummary) -> list[str]:
    """Per model: calls, tokens, money and time (cached calls count what they cost when made)."""
    lines = ["| model | calls | tokens (prompt + completion) | from prompt cache | cost | latency per call |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for model, used in sorted(cost.by_model.items()):
        per_call = used.latency_s / used.calls if used.calls else 0.0
        lines.append(f"| {model} | {used.calls} | {used.prompt_tokens:,} + {used.completion_tokens:,} | "
                     f"{used.cached_tokens:,} | {format_usd(used.cost_usd)} | {per_call:.1f} s |")  # fmt: skip
    return lines


def _flat(text: str, limit: int) -> str:
    """One line (markdown list items and table cells break on newlines), cut to `limit` characters."""
    flat = " ".join(text.split())
    return escape_md(flat if len(flat) <= limit else flat[: limit - 1] + "…")


def _cell(text: str, limit: int = 300) -> str:
    return _flat(text, limit).replace("|", "\\|")


def review_detail(reviewed: ReviewResult) -> str:
    """A review in a few words (its stage's log line): `request_changes · 2 finding(s) (1 high, 1 low)`."""
    findings = reviewed.review.findings
    counted = ", ".join(f"{n} {severity.value}" for severity in Severity if (n := sum(f.severity == severity for f in findings)))
    return f"{reviewed.review.verdict} · {len(findings)} finding(s)" + (f" ({counted})" if counted else "")


def implement_detail(diff: str, refused: str, *, dry_run: bool) -> str:
    """Whether the implementer's reply applied in its dry run, and to how many files."""
    if refused:
        return f"reply refused: {_flat(refused, 200)}"
    if not dry_run:
        return "reply not dry-run (no workspace)"
    files = sum(1 for line in diff.splitlines() if line.startswith("diff --git "))
    return f"reply applies: {files} file(s) changed" if diff else "reply applies but changes nothing"
