"""What a batch runs with, passed by reference (pure): the inputs are written to the store once, at batch start.

No flow takes the batch's tasks as a parameter (Prefect stores parameters with every flow run and
refuses them past 512 KB). The batch writes a normalised copy of its manifest to the store (one
`TaskSpec` per line: paths resolved, task texts loaded) and a `BatchInputs` record with the roster
and the policy; the batch flow and every shard run read them by key, and each run loads only the
specs of its own tasks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator

from pydantic import BaseModel, Field

from quorum.domain.manifest import RejectedTask, TaskSpec
from quorum.domain.policy import Policy
from quorum.domain.roster import Roster


class BatchInputs(BaseModel):
    """A batch's roster, policy and where its task specs are (`runs/<batch>/_inputs/batch.json`)."""

    batch_id: str
    source: str = Field(description="Where the manifest came from (a file, s3:// or the command line).")
    roster: Roster
    policy: Policy
    tasks: int = Field(ge=0, description="Task specs in the tasks file.")
    tasks_key: str = Field(description="Store key of the task specs, one TaskSpec per JSON line, manifest order.")
    tasks_sha256: str = Field(description="Digest of the tasks file, so a reader knows it has the batch's own copy.")
    rejected: list[RejectedTask] = Field(
        default_factory=list, description="Manifest entries that cannot run: the batch reports each as an error."
    )


def effective_policy(policy: Policy | None, roster: Roster) -> Policy:
    """The policy a batch runs with: the given one, with the roster's task budget when the policy sets none."""
    policy = policy or Policy()
    if policy.task_budget_usd is None and roster.task_budget_usd is not None:
        policy = policy.model_copy(update={"task_budget_usd": roster.task_budget_usd})
    return policy


def encode_specs(specs: Iterable[TaskSpec]) -> str:
    """The tasks file: one compact JSON object per spec and line."""
    return "".join(spec.model_dump_json() + "\n" for spec in specs)


def decode_specs(text: str, wanted: Collection[str] | None = None) -> Iterator[TaskSpec]:
    """Specs from a tasks file, in file order; only those whose id is in `wanted` when given."""
    for line in text.splitlines():
        if not line.strip():
            continue
        if wanted is not None:
            task_id = _id_of(line)
            if task_id is not None and task_id not in wanted:
                continue
        spec = TaskSpec.model_validate_json(line)
        if wanted is None or spec.id in wanted:
            yield spec


def _id_of(line: str) -> str | None:
    """The id of a spec line without parsing the whole line (`model_dump_json` writes `id` first)."""
    prefix = '{"id":"'
    if not line.startswith(prefix):
        return None
    end = line.find('"', len(prefix))
    return line[len(prefix) : end] if end > 0 else None


def batch_inputs(
    batch_id: str, source: str, roster: Roster, policy: Policy, tasks_key: str, tasks_text: str,
    rejected: Iterable[RejectedTask] = (),
) -> BatchInputs:  # fmt: skip
    return BatchInputs(
        rejected=list(rejected),
        batch_id=batch_id,
        source=source,
        roster=roster,
        policy=policy,
        tasks=sum(1 for line in tasks_text.splitlines() if line.strip()),
        tasks_key=tasks_key,
        tasks_sha256=hashlib.sha256(tasks_text.encode("utf-8")).hexdigest(),
    )
