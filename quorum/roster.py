"""The model roster: which model serves each stage, and the rules a roster must keep.

Validation here is pure (no litellm import); checks that need litellm's price table or the
environment live in `quorum.llm` so they can be run before any call is made.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

SCRIPTED_PROVIDER = "scripted"
ROSTER_DIR = Path(__file__).resolve().parent / "rosters"


class RosterError(ValueError):
    """A roster that cannot be used; the message names the offending models."""


class StageModel(BaseModel):
    """One model serving one stage, as a litellm model string with its sampling settings."""

    model: str = Field(title="Model", description="litellm model string, e.g. 'anthropic/claude-sonnet-4-5'.")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=4096, gt=0)
    priced_as: str | None = Field(
        default=None,
        description="Scripted models only: the real model whose prices (and provider) the simulation stands in for.",
    )

    @field_validator("model")
    @classmethod
    def _has_provider_prefix(cls, value: str) -> str:
        prefix, sep, name = value.partition("/")
        if not sep or not prefix or not name:
            raise ValueError(f"model string {value!r} needs a provider prefix, e.g. 'openai/gpt-5-mini'")
        return value

    @model_validator(mode="after")
    def _priced_as_only_for_scripted(self) -> StageModel:
        if self.is_scripted and not self.priced_as:
            raise ValueError(f"scripted model {self.model!r} must declare priced_as (the real model it simulates)")
        if not self.is_scripted and self.priced_as:
            raise ValueError(f"priced_as is only for scripted models, not {self.model!r}")
        return self

    @property
    def is_scripted(self) -> bool:
        return self.model.startswith(SCRIPTED_PROVIDER + "/")

    @property
    def pricing_model(self) -> str:
        return self.priced_as or self.model

    @property
    def provider(self) -> str:
        """The provider this model's calls go to; for a scripted model, the provider it simulates."""
        return self.pricing_model.partition("/")[0]


class Roster(BaseModel):
    name: str = "custom"
    planner: StageModel
    implementer: StageModel
    reviewers: list[StageModel] = Field(min_length=2)
    concurrency: dict[str, int] = Field(
        default_factory=dict, description="Calls in flight per provider across a whole batch (Prefect global limits)."
    )
    default_concurrency: int = Field(default=4, gt=0, description="Concurrency for providers not listed.")

    @model_validator(mode="after")
    def _reviewers_independent(self) -> Roster:
        problems = independence_problems(self.implementer, self.reviewers)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def simulated(self) -> bool:
        return any(m.is_scripted for m in self.all_models())

    def all_models(self) -> list[StageModel]:
        return [self.planner, self.implementer, *self.reviewers]

    def providers(self) -> list[str]:
        return sorted({m.provider for m in self.all_models()})


def independence_problems(implementer: StageModel, reviewers: list[StageModel]) -> list[str]:
    """Reviewer-independence rule: no reviewer shares a provider with the implementer or another reviewer."""
    problems = []
    for reviewer in reviewers:
        if reviewer.provider == implementer.provider:
            problems.append(
                f"reviewer {reviewer.model} shares provider {reviewer.provider!r} with implementer {implementer.model}"
            )
    seen: dict[str, str] = {}
    for reviewer in reviewers:
        if reviewer.provider in seen:
            problems.append(
                f"reviewers {seen[reviewer.provider]} and {reviewer.model} share provider {reviewer.provider!r}"
            )
        else:
            seen[reviewer.provider] = reviewer.model
    return problems


def load_roster(name_or_path: str | Path) -> Roster:
    """Load a shipped roster by name ('scripted', 'default') or a YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = ROSTER_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            shipped = ", ".join(sorted(p.stem for p in ROSTER_DIR.glob("*.yaml")))
            raise RosterError(f"unknown roster {str(name_or_path)!r}: not a file and not one of: {shipped}")
    if not path.is_file():
        raise RosterError(f"roster file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RosterError(f"roster file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RosterError(f"roster file {path} must be a mapping with planner, implementer and reviewers")
    data.setdefault("name", path.stem)
    try:
        return Roster.model_validate(data)
    except ValidationError as exc:
        raise RosterError(f"roster {path}: {_first_errors(exc)}") from exc


def _first_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
