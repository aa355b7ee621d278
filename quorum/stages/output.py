"""What every LLM stage returns besides its parsed output: the calls it paid for."""

from __future__ import annotations

from pydantic import BaseModel, Field

from quorum.domain.models import LLMCall


class StageOutput(BaseModel):
    """A stage's parsed output (as text or JSON-able data) plus every call it paid for."""

    calls: list[LLMCall] = Field(default_factory=list)
