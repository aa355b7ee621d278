"""Localize stage: a cheap long-context model reads the repository map and names the files and symbols
the task is about. When its answer cannot be used (bad output after the bounded re-asks, or no reply
after retries and fallbacks), the deterministic localization stands in and the result says so."""

from __future__ import annotations

import sys

from pydantic import BaseModel, Field

from quorum.context.models import Localization, SymbolRef
from quorum.domain.manifest import TaskSpec
from quorum.domain.roster import StageModel
from quorum.llm.client import LLMCallError, StructuredOutputError, ask_structured
from quorum.llm.prompt_cache import user_message
from quorum.stages import prompting
from quorum.stages.output import StageOutput
from quorum.stages.prompting import delimit, json_schema_hint, parse_model_reply, render_context
from quorum.stages.templates import load_template

MAX_EDIT_FILES, MAX_READ_FILES, MAX_SYMBOLS = 10, 20, 30


class LocalizedSymbol(BaseModel):
    path: str = Field(description="A path the map lists.")
    name: str = Field(description="Qualified name in that file: 'Class.method', 'function' or 'Class'.")
    edit: bool = Field(default=True, description="True to edit it, false to read it.")


class LocalizeReply(BaseModel):
    """The localizer's structured output."""

    edit_files: list[str] = Field(description="Files to change, most likely first (paths from the map).")
    read_files: list[str] = Field(default_factory=list, description="Files to read for context, not to change.")
    symbols: list[LocalizedSymbol] = Field(default_factory=list, description="Definitions to edit or read.")
    new_files: list[str] = Field(default_factory=list, description="Files the change must create (not in the map).")


class LocalizeOutput(StageOutput):
    localization: Localization


def build_localize_messages(task_text: str, map_text: str) -> list[dict[str, str]]:
    """`map_text`: the repository map as PROMPT_RENDERER's <file> blocks (paths and skeletons)."""
    system = TEMPLATE.render("system", schema=json_schema_hint(LocalizeReply))
    return [{"role": "system", "content": system}, user_message([render_context(map_text), delimit("task", task_text)])]


def parse_localization(text: str, paths: set[str]) -> Localization:
    """A reply as a Localization; ValueError (re-asked) when it names paths the map does not list, a new
    file that exists, nothing to edit or read, or more than the stage asks for."""
    reply: LocalizeReply = parse_model_reply(text, LocalizeReply)  # type: ignore[assignment]
    named = [*reply.edit_files, *reply.read_files, *(s.path for s in reply.symbols)]
    unknown = [p for p in dict.fromkeys(named) if p not in paths]
    if unknown:
        raise ValueError(f"these paths are not in the repository map: {', '.join(unknown[:10])} "
                         "(name listed paths only; a file to create goes in new_files)")  # fmt: skip
    existing = [p for p in reply.new_files if p in paths]
    if existing:
        raise ValueError(f"new_files names files that already exist: {', '.join(existing[:10])}")
    if not reply.edit_files and not reply.read_files and not reply.new_files:
        raise ValueError("the reply names no file to edit, read or create")
    if len(reply.edit_files) > MAX_EDIT_FILES or len(reply.read_files) > MAX_READ_FILES or len(reply.symbols) > MAX_SYMBOLS:
        raise ValueError(f"name at most {MAX_EDIT_FILES} files to edit, {MAX_READ_FILES} to read and "
                         f"{MAX_SYMBOLS} symbols, the most relevant first")  # fmt: skip
    return Localization(
        edit_files=list(dict.fromkeys(reply.edit_files)),
        read_files=[p for p in dict.fromkeys(reply.read_files) if p not in reply.edit_files],
        new_files=list(dict.fromkeys(reply.new_files)),
        symbols=[SymbolRef(path=s.path, qualname=s.name, edit=s.edit) for s in reply.symbols],
        source="model",
    )


def run_localize(
    spec: TaskSpec, localizer: StageModel, map_text: str, paths: list[str], fallback: Localization
) -> LocalizeOutput:
    """The model's localization, or `fallback` (with the reason in its notes) when the model's cannot be used.
    Either way the calls made are returned: failed and re-asked calls are paid for too."""
    known = set(paths)
    messages = build_localize_messages(spec.task, map_text)
    try:
        localization, calls = ask_structured(
            "localize", localizer, messages, lambda text: parse_localization(text, known), script=spec.script,
            schema=LocalizeReply,
        )
    except (StructuredOutputError, LLMCallError) as exc:
        reason = f"localize by {localizer.model} failed, the deterministic ranking stands in: {exc}"
        return LocalizeOutput(localization=fallback.standing_in(reason), calls=exc.calls)
    return LocalizeOutput(localization=localization, calls=calls)


TEMPLATE = load_template("localize", sys.modules[__name__], prompting)
PROMPT_VERSION = TEMPLATE.version
