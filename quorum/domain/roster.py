"""The model roster: which model serves each stage, its fallbacks, provider limits and budgets.

Validation here is pure (no litellm import); checks that need litellm's price table or the
environment live in `quorum.llm.client` so they can be run before any call is made.

A model's provider is the prefix of its litellm model string (for a scripted model, of the model
it simulates). Provider identity drives both the reviewer-independence rule and the per-provider
limits, so a fallback is held to the same rule as the model it stands in for.
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator, model_validator

from quorum.domain.caching import is_anthropic_family
from quorum.domain.edit_format import EditFormat, parse_edit_format, resolve_edit_format

SCRIPTED_PROVIDER = "scripted"
# Tokens of repository context each stage's model is given when its roster entry sets no `context_tokens`
# (counted with that model's tokenizer). The planner's covers the repository map (1/7 of it, at most 2,500)
# and the code regions: smaller than the others, because the premium model's tokens cost most and the
# localizer has already narrowed the code down (docs/context.md has the trade-off measured).
DEFAULT_CONTEXT_TOKENS = {"localize": 16_000, "plan": 12_000, "implement": 16_000, "review": 16_000}
MIN_CONTEXT_TOKENS = 1_000

GOLD_PROVIDER = "gold"  # replays a SWE-bench instance's own patch (quorum validate); script-driven like scripted
SCRIPT_DRIVEN = (SCRIPTED_PROVIDER, GOLD_PROVIDER)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class RosterError(ValueError):
    """A roster that cannot be used; the message names the offending models."""


def expand_env(text: str) -> str:
    """Replace `${NAME}` and `${NAME:-default}` with environment values; an unset name without default is an error."""

    def value(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if found:
            return found
        if default is not None:
            return default
        raise ValueError(f"{match.group(0)} is not set in the environment (write ${{{name}:-default}} for a default)")

    return ENV_REFERENCE.sub(value, text)


class StageModel(BaseModel):
    """One model serving one stage, as a litellm model string with its sampling settings and fallbacks."""

    model: str = Field(title="Model", description="litellm model string, e.g. 'anthropic/claude-sonnet-4-5'.")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=4096, gt=0)
    priced_as: str | None = Field(
        default=None,
        description="Scripted models only: the real model whose prices (and provider) the simulation stands in for.",
    )
    api_base: str | None = Field(
        default=None,
        title="API base URL",
        description="Endpoint for this model (e.g. the fake provider server); ${VAR} and ${VAR:-default} are "
        "expanded from the environment. Default: the provider's own endpoint.",
    )
    api_key_env: str | None = Field(
        default=None,
        title="API key variable",
        description="Name of the environment variable holding the API key (the key itself is never stored). "
        "Default: litellm's variable for the provider, e.g. OPENAI_API_KEY.",
    )
    context_tokens: int | None = Field(
        default=None,
        ge=MIN_CONTEXT_TOKENS,
        le=2_000_000,
        title="Context budget (tokens)",
        description="Tokens of repository context this stage's model is given (map, code regions, callers, tests), "
        "counted with the model's own tokenizer. Default per stage: "
        + ", ".join(f"{stage} {tokens}" for stage, tokens in DEFAULT_CONTEXT_TOKENS.items())
        + ". Must fit the model's input window (checked against litellm's model table when the roster is loaded).",
    )
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = Field(
        default=None,
        title="Reasoning effort",
        description="For reasoning models (e.g. the planner): litellm's reasoning_effort, which it maps to each "
        "provider's setting (OpenAI reasoning_effort, Anthropic and Gemini thinking budgets). Default: the model's.",
    )
    thinking_budget_tokens: int | None = Field(
        default=None,
        ge=1024,
        title="Thinking budget (tokens)",
        description="Extended thinking with this many tokens (litellm's thinking parameter; Anthropic, Gemini). "
        "Must be below max_tokens; Anthropic then accepts only temperature 1.",
    )
    structured_output: Literal["auto", "native", "prompt"] = Field(
        default="auto",
        title="Structured output",
        description="How plans, localizations and reviews are asked for: 'native' sends the pydantic schema as "
        "response_format (the provider constrains the reply), 'prompt' only describes it in the prompt, 'auto' "
        "(default) is native where litellm's model table says the model supports response schemas.",
    )
    fallbacks: list[StageModel] = Field(
        default_factory=list,
        description="Models tried in order when this one keeps failing on transient errors (429, 5xx, timeouts).",
    )
    edit_format: EditFormat | None = Field(
        default=None,
        title="Edit format",
        description="Implementer only: how it writes its edits, 'udiff' (unified diff), 'search_replace' "
        "(SEARCH/REPLACE blocks) or 'whole_file' (small files in full); its prompt describes this format. "
        "Default: by model family (cheap models search_replace, strong ones udiff, small local ones "
        "whole_file; scripted models udiff).",
    )

    @field_validator("model")
    @classmethod
    def _has_provider_prefix(cls, value: str) -> str:
        prefix, sep, name = value.partition("/")
        if not sep or not prefix or not name:
            raise ValueError(f"model string {value!r} needs a provider prefix, e.g. 'openai/gpt-5-mini'")
        return value

    @field_validator("api_base")
    @classmethod
    def _expand_api_base(cls, value: str | None) -> str | None:
        if value is None:
            return None
        expanded = expand_env(value).rstrip("/")
        if not expanded.startswith(("http://", "https://")):
            raise ValueError(f"api_base {expanded!r} must be an http(s) URL")
        return expanded

    @field_validator("edit_format", mode="before")
    @classmethod
    def _known_edit_format(cls, value: object, info: ValidationInfo) -> object:
        if value is None or isinstance(value, EditFormat):
            return value
        return parse_edit_format(str(value), model=str(info.data.get("model", "")))

    @field_validator("api_key_env")
    @classmethod
    def _is_a_variable_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_NAME.match(value):
            raise ValueError(
                "api_key_env must be the NAME of an environment variable (e.g. OPENAI_API_KEY), never the key itself"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> StageModel:
        if self.is_scripted and not self.priced_as:
            raise ValueError(f"scripted model {self.model!r} must declare priced_as (the real model it simulates)")
        if not self.is_scripted and self.priced_as:
            raise ValueError(f"priced_as is only for scripted models, not {self.model!r}")
        if self.is_scripted and self.api_base:
            raise ValueError(f"scripted model {self.model!r} takes no api_base (its replies come from a script file)")
        if self.reasoning_effort and self.thinking_budget_tokens:
            raise ValueError(f"{self.model}: set reasoning_effort or thinking_budget_tokens, not both")
        if self.thinking_budget_tokens and self.thinking_budget_tokens >= self.max_tokens:
            raise ValueError(f"{self.model}: thinking_budget_tokens ({self.thinking_budget_tokens}) must be below "
                             f"max_tokens ({self.max_tokens}), which counts the thinking too")  # fmt: skip
        thinks = self.reasoning_effort is not None or self.thinking_budget_tokens is not None
        if thinks and is_anthropic_family(self.pricing_model) and self.temperature != 1.0:
            raise ValueError(f"{self.model}: Anthropic models think only at temperature 1 "
                             f"(got {self.temperature:g}); set temperature: 1.0 or drop the thinking setting")  # fmt: skip
        for fallback in self.fallbacks:
            if fallback.fallbacks:
                raise ValueError(f"fallback {fallback.model} of {self.model} cannot have fallbacks of its own")
            if fallback.context_tokens is not None:
                raise ValueError(
                    f"fallback {fallback.model} of {self.model} cannot set context_tokens: the context is built for "
                    f"{self.model} and a fallback is sent the same prompt"
                )
            if fallback.model == self.model and fallback.api_base == self.api_base:
                raise ValueError(f"{self.model} lists itself as a fallback")
        return self

    @property
    def is_scripted(self) -> bool:
        """Replies come from a per-task file, not a hosted model: `scripted/...` and `gold/...`."""
        return self.model.partition("/")[0] in SCRIPT_DRIVEN

    @property
    def resolved_edit_format(self) -> EditFormat:
        """The format this model is asked to write its edits in: the roster's, else its family's default."""
        return resolve_edit_format(self.model, self.edit_format)

    @property
    def pricing_model(self) -> str:
        return self.priced_as or self.model

    @property
    def provider(self) -> str:
        """The provider this model's calls go to; for a scripted model, the provider it simulates."""
        return self.pricing_model.partition("/")[0]

    def reasoning_params(self) -> dict[str, Any]:
        """What litellm is passed for this model's reasoning settings (nothing when none is set)."""
        if self.reasoning_effort:
            return {"reasoning_effort": self.reasoning_effort}
        if self.thinking_budget_tokens:
            return {"thinking": {"type": "enabled", "budget_tokens": self.thinking_budget_tokens}}
        return {}

    def context_budget(self, stage: str) -> int:
        """Tokens of repository context for this model serving `stage` (its own setting, else the stage default)."""
        return self.context_tokens or DEFAULT_CONTEXT_TOKENS[stage]

    def chain(self) -> list[StageModel]:
        """This model followed by its fallbacks, in the order they are tried."""
        return [self, *self.fallbacks]

    def providers(self) -> set[str]:
        return {m.provider for m in self.chain()}


