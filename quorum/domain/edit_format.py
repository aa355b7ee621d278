"""Edit formats (pure): how an implementer writes its edits, and which one a model family writes best.

The roster may name a format per model (`StageModel.edit_format`); otherwise the model's family
decides (`default_edit_format`). The implement prompt describes the chosen format
(`quorum.edits.format_instructions`); the applier (`quorum.edits.apply_reply`) reads every format
whatever was asked for.
"""

from __future__ import annotations

import re
from enum import Enum


class EditFormat(str, Enum):
    """How an implementer writes its edits."""

    udiff = "udiff"  # unified diff (git style; line numbers and counts are not trusted)
    search_replace = "search_replace"  # Aider's <<<<<<< SEARCH / ======= / >>>>>>> REPLACE blocks
    whole_file = "whole_file"  # the complete new content of a (small) file after its path


# (pattern on the litellm model string, format); first match wins. Rationale (Aider's edit-format
# benchmarks and the measurements in docs/edits.md): SEARCH/REPLACE is the most reliable format for
# cheap models, strong models write good unified diffs, and small local models do best with whole files.
_FAMILY_DEFAULTS: list[tuple[str, EditFormat]] = [
    (r"^scripted/", EditFormat.udiff),  # scripted replies replay recorded diffs (examples/*/script.yaml)
    (r"(^|/)(ollama|ollama_chat|lm_studio|llamafile)/", EditFormat.whole_file),
    (r"(llama-?3(\.\d)?-?(1b|3b|8b)|phi-?\d|gemma-?\d*-?(2b|7b|9b)|qwen[\d.]*-?(0\.5b|1\.5b|3b|7b)|mistral-7b|tinyllama)",
     EditFormat.whole_file),
    (r"(mini|nano|flash|haiku|lite|small|deepseek|qwen|mistral|codestral|llama|grok-code)", EditFormat.search_replace),
    (r"^(anthropic|bedrock/anthropic|vertex_ai/claude)|claude", EditFormat.udiff),
    (r"(gpt-5|gpt-4\.1|gpt-4o|gpt-4-turbo|o1|o3|o4|gemini-[\d.]+-pro|grok-4)", EditFormat.udiff),
]  # fmt: skip
DEFAULT_FORMAT = EditFormat.search_replace


def default_edit_format(model: str) -> EditFormat:
    """The edit format a model writes best, by its family (the roster may override it per model)."""
    name = model.lower()
    for pattern, fmt in _FAMILY_DEFAULTS:
        if re.search(pattern, name):
            return fmt
    return DEFAULT_FORMAT


def parse_edit_format(value: str | EditFormat, *, model: str = "") -> EditFormat:
    """A format named in a roster, or ValueError naming the choices."""
    try:
        return EditFormat(value)
    except ValueError:
        names = ", ".join(f.value for f in EditFormat)
        where = f" for {model}" if model else ""
        raise ValueError(f"unknown edit format {value!r}{where}: use one of {names}") from None


def resolve_edit_format(model: str, configured: str | EditFormat | None = None) -> EditFormat:
    """The roster's choice when it names one (udiff, search_replace, whole_file), else the family default."""
    if configured is None or configured == "":
        return default_edit_format(model)
    return parse_edit_format(configured, model=model)
