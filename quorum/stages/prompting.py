"""Prompt building blocks shared by the LLM stages (pure).

Repository text is untrusted: it reaches a model only inside clearly delimited data blocks, and
every system prompt says that nothing inside those blocks is an instruction.
"""

from __future__ import annotations

import re
import tempfile

from pydantic import BaseModel, ValidationError

from quorum.context.python_symbols import split_lines
from quorum.context.render import Block, numbered
from quorum.domain.schemas import json_schema_text
from quorum.stages.templates import DATA_RULE  # noqa: F401  (re-exported: every stage names it)

_TIMING = re.compile(r"\s*\bin \d+(?:\.\d+)?\s*s(?:econds)?\b|\s*\(\d+(?:\.\d+)?\s*s\)")
_TEMP_PATH = re.compile(re.escape(tempfile.gettempdir().rstrip("/")) + r"/[^\s/:'\"]+/(?:[^\s/:'\"]+/)*?")
_FENCED_JSON = re.compile(r"```(?:json)?\s*\n(.*?)```", re.DOTALL)


_DATA_TAGS = ("repository", "file", "task", "plan", "patch", "report")  # the blocks DATA_RULE names
# Anything a model could read as the end of a data block: any case, spaces around the slash, e.g. "</ File >".
_CLOSING_LOOKALIKE = re.compile(r"<\s*/\s*(" + "|".join(_DATA_TAGS) + r")\b", re.IGNORECASE)


def delimit(tag: str, content: str, **attrs: str) -> str:
    """Wrap data in a tag, neutralising anything inside that reads as the closing tag of a data block."""
    return _wrap(tag, _CLOSING_LOOKALIKE.sub(lambda match: "<\\/" + match.group(1), content), attrs)


def _wrap(tag: str, safe: str, attrs: dict[str, str]) -> str:
    rendered_attrs = "".join(f' {key}="{_attr(value)}"' for key, value in attrs.items())
    return f"<{tag}{rendered_attrs}>\n{safe}\n</{tag}>"


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


class PromptRenderer:
    """Repository text as the models are sent it: one delimited <file> block per view of a file.

    `lines="A-B"`: those lines, each prefixed with its number and '|'; `view="skeleton"`: the file's
    definitions; `view="paths"` (path "."): the file listing. The context functions count this very
    text against each model's budget (quorum.context.render).
    """

    def block(self, block: Block) -> str:
        attrs = {"path": block.path}
        if block.view == "lines":
            attrs["lines"] = f"{block.start_line}-{block.end_line}"
        else:
            attrs["view"] = block.view
        if block.note:
            attrs["note"] = block.note
        return delimit("file", block.body, **attrs) + "\n"

    def heading(self, text: str) -> str:
        return ""  # the blocks' attributes say what they are


PROMPT_RENDERER = PromptRenderer()


def render_context(context: str) -> str:
    """A stage's repository context (delimited <file> blocks made by PROMPT_RENDERER) in a <repository> block."""
    return _wrap("repository", context.strip("\n"), {})  # each file block is neutralised already; its </file> stays


def render_files(files: dict[str, str]) -> str:
    """Whole files as context: line-numbered <file> blocks, exactly as the context functions render regions."""
    parts = []
    for path, content in sorted(files.items()):
        lines = split_lines(content)
        parts.append(PROMPT_RENDERER.block(Block(path, numbered(lines, 1, len(lines)), "lines", 1, len(lines))))
    return "".join(parts)


def render_repository(files: dict[str, str]) -> str:
    """Whole files in a <repository> block (see render_files)."""
    return render_context(render_files(files))


def json_schema_hint(model: type[BaseModel]) -> str:
    return json_schema_text(model)


def extract_json_object(text: str) -> str:
    """The JSON object in a reply: a fenced ```json block, else the outermost {...}."""
    match = _FENCED_JSON.search(text)
    if match:
        return match.group(1).strip()
    start, end = text.find("{"), text.rfind("}")
    if start == -1 or end <= start:
        raise ValueError("the reply contains no JSON object")
    return text[start : end + 1]


def parse_model_reply(text: str, model: type[BaseModel]) -> BaseModel:
    """Parse a reply into `model`; raise ValueError with a short, model-readable reason."""
    raw = extract_json_object(text)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'object'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise ValueError(f"the JSON does not match the {model.__name__} schema: {problems}") from None


def stable_text(text: str) -> str:
    """Tool output made stable across runs (durations and throwaway temp paths removed).

    Text derived from tool output feeds later LLM stages, whose cache keys include their inputs;
    a duration or a temp directory name in it would make every re-run miss the cache.
    """
    without_timings = _TIMING.sub("", text)
    return _TEMP_PATH.sub("<workspace>/", without_timings)
