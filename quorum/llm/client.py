"""Every LLM call goes through here: litellm, retries, fallbacks, provider limits, cost and audit records.

litellm is imported lazily and once per process: it takes seconds to import and would try to
download its price table without LITELLM_LOCAL_MODEL_COST_MAP.

One `complete()` call:
1. tries the stage's model, then each of its fallbacks (only after transient failures);
2. for each model, retries transient errors (429, 5xx, timeouts, connection errors) with
   exponential backoff and jitter, never sooner than the provider's Retry-After, within an overall
   deadline; permanent errors (auth, context length, content filter, bad request) fail at once,
   even when the provider sends them as a plain 400;
3. holds one of the provider's slots (and its rate-limit tokens) for each request, never while
   backing off;
4. returns the reply with an `LLMCall` record of tokens (prompt-cache reads and writes included), cost,
   retries, errors and fallback use.
Every error text leaving this module is redacted: API keys never reach logs, records or exceptions.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from quorum.domain.tokens import CHARS_PER_TOKEN
from quorum.settings import settings
from quorum.llm.pricing import cache_tokens, litellm_price
from quorum.llm.prompt_cache import marks_prefix, provider_messages
from quorum.llm.call_policy import (
    ErrorKind,
    RedactingFilter,
    RetryPolicy,
    backoff_delay,
    classify_error,
    redact,
    register_secret_env,
    retry_after_s,
    secret_values,
    short,
)
from quorum.domain.models import LLMCall
from quorum.domain.schemas import json_schema
from quorum.prefect_api.provider_slots import provider_slot
from quorum.domain.roster import GOLD_PROVIDER, SCRIPT_DRIVEN, SCRIPTED_PROVIDER, Roster, RosterError, StageModel

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "LLMCallError",
    "LLMError",
    "LLMOutputError",
    "ReaskError",
    "RetryPolicy",
    "StructuredOutputError",
    "ask_structured",
    "check_api_keys",
    "check_roster",
    "check_roster_models",
    "complete",
    "get_litellm",
    "is_transient_error",
    "retry_on_infra_error",
]

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 300.0
DEFAULT_STRUCTURED_ATTEMPTS = 3
MAX_REASK_CHARS = 6000
DEFAULT_RETRY_POLICY = RetryPolicy(attempt_timeout_s=DEFAULT_TIMEOUT_S)
PROMPT_HEADROOM_TOKENS = 4_000  # a stage's prompt besides its repository context: instructions, task, plan, patch
TRUNCATING_FINISH_REASONS = frozenset({"length", "content_filter"})
JSON_OBJECT_ONLY = frozenset({"deepseek"})  # JSON mode without a schema
LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm")

logger = logging.getLogger("quorum.llm.client")
_litellm_lock = threading.Lock()
_litellm: Any = None
_jitter = random.Random()


class LLMError(RuntimeError):
    """Base of the errors a model call raises; `calls` are the records of requests made (paid or not)."""

    calls: list[LLMCall]

    def __init__(self, message: str, calls: list[LLMCall] | None = None):
        super().__init__(message)
        self.calls = list(calls or [])


class LLMOutputError(LLMError):
    """A reply that cannot be used: truncated, filtered, or not the structure asked for."""

    @property
    def call(self) -> LLMCall | None:
        return self.calls[-1] if self.calls else None


class StructuredOutputError(LLMError):
    """Still no usable reply after the bounded number of re-asks; carries the calls that were paid for."""


class ReaskError(ValueError):
    """A reply the stage's parser refuses with its own words for the model (`ask_structured` re-asks with `reask`).

    `str(exc)` is the short problem recorded on the call; `reask` is the whole message the model gets,
    e.g. the edit applier's reasons naming each file and hunk it could not place.
    """

    def __init__(self, problem: str, reask: str):
        super().__init__(problem)
        self.reask = reask


class LLMCallError(LLMError):
    """No reply: a permanent error, or transient errors until retries, deadline and fallbacks ran out."""

    def __init__(self, message: str, kind: ErrorKind, model: str, calls: list[LLMCall] | None = None):
        super().__init__(message, calls)
        self.kind = kind
        self.model = model

    @property
    def transient(self) -> bool:
        return self.kind.transient


def get_litellm() -> Any:
    """Import and configure litellm once per process, with the scripted provider registered."""
    global _litellm
    if _litellm is None:
        with _litellm_lock:
            if _litellm is None:
                os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
                os.environ.setdefault("LITELLM_TELEMETRY", "False")
                import litellm

                from quorum.llm.gold import GoldLLM
                from quorum.llm.scripted import ScriptedLLM

                litellm.suppress_debug_info = True
                litellm.telemetry = False
                # Parameters a model does not take are dropped per request ("drop_params" in each call), not
                # globally: with the global off, litellm still says which settings a model refuses when asked
                # (the roster check, `_refused_settings`).
                litellm.drop_params = False
                litellm.set_verbose = False
                # litellm's debug logging prints request details and raw provider replies (which may
                # echo the key): off unless asked for, and scrubbed of secrets either way.
                for name in LITELLM_LOGGERS:
                    litellm_logger = logging.getLogger(name)
                    if not settings().litellm_debug:
                        litellm_logger.setLevel(logging.WARNING)
                    if not any(isinstance(f, RedactingFilter) for f in litellm_logger.filters):
                        litellm_logger.addFilter(RedactingFilter())
                providers = [p for p in (litellm.custom_provider_map or []) if p.get("provider") not in SCRIPT_DRIVEN]
                litellm.custom_provider_map = [
                    *providers,
                    {"provider": SCRIPTED_PROVIDER, "custom_handler": ScriptedLLM()},
                    {"provider": GOLD_PROVIDER, "custom_handler": GoldLLM()},
                ]
                _litellm = litellm
    return _litellm


def check_roster_models(roster: Roster) -> None:
    """Refuse models litellm cannot price, and context budgets a model's input window cannot hold, before any call."""
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
    too_big = []
    for stage, primary in roster.stage_models():
        budget = primary.context_budget(stage)
        for stage_model in primary.chain():  # a fallback is sent the same prompt
            info = litellm.get_model_info(stage_model.pricing_model)
            window = info.get("max_input_tokens") or info.get("max_tokens")
            if window and budget + PROMPT_HEADROOM_TOKENS > window:
                too_big.append(
                    f"{stage} {stage_model.model}: context_tokens {budget} + {PROMPT_HEADROOM_TOKENS} for the rest of "
                    f"the prompt exceeds its input window of {window} tokens"
                )
    if too_big:
        raise RosterError(f"roster {roster.name!r}: " + "; ".join(too_big))
    refused = [problem for model in roster.all_models() if (problem := _refused_settings(litellm, model))]
    if refused:
        raise RosterError(f"roster {roster.name!r}: " + "; ".join(refused))


