"""Cache-friendly prompts: stable parts first and byte-identical across rounds and reviewers; Anthropic-family
calls of repeating stages mark the stable prefix with cache_control (checked over HTTP: the fake provider's
explicit cache only caches marked prefixes)."""

from __future__ import annotations

import pytest

from quorum.domain.edit_format import EditFormat
from quorum.domain.models import Finding, Plan, PlanStep, Severity
from quorum.domain.roster import StageModel
from quorum.llm.call_policy import RetryPolicy
from quorum.llm.client import complete
from quorum.llm.prompt_cache import STABLE_CHARS, marks_prefix, provider_messages, stable_prefix
from quorum.stages.implement import build_implement_messages
from quorum.stages.localize import build_localize_messages
from quorum.stages.plan import build_plan_messages
from quorum.stages.review import build_review_messages
from tests.support.fake_provider import FakeProviderConfig, FakeProviderServer, ModelBehaviour, PromptCache

KEY_ENV = "QUORUM_TEST_PROVIDER_KEY"
FAST = RetryPolicy(base_delay_s=0.05, max_delay_s=0.2, attempt_timeout_s=10, deadline_s=30)
TASK = "greet() must say please."
PLAN = Plan(summary="Make greet() polite.", steps=[PlanStep(description="Change the greeting in app/greet.py.")])
CONTEXT = "".join(f'<file path="app/m{n}.py" lines="1-40">\n' + "     1|x = 1\n" * 40 + "</file>\n" for n in range(30))
FINDING = Finding(source="pytest", severity=Severity.high, message="test_greet failed", file="app/greet.py", line=3)


def implement(round_no: int, feedback: list[str], findings: list[Finding]) -> list[dict]:
    return build_implement_messages(TASK, CONTEXT, PLAN, round_no, feedback, findings, edit_format=EditFormat.udiff)


def test_the_implementers_prefix_is_byte_identical_across_rounds_and_feedback_comes_last():
    rounds = [implement(1, [], []), implement(2, ["tests failed"], [FINDING]), implement(3, ["still failing"], [])]
    prefixes = {stable_prefix(messages) for messages in rounds}
    assert len(prefixes) == 1
    prefix = prefixes.pop()
    assert CONTEXT.strip() in prefix and "<task>\n" in prefix and "<plan>\n" in prefix
    assert prefix.index("<repository>\n") < prefix.index("<task>\n") < prefix.index("<plan>\n")
    for messages in rounds:
        user = messages[-1]
        assert user["content"].startswith(user["content"][: user[STABLE_CHARS]])
    assert "tests failed" in rounds[1][-1]["content"][rounds[1][-1][STABLE_CHARS]:]
    assert rounds[0][-1][STABLE_CHARS] == len(rounds[0][-1]["content"])  # round 1: all of it is stable


def test_the_reviewers_prefix_is_byte_identical_across_reviewers_and_rounds():
    one = build_review_messages(TASK, CONTEXT, PLAN, "--- a/app/greet.py\n+++ b/app/greet.py\n", "pytest: passed")
    two = build_review_messages(TASK, CONTEXT[:500], PLAN, "--- other patch", "pytest: failed - 1 test")
    assert stable_prefix(one) == stable_prefix(two)
    prefix = stable_prefix(one)
    assert "<task>\n" in prefix and "<plan>\n" in prefix and "<patch>\n" not in prefix and "<report>\n" not in prefix
    assert "<repository>\n" not in prefix  # the patched regions change with the patch: after the stable part
    body = one[-1]["content"]
    assert body.index("<plan>\n") < body.index("<repository>\n") < body.index("<patch>\n") < body.index("<report>\n")


def test_plan_and_localize_are_wholly_stable_with_the_repository_before_the_task():
    for messages in (build_plan_messages(TASK, CONTEXT), build_localize_messages(TASK, CONTEXT)):
        user = messages[-1]
        assert user[STABLE_CHARS] == len(user["content"])
        assert user["content"].index("<repository>\n") < user["content"].index("<task>\n")


def test_only_anthropic_family_calls_of_repeating_stages_are_marked():
    assert marks_prefix("implement", "anthropic/claude-sonnet-4-5") and marks_prefix("review", "anthropic/claude-haiku-4-5")
    assert marks_prefix("review", "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0")
    assert not marks_prefix("plan", "anthropic/claude-sonnet-4-5")  # once per task: a cache write would not pay back
    assert not marks_prefix("implement", "openai/gpt-5-mini") and not marks_prefix("review", "gemini/gemini-2.5-flash")
    messages = implement(2, ["tests failed"], [FINDING])
    plain = provider_messages(messages, mark=False)
    assert all(STABLE_CHARS not in m for m in plain) and plain[-1]["content"] == messages[-1]["content"]
    marked = provider_messages(messages, mark=True)
    stable, variable = marked[-1]["content"]
    assert stable["cache_control"] == {"type": "ephemeral"} and "cache_control" not in variable
    assert stable["text"] + variable["text"] == messages[-1]["content"]
    assert marked[0] == {"role": "system", "content": messages[0]["content"]}


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "test-key-not-secret-0001")
    behaviour = ModelBehaviour(reply="done", prompt_cache=PromptCache(mode="explicit"))
    with FakeProviderServer(FakeProviderConfig(models={"claude-sonnet-4-5": behaviour})) as server:
        yield server


def test_anthropic_implementer_rounds_read_the_prefix_round_one_wrote(fake):
    model = StageModel(model="anthropic/claude-sonnet-4-5", api_base=fake.base_url, api_key_env=KEY_ENV, max_tokens=64)
    _, first = complete("implement", model, implement(1, [], []), policy=FAST)
    _, second = complete("implement", model, implement(2, ["tests failed"], [FINDING]), round_no=2, policy=FAST)
    assert first.cache_write_tokens > 2000 and first.cached_tokens == 0
    assert second.cached_tokens == first.cache_write_tokens and second.cache_write_tokens == 0
    assert second.cost_usd < first.cost_usd
    # the planner's single call is not marked: nothing written, nothing read
    _, plan_call = complete("plan", model, build_plan_messages(TASK, CONTEXT), policy=FAST)
    _, again = complete("plan", model, build_plan_messages(TASK, CONTEXT), policy=FAST)
    assert plan_call.cache_write_tokens == again.cached_tokens == 0
