"""Pure rules of one model call: error classification, backoff, Retry-After, redaction (no litellm, no network)."""

from __future__ import annotations

import email.utils
import random

import pytest

from quorum.llm.call_policy import (
    REDACTED,
    ErrorKind,
    RetryPolicy,
    backoff_delay,
    classify_error,
    parse_retry_after,
    redact,
    retry_after_s,
    secret_values,
)


def error(class_name: str, message: str = "", status: int | None = None, bases: tuple[type, ...] = (Exception,)):
    """An exception of a class with this name (what litellm/openai/httpx raise), with a status code."""
    cls = type(class_name, bases, {})
    exc = cls(message)
    if status is not None:
        exc.status_code = status
    return exc


BadRequestError = type("BadRequestError", (Exception,), {})


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (error("RateLimitError", "slow down", 429), ErrorKind.rate_limit),
        (error("InternalServerError", "boom", 500), ErrorKind.server_error),
        (error("ServiceUnavailableError", "overloaded", 503), ErrorKind.server_error),
        (error("Timeout", "Request timed out", 408), ErrorKind.timeout),
        (error("APITimeoutError", "timed out"), ErrorKind.timeout),
        (error("APIConnectionError", "connection refused"), ErrorKind.connection),
        (error("AuthenticationError", "Incorrect API key provided", 401), ErrorKind.auth),
        (error("PermissionDeniedError", "no access", 403), ErrorKind.auth),
        (error("ContextWindowExceededError", "too long", 400, (BadRequestError,)), ErrorKind.context_length),
        (error("ContentPolicyViolationError", "flagged", 400, (BadRequestError,)), ErrorKind.content_filter),
        (error("NotFoundError", "no such model", 404), ErrorKind.not_found),
        (TimeoutError("read timed out"), ErrorKind.timeout),
        (ConnectionResetError("reset by peer"), ErrorKind.connection),
        (ValueError("something else"), ErrorKind.other),
    ],
)
def test_classification_by_class_and_status(exc, kind):
    assert classify_error(exc) is kind


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("This model's maximum context length is 128000 tokens. Please reduce the length of the messages.",
         ErrorKind.context_length),
        ("prompt is too long: 210000 tokens > 200000 maximum", ErrorKind.context_length),
        ("The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
         ErrorKind.context_length),
        ("Your request was rejected as a result of our safety system.", ErrorKind.content_filter),
        ("Output blocked by content filtering policy", ErrorKind.content_filter),
        ("API key not valid. Please pass a valid API key.", ErrorKind.auth),
        ("invalid x-api-key", ErrorKind.auth),
        ("Invalid value for 'temperature'", ErrorKind.bad_request),
    ],
)  # fmt: skip
def test_a_plain_400_is_classified_by_its_message(message, kind):
    assert classify_error(error("BadRequestError", message, 400)) is kind
    assert classify_error(error("APIStatusError", message, 400)) is kind  # not even a BadRequest class


def test_permanent_message_overrules_a_retryable_class_only_when_unambiguous():
    # A gateway's 500 wrapping a content-filter refusal, or a 429 that is an exhausted quota: not retried.
    assert classify_error(error("InternalServerError", "upstream: content management policy", 500)) is ErrorKind.content_filter
    assert classify_error(error("RateLimitError", "You exceeded your current quota, check billing", 429)) is ErrorKind.quota
    assert classify_error(error("SomeGatewayError", "insufficient_quota", 429)) is ErrorKind.quota
    # ... but a 5xx whose body happens to mention an API key stays a (retryable) server error.
    assert classify_error(error("InternalServerError", "upstream said: invalid api key header", 502)) is ErrorKind.server_error


def test_only_transient_kinds_are_retryable():
    assert {k for k in ErrorKind if k.transient} == {
        ErrorKind.rate_limit, ErrorKind.server_error, ErrorKind.timeout, ErrorKind.connection
    }


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after-ms": "1500", "retry-after": "2"}, 1.5),  # the precise one wins
        ({"retry-after": "soon"}, None),
        ({}, None),
        ({"retry-after": "-4"}, 0.0),
    ],
)
def test_parse_retry_after(headers, seconds):
    assert parse_retry_after(headers) == seconds


def test_parse_retry_after_http_date():
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 7, usegmt=True)
    assert parse_retry_after({"retry-after": header}, now=now) == pytest.approx(7.0)


def test_retry_after_is_read_from_the_exception_response_headers():
    exc = error("RateLimitError", "slow down", 429)
    exc.litellm_response_headers = {"retry-after": "4"}
    assert retry_after_s(exc) == 4.0
    exc = error("RateLimitError", "slow down", 429)
    exc.response = type("Response", (), {"headers": {"retry-after-ms": "250"}})()
    assert retry_after_s(exc) == 0.25
    assert retry_after_s(error("RateLimitError", "no advice", 429)) is None


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=5.0, jitter=0.5)
    rng = random.Random(1)
    for number, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)):
        delays = [backoff_delay(policy, number, None, rng) for _ in range(200)]
        assert all(ceiling * 0.5 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > 0.1 * ceiling  # jittered, not a fixed value


def test_backoff_never_wakes_before_retry_after_even_above_the_cap():
    policy = RetryPolicy(base_delay_s=0.1, max_delay_s=1.0, jitter=1.0)
    rng = random.Random(2)
    for retry_after in (0.5, 3.0, 45.0):
        delays = [backoff_delay(policy, 1, retry_after, rng) for _ in range(200)]
        assert min(delays) >= retry_after
        assert max(delays) <= retry_after + min(1.0, retry_after * 0.1)


def test_redact_removes_known_values_and_key_shaped_strings():
    secret = "plain-looking-token-value-42"
    text = f"auth failed for {secret}; also sk-proj-abcdefghijklmnop1234 and AIzaSyA1234567890abcdefghijklmnopqrs"
    redacted = redact(text, [secret])
    assert secret not in redacted
    assert "sk-proj-abcdefghijklmnop1234" not in redacted and "AIzaSy" not in redacted
    assert redacted.count(REDACTED) == 3
    assert redact("short ab", ["ab"]) == "short ab"  # too short to be a secret: left alone


def test_secret_values_come_from_credential_named_variables_and_named_extras():
    environ = {
        "OPENAI_API_KEY": "sk-value-one-123456",
        "MY_PROVIDER_TOKEN": "token-value-2345678",
        "FAKE_LLM_CREDENTIAL": "named-by-the-roster-99",
        "HOME": "/root/some/long/path",
        "SHORT_KEY": "abc",
    }
    found = secret_values(["FAKE_LLM_CREDENTIAL"], environ)
    assert set(found) == {"sk-value-one-123456", "token-value-2345678", "named-by-the-roster-99"}
    assert found == sorted(found, key=len, reverse=True)  # longest first, so no secret is half-replaced
