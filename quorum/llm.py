"""Every LLM call goes through here: litellm, per-provider concurrency, cost and audit records.

litellm is imported lazily and once per process: it takes seconds to import and would try to
download its price table without LITELLM_LOCAL_MODEL_COST_MAP.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from quorum.models import LLMCall
from quorum.roster import SCRIPTED_PROVIDER, Roster, RosterError, StageModel

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 300.0
DEFAULT_STRUCTURED_ATTEMPTS = 3
TRUNCATING_FINISH_REASONS = frozenset({"length", "content_filter"})

_litellm_lock = threading.Lock()
_litellm: Any = None


class LLMOutputError(RuntimeError):
    """A reply that cannot be used: truncated, filtered, or not the structure asked for."""


class StructuredOutputError(RuntimeError):
    """Still no usable reply after the bounded number of re-asks; carries the calls that were paid for."""

    def __init__(self, message: str, calls: list[LLMCall]):
        super().__init__(message)
        self.calls = calls


def get_litellm() -> Any:
    """Import and configure litellm once per process, with the scripted provider registered."""
    global _litellm
    if _litellm is None:
        with _litellm_lock:
            if _litellm is None:
                os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
                os.environ.setdefault("LITELLM_TELEMETRY", "False")
                import litellm

                from quorum.scripted import ScriptedLLM

                litellm.suppress_debug_info = True
                litellm.telemetry = False
                litellm.drop_params = True
                providers = [p for p in (litellm.custom_provider_map or []) if p.get("provider") != SCRIPTED_PROVIDER]
                litellm.custom_provider_map = [
                    *providers,
                    {"provider": SCRIPTED_PROVIDER, "custom_handler": ScriptedLLM()},
                ]
                _litellm = litellm
    return _litellm


def check_roster_models(roster: Roster) -> None:
    """Refuse models litellm cannot price, before any call is made."""
    litellm = get_litellm()
    unknown = []
    for stage_model in roster.all_models():
        try:
            litellm.get_model_info(stage_model.pricing_model)
        except Exception:
            unknown.append(stage_model.pricing_model)
    if unknown:
        raise RosterError(
            f"roster {roster.name!r}: unknown model string(s) {', '.join(unknown)} "
            "(not in litellm's price table; check the provider prefix and model name)"
        )


def check_api_keys(roster: Roster) -> None:
    """Name every missing API key for the roster's real providers, before any call is made."""
    litellm = get_litellm()
    missing: dict[str, list[str]] = {}
    for stage_model in roster.all_models():
        if stage_model.is_scripted:
            continue
        env = litellm.validate_environment(stage_model.model)
        if not env.get("keys_in_environment", False):
            missing[stage_model.model] = env.get("missing_keys", []) or ["an API key"]
    if missing:
        parts = [f"{model} needs {' or '.join(keys)}" for model, keys in missing.items()]
        raise RosterError("missing API key: " + "; ".join(parts))


def concurrency_limit_name(provider: str) -> str:
    return f"quorum-llm-{provider}"


@contextlib.contextmanager
def provider_slot(provider: str) -> Iterator[None]:
    """Hold one of the provider's global concurrency slots while a call is in flight.

    Inside a Prefect run the limit must exist (strict=True): the flow creates it from the roster at
    start, and a missing limit is an error rather than a silent no-op. Outside Prefect (unit tests,
    plain scripts) there is no server to hold slots on, so calls are not throttled.
    """
    from prefect.context import FlowRunContext, TaskRunContext

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        yield
        return
    from prefect.concurrency.sync import concurrency

    with concurrency(concurrency_limit_name(provider), occupy=1, strict=True):
        yield


