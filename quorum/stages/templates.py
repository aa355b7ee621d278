"""Prompt templates: text files beside the stages, versioned by their content.

A stage's prompt version (part of its LLM cache key) is a digest of its template files, the shared
data and context rules and the code that assembles its messages, so changing any of them misses the cache and
nothing is ever bumped by hand.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from types import ModuleType

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
DATA_RULE_FILE = "data_rule.txt"
CONTEXT_RULE_FILE = "context_rule.txt"


def _read(name: str) -> str:
    return (PROMPTS_DIR / name).read_text(encoding="utf-8").removesuffix("\n")


DATA_RULE = _read(DATA_RULE_FILE)
CONTEXT_RULE = _read(CONTEXT_RULE_FILE)  # how repository context is laid out (quorum.stages.prompting.PromptRenderer)


@dataclass(frozen=True)
class PromptTemplate:
    """The sections of one stage's prompt (`<stage>.<section>.txt`) and its content-derived version."""

    stage: str
    sections: dict[str, str] = field(repr=False)
    version: str

    def render(self, section: str, **values: object) -> str:
        """A section with `$name` placeholders filled; `$data_rule` and `$context_rule` are always available."""
        return Template(self.sections[section]).substitute(
            {"data_rule": DATA_RULE, "context_rule": CONTEXT_RULE, **values}
        )


def load_template(stage: str, *code: ModuleType) -> PromptTemplate:
    """Every `<stage>.*.txt` under prompts/, versioned with the data rule and the given modules' source."""
    files = sorted(PROMPTS_DIR.glob(f"{stage}.*.txt"))
    if not files:
        raise FileNotFoundError(f"no prompt template {stage}.*.txt in {PROMPTS_DIR}")
    sections = {path.name.removeprefix(f"{stage}.").removesuffix(".txt"): _read(path.name) for path in files}
    digest = hashlib.sha256()
    for name, text in sorted(sections.items()):
        digest.update(f"{name}\0{text}\0".encode())
    digest.update(DATA_RULE.encode())
    digest.update(CONTEXT_RULE.encode())
    for module in code:
        digest.update(inspect.getsource(module).encode())
    return PromptTemplate(stage=stage, sections=sections, version=f"{stage}-{digest.hexdigest()[:12]}")
