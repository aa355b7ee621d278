"""The three HTTP APIs the fake provider speaks, as pure functions from and to JSON.

- OpenAI chat completions (`.../chat/completions`): litellm's `openai/...` and `deepseek/...` models.
- Anthropic messages (`.../v1/messages`): litellm's `anthropic/...` models.
- Gemini generateContent (`.../models/<model>:generateContent`): litellm's `gemini/...` models.

Errors use each provider's own body format and usual wording, so litellm maps them as it would map
the real provider's (and so quorum's classification is tested against realistic messages).
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.support.fake_provider.behaviour import Outcome, ProviderRequest
from tests.support.fake_provider.config import ErrorMode, Fault

OPENAI, ANTHROPIC, GEMINI = "openai", "anthropic", "gemini"


@dataclass(frozen=True)
class WireResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def api_for_path(path: str) -> str | None:
    """Which API a POST path belongs to (any prefix before the API's own path is accepted)."""
    path = path.split("?", 1)[0].rstrip("/")
    if path.endswith("/chat/completions"):
        return OPENAI
    if path.endswith("/messages"):
        return ANTHROPIC
    if path.endswith(":generateContent"):
        return GEMINI
    return None


def _text_of(content: Any) -> str:
    """Text of a message content: a string, or a list of parts/blocks with 'text'."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text_of(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def parse_request(api: str, path: str, headers: dict[str, str], body: dict[str, Any]) -> ProviderRequest:
    """Raises ValueError for a body the API would refuse."""
    if api == OPENAI:
        points = ()
        model = body.get("model")
        prompt = "\n".join(_text_of(m.get("content")) for m in body.get("messages", []) if isinstance(m, dict))
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 0
        key = headers.get("authorization", "").removeprefix("Bearer ").strip() or headers.get("api-key", "")
    elif api == ANTHROPIC:
        model = body.get("model")
        prompt, points = _anthropic_prompt(body)
        max_tokens = body.get("max_tokens") or 0
        key = headers.get("x-api-key", "")
    elif api == GEMINI:
        points = ()
        model = path.split("?", 1)[0].rsplit("/models/", 1)[-1].removesuffix(":generateContent")
        parts = [_text_of((body.get("system_instruction") or {}).get("parts", []))]
        parts += [_text_of(c.get("parts", [])) for c in body.get("contents", []) if isinstance(c, dict)]
        prompt = "\n".join(p for p in parts if p)
        max_tokens = (body.get("generationConfig") or {}).get("max_output_tokens") or 0
        key = headers.get("x-goog-api-key", "")
    else:
        raise ValueError(f"unknown API {api!r}")
    if not isinstance(model, str) or not model:
        raise ValueError("request names no model")
    return ProviderRequest(api=api, model=model, prompt=prompt, max_tokens=int(max_tokens), api_key=key,
                           cache_points=points,
                           response_format=structured_request(api, body))  # fmt: skip


def structured_request(api: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """The structured output a request asks for in its API's terms, or None for free text."""
    if api == OPENAI:
        wanted = body.get("response_format")
        return wanted if isinstance(wanted, dict) and wanted.get("type") in ("json_schema", "json_object") else None
    if api == ANTHROPIC:
        wanted = body.get("output_format")
        return wanted if isinstance(wanted, dict) else None
    config = body.get("generationConfig") or {}
    if (config.get("response_mime_type") or config.get("responseMimeType")) == "application/json":
        schema = config.get("response_json_schema") or config.get("response_schema") or config.get("responseSchema")
        return {"type": "json_schema", "schema": schema} if schema else {"type": "json_object"}
    return None


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    return [part for part in content or [] if isinstance(part, dict)]


def _anthropic_prompt(body: dict[str, Any]) -> tuple[str, tuple[int, ...]]:
    """The text of system and messages in order, and the characters up to each `cache_control` breakpoint."""
    blocks = _blocks(body.get("system") or [])
    for message in body.get("messages", []):
        if isinstance(message, dict):
            blocks += _blocks(message.get("content"))
    texts: list[str] = []
    points: list[int] = []
    length = -1  # no separator before the first text
    for block in blocks:
        text = _text_of(block.get("text", ""))
        if text:
            texts.append(text)
            length += 1 + len(text)
        if block.get("cache_control") and texts:
            points.append(length)
    return "\n".join(texts), tuple(points)


def success(request: ProviderRequest, outcome: Outcome) -> WireResponse:
    total = outcome.prompt_tokens + outcome.completion_tokens
    if request.api == ANTHROPIC:
        return WireResponse(200, {
            "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": request.model,
            "content": [{"type": "text", "text": outcome.text}],
            "stop_reason": "max_tokens" if outcome.finish_reason == "length" else "end_turn",
            "stop_sequence": None,
            "usage": _anthropic_usage(outcome),
        })  # fmt: skip
    if request.api == GEMINI:
        return WireResponse(200, {
            "candidates": [{
                "content": {"role": "model", "parts": [{"text": outcome.text}]},
                "finishReason": "MAX_TOKENS" if outcome.finish_reason == "length" else "STOP",
                "index": 0,
            }],
            "usageMetadata": {"promptTokenCount": outcome.prompt_tokens,
                              "candidatesTokenCount": outcome.completion_tokens, "totalTokenCount": total,
                              **({"cachedContentTokenCount": outcome.cached_tokens} if outcome.cached_tokens else {})},
            "modelVersion": request.model,
        })  # fmt: skip
    return WireResponse(200, {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
        "model": request.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": outcome.text},
                     "finish_reason": outcome.finish_reason}],
        "usage": {"prompt_tokens": outcome.prompt_tokens, "completion_tokens": outcome.completion_tokens,
                  "total_tokens": total, **_openai_cache_usage(request, outcome)},
    })  # fmt: skip


