"""How one LLM call copes with failure, as pure functions: classify an error, wait, give up, redact.

No litellm import here: errors are classified by the names of their classes (litellm's exception
types, which subclass the OpenAI SDK's), their HTTP status and their message, so the rules are
testable with plain exceptions and hold when a provider sends a permanent error as a plain 400.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import re
import time
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field


class ErrorKind(str, Enum):
    rate_limit = "rate_limit"
    server_error = "server_error"
    timeout = "timeout"
    connection = "connection"
    auth = "auth"
    quota = "quota"
    context_length = "context_length"
    content_filter = "content_filter"
    bad_request = "bad_request"
    not_found = "not_found"
    other = "other"

    @property
    def transient(self) -> bool:
        return self in TRANSIENT_KINDS


TRANSIENT_KINDS = frozenset({ErrorKind.rate_limit, ErrorKind.server_error, ErrorKind.timeout, ErrorKind.connection})

# Class names (anywhere in the exception's MRO) -> kind; the first match in this order wins, so the
# specific permanent kinds are recognised before the generic BadRequest/APIError they subclass.
_KIND_BY_CLASS: tuple[tuple[str, ErrorKind], ...] = (
    ("ContextWindowExceededError", ErrorKind.context_length),
    ("ContentPolicyViolationError", ErrorKind.content_filter),
    ("AuthenticationError", ErrorKind.auth),
    ("PermissionDeniedError", ErrorKind.auth),
    ("NotFoundError", ErrorKind.not_found),
    ("RateLimitError", ErrorKind.rate_limit),
    ("Timeout", ErrorKind.timeout),
    ("APITimeoutError", ErrorKind.timeout),
    ("TimeoutException", ErrorKind.timeout),  # httpx
    ("InternalServerError", ErrorKind.server_error),
    ("ServiceUnavailableError", ErrorKind.server_error),
    ("BadGatewayError", ErrorKind.server_error),
    ("APIConnectionError", ErrorKind.connection),
    ("ConnectError", ErrorKind.connection),  # httpx
    ("RemoteProtocolError", ErrorKind.connection),  # httpx
)

# Providers do not agree on status codes for permanent errors (Gemini answers a bad key with 400,
# some gateways wrap everything in 400 or 500), so the message decides as well.
_MESSAGE_PATTERNS: tuple[tuple[ErrorKind, re.Pattern[str]], ...] = (
    (ErrorKind.context_length, re.compile(
        r"context[ _]length|context[ _]window|maximum context|prompt is too long|too many tokens|"
        r"input token count .* exceeds|reduce the length|maximum number of tokens allowed", re.I)),
    (ErrorKind.content_filter, re.compile(
        r"content[ _]policy|content[ _]filter|content management policy|safety system|safety (settings|filters?)|"
        r"flagged by|blocked by .*(filter|polic|safety)|responsible ai|prompt was blocked", re.I)),
    (ErrorKind.quota, re.compile(
        r"insufficient[_ ]quota|exceeded your current quota|billing (hard )?limit|credit balance is too low", re.I)),
    (ErrorKind.auth, re.compile(
        r"(invalid|incorrect|missing|bad|not valid|expired)[^.\n]{0,20}api[ _-]?key|"
        r"api[ _-]?key[^.\n]{0,20}(invalid|not valid|incorrect|missing|expired)|"
        r"unauthori[sz]ed|authentication (failed|error)|permission denied|invalid credentials", re.I)),
)  # fmt: skip
# Kinds a message may impose on an error whose class or status says "retry": a 500 wrapping a
# content-filter refusal, a 429 that is really an exhausted quota (retrying cannot help either).
_RETRYABLE_CLASS_OVERRIDES = frozenset({ErrorKind.context_length, ErrorKind.content_filter, ErrorKind.quota})

_STATUS_KINDS = {401: ErrorKind.auth, 403: ErrorKind.auth, 404: ErrorKind.not_found, 408: ErrorKind.timeout,
                 409: ErrorKind.server_error, 425: ErrorKind.rate_limit, 429: ErrorKind.rate_limit}  # fmt: skip


def _class_names(exc: BaseException) -> list[str]:
    return [cls.__name__ for cls in type(exc).__mro__]


def classify_error(exc: BaseException) -> ErrorKind:
    """What kind of failure an exception from a model call is; only TRANSIENT_KINDS are worth retrying.

    1. A specific permanent class or status (auth, context window, content policy, not found) decides.
    2. Otherwise the message may name a permanent cause: "400 bad request: context length exceeded",
       a gateway's 500 wrapping a content-filter refusal, a 429 that is an exhausted quota. Behind a
       retryable class or status (429, 5xx, timeout, connection) only the unambiguous causes count,
       not a stray "api key" in an upstream traceback.
    3. Otherwise the class or status decides (a plain 400 is a bad request); unknown errors are `other`.
    """
    names = _class_names(exc)
    status = getattr(exc, "status_code", None)
    kind = next((kind for name, kind in _KIND_BY_CLASS if name in names), None)
    if kind is None and isinstance(status, int):
        kind = _STATUS_KINDS.get(status) or (ErrorKind.server_error if status >= 500 else None)
    if kind is None and isinstance(exc, TimeoutError):
        kind = ErrorKind.timeout
    if kind is None and isinstance(exc, ConnectionError):
        kind = ErrorKind.connection
    if kind is not None and not kind.transient:
        return kind
    message = str(exc)
    for candidate, pattern in _MESSAGE_PATTERNS:
        if kind is not None and candidate not in _RETRYABLE_CLASS_OVERRIDES:
            continue
        if pattern.search(message):
            return candidate
    if kind is not None:
        return kind
    if status == 400 or "BadRequestError" in names:
        return ErrorKind.bad_request
    return ErrorKind.other


def _headers_of(exc: BaseException) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for candidate in (
        getattr(exc, "litellm_response_headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
        getattr(exc, "headers", None),
    ):
        if candidate is not None and hasattr(candidate, "get"):
            found.append(candidate)
    return found


def parse_retry_after(headers: Mapping[str, Any], now: float | None = None) -> float | None:
    """Seconds a provider asked us to wait: `retry-after-ms`, else `retry-after` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms") or headers.get("Retry-After-Ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except (TypeError, ValueError):
            pass
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    parsed = email.utils.parsedate_tz(str(value))
    if parsed is None:
        return None
    return max(0.0, email.utils.mktime_tz(parsed) - (time.time() if now is None else now))


