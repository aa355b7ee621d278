"""Implement stage: the cheap model turns the plan (and any findings) into a unified diff."""

from __future__ import annotations

from prefect import task

from quorum.llm import ask_structured
from quorum.manifest import TaskSpec
from quorum.models import Finding, Plan
from quorum.roster import StageModel
from tasks.llm_stage import LLM_TASK_OPTIONS, StageOutput
from tasks.patching import check_patch_safety, extract_diff
from tasks.plan import render_plan_markdown
from tasks.prompting import DATA_RULE, delimit, render_repository

PROMPT_VERSION = "implement-2"


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
    task_text: str, files: dict[str, str], plan: Plan, round_no: int, feedback: list[str], findings: list[Finding]
) -> list[dict[str, str]]:
    system = (
        "You are the implementing engineer in a code-change pipeline. Follow the plan and change the "
        "repository. Reply with a short explanation and then exactly one fenced ```diff block holding a "
        "unified diff (git format, paths relative to the repository root, a/ and b/ prefixes) that applies "
        "to the repository as shown. Only touch files inside the repository. "
        f"{DATA_RULE}"
    )
    parts = [delimit("task", task_text), delimit("plan", render_plan_markdown(plan)), render_repository(files)]
    if round_no > 1:
        report = "\n".join(f"- {reason}" for reason in feedback) + "\n\nFindings:\n" + render_findings(findings)
        parts.append(
            f"This is round {round_no}. Your previous patch was not accepted. Write a new patch against the "
            "ORIGINAL repository above (not on top of the previous patch) that fixes these problems:\n"
            + delimit("report", report)
        )
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def parse_patch_reply(text: str) -> str:
    diff = extract_diff(text)
    problems = check_patch_safety(diff)
    malformed = [p for p in problems if "malformed" in p.lower() or "empty" in p.lower()]
    if malformed:
        raise ValueError("; ".join(malformed))
    return diff


@task(name="implement", task_run_name="implement · {spec.id} · round {round_no} · {implementer.model}", **LLM_TASK_OPTIONS)
def implement_task(
    spec: TaskSpec,
    implementer: StageModel,
    files: dict[str, str],
    plan: Plan,
    round_no: int,
    feedback: list[str],
    findings: list[Finding],
    prompt_version: str = PROMPT_VERSION,
) -> ImplementOutput:
    messages = build_implement_messages(spec.task, files, plan, round_no, feedback, findings)
    result: dict[str, str] = {}

    def parse(text: str) -> str:
        diff = parse_patch_reply(text)
        result["reply"] = text
        return diff

    diff, calls = ask_structured("implement", implementer, messages, parse, script=spec.script, round_no=round_no)
    return ImplementOutput(diff=diff, reply=result["reply"], calls=calls)
