"""How a task's outcome and a batch's tally show as Prefect run states (pure; quorum.prefect_api builds them).

The runs list and the dashboard colour a run by its state's *type* and label it by its *name*. quorum
names each task's flow run after its outcome and picks the type so the colour sorts runs into three
kinds at a glance:

| outcome             | state name            | type      | colour | means                          |
|---------------------|-----------------------|-----------|--------|--------------------------------|
| resolved            | Resolved              | COMPLETED | green  | done                           |
| approved_unverified | Approved unverified   | COMPLETED | green  | done, no acceptance tests      |
| escalated           | Escalated             | FAILED    | red    | needs a human                  |
| failed              | Failed                | FAILED    | red    | needs a human                  |
| error               | Error                 | CRASHED   | orange | broke (environment, infra)     |
| skipped             | Skipped               | CANCELLED | grey   | never ran (batch budget spent) |

Crash detection is untouched: a run whose process dies is still marked `Crashed` by Prefect (orange,
like `Error`: both mean "something broke, not the model's answer"). Retries are untouched too: they
are set on the stage tasks inside a run, never on these flow runs.

A batch (and a shard) is COMPLETED when none of its tasks needs a human and none broke, else FAILED;
its name counts each outcome, e.g. `2 resolved · 1 escalated`.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from quorum.domain.models import TaskStatus

COMPLETED, FAILED, CRASHED, CANCELLED = "COMPLETED", "FAILED", "CRASHED", "CANCELLED"

_TASK_STATES: dict[TaskStatus, tuple[str, str]] = {
    TaskStatus.resolved: (COMPLETED, "Resolved"),
    TaskStatus.approved_unverified: (COMPLETED, "Approved unverified"),
    TaskStatus.escalated: (FAILED, "Escalated"),
    TaskStatus.failed: (FAILED, "Failed"),
    TaskStatus.error: (CRASHED, "Error"),
    TaskStatus.skipped: (CANCELLED, "Skipped"),
}
_ORDER = list(_TASK_STATES)  # counts are named in this order, however the tally was filled
MAX_MESSAGE = 500  # characters of a state message (the run page shows it; the full reason is in result.json)


class RunStateSpec(BaseModel):
    """A terminal state for a flow run: Prefect's state type (by name), the label shown, and its message."""

    type: str
    name: str
    message: str


def task_state_spec(status: TaskStatus, reason: str = "") -> RunStateSpec:
    kind, name = _TASK_STATES[status]
    message = f"{status.value}: {reason}" if reason else status.value
    return RunStateSpec(type=kind, name=name, message=_cut(message))


def counts_name(counts: Mapping[str, int]) -> str:
    """`2 resolved · 1 escalated` (outcomes in a fixed order, zeros left out); `no tasks` when empty."""
    parts = [f"{counts[s.value]} {s.value.replace('_', ' ')}" for s in _ORDER if counts.get(s.value)]
    return " · ".join(parts) or "no tasks"


def batch_state_spec(batch_id: str, counts: Mapping[str, int], report_url: str = "") -> RunStateSpec:
    """A batch's (or a shard's) state: green when nothing needs a human and nothing broke, else red."""
    unknown = set(counts) - {s.value for s in _ORDER}
    if unknown:
        raise ValueError(f"unknown outcome(s) in a batch tally: {sorted(unknown)}")
    troubled = any(counts.get(s.value) and _TASK_STATES[s][0] in (FAILED, CRASHED) for s in _ORDER)
    total = sum(counts.values())
    message = f"batch {batch_id}: {total} task(s); {counts_name(counts)}"
    if report_url:
        message += f"; report: {report_url}"
    return RunStateSpec(type=FAILED if troubled else COMPLETED, name=counts_name(counts), message=_cut(message))


def _cut(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"