def _anthropic_usage(outcome: Outcome) -> dict[str, int]:
    """Anthropic counts cache reads and writes apart from `input_tokens` (the uncached rest)."""
    if not outcome.reports_cache:
        return {"input_tokens": outcome.prompt_tokens, "output_tokens": outcome.completion_tokens}
    fresh = outcome.prompt_tokens - outcome.cached_tokens - outcome.cache_write_tokens
    return {"input_tokens": fresh, "output_tokens": outcome.completion_tokens,
            "cache_creation_input_tokens": outcome.cache_write_tokens, "cache_read_input_tokens": outcome.cached_tokens}


def _openai_cache_usage(request: ProviderRequest, outcome: Outcome) -> dict[str, Any]:
    """OpenAI: prompt_tokens_details.cached_tokens; DeepSeek: prompt_cache_hit_tokens / prompt_cache_miss_tokens."""
    if not outcome.reports_cache:
        return {}
    if request.model.startswith("deepseek"):
        return {"prompt_cache_hit_tokens": outcome.cached_tokens,
                "prompt_cache_miss_tokens": outcome.prompt_tokens - outcome.cached_tokens}
    return {"prompt_tokens_details": {"cached_tokens": outcome.cached_tokens}}


# Default error messages, in each provider's usual wording.
_DEFAULT_MESSAGES: dict[tuple[str, Fault], str] = {
    (OPENAI, Fault.auth): "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
    (ANTHROPIC, Fault.auth): "invalid x-api-key",
    (GEMINI, Fault.auth): "API key not valid. Please pass a valid API key.",
    (OPENAI, Fault.context_length): "This model's maximum context length is 128000 tokens. However, your messages "
    "resulted in 131072 tokens. Please reduce the length of the messages.",
    (ANTHROPIC, Fault.context_length): "prompt is too long: 210000 tokens > 200000 maximum",
    (GEMINI, Fault.context_length): "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
    (OPENAI, Fault.content_filter): "Your request was rejected as a result of our safety system. Your prompt may "
    "contain text that is not allowed by our safety system.",
    (ANTHROPIC, Fault.content_filter): "Output blocked by content filtering policy",
    (GEMINI, Fault.content_filter): "The request was blocked because the prompt was flagged by the safety filters.",
    (OPENAI, Fault.rate_limit): "Rate limit reached for requests. Please try again in {retry}s.",
    (ANTHROPIC, Fault.rate_limit): "Number of concurrent connections has exceeded your rate limit. Please try again later.",
    (GEMINI, Fault.rate_limit): "Resource has been exhausted (e.g. check quota).",
    (OPENAI, Fault.server_error): "The server had an error while processing your request. Sorry about that!",
    (ANTHROPIC, Fault.server_error): "Internal server error",
    (GEMINI, Fault.server_error): "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    (OPENAI, Fault.overloaded): "The engine is currently overloaded, please try again later.",
    (ANTHROPIC, Fault.overloaded): "Overloaded",
    (GEMINI, Fault.overloaded): "The model is overloaded. Please try again later.",
}

