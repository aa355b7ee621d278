"""Native structured outputs where litellm says a model supports them, prompt-and-parse elsewhere; re-asks remain.

Over real HTTP (litellm -> the fake provider server), whose models can honour or ignore the structured-output
request each API carries (OpenAI/DeepSeek response_format, Anthropic output_format, Gemini response_mime_type),
and write malformed JSON when nothing constrains them.
"""

from __future__ import annotations

import json

import pytest

from quorum.domain.manifest import TaskSpec
from quorum.domain.models import Plan, Review
from quorum.domain.roster import StageModel
from quorum.llm.call_policy import RetryPolicy
from quorum.llm.client import StructuredOutputError, ask_structured, get_litellm, response_format, structured_mode
from quorum.stages.plan import parse_plan, run_plan
from quorum.stages.review import parse_review, run_review
from tests.support.fake_provider import FakeProviderConfig, FakeProviderServer, ModelBehaviour

KEY_ENV = "QUORUM_TEST_PROVIDER_KEY"
FAST = RetryPolicy(base_delay_s=0.05, max_delay_s=0.2, attempt_timeout_s=10, deadline_s=30)
PLAN = {"summary": "do it", "steps": [{"description": "edit a.py", "files": ["a.py"]}]}
MESSAGES = [{"role": "user", "content": "Plan the change."}]
APIS = ["openai/gpt-5-mini", "anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash", "deepseek/deepseek-chat"]


@pytest.fixture(scope="module")
def server():
    with FakeProviderServer(FakeProviderConfig()) as fake:
        yield fake


@pytest.fixture
def fake(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "test-key-not-secret-0001")
    return server


def serve(fake: FakeProviderServer, name: str, reply: str = json.dumps(PLAN), **behaviour) -> None:
    fake.reconfigure(FakeProviderConfig(models={name.partition("/")[2]: ModelBehaviour(reply=reply, **behaviour)}))


def model(fake: FakeProviderServer, name: str, **fields) -> StageModel:
    return StageModel(model=name, api_base=fake.base_url, api_key_env=KEY_ENV, max_tokens=256, **fields)


def counts(fake: FakeProviderServer, name: str) -> dict:
    return fake.stats()["models"][name.partition("/")[2]]


@pytest.mark.parametrize("name", APIS)
def test_native_mode_needs_no_reask_where_text_mode_gets_malformed_json(fake, name):
    serve(fake, name, free_text_json="malformed", response_format="honour")
    plan, calls = ask_structured("plan", model(fake, name), MESSAGES, parse_plan, policy=FAST, schema=Plan)
    assert plan.summary == "do it"
    assert len(calls) == 1 and calls[0].structured_output == "native" and calls[0].error == ""
    assert counts(fake, name)["structured_requests"] == 1


@pytest.mark.parametrize("name", APIS)
def test_an_ignored_response_format_behaves_as_today_reasked_then_given_up(fake, name):
    serve(fake, name, free_text_json="malformed", response_format="ignore")
    with pytest.raises(StructuredOutputError) as caught:
        ask_structured("plan", model(fake, name), MESSAGES, parse_plan, policy=FAST, schema=Plan)
    calls = caught.value.calls
    assert len(calls) == 3 and all(c.error_kind == "invalid_output" for c in calls)
    assert counts(fake, name)["free_text_requests"] == 3


def test_an_ignored_response_format_still_recovers_by_reasking(fake):
    name = "openai/gpt-5-mini"
    serve(fake, name, response_format="ignore", faults=["invalid_json"])
    plan, calls = ask_structured("plan", model(fake, name), MESSAGES, parse_plan, policy=FAST, schema=Plan)
    assert plan.summary == "do it" and [c.error_kind for c in calls] == ["invalid_output", ""]
    assert "could not be used" in calls[1].messages[-1]["content"]


def test_the_roster_can_keep_a_model_on_prompt_and_parse(fake):
    name = "openai/gpt-5-mini"
    serve(fake, name, free_text_json="malformed")
    with pytest.raises(StructuredOutputError) as caught:
        ask_structured("plan", model(fake, name, structured_output="prompt"), MESSAGES, parse_plan, policy=FAST,
                       schema=Plan)  # fmt: skip
    assert [c.structured_output for c in caught.value.calls] == ["prompt"] * 3
    assert counts(fake, name)["free_text_requests"] == 3 and "structured_requests" not in counts(fake, name)


def test_without_a_schema_nothing_is_asked_natively(fake):
    name = "gemini/gemini-2.5-flash"
    serve(fake, name)
    _, calls = ask_structured("plan", model(fake, name), MESSAGES, parse_plan, policy=FAST)
    assert calls[0].structured_output == "" and counts(fake, name)["free_text_requests"] == 1


def test_which_models_go_native_and_in_what_form():
    litellm = get_litellm()
    scripted = StageModel(model="scripted/claude-sonnet-4-5", priced_as="anthropic/claude-sonnet-4-5")
    assert structured_mode(litellm, scripted, Plan) == "prompt"  # a script has its replies already
    assert structured_mode(litellm, StageModel(model="openai/gpt-5-mini"), Plan) == "native"
    assert structured_mode(litellm, StageModel(model="openai/gpt-5-mini"), None) == ""
    assert structured_mode(litellm, StageModel(model="ollama/llama2"), Plan) == "prompt"  # litellm: no schema support
    wanted = response_format(StageModel(model="openai/gpt-5-mini"), Review)
    assert wanted["json_schema"]["name"] == "Review" and wanted["json_schema"]["schema"] == Review.model_json_schema()
    assert response_format(StageModel(model="deepseek/deepseek-chat"), Review) == {"type": "json_object"}


def test_the_plan_and_review_stages_ask_with_their_schemas(fake, tmp_path):
    spec = TaskSpec(id="t", repo=str(tmp_path), task="Make it polite.")
    name = "anthropic/claude-sonnet-4-5"
    serve(fake, name, free_text_json="malformed")
    planned = run_plan(spec, model(fake, name), "")
    assert planned.plan.summary == "do it" and [c.structured_output for c in planned.calls] == ["native"]
    review = {"verdict": "approve", "summary": "fine", "findings": []}
    serve(fake, "openai/gpt-5-mini", reply=json.dumps(review), free_text_json="malformed")
    result = run_review(spec, model(fake, "openai/gpt-5-mini"), "", planned.plan, "diff", "report", 1)
    assert result.review.verdict == "approve" and len(result.calls) == 1
    assert parse_review(json.dumps(review)).verdict == "approve"