def _refused_settings(litellm: Any, model: StageModel) -> str:
    """Why the provider would refuse this model's sampling settings (litellm's own checks), or ''.

    Some reasoning models accept only their default temperature (OpenAI's gpt-5 and o-series: 1); litellm
    knows which and says so when not told to drop the parameter. Caught here, when the roster is loaded,
    not mid-batch. Scripted models send nothing to a provider: their settings are not checked.
    """
    if model.is_scripted:
        return ""
    params = model.reasoning_params()
    if params and not litellm.supports_reasoning(model=model.model):
        return f"{model.model} does not support reasoning settings (litellm's model table); drop {', '.join(params)}"
    provider, _, name = model.model.partition("/")
    try:
        litellm.get_optional_params(model=name, custom_llm_provider=provider, temperature=model.temperature,
                                    max_tokens=model.max_tokens, drop_params=False, **params)  # fmt: skip
    except litellm.UnsupportedParamsError as exc:
        reason = short(str(exc).removeprefix("litellm.UnsupportedParamsError: "), 200)
        return f"{model.model} refuses temperature {model.temperature:g}{' with ' + ', '.join(params) if params else ''}: {reason}"
    except Exception:  # noqa: BLE001  (litellm could not map this provider's parameters: nothing it can tell)
        return ""
    return ""


