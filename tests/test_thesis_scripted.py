"""The scripted provider's per-model overlay: one script serves several rosters (quorum compare)."""

from __future__ import annotations

import pytest

from quorum.llm.scripted import ScriptError, select_reply

SCRIPT = {
    "plan": {"summary": "shared plan", "steps": [{"description": "s"}]},
    "implement": {1: "shared round 1", 2: "shared round 2"},
    "review": {"scripted/a": {1: {"verdict": "approve", "findings": []}}},
    "by_model": {
        "scripted/cheap": {
            "plan": "cheap plan",
            "implement": {1: "cheap round 1"},
            "review": {2: "cheap review round 2"},
        },
    },
}


def reply(stage: str, model: str, round_no: int = 1) -> str:
    return select_reply(SCRIPT, stage=stage, model=model, round_no=round_no, attempt=1)[0]


def test_models_without_an_overlay_get_the_shared_replies():
    assert '"shared plan"' in reply("plan", "scripted/premium")
    assert reply("implement", "scripted/premium", 2) == "shared round 2"
    assert '"approve"' in reply("review", "scripted/a")


def test_an_overlay_replaces_a_stage_for_its_model_only():
    assert reply("plan", "scripted/cheap") == "cheap plan"
    assert reply("implement", "scripted/cheap") == "cheap round 1"
    assert reply("review", "scripted/cheap", 2) == "cheap review round 2"
    with pytest.raises(ScriptError, match="round 2"):  # the overlay's stage is the whole stage, not merged
        reply("implement", "scripted/cheap", 2)


def test_a_malformed_overlay_is_named():
    with pytest.raises(ScriptError, match="by_model entry"):
        select_reply({"plan": "p", "by_model": {"scripted/x": "oops"}}, stage="plan", model="scripted/x",
                     round_no=1, attempt=1)  # fmt: skip
