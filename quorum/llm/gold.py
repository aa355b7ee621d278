"""The gold provider: replays a SWE-bench instance's own fix (its gold ``patch``) through the real pipeline.

`quorum validate` runs every task with the shipped `gold` roster (quorum/rosters/gold.yaml):
model strings `gold/<name>`, a litellm custom provider like the scripted one (same
`litellm.completion` path, no key, nothing leaves the machine). Its "script" is a small JSON file
`quorum validate` writes per task, ``{"instance_id": ..., "patch": ...}``:

* plan: a fixed plan saying that the instance's reference patch is replayed;
* implement: the gold patch in a ```diff block (every round);
* review: approve, with no finding.

So what is tested is the task, not a model: its environment builds, its baseline runs, the patch
applies, verification passes and the acceptance tests (test_patch, FAIL_TO_PASS / PASS_TO_PASS)
resolve it. Tokens and cost are simulated like the scripted provider's and labelled as such.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quorum.llm.scripted import ScriptError, ScriptedLLM, render_reply

GOLD_PROVIDER = "gold"


def gold_file(directory: Path, instance_id: str, patch: str) -> Path:
    """Write the file the gold provider replays for one task; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{instance_id}.gold.json"
    path.write_text(json.dumps({"instance_id": instance_id, "patch": patch}), encoding="utf-8")
    return path


def gold_reply(gold: dict[str, Any], stage: str) -> tuple[str, str]:
    """The gold provider's reply for a stage (pure)."""
    patch = str(gold.get("patch") or "")
    if stage == "plan":
        return render_reply({
            "summary": f"Replay the reference patch of {gold.get('instance_id', 'the instance')} (gold validation).",
            "steps": [{"description": "Apply the instance's own fix unchanged.", "files": []}],
            "files_to_change": [], "risks": [],
        })  # fmt: skip
    if stage == "implement":
        if not patch.strip():
            raise ScriptError("the gold file has no patch")
        body = patch if patch.endswith("\n") else patch + "\n"  # never strip: a hunk may end in a blank context line
        return render_reply(f"The instance's reference patch.\n\n```diff\n{body}```\n")
    if stage == "review":
        return render_reply({"verdict": "approve", "summary": "gold validation: the reference patch", "findings": []})
    raise ScriptError(f"the gold provider has no reply for stage {stage!r}")


class GoldLLM(ScriptedLLM):
    """litellm handler for model strings `gold/<name>`."""

    provider = GOLD_PROVIDER

    def reply(self, api_base: str, *, stage: str, model: str, round_no: int, attempt: int) -> tuple[str, str]:
        path = Path(api_base)
        if not path.is_file():
            raise ScriptError(f"gold file {path} does not exist")
        return gold_reply(json.loads(path.read_text(encoding="utf-8")), stage)
