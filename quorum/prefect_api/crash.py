"""When a batch's process ends before its report: say so (a `quorum.batch.crashed` event) and say what to do."""

from __future__ import annotations

from typing import Any

from quorum.domain.events import batch_crashed_event, resume_hint
from quorum.prefect_api.events import post_event


def batch_id_of(flow_run: Any) -> str:
    """The crashed run's batch id: its parameter, else the run's name (a nightly run is renamed to its batch id)."""
    params = getattr(flow_run, "parameters", None) or {}
    return str(params.get("batch_id") or getattr(flow_run, "name", "") or "batch")


def on_batch_crashed(flow: Any, flow_run: Any, state: Any) -> None:
    """A Prefect `on_crashed` hook of the batch flows (it runs when the worker stops the run, e.g. SIGTERM;
    a SIGKILLed machine runs nothing, and the resumed batch's own `quorum.batch.completed` closes the story).

    Only the outermost batch run reports, so a nightly run and its batch subflow send one event."""
    from prefect.logging.loggers import flow_run_logger

    if getattr(flow_run, "parent_task_run_id", None) and flow.name == "quorum-batch":
        return  # the nightly run around it reports
    batch_id = batch_id_of(flow_run)
    message = getattr(state, "message", "") or "the run's process ended"
    logger = flow_run_logger(flow_run, flow)
    logger.error("batch %s crashed (%s); %s", batch_id, message, resume_hint(batch_id))
    try:
        post_event(batch_crashed_event(batch_id, message=message, flow_run_id=str(getattr(flow_run, "id", ""))))
        _say_what_to_do(flow_run, message, batch_id)
    except Exception as exc:  # the server may be what went away; the log line above still says what to do
        logger.warning("could not report the crash of batch %s to the server: %s", batch_id, exc)


def _say_what_to_do(flow_run: Any, message: str, batch_id: str) -> None:
    """The run's Crashed state, again, with a message that ends in how to resume the batch."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    if getattr(flow_run, "id", None) is None:
        return
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run.id, Crashed(message=f"{message} — {resume_hint(batch_id)}"), force=True)
