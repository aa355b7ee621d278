"""Per-stage model settings the roster carries and litellm passes on: reasoning effort / thinking budget, and
temperatures a model refuses, caught when the roster is loaded (not mid-batch)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from quorum.domain.roster import Roster, RosterError, StageModel
from quorum.inputs.rosters import load_roster
from quorum.llm.call_policy import RetryPolicy
from quorum.llm.client import _request_kwargs, check_roster_models, complete
from tests.support.fake_provider import FakeProviderConfig, FakeProviderServer, ModelBehaviour

KEY_ENV = "QUORUM_TEST_PROVIDER_KEY"


def roster(**planner) -> Roster:
    base = load_roster("default")
    return base.model_copy(update={"planner": StageModel(**{"model": "anthropic/claude-sonnet-4-5", **planner})})


def test_reasoning_settings_are_validated_without_litellm():
    with pytest.raises(ValidationError, match="not both"):
        StageModel(model="openai/gpt-5", temperature=1.0, reasoning_effort="high", thinking_budget_tokens=2048)
    with pytest.raises(ValidationError, match="below max_tokens"):
        StageModel(model="anthropic/claude-sonnet-4-5", temperature=1.0, max_tokens=2048, thinking_budget_tokens=2048)
    with pytest.raises(ValidationError, match="only at temperature 1"):
        StageModel(model="anthropic/claude-sonnet-4-5", temperature=0.0, thinking_budget_tokens=2048)
    with pytest.raises(ValidationError, match="reasoning_effort"):
        StageModel(model="openai/gpt-5", reasoning_effort="extreme")
    thinking = StageModel(model="anthropic/claude-sonnet-4-5", temperature=1.0, thinking_budget_tokens=2048)
    assert thinking.reasoning_params() == {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    effort = StageModel(model="openai/gpt-5", temperature=1.0, reasoning_effort="low")
    assert effort.reasoning_params() == {"reasoning_effort": "low"}
    assert StageModel(model="openai/gpt-4o").reasoning_params() == {}


def test_litellm_is_passed_the_settings():
    model = StageModel(model="anthropic/claude-sonnet-4-5", temperature=1.0, thinking_budget_tokens=2048)
    kwargs = _request_kwargs("plan", model, [{"role": "user", "content": "x"}], None, 1, 1)
    assert kwargs["thinking"] == {"type": "enabled", "budget_tokens": 2048} and kwargs["temperature"] == 1.0
    scripted = StageModel(model="scripted/claude-sonnet-4-5", priced_as="anthropic/claude-sonnet-4-5", temperature=1.0,
                          reasoning_effort="high")  # fmt: skip
    assert "reasoning_effort" not in _request_kwargs("plan", scripted, [], "script.yaml", 1, 1)


def test_a_temperature_the_model_refuses_is_caught_when_the_roster_is_loaded():
    default = load_roster("default")
    check_roster_models(default)  # gpt-5-mini at its only temperature, 1.0
    cold = default.reviewers[0].model_copy(update={"temperature": 0.0})
    with pytest.raises(RosterError, match=r"openai/gpt-5-mini refuses temperature 0.*Only temperature=1"):
        check_roster_models(default.model_copy(update={"reviewers": [cold, default.reviewers[1]]}))
    o_series = StageModel(model="openai/o3-mini", temperature=0.2)
    with pytest.raises(RosterError, match="o3-mini refuses temperature 0.2"):
        check_roster_models(default.model_copy(update={"planner": o_series}))
    with pytest.raises(RosterError, match="gpt-4o does not support reasoning"):
        check_roster_models(default.model_copy(update={"planner": StageModel(model="openai/gpt-4o", reasoning_effort="high")}))
    check_roster_models(roster(temperature=1.0, thinking_budget_tokens=2048))
    check_roster_models(roster(temperature=1.0, reasoning_effort="medium"))
    check_roster_models(load_roster("scripted"))  # scripted models send nothing to a provider


def test_a_thinking_planner_goes_through_litellm_over_http(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "test-key-not-secret-0001")
    with FakeProviderServer(FakeProviderConfig(models={"claude-sonnet-4-5": ModelBehaviour(reply="planned")})) as fake:
        planner = StageModel(model="anthropic/claude-sonnet-4-5", api_base=fake.base_url, api_key_env=KEY_ENV,
                             temperature=1.0, max_tokens=4096, thinking_budget_tokens=2048)  # fmt: skip
        text, call = complete("plan", planner, [{"role": "user", "content": "Plan."}], policy=RetryPolicy(deadline_s=30))
    assert text == "planned" and call.error == ""


def test_settings_follow_the_environment_and_are_built_once_while_it_stays(monkeypatch):
    from quorum.settings import settings

    monkeypatch.setenv("QUORUM_PROVIDER_SLOTS", "prefect")
    first = settings()
    assert first.provider_slots == "prefect"
    assert settings() is first  # no QUORUM_ variable changed: not parsed again
    monkeypatch.setenv("QUORUM_PROVIDER_SLOTS", "pool")
    assert settings().provider_slots == "pool"
    monkeypatch.setenv("quorum_store", "/elsewhere")  # matched case-insensitively, as pydantic-settings does
    assert settings().store == "/elsewhere"
    with pytest.raises(ValidationError):
        settings().store = "x"  # shared between callers, so it cannot be changed by one of them


def test_json_schemas_are_generated_once_and_handed_out_as_copies():
    import json

    from quorum.domain.models import Plan
    from quorum.domain.schemas import json_schema, json_schema_text

    schema = json_schema(Plan)
    assert schema == Plan.model_json_schema()
    schema["properties"].clear()  # what a caller does to its copy stays with it
    assert json_schema(Plan) == Plan.model_json_schema()
    assert json.loads(json_schema_text(Plan)) == Plan.model_json_schema()
    assert json_schema_text(Plan) is json_schema_text(Plan)
