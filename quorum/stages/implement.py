"""Implement stage: the cheap model turns the plan (and any findings) into edits, in its roster's edit format.

The system prompt describes the edit format the roster gives the implementer (`format_instructions`).
Given a clean workspace of the repository, every reply is dry-run there with the pipeline's applier
(`quorum.edits.apply_reply`): a reply it refuses is re-asked with the applier's reasons
(`reask_message`, naming each file and hunk), within `ask_structured`'s bounded attempts. When they
run out, the last refused reply is returned with `refused` set: the round records the refusal and
the policy decides (a revision with the reason, or `failed` when no round is left), as for any patch
that does not apply. Without a workspace only the reply's form is checked.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import Field

from quorum.domain.edit_format import EditFormat
from quorum.domain.manifest import TaskSpec
from quorum.domain.models import Finding, LLMCall, PatchResult, Plan
from quorum.domain.roster import StageModel
from quorum.edits import apply_reply, format_instructions, parse_reply, reask_message
from quorum.edits import formats as edit_formats
from quorum.llm.client import ReaskError, StructuredOutputError, ask_structured
from quorum.llm.prompt_cache import user_message
from quorum.stages import prompting
from quorum.stages.output import StageOutput
from quorum.stages.plan import render_plan_markdown
from quorum.stages.prompting import delimit, render_context
from quorum.stages.templates import load_template


class ImplementOutput(StageOutput):
    reply: str = Field(description="The implementer's last reply as written (implement.md).")
    diff: str = Field(default="", description="Normalised diff of its edits from the dry run ('' without a workspace or when refused).")
    edit_format: EditFormat = Field(default=EditFormat.udiff, description="The edit format the prompt asked for.")
    refused: str = Field(default="", description="The applier's reason when no reply applied within the re-asks.")


def render_findings(findings: list[Finding]) -> str:
    if not findings:
        return "(none)"
    return "\n".join(
        f"- [{f.severity.value}] {f.source}{'/' + f.rule if f.rule else ''} at {f.location()}: {f.message}"
        for f in findings
    )


def build_implement_messages(
    task_text: str,
    context: str,
    plan: Plan,
    round_no: int,
    feedback: list[str],
    findings: list[Finding],
    *,
    edit_format: EditFormat,
) -> list[dict[str, str]]:
    """`context`: the implementer's repository context (the regions the plan names, line-numbered <file> blocks).

    Stable first (context, task, plan: the same every round), the round's feedback last."""
    system = TEMPLATE.render("system", edit_format=format_instructions(edit_format))
    stable = [render_context(context), delimit("task", task_text), delimit("plan", render_plan_markdown(plan))]
    variable = []
    if round_no > 1:
        report = "\n".join(f"- {reason}" for reason in feedback) + "\n\nFindings:\n" + render_findings(findings)
        variable.append(TEMPLATE.render("revision", round=round_no, report=delimit("report", report)))
    return [{"role": "system", "content": system}, user_message(stable, variable)]


def check_reply(text: str, workspace: Path | None) -> PatchResult:
    """The reply dry-run on a clean workspace (nothing is written); without one, only its form is checked."""
    if workspace is not None:
        return apply_reply(workspace, text, dry_run=True)
    parsed = parse_reply(text)
    return PatchResult(applied=not parsed.problems, dry_run=True, reason="; ".join(parsed.problems),
                       problems=parsed.problems, notes=parsed.notes)  # fmt: skip


def reply_check(result: PatchResult, asked: EditFormat) -> dict[str, Any]:
    """What the call artifacts record of a checked reply: formats, and how each edit was placed or why not."""
    return {
        "edit_format_asked": asked.value,
        "edit_format_used": result.format,
        "dry_run": result.dry_run,
        "applies": result.applied,
        "edits": [
            {"label": o.label, "match": o.match.value, "placed_by": o.placed_by, "start": o.start, "reason": o.reason}
            for o in result.edits
        ],
        "problems": result.problems,
    }


def run_implement(
    spec: TaskSpec,
    implementer: StageModel,
    context: str,
    plan: Plan,
    round_no: int,
    feedback: list[str],
    findings: list[Finding],
    workspace: Path | None = None,
) -> ImplementOutput:
    fmt = implementer.resolved_edit_format
    messages = build_implement_messages(spec.task, context, plan, round_no, feedback, findings, edit_format=fmt)
    checked: dict[str, PatchResult] = {}  # reply text -> its check (the same text checks the same way)
    last: list[str] = []

    def parse(text: str) -> PatchResult:
        last.append(text)
        result = checked[text] = check_reply(text, workspace)
        if not result.applied:
            raise ReaskError(result.reason, reask_message(result, fmt))
        return result

    try:
        result, calls = ask_structured("implement", implementer, messages, parse, script=spec.script, round_no=round_no)
    except StructuredOutputError as exc:
        if not last:  # no reply came back whole (truncated, filtered): nothing to apply
            raise
        refused = checked[last[-1]]
        return ImplementOutput(reply=last[-1], edit_format=fmt, refused=refused.reason or "refused",
                               calls=_with_checks(exc.calls, checked, fmt))  # fmt: skip
    return ImplementOutput(reply=last[-1], diff=result.diff, edit_format=fmt, calls=_with_checks(calls, checked, fmt))


def _with_checks(calls: list[LLMCall], checked: dict[str, PatchResult], fmt: EditFormat) -> list[LLMCall]:
    return [
        call.model_copy(update={"reply_check": reply_check(checked[call.response_text], fmt)})
        if call.response_text in checked
        else call
        for call in calls
    ]


TEMPLATE = load_template("implement", sys.modules[__name__], prompting, edit_formats)
PROMPT_VERSION = TEMPLATE.version
