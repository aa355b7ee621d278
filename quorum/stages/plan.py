"""Plan stage: the premium model turns a task and the repository into a structured plan."""

from __future__ import annotations

import sys

from quorum.domain.manifest import TaskSpec
from quorum.domain.models import Plan
from quorum.domain.roster import StageModel
from quorum.domain.story import render_plan_markdown as render_plan_markdown  # plan.md; implement and review show it
from quorum.llm.client import ask_structured
from quorum.llm.prompt_cache import user_message
from quorum.stages import prompting
from quorum.stages.output import StageOutput
from quorum.stages.prompting import delimit, json_schema_hint, parse_model_reply, render_context
from quorum.stages.templates import load_template


class PlanOutput(StageOutput):
    plan: Plan


def build_plan_messages(task_text: str, context: str) -> list[dict[str, str]]:
    """`context`: the planner's repository context (map and regions as PROMPT_RENDERER's <file> blocks)."""
    system = TEMPLATE.render("system", schema=json_schema_hint(Plan))
    return [{"role": "system", "content": system}, user_message([render_context(context), delimit("task", task_text)])]


def parse_plan(text: str) -> Plan:
    return parse_model_reply(text, Plan)  # type: ignore[return-value]


def run_plan(spec: TaskSpec, planner: StageModel, context: str) -> PlanOutput:
    messages = build_plan_messages(spec.task, context)
    plan, calls = ask_structured("plan", planner, messages, parse_plan, script=spec.script, round_no=1, schema=Plan)
    return PlanOutput(plan=plan, calls=calls)


TEMPLATE = load_template("plan", sys.modules[__name__], prompting)
PROMPT_VERSION = TEMPLATE.version
