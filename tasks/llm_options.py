"""What every LLM stage task shares: its Prefect options (cache, persistence, retries) and its log line."""

from __future__ import annotations

import logging
from typing import Any

from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

from quorum.domain.cost import describe_calls
from quorum.domain.models import LLMCall
from quorum.llm.client import retry_on_infra_error

# LLM stages cache on their inputs and code with persisted results, so re-running a batch after a
# crash or a policy change pays for no call twice.
#
# Retries are not stacked: model errors (429, 5xx, timeouts) are retried inside `quorum.llm.client.complete`,
# which honours Retry-After, bounds each call by a deadline and then tries the stage's fallbacks.
# The task itself is retried once more only when the machinery around the call failed (the Prefect
# API while leasing a provider slot, the network to it, the file system), never on a model error,
# so a stage makes at most 2 × (requests per call) requests instead of 5 × that.
LLM_TASK_OPTIONS: dict[str, Any] = {
    "cache_policy": INPUTS + TASK_SOURCE,
    "persist_result": True,
    "retries": 1,
    "retry_delay_seconds": 5,
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_on_infra_error,
}


def log_stage(stage: str, calls: list[LLMCall], detail: str = "") -> None:
    """The stage's one INFO line in the UI: model, tokens, cost, latency, and what came of it (`detail`).

    A run served from Prefect's cache does not execute its body, so it logs nothing (its calls show in
    the task's artifacts, counted as cached)."""
    try:
        logger: logging.Logger | logging.LoggerAdapter = get_run_logger()
    except MissingContextError:  # the stage function called directly (`.fn`), as the benchmark's baseline does
        logger = logging.getLogger("quorum.stages")
    logger.info(describe_calls(stage, calls, detail))

