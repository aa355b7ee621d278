"""Fan-out in shards (pure): which tasks each deployment run of a batch gets.

A fanned-out batch sends its tasks to workers in shards: each shard is one run of the shard
deployment, which loads its tasks by id and runs them side by side, so the start-up of a flow-run
process (importing Prefect and litellm, several seconds of CPU) is paid once per shard, not per
task. Every task's result is written to the store as it finishes, so a shard that dies loses only
its unfinished tasks; a resumed batch assigns shards over the tasks still to run.

The size balances two costs: few large shards pay the start-up least, many small ones spread
unevenly slow tasks and lose less when a worker dies. By default each worker gets
`SHARDS_PER_WORKER` shards; a shard never holds more than `MAX_SHARD_TASKS` tasks (its task ids are
a flow-run parameter, and Prefect caps parameters at 512 KB).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, Field

SHARDS_PER_WORKER = 2
MAX_SHARD_TASKS = 250  # 250 ids of at most 80 characters: ~21 KB of parameters


class Shard(BaseModel):
    """One deployment run's share of a batch."""

    index: int = Field(ge=1, description="1-based position among the batch run's shards.")
    count: int = Field(ge=1, description="Shards in this run of the batch.")
    task_ids: list[str] = Field(min_length=1, max_length=MAX_SHARD_TASKS)

    @property
    def label(self) -> str:
        return f"shard {self.index}/{self.count}"


def shard_size(tasks: int, workers: int, *, per_worker: int = SHARDS_PER_WORKER, most: int = MAX_SHARD_TASKS) -> int:
    """Tasks per shard for `tasks` tasks over `workers` workers: `per_worker` shards each, at most `most` tasks."""
    if tasks <= 0:
        return 1
    shards = max(1, workers) * max(1, per_worker)
    return max(1, min(most, math.ceil(tasks / shards)))


def assign_shards(task_ids: Sequence[str], size: int) -> list[Shard]:
    """Consecutive runs of `size` tasks (manifest order kept), the last one shorter; every task in exactly one."""
    if size < 1:
        raise ValueError(f"a shard holds at least one task (got size {size})")
    if size > MAX_SHARD_TASKS:
        raise ValueError(f"a shard holds at most {MAX_SHARD_TASKS} tasks (got size {size})")
    if len(set(task_ids)) != len(task_ids):
        raise ValueError("task ids must be unique")
    chunks = [list(task_ids[start : start + size]) for start in range(0, len(task_ids), size)]
    return [Shard(index=number, count=len(chunks), task_ids=chunk) for number, chunk in enumerate(chunks, start=1)]


def shard_timeout_s(tasks: int, parallel: int, task_timeout_s: float) -> float:
    """How long a shard may take: one task's timeout per wave of `parallel` tasks."""
    return task_timeout_s * math.ceil(max(1, tasks) / max(1, parallel))