def check_roster(roster: Roster) -> None:
    """Everything a roster must pass before any call: models litellm can price, and every API key present."""
    check_roster_models(roster)
    check_api_keys(roster)


def check_api_keys(roster: Roster) -> None:
    """Name every missing API key for the roster's real models (fallbacks included), before any call is made."""
    litellm = get_litellm()
    missing: dict[str, list[str]] = {}
    for stage_model in roster.all_models():
        if stage_model.is_scripted:
            continue
        if stage_model.api_key_env:
            if not os.environ.get(stage_model.api_key_env):
                missing[stage_model.model] = [stage_model.api_key_env]
            continue
        env = litellm.validate_environment(stage_model.model)
        if not env.get("keys_in_environment", False):
            missing[stage_model.model] = env.get("missing_keys", []) or ["an API key"]
    if missing:
        parts = [f"{model} needs {' or '.join(keys)}" for model, keys in missing.items()]
        raise RosterError("missing API key: " + "; ".join(parts))


def _known_secrets(stage_model: StageModel) -> list[str]:
    names = [m.api_key_env for m in stage_model.chain() if m.api_key_env]
    register_secret_env(names)  # litellm's log records are scrubbed of them too (RedactingFilter)
    return secret_values(names)


def _estimated_tokens(messages: list[dict[str, str]], max_tokens: int) -> int:
    characters = sum(len(str(message.get("content", ""))) for message in messages)
    return characters // CHARS_PER_TOKEN + 1 + max_tokens


@dataclass
class _Reply:
    response: Any
    latency_s: float


@dataclass
class _Trail:
    """What happened before the reply: failed requests and time not spent on it."""

    stage: str = ""
    errors: list[str] = field(default_factory=list)
    wait_s: float = 0.0
    last_kind: ErrorKind = ErrorKind.other

    def note(self, model: StageModel, line: str) -> None:
        """Record a failed request (already redacted) and log it where the run's logs go."""
        self.errors.append(line)
        _run_logger().warning("%s · %s %s", self.stage, model.model, line.removeprefix(f"{model.model} "))


def _run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a run (shown in the UI), this module's logger outside."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logger


class _GaveUp(Exception):
    """A model ran out of attempts or time on transient errors; the next fallback may try."""

    def __init__(self, kind: ErrorKind, reason: str):
        super().__init__(reason)
        self.kind = kind


def _request_kwargs(
    stage: str, model: StageModel, messages: list[dict[str, str]], script: str | None, round_no: int, attempt: int
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": model.model,
        "messages": provider_messages(messages, mark=not model.is_scripted and marks_prefix(stage, model.model)),
        "temperature": model.temperature,
        "max_tokens": model.max_tokens,
        "drop_params": True,  # parameters a provider does not take are left out (the roster check refused the harmful ones)
        "num_retries": 0,  # retries happen here, where Retry-After and the deadline are known
        "max_retries": 0,  # and not again inside the provider SDK
    }
    if model.is_scripted:
        if not script:
            raise ValueError(f"scripted model {model.model} needs a script file for stage {stage}")
        kwargs["api_base"] = script
        kwargs["metadata"] = {"quorum_stage": stage, "quorum_round": round_no, "quorum_attempt": attempt}
        return kwargs
    kwargs.update(model.reasoning_params())
    if model.api_base:
        kwargs["api_base"] = model.api_base
    if model.api_key_env:
        key = os.environ.get(model.api_key_env)
        if not key:
            raise LLMCallError(
                f"{model.model}: environment variable {model.api_key_env} (its API key) is not set",
                ErrorKind.auth,
                model.model,
            )
        kwargs["api_key"] = key
    return kwargs