_ANTHROPIC_TYPES = {
    Fault.auth: "authentication_error", Fault.context_length: "invalid_request_error",
    Fault.content_filter: "invalid_request_error", Fault.rate_limit: "rate_limit_error",
    Fault.server_error: "api_error", Fault.overloaded: "overloaded_error",
}  # fmt: skip
_GEMINI_STATUSES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                    429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}  # fmt: skip
_OPENAI_CODES = {Fault.auth: "invalid_api_key", Fault.context_length: "context_length_exceeded",
                 Fault.rate_limit: "rate_limit_exceeded"}  # fmt: skip


def error_status(api: str, fault: Fault, mode: ErrorMode | None = None) -> int:
    if mode is not None and mode.status is not None:
        return mode.status
    if fault is Fault.rate_limit:
        return 429
    if fault is Fault.server_error:
        return 500
    if fault is Fault.overloaded:
        return 529 if api == ANTHROPIC else 503
    if fault is Fault.auth and api != GEMINI:  # Gemini answers a bad key with a plain 400
        return 401
    return 400


def error(
    request: ProviderRequest, outcome: Outcome, mode: ErrorMode | None = None, *, echo_key: bool = False
) -> WireResponse:
    fault = outcome.fault
    status = error_status(request.api, fault, mode)
    retry = outcome.retry_after_s
    custom = mode.message if mode is not None and mode.message else None
    message = custom or _DEFAULT_MESSAGES[(request.api, fault)]
    message = message.replace("{retry}", f"{retry or 0:g}")
    if echo_key and request.api_key:
        message = f"{message} (key: {request.api_key})"
    headers = {"x-request-id": f"req_{uuid.uuid4().hex[:16]}"}
    if fault is Fault.rate_limit and retry is not None:
        headers["retry-after"] = str(max(1, math.ceil(retry)) if retry > 0 else 0)
        headers["retry-after-ms"] = str(int(round(retry * 1000)))
    # A custom message comes as a plain error: no provider-specific type or code says what it is.
    return WireResponse(status, error_body(request.api, status, message, None if custom else fault), headers)


def error_body(api: str, status: int, message: str, fault: Fault | None = None) -> dict[str, Any]:
    if api == ANTHROPIC:
        plain = "api_error" if status >= 500 else "invalid_request_error"
        kind = _ANTHROPIC_TYPES.get(fault, plain) if fault else plain
        if status == 404:
            kind = "not_found_error"
        return {"type": "error", "error": {"type": kind, "message": message}}
    if api == GEMINI:
        return {"error": {"code": status, "message": message, "status": _GEMINI_STATUSES.get(status, "UNKNOWN")}}
    kind = "invalid_request_error" if status < 500 else "server_error"
    if fault is Fault.rate_limit:
        kind = "requests"
    return {"error": {"message": message, "type": kind, "param": None, "code": _OPENAI_CODES.get(fault) if fault else None}}
