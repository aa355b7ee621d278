"""Plan stage: the premium model turns a task and the repository into a structured plan."""

from __future__ import annotations

from prefect import task

from quorum.llm import ask_structured
from quorum.manifest import TaskSpec
from quorum.models import Plan
from quorum.roster import StageModel
from tasks.llm_stage import LLM_TASK_OPTIONS, StageOutput
from tasks.prompting import DATA_RULE, delimit, json_schema_hint, parse_model_reply, render_repository

PROMPT_VERSION = "plan-2"


class PlanOutput(StageOutput):
    plan: Plan


def build_plan_messages(task_text: str, files: dict[str, str]) -> list[dict[str, str]]:
    system = (
        "You are the planning engineer in a code-change pipeline. Read the task and the repository and "
        "write a precise, minimal implementation plan that a less capable engineer can follow. "
        "Name the files to change and the risks. Do not write the patch. "
        f"{DATA_RULE}\nReply with one JSON object matching this JSON Schema: {json_schema_hint(Plan)}"
    )
    user = f"{delimit('task', task_text)}\n\n{render_repository(files)}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_plan(text: str) -> Plan:
    return parse_model_reply(text, Plan)  # type: ignore[return-value]


def render_plan_markdown(plan: Plan) -> str:
    lines = [f"# Plan\n\n{plan.summary}\n", "## Steps\n"]
    for number, step in enumerate(plan.steps, start=1):
        files = f" ({', '.join(step.files)})" if step.files else ""
        lines.append(f"{number}. {step.description}{files}")
    if plan.files_to_change:
        lines.append("\n## Files to change\n")
        lines.extend(f"- `{path}`" for path in plan.files_to_change)
    if plan.risks:
        lines.append("\n## Risks\n")
        lines.extend(f"- {risk}" for risk in plan.risks)
    return "\n".join(lines) + "\n"


@task(name="plan", task_run_name="plan · {spec.id} · {planner.model}", **LLM_TASK_OPTIONS)
def plan_task(spec: TaskSpec, planner: StageModel, files: dict[str, str], prompt_version: str = PROMPT_VERSION) -> PlanOutput:
    messages = build_plan_messages(spec.task, files)
    plan, calls = ask_structured("plan", planner, messages, parse_plan, script=spec.script, round_no=1)
    return PlanOutput(plan=plan, calls=calls)