def retry_after_s(exc: BaseException) -> float | None:
    """The Retry-After of the response behind an exception (litellm keeps it in litellm_response_headers)."""
    for headers in _headers_of(exc):
        try:
            value = parse_retry_after(headers)
        except Exception:  # a header mapping of an unexpected shape: no advice
            value = None
        if value is not None:
            return value
    return None


class RetryPolicy(BaseModel):
    """Retries of one model call on transient errors, inside one overall deadline."""

    max_attempts: int = Field(default=6, ge=1, description="Requests per model, the first included.")
    base_delay_s: float = Field(default=1.0, ge=0.0, description="Backoff before the first retry; doubles each time.")
    max_delay_s: float = Field(default=30.0, ge=0.0, description="Cap on one backoff (a Retry-After may exceed it).")
    jitter: float = Field(default=0.5, ge=0.0, le=1.0, description="Backoff is drawn from [(1-jitter)·d, d].")
    attempt_timeout_s: float = Field(default=300.0, gt=0, description="One request's timeout (no bytes for this long).")
    deadline_s: float = Field(
        default=600.0, gt=0,
        description="All attempts and backoffs of one model together; time queued for a provider slot is not counted.",
    )  # fmt: skip
    slot_wait_s: float | None = Field(
        default=None, gt=0, description="Most time to queue for a provider slot (none: as long as it takes)."
    )


def backoff_delay(policy: RetryPolicy, retry_number: int, retry_after: float | None, rng: random.Random) -> float:
    """Seconds to wait before retry `retry_number` (1-based): exponential with jitter, never below Retry-After."""
    ceiling = min(policy.max_delay_s, policy.base_delay_s * (2 ** (retry_number - 1)))
    delay = ceiling * (1.0 - policy.jitter * rng.random())
    if retry_after is not None and retry_after > 0:
        # Spread clients told the same Retry-After a little, but never wake before it.
        delay = max(delay, retry_after + min(1.0, retry_after * 0.1) * rng.random())
    return delay


# ----- secrets ----------------------------------------------------------------------------------

SECRET_ENV_NAME = re.compile(r"(API_KEY|_KEY|TOKEN|SECRET|PASSWORD|CREDENTIALS?)$", re.I)
_KEY_LIKE = re.compile(r"\b(sk|pk|rk|ak)-[A-Za-z0-9_\-]{12,}|\bAIza[0-9A-Za-z_\-]{20,}")
MIN_SECRET_LENGTH = 8
REDACTED = "[REDACTED]"


_secret_env_names: set[str] = set()


def register_secret_env(names: Iterable[str]) -> None:
    """Remember variables that hold keys whatever their names (a roster's api_key_env), for every redaction."""
    _secret_env_names.update(name for name in names if name)


def secret_values(extra_env_names: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables that hold credentials (by name, or registered), longest first."""
    environ = os.environ if environ is None else environ
    names = {name for name in environ if SECRET_ENV_NAME.search(name)} | _secret_env_names | set(extra_env_names)
    values = {environ[name] for name in names if len(environ.get(name, "")) >= MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove known secret values and anything shaped like an API key from text bound for logs or records."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, REDACTED)
    return _KEY_LIKE.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs secrets from a record (message, arguments and traceback) in place.

    Attached to litellm's loggers: at DEBUG litellm logs raw provider responses, and a provider may
    echo the key it was sent. Secrets are read from the environment when a record passes, so keys
    set after start-up are covered; with litellm at WARNING (the default here) this rarely runs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = secret_values()
        message = record.getMessage()
        cleaned = redact(message, secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, redact(text, secrets)
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        return True


def short(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + "…"

