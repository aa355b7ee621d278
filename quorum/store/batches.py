"""A batch's own records in the artifact store: its inputs (passed by reference), its finished results, its report rows.

- **Inputs.** `write_inputs` puts the normalised task specs (`runs/<batch>/_inputs/tasks.jsonl`) and a
  `BatchInputs` record (`batch.json`: roster, policy, where the specs are) in the store; every run of
  the batch reads them by the batch id and loads only the specs it runs (`read_specs`).
- **Finished results.** `finished_results` lists the batch's task folders (one delimited listing:
  `list_objects_v2` pages of 1,000 folders on S3, not every artifact below them) and fetches their
  `result.json` concurrently.
- **Report rows.** `RowSpool` takes rows in any order (as tasks finish), spools them to a temporary
  file and writes them back in manifest order, so the batch never holds its rows in memory.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from quorum.domain.artifacts import (
    batch_inputs_key,
    batch_prefix,
    batch_tasks_key,
    predictions_jsonl,
    predictions_key,
    result_key,
    round_prefix,
    slug,
)
from quorum.domain.batch_inputs import BatchInputs, batch_inputs, decode_specs, encode_specs
from quorum.domain.manifest import RejectedTask, TaskSpec
from quorum.domain.models import ReportRow, TaskResult, TaskStatus
from quorum.domain.policy import Policy
from quorum.domain.report import decode_rows, encode_row
from quorum.domain.roster import Roster
from quorum.store.base import ArtifactNotFound, ArtifactStore


class BatchInputsMissing(LookupError):
    """The batch's inputs are not in the store (it was never started there, or the store is not shared)."""


def write_inputs(
    store: ArtifactStore, batch_id: str, source: str, specs: Iterable[TaskSpec], roster: Roster, policy: Policy,
    rejected: Iterable[RejectedTask] = (),
) -> BatchInputs:  # fmt: skip
    """Write the batch's specs, then its inputs record (which names them): a reader never sees one without the other."""
    text = encode_specs(specs)
    key = batch_tasks_key(batch_id)
    store.put_text(key, text, "application/x-ndjson")
    inputs = batch_inputs(batch_id, source, roster, policy, key, text, rejected)
    store.put_text(batch_inputs_key(batch_id), inputs.model_dump_json(indent=2) + "\n")
    return inputs


def read_inputs(store: ArtifactStore, batch_id: str) -> BatchInputs:
    try:
        return BatchInputs.model_validate_json(store.get_text(batch_inputs_key(batch_id)))
    except ArtifactNotFound as exc:
        raise BatchInputsMissing(
            f"batch {batch_id!r} has no inputs in {store.description} ({batch_inputs_key(batch_id)}): "
            "start it with `quorum batch` or the batch flow, and give every worker the same store"
        ) from exc


def read_specs(store: ArtifactStore, inputs: BatchInputs, task_ids: Collection[str] | None = None) -> list[TaskSpec]:
    """The batch's specs in manifest order (only `task_ids` when given); an id the batch does not have is an error."""
    wanted = set(task_ids) if task_ids is not None else None
    specs = list(decode_specs(store.get_text(inputs.tasks_key), wanted))
    if wanted is not None and len(specs) != len(wanted):
        missing = sorted(wanted - {spec.id for spec in specs})
        raise BatchInputsMissing(f"batch {inputs.batch_id!r} has no task(s) {', '.join(missing[:10])}")
    return specs


def finished_results(
    store: ArtifactStore, batch_id: str, task_ids: Collection[str], *, workers: int = 32
) -> Iterator[TaskResult]:
    """The `result.json` of every task of `task_ids` that has one in this batch's folder.

    One delimited listing of the batch's folder finds the tasks that ever started; only their
    results are fetched (concurrently on S3). Unreadable results (an older, incompatible version)
    are skipped: those tasks run again.
    """
    folder = batch_prefix(batch_id)
    by_folder = {slug(task_id): task_id for task_id in task_ids}
    started = [name for name in store.list_children(folder + "/") if name in by_folder]
    keys = [f"{folder}/{name}/result.json" for name in started]
    for key, data in store.get_many(keys, workers=workers):
        if data is None:
            continue
        try:
            result = TaskResult.model_validate_json(data)
        except (ValidationError, ValueError):
            continue
        if result.task_id in task_ids:
            yield result


