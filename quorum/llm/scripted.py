"""The scripted provider: a litellm custom provider whose replies come from a task's script file.

It stands in for hosted models offline and goes through the same `litellm.completion` path as a
real model. The script file is passed as `api_base`; the stage, round and attempt arrive in the
call's metadata. Token counts are estimated from text length (about four characters per token),
so costs computed from them are simulated and labelled as such wherever they are shown.

Script format (YAML), every reply being what a model would return as text (a mapping is sent as JSON):

    localize: {edit_files: [...], read_files: [...], symbols: [...]}   # or a string
    plan: {summary: ..., steps: [...]}          # or a string
    implement: {1: "reply with a ```diff block", 2: ...}
    review: {scripted/gpt-5-mini: {1: {verdict: approve, findings: []}}}

Any reply may instead be a list (one reply per attempt, the last repeating), or a mapping
`{text: "...", finish_reason: length}` to simulate a truncated reply.

One script can serve several rosters (``quorum compare``): under ``by_model``, a model string maps
to stages of its own, which replace the shared ones for that model only:

    by_model:
      scripted/gemini-2.5-flash:
        plan: {summary: ..., steps: [...]}
        implement: {1: "...", 2: "..."}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from litellm import CustomLLM
from litellm.types.utils import ModelResponse, Usage

from quorum.domain.tokens import CHARS_PER_TOKEN



class ScriptError(ValueError):
    """The script has no usable reply for this call."""


def load_script(path: str | Path) -> dict[str, Any]:
    script_path = Path(path)
    if not script_path.is_file():
        raise ScriptError(f"script file {script_path} does not exist")
    data = yaml.safe_load(script_path.read_text())
    if not isinstance(data, dict):
        raise ScriptError(f"script file {script_path} must be a mapping of stage -> replies")
    return data


def select_reply(script: dict[str, Any], *, stage: str, model: str, round_no: int, attempt: int) -> tuple[str, str]:
    """Pick the scripted reply for one call; returns (text, finish_reason).

    A stage under ``by_model[model]`` wins over the shared stage of that name (reviews there are
    keyed by round only: the model is already chosen).
    """
    overlay = (script.get("by_model") or {}).get(model)
    if overlay is not None and not isinstance(overlay, dict):
        raise ScriptError(f"script's by_model entry for {model!r} must be a mapping of stage -> replies")
    if overlay and stage in overlay:
        script = {stage: {model: overlay[stage]} if stage == "review" else overlay[stage]}
    if stage not in script:
        raise ScriptError(f"script has no replies for stage {stage!r}")
    entry = script[stage]
    if stage == "review":
        if not isinstance(entry, dict) or model not in entry:
            raise ScriptError(f"script has no review replies for reviewer {model!r}")
        entry = entry[model]
    if stage in {"implement", "review"}:
        if not isinstance(entry, dict) or round_no not in entry:
            raise ScriptError(f"script has no {stage} reply for {model!r} in round {round_no}")
        entry = entry[round_no]
    if isinstance(entry, list):
        if not entry:
            raise ScriptError(f"script has an empty reply list for stage {stage!r}")
        entry = entry[min(attempt, len(entry)) - 1]
    return render_reply(entry)


def render_reply(entry: Any) -> tuple[str, str]:
    if isinstance(entry, str):
        return entry, "stop"
    if isinstance(entry, dict) and "text" in entry and set(entry) <= {"text", "finish_reason"}:
        return str(entry["text"]), str(entry.get("finish_reason", "stop"))
    return json.dumps(entry, indent=2, sort_keys=False), "stop"


def estimate_tokens(text: str) -> int:
    return max(1, (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN)


class ScriptedLLM(CustomLLM):
    """litellm handler for model strings `scripted/<name>`."""

    provider = "scripted"

    def reply(self, api_base: str, *, stage: str, model: str, round_no: int, attempt: int) -> tuple[str, str]:
        """(text, finish_reason) for one call; ``api_base`` is the task's script file."""
        return select_reply(load_script(api_base), stage=stage, model=model, round_no=round_no, attempt=attempt)

    def completion(self, model: str, messages: list, api_base: str | None, custom_prompt_dict: dict,
                   model_response: ModelResponse, print_verbose: Any, encoding: Any, api_key: Any,
                   logging_obj: Any, optional_params: dict, acompletion: Any = None, litellm_params: Any = None,
                   logger_fn: Any = None, headers: dict | None = None, timeout: Any = None,
                   client: Any = None) -> ModelResponse:  # fmt: skip
        metadata = (litellm_params or {}).get("metadata") or {}
        if not api_base:
            raise ScriptError(f"{self.provider}/{model}: no script file given (api_base)")
        text, finish_reason = self.reply(
            api_base,
            stage=str(metadata.get("quorum_stage", "")),
            model=f"{self.provider}/{model}",
            round_no=int(metadata.get("quorum_round", 1)),
            attempt=int(metadata.get("quorum_attempt", 1)),
        )
        prompt_text = "".join(str(m.get("content", "")) for m in messages)
        prompt_tokens = estimate_tokens(prompt_text)
        completion_tokens = estimate_tokens(text)
        model_response.choices[0].message.content = text  # type: ignore[union-attr]
        model_response.choices[0].finish_reason = finish_reason
        model_response.model = f"scripted/{model}"
        model_response.usage = Usage(  # type: ignore[attr-defined]
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )
        return model_response
