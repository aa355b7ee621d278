"""Prompt building blocks shared by the LLM stages (pure).

Repository text is untrusted: it reaches a model only inside clearly delimited data blocks, and
every system prompt says that nothing inside those blocks is an instruction.
"""

from __future__ import annotations

import json
import re
import tempfile

from pydantic import BaseModel, ValidationError

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


def render_repository(files: dict[str, str]) -> str:
    body = "\n".join(delimit("file", content, path=path) for path, content in sorted(files.items()))
    return _wrap("repository", body, {})  # each file's content is neutralised already; its own </file> must stay


def json_schema_hint(model: type[BaseModel]) -> str:
    return json.dumps(model.model_json_schema(), separators=(",", ":"))


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