def _call_with_retries(
    litellm: Any, model: StageModel, kwargs: dict[str, Any], policy: RetryPolicy, trail: _Trail,
    secrets: list[str], label: str,
) -> _Reply:  # fmt: skip
    """Requests to one model until a reply, a permanent error (LLMCallError) or giving up (_GaveUp).

    Errors while queueing for a provider slot (the Prefect API) are not the model's: they propagate.
    """
    spent = 0.0  # attempts and backoff; queueing for a provider slot does not count against the deadline
    tokens = _estimated_tokens(kwargs["messages"], model.max_tokens)
    for number in range(1, policy.max_attempts + 1):
        remaining = policy.deadline_s - spent
        if remaining <= 0:
            raise _GaveUp(trail.last_kind, f"deadline of {policy.deadline_s:g}s passed after {number - 1} request(s)")
        queued_at = time.monotonic()
        failure: Exception | None = None
        with provider_slot(model.provider, tokens=tokens, wait_s=policy.slot_wait_s):
            started = time.monotonic()
            trail.wait_s += started - queued_at
            try:
                response = litellm.completion(**kwargs, timeout=min(policy.attempt_timeout_s, remaining))
            except Exception as exc:  # every failure of the request itself; classified below
                failure = exc
            elapsed = time.monotonic() - started
        if failure is None:
            return _Reply(response, elapsed)
        spent += elapsed
        trail.wait_s += elapsed
        kind = classify_error(failure)
        if model.is_scripted and kind.transient:  # a script either has the reply or never will
            kind = ErrorKind.bad_request
        trail.last_kind = kind
        status = getattr(failure, "status_code", None)
        detail = short(redact(str(failure), secrets), 300).replace("\n", " ")
        line = f"{label}request {number}: {kind.value}{f' ({status})' if status else ''} after {elapsed:.2f}s: {detail}"
        if not kind.transient:
            trail.note(model, line)
            raise LLMCallError(f"{model.model}: {kind.value} error (not retried): {detail}", kind, model.model)
        advised = retry_after_s(failure)
        delay = backoff_delay(policy, number, advised, _jitter)
        advice = f", retry-after {advised:g}s" if advised is not None else ""
        if number == policy.max_attempts:
            trail.note(model, line + advice)
            raise _GaveUp(kind, f"{number} requests failed")
        if spent + delay >= policy.deadline_s:
            trail.note(model, line + advice)
            raise _GaveUp(kind, f"the deadline of {policy.deadline_s:g}s would pass before request {number + 1}")
        trail.note(model, f"{line}{advice}; waiting {delay:.2f}s")
        time.sleep(delay)
        spent += delay
        trail.wait_s += delay
    raise AssertionError("unreachable")  # pragma: no cover


def _record(
    stage: str, model: StageModel, primary: StageModel, messages: list[dict[str, str]], attempt: int,
    started_at: float, trail: _Trail,
) -> LLMCall:  # fmt: skip
    return LLMCall(
        stage=stage,
        model=model.model,
        provider=model.provider,
        priced_as=model.pricing_model,
        simulated=model.is_scripted,
        attempt=attempt,
        started_at=started_at,
        messages=messages,
        retries=len(trail.errors),
        attempt_errors=list(trail.errors),
        fallback_from=primary.model if model is not primary else "",
        wait_s=round(trail.wait_s, 4),
    )


