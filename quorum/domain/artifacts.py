"""Artifact keys and contents (pure): what each stage leaves behind, and where, per DESIGN.md §6."""

from __future__ import annotations

import json
import re

from pydantic import BaseModel

from quorum.domain.models import Decision, LLMCall, PatchResult, Plan, ReviewResult, RoundContext, VerificationReport

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str) -> str:
    """A key component from a model string or name: 'scripted/gpt-5-mini' -> 'scripted_gpt-5-mini'."""
    cleaned = _UNSAFE.sub("_", text).strip("._")
    return cleaned or "unnamed"


def task_prefix(batch_id: str, task_id: str) -> str:
    return f"runs/{slug(batch_id)}/{slug(task_id)}"


def round_prefix(batch_id: str, task_id: str, round_no: int) -> str:
    return f"{task_prefix(batch_id, task_id)}/{round_no}"


def result_key(batch_id: str, task_id: str) -> str:
    return f"{task_prefix(batch_id, task_id)}/result.json"


def batch_prefix(batch_id: str) -> str:
    return f"runs/{slug(batch_id)}"


def report_key(batch_id: str) -> str:
    """The batch report's summary (a `BatchReport`)."""
    return f"{batch_prefix(batch_id)}/report.json"


def report_rows_key(batch_id: str) -> str:
    """The batch report's rows: one `ReportRow` per task, JSON lines, in manifest order."""
    return f"{batch_prefix(batch_id)}/report.jsonl"


def batch_inputs_key(batch_id: str) -> str:
    """What a batch runs with (`BatchInputs`: roster, policy, where its tasks are), written when it starts."""
    return f"{batch_prefix(batch_id)}/_inputs/batch.json"


def batch_tasks_key(batch_id: str) -> str:
    """The batch's task specs, normalised (paths resolved, texts loaded): one `TaskSpec` per line."""
    return f"{batch_prefix(batch_id)}/_inputs/tasks.jsonl"


def predictions_key(batch_id: str) -> str:
    """The batch's patches in SWE-bench's harness format (one JSON object a line)."""
    return f"runs/{slug(batch_id)}/predictions.jsonl"


def environment_artifacts(prefix: str, summary: BaseModel, build_log: str, baseline: BaseModel | None) -> dict[str, str]:
    """A task's test environment: what was built or reused (and its log), and the baseline of the base."""
    items = {f"{prefix}/environment/environment.json": to_json(summary)}
    if build_log:
        items[f"{prefix}/environment/build.log"] = build_log
    if baseline is not None:
        items[f"{prefix}/environment/baseline.json"] = to_json(baseline)
    return items


def predictions_jsonl(rows: list[tuple[str, str, str]]) -> str:
    """(instance_id, model_name_or_path, model_patch) rows -> predictions.jsonl, exactly the harness's fields."""
    return "".join(
        json.dumps({"instance_id": iid, "model_name_or_path": model, "model_patch": patch}, ensure_ascii=False) + "\n"
        for iid, model, patch in rows
    )


def to_json(obj: BaseModel | dict | list) -> str:
    """Pretty JSON with sorted keys (stable bytes for the same content), ending with a newline."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


def call_artifacts(prefix: str, calls: list[LLMCall]) -> dict[str, str]:
    """Every call's prompt and response, kept for audit and replay."""
    return {
        f"{prefix}/calls/{call.stage}-{slug(call.model)}-attempt{call.attempt}.json": to_json(call) for call in calls
    }


def verification_artifacts(prefix: str, reports: list[VerificationReport]) -> dict[str, str]:
    items: dict[str, str] = {}
    for report in reports:
        if report.raw and report.raw_name:
            items[f"{prefix}/verify/{report.raw_name}"] = report.raw
        if report.log and report.log_name:
            items[f"{prefix}/verify/{report.log_name}"] = report.log
        items[f"{prefix}/verify/{slug(report.tool)}.report.json"] = to_json(without_outputs(report))
    return items


def without_outputs(report: VerificationReport) -> VerificationReport:
    """The report without its raw tool output and log (saved as their own artifacts)."""
    return report.model_copy(update={"raw": "", "log": ""})


def review_artifacts(prefix: str, reviews: list[ReviewResult]) -> dict[str, str]:
    items = {f"{prefix}/reviews/{slug(r.reviewer)}.json": to_json(r.model_copy(update={"calls": []})) for r in reviews}
    for review in reviews:
        items.update(call_artifacts(prefix, review.calls))
    return items


def plan_artifacts(prefix: str, plan: Plan, plan_markdown: str, calls: list[LLMCall]) -> dict[str, str]:
    return {f"{prefix}/plan.md": plan_markdown, f"{prefix}/plan.json": to_json(plan), **call_artifacts(prefix, calls)}


def localize_artifacts(prefix: str, localization: BaseModel, calls: list[LLMCall]) -> dict[str, str]:
    """What the localize stage decided (or its deterministic stand-in), and the calls it made."""
    return {f"{prefix}/localization.json": to_json(localization), **call_artifacts(prefix, calls)}


def context_key(prefix: str) -> str:
    return f"{prefix}/context.json"


def context_artifacts(prefix: str, context: RoundContext) -> dict[str, str]:
    """What each stage of a round saw of the repository, why, and its tokens (context.json)."""
    data = context.model_dump(mode="json")
    data["totals"] = {
        "tokens": context.total_tokens,
        "by_stage": {f"{stage.stage} {stage.model}".strip(): stage.tokens for stage in context.stages},
    }
    return {context_key(prefix): to_json(data)}


def decision_artifacts(prefix: str, decision: Decision) -> dict[str, str]:
    return {f"{prefix}/decision.json": to_json(decision)}


def round_artifacts(
    prefix: str,
    *,
    diff: str,
    reply: str,
    patch: PatchResult,
    calls: list[LLMCall],
    reports: list[VerificationReport],
    sarif: str | None,
    reviews: list[ReviewResult],
    decision: Decision,
) -> dict[str, str]:
    """Everything one round leaves behind: patch, the implementer's reply, apply result, verification, reviews, decision.

    `patch.diff` is the normalised diff of what was applied (what reviewers see), absent when the
    reply was refused; `implement.md` is the reply as the model wrote it; `apply.json` says whether it
    applied, in which edit format, and how each edit was placed or why it was refused.
    """
    return {
        **({f"{prefix}/patch.diff": diff} if diff else {}),
        f"{prefix}/implement.md": reply,
        f"{prefix}/apply.json": to_json(patch.model_dump(mode="json", exclude={"diff"})),  # the diff is patch.diff
        **decision_artifacts(prefix, decision),
        **call_artifacts(prefix, calls),
        **verification_artifacts(prefix, reports),
        **({f"{prefix}/verify/quorum.sarif": sarif} if sarif is not None else {}),
        **review_artifacts(prefix, reviews),
    }
