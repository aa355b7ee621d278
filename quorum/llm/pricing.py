"""Prices from litellm's price table, prompt-cache tokens included, and the cache figures of a reply's usage.

litellm normalises every provider's usage: `prompt_tokens` counts every input token (cached and
cache-written ones too), `prompt_tokens_details.cached_tokens` the ones read from the provider's
prompt cache (OpenAI `cached_tokens`, DeepSeek `prompt_cache_hit_tokens`, Anthropic
`cache_read_input_tokens`, Gemini `cachedContentTokenCount`), and Anthropic's
`cache_creation_input_tokens` the ones written to it. A call is priced from those figures, so its
cost is what litellm's `completion_cost` says for the same usage.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class CacheTokens(NamedTuple):
    read: int = 0
    write: int = 0


def _figure(source: Any, name: str) -> int:
    value = source.get(name) if isinstance(source, dict) else getattr(source, name, None)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def cache_tokens(usage: Any) -> CacheTokens:
    """Cached-read and cache-write input tokens of a litellm usage object (0 when the provider reported none)."""
    if usage is None:
        return CacheTokens()
    details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else getattr(usage, "prompt_tokens_details", None)
    read = _figure(details, "cached_tokens") if details is not None else 0
    read = read or _figure(usage, "cache_read_input_tokens")
    write = _figure(usage, "cache_creation_input_tokens")
    if details is not None:
        write = write or _figure(details, "cache_write_tokens") or _figure(details, "cache_creation_tokens")
    return CacheTokens(read, write)


def litellm_price(
    model: str, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0, cache_write_tokens: int = 0
) -> float:
    """USD for a call from litellm's price table: `prompt_tokens` counts every input token, of which
    `cached_tokens` were read from the prompt cache and `cache_write_tokens` written to it (each at its own
    price). litellm is imported lazily (see quorum.llm.client)."""
    from quorum.llm.client import get_litellm

    litellm = get_litellm()
    if not cached_tokens and not cache_write_tokens:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
        return float(prompt_cost + completion_cost)
    from litellm.types.utils import Usage

    usage = Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        prompt_tokens_details={"cached_tokens": cached_tokens, "cache_write_tokens": cache_write_tokens},
    )
    prompt_cost, completion_cost = litellm.cost_per_token(
        model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, usage_object=usage
    )
    return float(prompt_cost + completion_cost)
