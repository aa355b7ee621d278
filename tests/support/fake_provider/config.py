"""What the fake provider server does, per model: latency, caps, faults, errors and replies.

Everything here is declarative (pydantic) so a test, a benchmark or a YAML file can say how a
"provider" behaves. The server looks up the behaviour by the model name in the request body
(`gpt-5-mini` for `openai/gpt-5-mini`); models not listed get `default`.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class Latency(BaseModel):
    """Seconds from receiving a request to sending the reply. A bare number in YAML means fixed."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["fixed", "uniform", "lognormal"] = "fixed"
    seconds: float = Field(default=0.0, ge=0.0, description="fixed: the latency; lognormal: the median.")
    low: float = Field(default=0.0, ge=0.0, description="uniform: lower bound.")
    high: float = Field(default=0.0, ge=0.0, description="uniform: upper bound.")
    sigma: float = Field(default=0.5, ge=0.0, description="lognormal: spread of log(latency).")

    @model_validator(mode="before")
    @classmethod
    def _number_means_fixed(cls, value: Any) -> Any:
        if isinstance(value, int | float):
            return {"kind": "fixed", "seconds": float(value)}
        return value

    @model_validator(mode="after")
    def _uniform_bounds(self) -> Latency:
        if self.kind == "uniform" and self.high < self.low:
            raise ValueError(f"uniform latency needs low <= high, got {self.low} > {self.high}")
        return self


class Fault(str, Enum):
    """One request's scripted outcome (see ModelBehaviour.faults)."""

    ok = "ok"
    rate_limit = "rate_limit"  # 429 with Retry-After
    server_error = "server_error"  # 500
    overloaded = "overloaded"  # 503 (529 on the Anthropic API)
    hang = "hang"  # accept the request and never send a byte
    truncate = "truncate"  # finish_reason "length" with half the reply
    invalid_json = "invalid_json"  # a reply that is not the JSON asked for
    auth = "auth"
    context_length = "context_length"
    content_filter = "content_filter"


PERMANENT_FAULTS = frozenset({Fault.auth, Fault.context_length, Fault.content_filter})


class ErrorMode(BaseModel):
    """A permanent error every request to this model gets; status and message default per provider API."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["auth", "context_length", "content_filter"]
    status: int | None = Field(default=None, description="HTTP status; default 401 for auth, 400 otherwise.")
    message: str | None = Field(
        default=None,
        description="Error message; default is the provider's usual wording (with its error type/code). A custom "
        "message is sent as a plain error of that status, with no type or code that names the kind.",
    )

    @model_validator(mode="before")
    @classmethod
    def _name_means_kind(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value


class ReplyRule(BaseModel):
    """A canned reply for prompts containing a marker (first matching rule wins)."""

    model_config = ConfigDict(extra="forbid")

    contains: str = Field(min_length=1, description="Substring searched in every message of the request.")
    text: str | None = None
    data: Any = Field(default=None, description="A JSON-able value sent as JSON text (a plan, a review).")

    @model_validator(mode="after")
    def _one_reply(self) -> ReplyRule:
        if (self.text is None) == (self.data is None):
            raise ValueError(f"reply rule for {self.contains!r} needs exactly one of text or data")
        return self

    def render(self) -> str:
        return self.text if self.text is not None else json.dumps(self.data, indent=2)


class PromptCache(BaseModel):
    """The provider's prompt cache for one model: an input prefix repeated within `ttl_s` is billed as cached.

    `automatic` (OpenAI, DeepSeek, Gemini's implicit cache): the longest prefix shared with a recent request,
    counted in blocks of `block_tokens` (OpenAI 128, DeepSeek 64) and only from `min_tokens` on.
    `explicit` (Anthropic): only prefixes that end at a `cache_control` breakpoint; a request whose last
    breakpoint's prefix is not cached yet writes it (reported as cache-creation tokens).
    Usage is reported the way the model's API does: Anthropic `cache_read_input_tokens` and
    `cache_creation_input_tokens`, OpenAI `prompt_tokens_details.cached_tokens`, DeepSeek (a model whose
    name starts with "deepseek") `prompt_cache_hit_tokens`/`prompt_cache_miss_tokens`, Gemini
    `cachedContentTokenCount`.
    """

    model_config = ConfigDict(extra="forbid")

    mode: Literal["automatic", "explicit"] = "automatic"
    min_tokens: int = Field(default=1024, ge=1, description="Shorter prefixes are never cached.")
    block_tokens: int = Field(default=1, ge=1, description="automatic: cached tokens come in blocks of this size.")
    ttl_s: float = Field(default=300.0, gt=0, description="A cached prefix expires this long after its last use.")


class ModelBehaviour(BaseModel):
    """How one model of the fake provider behaves."""

    model_config = ConfigDict(extra="forbid")

    latency: Latency = Field(default_factory=Latency)
    concurrency: int | None = Field(default=None, gt=0, description="Requests in flight beyond this get 429.")
    rpm: int | None = Field(default=None, gt=0, description="Requests per minute (token bucket of this capacity).")
    tpm: int | None = Field(default=None, gt=0, description="Tokens per minute: prompt estimate + max_tokens.")
    retry_after_s: float = Field(default=1.0, ge=0.0, description="Retry-After sent with a concurrency 429.")
    faults: list[Fault] = Field(default_factory=list, description="Outcomes of the first requests, in order.")
    server_error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    hang_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    truncate_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    invalid_json_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    fail_with: ErrorMode | None = Field(default=None, description="Every request fails with this permanent error.")
    replies: list[ReplyRule] = Field(default_factory=list)
    reply: str = Field(default="ok", description="Reply when no rule matches.")
    prompt_tokens: int | None = Field(default=None, ge=0, description="Fixed usage figure; default ~chars/4.")
    completion_tokens: int | None = Field(default=None, ge=0, description="Fixed usage figure; default ~chars/4.")
    response_format: Literal["honour", "ignore"] = Field(
        default="honour",
        description="A structured-output request (OpenAI/DeepSeek response_format, Anthropic output_format, Gemini "
        "response_mime_type application/json): 'honour' answers it with the canned reply as it is (the provider "
        "constrains decoding); 'ignore' answers as if it were free text.",
    )
    free_text_json: Literal["valid", "malformed"] = Field(
        default="valid",
        description="'malformed': a reply not constrained by an honoured structured-output request is broken JSON "
        "(a weak model writing JSON by hand); 'valid': the canned reply as it is.",
    )
    prompt_cache: PromptCache | None = Field(default=None, description="The provider's prompt cache (none: no caching).")
    echo_key_in_errors: bool = Field(
        default=False, description="Put the request's API key in error messages (to test that quorum redacts it)."
    )

    def reply_for(self, prompt: str) -> str:
        for rule in self.replies:
            if rule.contains in prompt:
                return rule.render()
        return self.reply


class FakeProviderConfig(BaseModel):
    """The whole server: behaviour per model name, a default for the rest, and the random seed."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    models: dict[str, ModelBehaviour] = Field(default_factory=dict)
    default: ModelBehaviour | None = Field(
        default_factory=ModelBehaviour, description="Behaviour of unlisted models; null answers them 404."
    )

    def behaviour(self, model: str) -> ModelBehaviour | None:
        return self.models.get(model, self.default)


def load_config(path: str | Path) -> FakeProviderConfig:
    data = yaml.safe_load(Path(path).read_text()) or {}
    return FakeProviderConfig.model_validate(data)