class ProviderLimits(BaseModel):
    """What one provider accepts from the whole batch (Prefect global concurrency and rate limits)."""

    concurrency: int | None = Field(default=None, gt=0, description="Calls in flight; default: the roster's default_concurrency.")
    rpm: int | None = Field(default=None, gt=0, description="Requests per minute (none: not limited).")
    tpm: int | None = Field(
        default=None, gt=0, description="Tokens per minute, counted as prompt estimate + max_tokens (none: not limited)."
    )


class Roster(BaseModel):
    name: str = "custom"
    localizer: StageModel | None = Field(
        default=None,
        description="The `localize` stage: a cheap long-context model that reads the repository map and names the "
        "files and symbols to read and to edit. Without one, the deterministic ranking localizes (no call).",
    )
    planner: StageModel
    implementer: StageModel
    reviewers: list[StageModel] = Field(min_length=2)
    limits: dict[str, ProviderLimits] = Field(
        default_factory=dict,
        description="Per provider (the model-string prefix): concurrency, rpm, tpm across a whole batch.",
    )
    default_concurrency: int = Field(default=4, gt=0, description="Concurrency for providers without one in limits.")
    task_budget_usd: float | None = Field(default=None, gt=0, description="Most one task may spend on model calls.")
    batch_budget_usd: float | None = Field(default=None, gt=0, description="Most a whole batch may spend.")

    @model_validator(mode="before")
    @classmethod
    def _concurrency_mapping_is_limits(cls, data: Any) -> Any:
        """Older rosters said `concurrency: {provider: n}`; that is `limits: {provider: {concurrency: n}}`."""
        if isinstance(data, dict) and "concurrency" in data:
            data = dict(data)
            legacy = data.pop("concurrency") or {}
            if not isinstance(legacy, dict):
                raise ValueError("concurrency must map provider -> calls in flight")
            limits = {provider: dict(value or {}) for provider, value in (data.get("limits") or {}).items()}
            for provider, value in legacy.items():
                limits.setdefault(provider, {}).setdefault("concurrency", value)
            data["limits"] = limits
        return data

    @model_validator(mode="after")
    def _edit_format_only_where_used(self) -> Roster:
        """Only the implementer's prompt asks for an edit format; set anywhere else it would be ignored."""
        misplaced = [
            f"{_describe(role, primary, model)}"
            for role, primary in [("planner", self.planner), *(("reviewer", r) for r in self.reviewers),
                                  ("implementer", self.implementer)]
            for model in primary.chain()
            if model.edit_format is not None and not (role == "implementer" and model is primary)
        ]  # fmt: skip
        if misplaced:
            raise ValueError(
                f"edit_format is set for {', '.join(misplaced)}: only the implementer's own entry takes one "
                "(its prompt asks for that format; fallbacks get the same prompt)"
            )
        return self

    @model_validator(mode="after")
    def _reviewers_independent(self) -> Roster:
        problems = independence_problems(self.implementer, self.reviewers)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def simulated(self) -> bool:
        return any(m.is_scripted for m in self.all_models())

    def primary_models(self) -> list[StageModel]:
        localizer = [self.localizer] if self.localizer else []
        return [*localizer, self.planner, self.implementer, *self.reviewers]

    def stage_models(self) -> list[tuple[str, StageModel]]:
        """(stage, model) for every stage's primary model: localize (when set), plan, implement, each review."""
        localizer = [("localize", self.localizer)] if self.localizer else []
        return [*localizer, ("plan", self.planner), ("implement", self.implementer),
                *(("review", reviewer) for reviewer in self.reviewers)]  # fmt: skip

    def all_models(self) -> list[StageModel]:
        """Every model the roster may call: each stage's model followed by its fallbacks."""
        return [model for primary in self.primary_models() for model in primary.chain()]

    def providers(self) -> list[str]:
        return sorted({m.provider for m in self.all_models()})

    @property
    def concurrency(self) -> dict[str, int]:
        """Calls in flight per provider the roster uses (its limit, else default_concurrency)."""
        return {provider: limits.concurrency or self.default_concurrency for provider, limits in self.provider_limits().items()}

    def provider_limits(self) -> dict[str, ProviderLimits]:
        """Limits for every provider the roster uses, concurrency filled in with the default."""
        resolved = {}
        for provider in self.providers():
            declared = self.limits.get(provider, ProviderLimits())
            resolved[provider] = declared.model_copy(
                update={"concurrency": declared.concurrency or self.default_concurrency}
            )
        return resolved