def complete(
    stage: str,
    stage_model: StageModel,
    messages: list[dict[str, str]],
    *,
    script: str | None = None,
    round_no: int = 1,
    attempt: int = 1,
    timeout_s: float | None = None,
    policy: RetryPolicy | None = None,
    schema: type[BaseModel] | None = None,
) -> tuple[str, LLMCall]:
    """One chat completion, with retries and fallbacks. Returns the reply text and its call record.

    With `schema`, a model that supports structured outputs natively (per litellm, unless its roster entry
    says otherwise) is sent it as `response_format`; the others are asked by the prompt alone. The call
    record says which (`structured_output`).

    Raises LLMOutputError (carrying the paid call) on a truncated or filtered reply, and LLMCallError
    (carrying a record per model tried) when no reply came back.
    `timeout_s` overrides the policy's per-request timeout.
    """
    litellm = get_litellm()
    policy = policy or DEFAULT_RETRY_POLICY
    if timeout_s is not None:
        policy = policy.model_copy(update={"attempt_timeout_s": timeout_s})
    secrets = _known_secrets(stage_model)
    started_at = time.time()
    trail = _Trail(stage=stage)
    failed: list[LLMCall] = []
    chain = stage_model.chain()
    for candidate in chain:
        label = f"{candidate.model} " if len(chain) > 1 else ""
        errors_before = len(trail.errors)
        try:
            kwargs = _request_kwargs(stage, candidate, messages, script, round_no, attempt)
            mode = structured_mode(litellm, candidate, schema)
            if mode == "native" and schema is not None:
                kwargs["response_format"] = response_format(candidate, schema)
            reply = _call_with_retries(litellm, candidate, kwargs, policy, trail, secrets, label)
        except LLMCallError as exc:
            exc.calls = [*failed, _failed_record(stage, candidate, stage_model, messages, attempt, started_at, trail,
                                                 exc.kind, str(exc), errors_before)]  # fmt: skip
            raise
        except _GaveUp as gave_up:
            reason = f"{candidate.model}: gave up on {gave_up.kind.value} errors ({gave_up})"
            failed.append(_failed_record(stage, candidate, stage_model, messages, attempt, started_at, trail,
                                         gave_up.kind, reason, errors_before))  # fmt: skip
            continue
        return _finish(litellm, stage, candidate, stage_model, messages, attempt, started_at, trail, reply, mode)
    tried = ", ".join(m.model for m in chain)
    raise LLMCallError(
        f"{stage}: no reply from {tried} ({trail.last_kind.value}; {len(trail.errors)} failed requests)",
        trail.last_kind,
        stage_model.model,
        failed,
    )


def _failed_record(
    stage: str, model: StageModel, primary: StageModel, messages: list[dict[str, str]], attempt: int,
    started_at: float, trail: _Trail, kind: ErrorKind, reason: str, errors_before: int,
) -> LLMCall:  # fmt: skip
    record = _record(stage, model, primary, messages, attempt, started_at, trail)
    mine = trail.errors[errors_before:]
    return record.model_copy(update={"error": reason, "error_kind": kind.value, "attempt_errors": mine,
                                     "retries": len(mine)})  # fmt: skip


def _finish(
    litellm: Any, stage: str, model: StageModel, primary: StageModel, messages: list[dict[str, str]], attempt: int,
    started_at: float, trail: _Trail, reply: _Reply, structured: str = "",
) -> tuple[str, LLMCall]:  # fmt: skip
    choice = reply.response.choices[0]
    text = choice.message.content or ""
    finish_reason = choice.finish_reason or ""
    usage = getattr(reply.response, "usage", None)
    prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    cached = cache_tokens(usage)
    call = _record(stage, model, primary, messages, attempt, started_at, trail).model_copy(
        update={
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cached_tokens": cached.read,
            "cache_write_tokens": cached.write,
            "structured_output": structured,
            "cost_usd": litellm_price(model.pricing_model, prompt_tokens, completion_tokens, cached.read, cached.write),
            "latency_s": round(reply.latency_s, 4),
            "finish_reason": finish_reason,
            "response_text": text,
        }
    )
    if finish_reason in TRUNCATING_FINISH_REASONS:
        problem = f"reply ended with finish_reason={finish_reason!r}"
        kind = "content_filter" if finish_reason == "content_filter" else "truncated"
        raise LLMOutputError(problem, [call.model_copy(update={"error": problem, "error_kind": kind})])
    return text, call


