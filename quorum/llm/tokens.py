"""Counting tokens the way a stage's model does (litellm's tokenizer for that model).

A scripted model counts as the model it is priced as. litellm picks the tokenizer from the model
string (tiktoken for OpenAI models and as its default; the provider's own where litellm ships one),
so a context budget in a roster means tokens of that model as nearly as litellm can tell.
"""

from __future__ import annotations

from collections.abc import Callable

from quorum.domain.roster import StageModel
from quorum.llm.client import get_litellm


def token_counter(stage_model: StageModel) -> Callable[[str], int]:
    """`count(text) -> tokens` for the model serving a stage (litellm is imported once per process)."""
    litellm = get_litellm()
    model = stage_model.pricing_model

    def count(text: str) -> int:
        return int(litellm.token_counter(model=model, text=text)) if text else 0

    return count
