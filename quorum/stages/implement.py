"""Implement stage: the cheap model turns the plan (and any findings) into a unified diff."""

from __future__ import annotations

import sys

from quorum.domain.manifest import TaskSpec
from quorum.domain.models import Finding, Plan
from quorum.domain.roster import StageModel
from quorum.edits.patching import check_patch_safety, extract_diff
from quorum.llm.client import ask_structured
from quorum.stages import prompting
from quorum.stages.output import StageOutput
from quorum.stages.plan import render_plan_markdown
from quorum.stages.prompting import delimit, render_context
from quorum.stages.templates import load_template


class ImplementOutput(StageOutput):
    diff: str
    reply: str


def render_findings(findings: list[Finding]) -> str:
    if not findings:
        return "(none)"
    return "\n".join(
        f"- [{f.severity.value}] {f.source}{'/' + f.rule if f.rule else ''} at {f.location()}: {f.message}"
        for f in findings
    )


def build_implement_messages(
    task_text: str, context: str, plan: Plan, round_no: int, feedback: list[str], findings: list[Finding]
) -> list[dict[str, str]]:
    """`context`: the implementer's repository context (the regions the plan names, line-numbered <file> blocks)."""
    system = TEMPLATE.render("system")
    parts = [delimit("task", task_text), delimit("plan", render_plan_markdown(plan)), render_context(context)]
    if round_no > 1:
        report = "\n".join(f"- {reason}" for reason in feedback) + "\n\nFindings:\n" + render_findings(findings)
        parts.append(TEMPLATE.render("revision", round=round_no, report=delimit("report", report)))
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def parse_patch_reply(text: str) -> str:
    diff = extract_diff(text)
    problems = check_patch_safety(diff)
    malformed = [p for p in problems if "malformed" in p.lower() or "empty" in p.lower()]
    if malformed:
        raise ValueError("; ".join(malformed))
    return diff


def run_implement(
    spec: TaskSpec,
    implementer: StageModel,
    context: str,
    plan: Plan,
    round_no: int,
    feedback: list[str],
    findings: list[Finding],
) -> ImplementOutput:
    messages = build_implement_messages(spec.task, context, plan, round_no, feedback, findings)
    replies: dict[str, str] = {}

    def parse(text: str) -> str:
        diff = parse_patch_reply(text)
        replies["accepted"] = text
        return diff

    diff, calls = ask_structured("implement", implementer, messages, parse, script=spec.script, round_no=round_no)
    return ImplementOutput(diff=diff, reply=replies["accepted"], calls=calls)


TEMPLATE = load_template("implement", sys.modules[__name__], prompting)
PROMPT_VERSION = TEMPLATE.version
