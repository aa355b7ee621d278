"""Prices from litellm's price table."""

from __future__ import annotations

from quorum.llm.client import get_litellm


def litellm_price(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """USD for a call, from litellm's price table (imported lazily; see quorum.llm.client)."""
    prompt_cost, completion_cost = get_litellm().cost_per_token(
        model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
    )
    return float(prompt_cost + completion_cost)
