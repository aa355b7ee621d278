"""Which providers cache prompts, how, and what a call can expect from their caches (pure).

Used by the client (which calls mark their stable prefix) and by the dry-run estimate (which rounds
read it from the cache). Prices of cached tokens come from litellm's table, never from here.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from pydantic import BaseModel, Field

# Stages whose stable prefix is sent again: implement and review every round (and on re-asks).
# Plan and localize run once per task: an Anthropic cache write (1.25x the input price) would rarely pay back.
REPEATING_STAGES = frozenset({"implement", "review"})


class ProviderCaching(BaseModel):
    provider: str
    mode: Literal["explicit", "automatic"] = Field(
        description="explicit: only prefixes the request marks with cache_control; automatic: any repeated prefix."
    )
    min_tokens: int = Field(description="Shorter prefixes are not cached.")
    block_tokens: int = Field(default=1, description="Cached tokens are counted in steps of this size.")
    how: str


PROVIDER_CACHING: dict[str, ProviderCaching] = {
    cache.provider: cache
    for cache in (
        ProviderCaching(provider="anthropic", mode="explicit", min_tokens=1024,
                        how="explicit: prefixes marked with cache_control; a write costs 1.25x the input price, "
                            "a read 0.1x; 5-minute TTL, refreshed on each hit"),
        ProviderCaching(provider="openai", mode="automatic", min_tokens=1024, block_tokens=128,
                        how="automatic for prompts of 1,024 tokens or more, in 128-token steps; reads at the cached "
                            "price (gpt-5 family 0.1x); kept 5-10 minutes idle"),
        ProviderCaching(provider="deepseek", mode="automatic", min_tokens=64, block_tokens=64,
                        how="automatic context caching on disk in 64-token units; hits at the cache-hit price "
                            "(0.1x); kept hours to days"),
        ProviderCaching(provider="gemini", mode="automatic", min_tokens=1024,
                        how="implicit caching on Gemini 2.5 (1,024 tokens for Flash, 2,048 for Pro); hits at the "
                            "cached price (0.1x) reported as cachedContentTokenCount"),
    )
}  # fmt: skip


def is_anthropic_family(model: str) -> bool:
    return model.startswith("anthropic/") or "claude" in model.partition("/")[2]


def marks_prefix(stage: str, model: str) -> bool:
    """True when a call marks its stable prefix with cache_control: an Anthropic-family model in a repeating stage."""
    return stage in REPEATING_STAGES and is_anthropic_family(model)


class CacheUse(NamedTuple):
    """Tokens of a stage's stable prefix written in its first call and read in each later one."""

    written_first: int = 0
    read_later: int = 0


def expected_cache_use(stage: str, pricing_model: str, stable_tokens: int) -> CacheUse:
    """What a provider's cache does with a stage's stable prefix, if the prefix repeats within the cache's TTL."""
    provider = pricing_model.partition("/")[0]
    caching = PROVIDER_CACHING.get("anthropic" if is_anthropic_family(pricing_model) else provider)
    if caching is None or stable_tokens < caching.min_tokens:
        return CacheUse()
    if caching.mode == "explicit":
        return CacheUse(stable_tokens, stable_tokens) if marks_prefix(stage, pricing_model) else CacheUse()
    return CacheUse(0, stable_tokens // caching.block_tokens * caching.block_tokens)
