"""JSON schemas of the models replies are parsed into, generated once per process.

pydantic walks a model every time `model_json_schema()` is called (milliseconds of CPU); the LLM path
asks for the same few schemas on every request (the prompt's format hint, the provider's
`response_format`), which in a batch of thousands of tasks is CPU spent under the GIL.
"""

from __future__ import annotations

import copy
import functools
import json

from pydantic import BaseModel


@functools.cache
def _schema(model: type[BaseModel]) -> dict:
    return model.model_json_schema()


def json_schema(model: type[BaseModel]) -> dict:
    """The model's JSON schema: a copy, since callers such as litellm may change what they are given."""
    return copy.deepcopy(_schema(model))


@functools.cache
def json_schema_text(model: type[BaseModel]) -> str:
    """The model's JSON schema as compact JSON (for prompts)."""
    return json.dumps(_schema(model), separators=(",", ":"))
