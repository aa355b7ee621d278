"""Resuming a batch (pure): which results of an earlier run of the same batch can be kept.

A batch that was killed midway is run again with the same batch id. A task whose `result.json`
is in the store, finished (not `error` or `skipped`) and was made from the same task, roster and
policy (same digest) is kept as it is; every other task runs again, and its LLM calls that had
completed are served from Prefect's persisted cache rather than paid again.
"""

from __future__ import annotations

import hashlib
import json

from quorum.domain.manifest import TaskSpec
from quorum.domain.models import CostSummary, StageCost, TaskResult, TaskStatus
from quorum.domain.roster import Roster

RERUN_STATUSES = frozenset({TaskStatus.error, TaskStatus.skipped})


def spec_digest(spec: TaskSpec, roster: Roster, policy: object) -> str:
    """Digest of everything that decides a task's outcome: the task, the roster and the policy."""
    payload = {
        "spec": spec.model_dump(mode="json"),
        "roster": roster.model_dump(mode="json"),
        "policy": policy.model_dump(mode="json") if hasattr(policy, "model_dump") else policy,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def reusable(previous: TaskResult | None, digest: str) -> bool:
    return previous is not None and previous.spec_digest == digest and previous.status not in RERUN_STATUSES


def as_reused(result: TaskResult) -> TaskResult:
    """The earlier result, marked reused; its calls were paid by the earlier run, so none is fresh now."""
    return result.model_copy(update={"reused": True, "cost": _nothing_fresh(result.cost)})


def _nothing_fresh(cost: CostSummary) -> CostSummary:
    def stale(stage_cost: StageCost) -> StageCost:
        return stage_cost.model_copy(update={"fresh_calls": 0})

    return cost.model_copy(
        update={
            "total": stale(cost.total),
            "by_stage": {k: stale(v) for k, v in cost.by_stage.items()},
            "by_model": {k: stale(v) for k, v in cost.by_model.items()},
        }
    )