def complete(
    stage: str,
    stage_model: StageModel,
    messages: list[dict[str, str]],
    *,
    script: str | None = None,
    round_no: int = 1,
    attempt: int = 1,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> tuple[str, LLMCall]:
    """One chat completion. Returns the reply text and its call record; raises LLMOutputError on truncation."""
    litellm = get_litellm()
    kwargs: dict[str, Any] = {
        "model": stage_model.model,
        "messages": messages,
        "temperature": stage_model.temperature,
        "max_tokens": stage_model.max_tokens,
        "timeout": timeout_s,
        "num_retries": 0,  # retries belong to the Prefect task, which knows which errors are transient
    }
    if stage_model.is_scripted:
        if not script:
            raise ValueError(f"scripted model {stage_model.model} needs a script file for stage {stage}")
        kwargs["api_base"] = script
        kwargs["metadata"] = {"quorum_stage": stage, "quorum_round": round_no, "quorum_attempt": attempt}

    started = time.time()
    with provider_slot(stage_model.provider):
        response = litellm.completion(**kwargs)
    latency = time.time() - started

    choice = response.choices[0]
    text = choice.message.content or ""
    finish_reason = choice.finish_reason or ""
    usage = getattr(response, "usage", None)
    prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    prompt_cost, completion_cost = litellm.cost_per_token(
        model=stage_model.pricing_model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
    )
    call = LLMCall(
        stage=stage,
        model=stage_model.model,
        provider=stage_model.provider,
        priced_as=stage_model.pricing_model,
        simulated=stage_model.is_scripted,
        attempt=attempt,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=float(prompt_cost + completion_cost),
        latency_s=round(latency, 4),
        started_at=started,
        finish_reason=finish_reason,
        messages=messages,
        response_text=text,
    )
    if finish_reason in TRUNCATING_FINISH_REASONS:
        raise LLMOutputError(f"reply ended with finish_reason={finish_reason!r}") from _CallCarrier(call)
    return text, call


class _CallCarrier(Exception):
    """Carries the paid-for call record of a rejected reply up to ask_structured."""

    def __init__(self, call: LLMCall):
        super().__init__("call record")
        self.call = call


def ask_structured(
    stage: str,
    stage_model: StageModel,
    messages: list[dict[str, str]],
    parse: Callable[[str], T],
    *,
    script: str | None = None,
    round_no: int = 1,
    max_attempts: int = DEFAULT_STRUCTURED_ATTEMPTS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> tuple[T, list[LLMCall]]:
    """Ask for a structured reply; re-ask a bounded number of times, telling the model what was wrong.

    Transport errors (429, 5xx, timeouts) propagate to the Prefect task's retry policy untouched.
    """
    calls: list[LLMCall] = []
    conversation = list(messages)
    problem = ""
    for attempt in range(1, max_attempts + 1):
        try:
            text, call = complete(
                stage, stage_model, conversation, script=script, round_no=round_no, attempt=attempt, timeout_s=timeout_s
            )
        except LLMOutputError as exc:
            carrier = exc.__cause__
            if isinstance(carrier, _CallCarrier):
                calls.append(carrier.call.model_copy(update={"error": str(exc)}))
            problem = str(exc)
            conversation = [*messages, {"role": "user", "content": _reask_message(problem)}]
            continue
        try:
            parsed = parse(text)
        except (ValueError, LLMOutputError) as exc:
            problem = _short(str(exc))
            calls.append(call.model_copy(update={"error": problem}))
            conversation = [
                *messages,
                {"role": "assistant", "content": text},
                {"role": "user", "content": _reask_message(problem)},
            ]
            continue
        calls.append(call)
        return parsed, calls
    raise StructuredOutputError(
        f"{stage} by {stage_model.model}: no usable reply after {max_attempts} attempts (last problem: {problem})",
        calls,
    )


def _reask_message(problem: str) -> str:
    return (
        "Your previous reply could not be used: "
        f"{problem}\nReply again with the complete answer in exactly the requested format."
    )


def _short(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


TRANSIENT_STATUS_CODES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})


def is_transient_error(exc: BaseException) -> bool:
    """429, 5xx, timeouts and connection errors are worth retrying; auth, context length, filters are not."""
    litellm = get_litellm()
    permanent = (
        litellm.AuthenticationError,
        litellm.PermissionDeniedError,
        litellm.ContextWindowExceededError,
        litellm.ContentPolicyViolationError,
        litellm.NotFoundError,
    )
    if isinstance(exc, permanent):
        return False
    transient = (
        litellm.RateLimitError,
        litellm.Timeout,
        litellm.APIConnectionError,
        litellm.InternalServerError,
        litellm.ServiceUnavailableError,
    )
    if isinstance(exc, transient):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and status in TRANSIENT_STATUS_CODES


def retry_on_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry a task only when it failed on a transient LLM error."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception as error:  # the result itself may be unreadable; treat as not transient
            exc = error
    return isinstance(exc, BaseException) and is_transient_error(exc)