class RowSpool:
    """A batch report's rows, taken in any order with their manifest index, given back in manifest order.

    Rows go to an unnamed temporary file as they come (thread-safe); only each row's offset is kept.
    `ordered()` writes them in manifest order to a second temporary file, for one upload.
    """

    def __init__(self, directory: str | None = None) -> None:
        self._directory = directory
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix="quorum-rows-", dir=directory)
        self._where: dict[int, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._where)

    def add(self, index: int, row: ReportRow) -> None:
        data = encode_row(row).encode("utf-8")
        with self._lock:
            if index in self._where:
                raise ValueError(f"row {index} ({row.task_id}) was already added")
            offset = self._file.seek(0, os.SEEK_END)
            self._file.write(data)
            self._where[index] = (offset, len(data))

    def ordered(self) -> Path:
        """A temporary file with every row in manifest order (the caller deletes it)."""
        fd, name = tempfile.mkstemp(prefix="quorum-report-", suffix=".jsonl", dir=self._directory)
        with self._lock, os.fdopen(fd, "wb") as out:
            self._file.flush()
            for index in sorted(self._where):
                offset, size = self._where[index]
                self._file.seek(offset)
                out.write(self._file.read(size))
        return Path(name)

    def close(self) -> None:
        self._file.close()


def write_rows(store: ArtifactStore, key: str, spool: RowSpool) -> str:
    """Upload the spooled rows, in manifest order, as one object."""
    path = spool.ordered()
    try:
        return store.put_file(key, path, "application/x-ndjson")
    finally:
        path.unlink(missing_ok=True)


def read_rows(store: ArtifactStore, key: str) -> Iterator[ReportRow]:
    """A report's rows back from the store, in manifest order."""
    return decode_rows(store.get_text(key).splitlines())


def write_predictions(
    store: ArtifactStore, batch_id: str, specs: Iterable[TaskSpec], rows: Iterable[ReportRow], model: str,
    *, chunk: int = 256, workers: int = 32,
) -> str:
    """`runs/<batch>/predictions.jsonl` (SWE-bench's harness format), one line per spec in manifest order:
    the instance id (the task id for manifest tasks), `model`, and the task's last round's patch ('' when no
    round ran or the patch is missing). Rows are read as they come and the patches of `chunk` tasks at a
    time fetched concurrently, the lines spooled to a temporary file and uploaded as one object."""
    rounds = {row.task_id: row.rounds for row in rows}
    fd, name = tempfile.mkstemp(prefix="quorum-predictions-", suffix=".jsonl")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            batch: list[TaskSpec] = []

            def flush() -> None:
                keys = {spec.id: f"{round_prefix(batch_id, spec.id, rounds[spec.id])}/patch.diff"
                        for spec in batch if rounds.get(spec.id)}  # fmt: skip
                patches = {key: data for key, data in store.get_many(list(keys.values()), workers=workers)}
                lines = []
                for spec in batch:
                    data = patches.get(keys[spec.id]) if spec.id in keys else None
                    patch = data.decode("utf-8", errors="replace") if data else ""
                    lines.append((spec.instance.instance_id if spec.instance else spec.id, model, patch))
                out.write(predictions_jsonl(lines))
                batch.clear()

            for spec in specs:
                batch.append(spec)
                if len(batch) >= chunk:
                    flush()
            flush()
        return store.put_file(predictions_key(batch_id), name)
    finally:
        os.unlink(name)


def save_rejected(store: ArtifactStore, batch_id: str, rejected: Iterable[RejectedTask]) -> list[TaskResult]:
    """Each manifest entry that cannot run, as an `error` result.json with the manifest's reason (never dropped)."""
    results = []
    for entry in rejected:
        key = result_key(batch_id, entry.id)
        result = TaskResult(batch_id=batch_id, task_id=entry.id, repo=entry.repo, status=TaskStatus.error,
                            reason=f"not run: {entry.reason}", artifacts={"result": key})  # fmt: skip
        store.put_text(key, result.model_dump_json(indent=2) + "\n")
        results.append(result)
    return results