def ask_structured(
    stage: str,
    stage_model: StageModel,
    messages: list[dict[str, str]],
    parse: Callable[[str], T],
    *,
    script: str | None = None,
    round_no: int = 1,
    max_attempts: int = DEFAULT_STRUCTURED_ATTEMPTS,
    timeout_s: float | None = None,
    policy: RetryPolicy | None = None,
    schema: type[BaseModel] | None = None,
) -> tuple[T, list[LLMCall]]:
    """Ask for a structured reply; re-ask a bounded number of times, telling the model what was wrong.

    `parse` raising ValueError (or LLMOutputError) means "not usable": the model is asked again with
    the problem, or with the message of a `ReaskError` as it is (capped at MAX_REASK_CHARS).

    `schema`: the pydantic model the reply must match; models that support it natively get it as
    `response_format` (see `complete`), which removes most malformed replies at the source. `parse`
    still checks every reply, and re-asks still follow what it refuses.

    Transport errors are retried inside `complete`; when it gives up, LLMCallError propagates with
    every call made so far (re-asks included) in `calls`.
    """
    calls: list[LLMCall] = []
    conversation = list(messages)
    problem = ""
    for attempt in range(1, max_attempts + 1):
        try:
            text, call = complete(
                stage, stage_model, conversation, script=script, round_no=round_no, attempt=attempt,
                timeout_s=timeout_s, policy=policy, schema=schema,
            )  # fmt: skip
        except LLMOutputError as exc:
            calls.extend(exc.calls)
            problem = str(exc)
            conversation = [*messages, {"role": "user", "content": _reask_message(problem)}]
            continue
        except LLMCallError as exc:
            exc.calls = [*calls, *exc.calls]
            raise
        try:
            parsed = parse(text)
        except (ValueError, LLMOutputError) as exc:
            problem = short(str(exc))
            calls.append(call.model_copy(update={"error": problem, "error_kind": "invalid_output"}))
            reask = short(exc.reask, MAX_REASK_CHARS) if isinstance(exc, ReaskError) else _reask_message(problem)
            conversation = [
                *messages,
                {"role": "assistant", "content": text},
                {"role": "user", "content": reask},
            ]
            continue
        calls.append(call)
        return parsed, calls
    raise StructuredOutputError(
        f"{stage} by {stage_model.model}: no usable reply after {max_attempts} attempts (last problem: {problem})",
        calls,
    )


def structured_mode(litellm: Any, model: StageModel, schema: type[BaseModel] | None) -> str:
    """"native" when `model` is sent `schema` as response_format, "prompt" when the prompt alone asks for it,
    "" without a schema. The roster's `structured_output` decides; "auto" asks litellm's model table."""
    if schema is None:
        return ""
    if model.is_scripted or model.structured_output == "prompt":
        return "prompt"
    if model.structured_output == "native":
        return "native"
    try:
        return "native" if litellm.supports_response_schema(model=model.pricing_model) else "prompt"
    except Exception:  # noqa: BLE001  (a model litellm does not know: the prompt asks for the structure)
        return "prompt"


def response_format(model: StageModel, schema: type[BaseModel]) -> dict[str, Any]:
    """The `response_format` litellm turns into each provider's structured-output request.

    Not `strict`: OpenAI's strict mode needs every property required, and our models have defaults.
    DeepSeek's JSON mode takes no schema: it is asked for a JSON object (the prompt carries the schema).
    """
    if model.provider in JSON_OBJECT_ONLY:
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": schema.__name__, "schema": json_schema(schema),
                                                   "strict": False}}  # fmt: skip


def _reask_message(problem: str) -> str:
    return (
        "Your previous reply could not be used: "
        f"{problem}\nReply again with the complete answer in exactly the requested format."
    )


def is_transient_error(exc: BaseException) -> bool:
    """429, 5xx, timeouts and connection errors are worth retrying; auth, context length, filters are not."""
    if isinstance(exc, LLMCallError):
        return exc.transient
    return classify_error(exc).transient


INFRA_ERROR_MODULES = ("httpx", "httpcore", "prefect", "sqlalchemy", "anyio")


def retry_on_infra_error(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn` for LLM stages: retry the task only on infrastructure errors.

    Model errors are never retried here: `complete` already retried transient ones (honouring
    Retry-After, within a deadline, then fallbacks), so a task-level retry would multiply them.
    What is left worth one more task attempt is the machinery around the call: the Prefect API
    (slot leases, results), the network to it, the file system.
    """
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception as error:  # the result itself may be unreadable; that is not worth a retry
            exc = error
    if not isinstance(exc, BaseException) or isinstance(exc, LLMError | ValueError | TypeError | KeyError):
        return False
    module = type(exc).__module__ or ""
    if isinstance(exc, OSError | TimeoutError):  # ConnectionError is an OSError
        return True
    return module.startswith(INFRA_ERROR_MODULES) and "Missing" not in type(exc).__name__
