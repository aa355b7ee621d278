"""The litellm path: scripted provider, structured output re-asks, truncation, cost, transient errors."""

from __future__ import annotations

import pytest
import yaml

from quorum.domain.cost import summarize_calls
from quorum.llm.client import (
    MAX_REASK_CHARS,
    ReaskError,
    StructuredOutputError,
    ask_structured,
    complete,
    get_litellm,
    is_transient_error,
)
from quorum.domain.models import Plan
from quorum.domain.roster import StageModel
from quorum.stages.plan import parse_plan

PLANNER = StageModel(model="scripted/claude-sonnet-4-5", priced_as="anthropic/claude-sonnet-4-5")
GOOD_PLAN = {"summary": "do it", "steps": [{"description": "edit a.py", "files": ["a.py"]}]}
MESSAGES = [{"role": "user", "content": "x" * 400}]


def script(tmp_path, plan) -> str:
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump({"plan": plan}))
    return str(path)


def test_scripted_reply_goes_through_litellm_with_simulated_usage_and_real_prices(tmp_path):
    text, call = complete("plan", PLANNER, MESSAGES, script=script(tmp_path, GOOD_PLAN))
    assert parse_plan(text).summary == "do it"
    assert call.simulated and call.priced_as == "anthropic/claude-sonnet-4-5"
    assert call.prompt_tokens == 100  # 400 characters at ~4 per token
    expected = 100 * 3e-06 + call.completion_tokens * 1.5e-05  # claude-sonnet-4-5 list prices in litellm's table
    assert call.cost_usd == pytest.approx(expected)
    assert call.response_text == text and call.messages == MESSAGES


def test_invalid_reply_is_reasked_and_the_bad_attempt_is_still_paid_for(tmp_path):
    plan, calls = ask_structured("plan", PLANNER, MESSAGES, parse_plan, script=script(tmp_path, ["not json at all", GOOD_PLAN]))
    assert isinstance(plan, Plan)
    assert [c.attempt for c in calls] == [1, 2]
    assert "no JSON object" in calls[0].error and calls[1].error == ""
    assert "could not be used" in calls[1].messages[-1]["content"]


def test_a_parser_may_reask_in_its_own_words(tmp_path):
    """A ReaskError's message goes to the model as it is; the call records the short problem."""
    seen: list[str] = []

    def parse(text: str) -> Plan:
        seen.append(text)
        if len(seen) == 1:
            raise ReaskError("hunk #1 of a.py: not found", "Your edit to a.py was refused:\n- hunk #1: not found\n" + "x" * 9000)
        return parse_plan(text)

    plan, calls = ask_structured("plan", PLANNER, MESSAGES, parse, script=script(tmp_path, ["first reply", GOOD_PLAN]))
    assert plan.summary == "do it" and len(seen) == 2
    assert calls[0].error == "hunk #1 of a.py: not found" and calls[0].error_kind == "invalid_output"
    asked = calls[1].messages
    assert asked[:-2] == MESSAGES and asked[-2] == {"role": "assistant", "content": "first reply"}
    assert asked[-1]["content"].startswith("Your edit to a.py was refused:\n- hunk #1: not found\n")
    assert len(asked[-1]["content"]) <= MAX_REASK_CHARS + 1  # capped (with an ellipsis)


def test_truncated_reply_is_reasked(tmp_path):
    truncated = {"text": '{"summary": "do', "finish_reason": "length"}
    plan, calls = ask_structured("plan", PLANNER, MESSAGES, parse_plan, script=script(tmp_path, [truncated, GOOD_PLAN]))
    assert plan.summary == "do it"
    assert "finish_reason='length'" in calls[0].error


def test_bounded_reasks_then_typed_error_with_calls(tmp_path):
    with pytest.raises(StructuredOutputError) as err:
        ask_structured("plan", PLANNER, MESSAGES, parse_plan, script=script(tmp_path, [{"summary": ""}]), max_attempts=2)
    assert len(err.value.calls) == 2
    assert "after 2 attempts" in str(err.value)


def test_script_without_reply_for_the_round_names_it(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"implement": {1: "x"}}))
    implementer = StageModel(model="scripted/deepseek-chat", priced_as="deepseek/deepseek-chat")
    with pytest.raises(Exception, match="no implement reply .* round 2"):
        complete("implement", implementer, MESSAGES, script=str(path), round_no=2)


def test_cost_summary_by_stage_model_and_fresh_vs_cached(tmp_path):
    _, first = complete("plan", PLANNER, MESSAGES, script=script(tmp_path, GOOD_PLAN))
    old = first.model_copy(update={"started_at": 10.0, "stage": "review"})
    summary = summarize_calls([first, old], run_started_at=first.started_at)
    assert summary.total.calls == 2 and summary.total.fresh_calls == 1
    assert summary.by_stage["plan"].cost_usd == pytest.approx(first.cost_usd)
    assert summary.by_model[PLANNER.model].calls == 2
    assert summary.total.cost_usd == pytest.approx(2 * first.cost_usd)
    assert summary.simulated


def test_transient_error_classification():
    litellm = get_litellm()
    assert is_transient_error(litellm.RateLimitError("slow down", llm_provider="openai", model="gpt-5-mini"))
    assert is_transient_error(litellm.Timeout("t", model="gpt-5-mini", llm_provider="openai"))
    assert not is_transient_error(litellm.AuthenticationError("bad key", llm_provider="openai", model="gpt-5-mini"))
    assert not is_transient_error(
        litellm.ContextWindowExceededError("too long", model="gpt-5-mini", llm_provider="openai")
    )
    assert not is_transient_error(ValueError("parse"))
