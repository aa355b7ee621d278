"""Gold validation (`quorum validate`): what each task's run with its own patch says about the task (pure)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from quorum.domain.models import TaskResult, TaskStatus


class ValidationRow(BaseModel):
    """One task: env ok, baseline failing count, FAIL_TO_PASS fail-before / pass-after, resolved."""

    task_id: str
    env_status: str = Field(description="built, reused, none or env_error")
    env_s: float = 0.0
    env_error: str = ""
    baseline_failing: int = 0
    baseline_flaky: int = 0
    f2p_total: int = 0
    f2p_fail_before: int = 0
    f2p_pass_after: int = 0
    p2p_total: int = 0
    p2p_failing_before: int = 0
    p2p_newly_failing: int = 0
    outcome: str = ""
    reason: str = ""
    problems: list[str] = Field(default_factory=list, description="Why the task is broken; empty: it is valid.")

    @property
    def ok(self) -> bool:
        return not self.problems


def validation_row(result: TaskResult) -> ValidationRow:
    env = result.environment
    row = ValidationRow(task_id=result.task_id, env_status=env.status if env else "none", outcome=result.status.value,
                        reason=result.reason)  # fmt: skip
    if env is not None:
        row.env_s, row.env_error = env.duration_s, env.error
        row.baseline_failing, row.baseline_flaky = len(env.baseline_failing), len(env.baseline_flaky)
        row.f2p_total, row.f2p_fail_before = env.f2p_total, env.f2p_failing_before
        row.p2p_total, row.p2p_failing_before = env.p2p_total, len(env.p2p_failing_before)
    tests = result.acceptance.tests if result.acceptance is not None else None
    if tests is not None:
        row.f2p_pass_after = len(tests.fail_to_pass_passing)
        row.p2p_newly_failing = len(tests.newly_failing)
    if row.env_status == "env_error":
        row.problems.append(f"env_error: {row.env_error or result.reason}"[:300])
    if row.f2p_total == 0:
        row.problems.append("no FAIL_TO_PASS tests")
    elif row.env_status != "env_error" and row.f2p_fail_before < row.f2p_total:
        row.problems.append(f"{row.f2p_total - row.f2p_fail_before} FAIL_TO_PASS test(s) pass without the fix")
    if row.p2p_failing_before:
        row.problems.append(f"{row.p2p_failing_before} PASS_TO_PASS test(s) fail on the base")
    if result.status != TaskStatus.resolved and row.env_status != "env_error":
        row.problems.append(f"not resolved with its own patch: {result.status.value}: {result.reason}"[:300])
    return row


def render_validation(rows: list[ValidationRow]) -> str:
    """A markdown table, then one line per broken task."""
    lines = [
        "| task | env | env s | baseline failing | flaky | F2P fail before | F2P pass after | P2P failing before / after | outcome |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.task_id} | {r.env_status} | {r.env_s:.2f} | {r.baseline_failing} | {r.baseline_flaky} | "
            f"{r.f2p_fail_before}/{r.f2p_total} | {r.f2p_pass_after}/{r.f2p_total} | "
            f"{r.p2p_failing_before}/{r.p2p_newly_failing} of {r.p2p_total} | {r.outcome} |"
        )
    broken = [r for r in rows if not r.ok]
    lines.append("")
    lines.append(f"{len(rows) - len(broken)}/{len(rows)} task(s) valid")
    for r in broken:
        lines.append(f"BROKEN {r.task_id}: " + "; ".join(r.problems))
    return "\n".join(lines) + "\n"
