"""`QuorumRoster`: the model roster as a Prefect block, so a roster change needs no redeploy.

The block stores the roster as data with the keys of a roster YAML file (`quorum/rosters/*.yaml`)
and validates it with `Roster.model_validate` only when it is used (`to_roster()`): the roster's
rules (provider prefixes, reviewer independence, limits, budgets) live in `quorum.domain.roster` alone,
and a roster field added there works in the block without a new block schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, ValidationError

from quorum.domain.roster import Roster, RosterError, validation_summary
from quorum.inputs.rosters import load_roster

# Block fields that map one-to-one onto top-level roster keys (None / empty means "not set").
_DIRECT_KEYS = ("localizer", "planner", "implementer", "reviewers", "limits", "task_budget_usd", "batch_budget_usd")


class QuorumRoster(Block):
    """The model roster for quorum pipelines: which model localizes, plans, implements and reviews,
    with context budgets, provider limits and spending budgets. Validated with quorum's roster rules when a flow loads it.

    Example:
        Load a saved roster and use it in a flow:
        ```python
        from quorum.blocks import QuorumRoster

        quorum_roster_block = QuorumRoster.load("BLOCK_NAME")
        roster = quorum_roster_block.to_roster()
        ```
    """

    _block_type_name = "Quorum Roster"
    _block_type_slug = "quorum-roster"
    _description = (
        "The model roster for quorum pipelines: planner, implementer, reviewers (from providers other "
        "than the implementer's), provider limits and budgets. Flows reference it by name, "
        "e.g. roster='block:nightly'."
    )

    localizer: dict[str, Any] | None = Field(
        default=None,
        title="Localizer",
        description=(
            'The localize stage (a cheap long-context model that names the files and symbols a task is about), '
            'e.g. {"model": "gemini/gemini-2.5-flash", "context_tokens": 16000}; empty: the deterministic ranking.'
        ),
    )
    planner: dict[str, Any] = Field(
        title="Planner",
        description=(
            'The planner stage as in a roster file, e.g. {"model": "anthropic/claude-sonnet-4-5", '
            '"max_tokens": 4096}.'
        ),
    )
    implementer: dict[str, Any] = Field(
        title="Implementer",
        description='The implementer stage as in a roster file, e.g. {"model": "deepseek/deepseek-chat"}.',
    )
    reviewers: list[dict[str, Any]] = Field(
        title="Reviewers",
        description=(
            "Two or more reviewer stages, each from a provider other than the implementer's and each "
            "other's, e.g. [{\"model\": \"openai/gpt-5-mini\"}, {\"model\": \"gemini/gemini-2.5-flash\"}]."
        ),
    )
    limits: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        title="Provider limits",
        description='Limits per provider, e.g. {"openai": {"concurrency": 4, "rpm": 500, "tpm": 200000}}.',
    )
    task_budget_usd: float | None = Field(
        default=None,
        gt=0,
        title="Task budget (USD)",
        description="Most one task may spend on model calls before it stops; empty for no budget.",
    )
    batch_budget_usd: float | None = Field(
        default=None,
        gt=0,
        title="Batch budget (USD)",
        description="Most one batch may spend on model calls; empty for no budget.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        title="Other roster settings",
        description=(
            "Any other top-level roster key (e.g. fallbacks, default_concurrency), spelled as in a roster "
            "YAML file."
        ),
    )

    def roster_data(self) -> dict[str, Any]:
        """The roster as a roster file would hold it (unset optional fields left out)."""
        data: dict[str, Any] = dict(self.options)
        for key in _DIRECT_KEYS:
            value = getattr(self, key)
            if value is None or value == {}:
                continue
            if key in data:
                raise RosterError(f"roster key {key!r} is given twice: as a block field and in 'options'")
            data[key] = value
        data.setdefault("name", self._block_document_name or "block")
        return data

    def to_roster(self) -> Roster:
        """Validate with quorum's roster rules; raises RosterError naming the block and the problem."""
        label = f"roster block {self._block_document_name!r}" if self._block_document_name else "roster block"
        try:
            data = self.roster_data()
        except RosterError as exc:
            raise RosterError(f"{label}: {exc}") from None
        unknown = sorted(set(data) - set(Roster.model_fields))
        if unknown:
            known = ", ".join(sorted(Roster.model_fields))
            raise RosterError(
                f"{label}: unknown roster setting(s) {', '.join(unknown)} for this version of quorum (known: {known})"
            )
        try:
            return Roster.model_validate(data)
        except ValidationError as exc:
            raise RosterError(f"{label}: {validation_summary(exc)}") from None

    @classmethod
    def from_roster(cls, roster: Roster) -> QuorumRoster:
        """A block holding `roster` (e.g. to save a roster file to the server)."""
        data = roster.model_dump(mode="json", exclude_defaults=True)
        data.pop("name", None)
        fields = {key: data.pop(key) for key in _DIRECT_KEYS if key in data}
        return cls(**fields, options=data)

    @classmethod
    def from_file(cls, name_or_path: str | Path) -> QuorumRoster:
        """A block from a shipped roster name or a roster YAML file, validated first."""
        return cls.from_roster(load_roster(name_or_path))