def _describe(role: str, primary: StageModel, model: StageModel) -> str:
    return f"{role} {primary.model}" if model is primary else f"{role} {primary.model}'s fallback {model.model}"


def independence_problems(implementer: StageModel, reviewers: list[StageModel]) -> list[str]:
    """Reviewer-independence rule, fallbacks included: no model a reviewer may use shares a provider with any
    model the implementer may use, nor with any model another reviewer may use."""
    problems = []
    for reviewer in reviewers:
        for reviewing in reviewer.chain():
            for implementing in implementer.chain():
                if reviewing.provider == implementing.provider:
                    problems.append(
                        f"{_describe('reviewer', reviewer, reviewing)} shares provider {reviewing.provider!r} "
                        f"with {_describe('implementer', implementer, implementing)}"
                    )
    for index, first in enumerate(reviewers):
        for second in reviewers[index + 1 :]:
            for one in first.chain():
                for other in second.chain():
                    if one.provider != other.provider:
                        continue
                    if one is first and other is second:
                        problems.append(f"reviewers {first.model} and {second.model} share provider {one.provider!r}")
                    else:
                        problems.append(
                            f"{_describe('reviewer', first, one)} and {_describe('reviewer', second, other)} "
                            f"share provider {one.provider!r}"
                        )
    return problems


def validation_summary(exc: ValidationError) -> str:
    """The first three problems of a validation error, one line, with where each one is."""
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def request_refusal(roster: Roster, has_script: bool) -> str | None:
    """Why `roster` cannot serve a task request, or None. Script-driven models (scripted, gold) replay a file
    that comes with each task; a request without one (a GitHub issue, say) would only reach an error later."""
    if roster.simulated and not has_script:
        return (
            f"roster {roster.name!r} replays per-task scripts (its models are scripted) and this request carries no "
            "script: set the deployment's `roster` parameter to a roster of hosted models (a shipped name, a file, or "
            "block:<name>) with their API keys in the worker's environment"
        )
    return None
