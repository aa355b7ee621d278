"""Each failure mode of a hosted model, over real HTTP: quorum.llm.client -> litellm -> the fake provider server.

The same path real models take (litellm's OpenAI, Anthropic and Gemini clients, `api_base` pointing
at the fake server). What the server saw (requests, their arrival times) is the evidence.
"""

from __future__ import annotations

import time

import pytest
import yaml

from quorum.llm.call_policy import ErrorKind, RetryPolicy
from tests.support.fake_provider import FakeProviderConfig, FakeProviderServer, ModelBehaviour
from quorum.llm.client import LLMCallError, StructuredOutputError, ask_structured, complete
from quorum.domain.roster import RosterError, StageModel
from quorum.inputs.rosters import load_roster
from quorum.stages.plan import parse_plan

KEY_ENV = "QUORUM_TEST_PROVIDER_KEY"
FAST = RetryPolicy(base_delay_s=0.05, max_delay_s=0.2, attempt_timeout_s=10, deadline_s=30)
MESSAGES = [{"role": "user", "content": "Plan the change."}]
PLAN = '{"summary": "do it", "steps": [{"description": "edit a.py", "files": ["a.py"]}]}'
APIS = {"openai": "openai/gpt-5-mini", "anthropic": "anthropic/claude-sonnet-4-5", "gemini": "gemini/gemini-2.5-flash"}


@pytest.fixture(scope="module")
def server():
    with FakeProviderServer(FakeProviderConfig()) as fake:
        yield fake


@pytest.fixture
def fake(server, monkeypatch):
    """The module's server, with behaviour set per test via `fake.serve({...})`."""
    monkeypatch.setenv(KEY_ENV, "test-key-not-secret-0001")

    def serve(models: dict[str, ModelBehaviour | dict]) -> FakeProviderServer:
        server.reconfigure(FakeProviderConfig(models=models))
        return server

    server.serve = serve
    return server


def model(fake: FakeProviderServer, name: str, **fields) -> StageModel:
    return StageModel(model=name, api_base=fake.base_url, api_key_env=KEY_ENV, max_tokens=64, **fields)


def requests(fake: FakeProviderServer, model_string: str) -> list[tuple[float, str]]:
    return fake.request_log(model_string.partition("/")[2])


@pytest.mark.parametrize("api", sorted(APIS))
def test_429_is_retried_no_sooner_than_retry_after(fake, api):
    name = APIS[api]
    fake.serve({name.split("/")[1]: ModelBehaviour(faults=["rate_limit"], retry_after_s=1.2, reply="fine")})
    text, call = complete("plan", model(fake, name), MESSAGES, policy=FAST)
    assert text == "fine"
    (first, _), (second, outcome) = requests(fake, name)
    assert outcome == "ok"
    assert second - first >= 1.2  # the server saw the retry no sooner than it asked
    assert call.retries == 1 and call.wait_s >= 1.2
    assert "rate_limit (429)" in call.attempt_errors[0] and "retry-after 1.2s" in call.attempt_errors[0]


def test_5xx_is_retried_then_succeeds(fake):
    fake.serve({"gpt-5-mini": ModelBehaviour(faults=["server_error", "overloaded"], reply="fine")})
    text, call = complete("plan", model(fake, "openai/gpt-5-mini"), MESSAGES, policy=FAST)
    assert text == "fine" and call.retries == 2 and call.error == ""
    assert [outcome for _, outcome in requests(fake, "openai/gpt-5-mini")] == ["server_error", "overloaded", "ok"]
    assert "server_error (500)" in call.attempt_errors[0] and "server_error (503)" in call.attempt_errors[1]


def test_a_provider_that_sends_nothing_is_cut_off_at_the_deadline(fake):
    fake.serve({"gpt-5-mini": ModelBehaviour(hang_rate=1.0)})
    # Each request may wait 60 s for a byte, but the whole call has 1.5 s.
    policy = RetryPolicy(base_delay_s=0.05, max_delay_s=0.1, attempt_timeout_s=60, deadline_s=1.5)
    started = time.monotonic()
    with pytest.raises(LLMCallError) as err:
        complete("plan", model(fake, "openai/gpt-5-mini"), MESSAGES, policy=policy)
    elapsed = time.monotonic() - started
    assert err.value.kind is ErrorKind.timeout
    assert 1.5 <= elapsed < 15  # ended by the deadline, nowhere near the 60 s request timeout
    assert {outcome for _, outcome in requests(fake, "openai/gpt-5-mini")} == {"hang"}
    assert "deadline" in err.value.calls[0].error


def test_hanging_requests_are_retried_within_the_deadline(fake):
    fake.serve({"gpt-5-mini": ModelBehaviour(faults=["hang", "hang"], reply="fine")})
    policy = RetryPolicy(base_delay_s=0.05, max_delay_s=0.1, attempt_timeout_s=0.5, deadline_s=20)
    text, call = complete("plan", model(fake, "openai/gpt-5-mini"), MESSAGES, policy=policy)
    assert text == "fine" and call.retries == 2
    assert all("timeout" in line for line in call.attempt_errors)


def test_truncated_and_invalid_json_replies_are_typed_errors_reasked_until_usable(fake):
    fake.serve({"gpt-5-mini": ModelBehaviour(faults=["truncate", "invalid_json"], reply=PLAN)})
    plan, calls = ask_structured("plan", model(fake, "openai/gpt-5-mini"), MESSAGES, parse_plan, policy=FAST)
    assert plan.summary == "do it"
    assert [c.error_kind for c in calls] == ["truncated", "invalid_output", ""]
    assert calls[0].finish_reason == "length" and "finish_reason='length'" in calls[0].error
    assert "could not be used" in calls[2].messages[-1]["content"]  # the model is told what was wrong
    assert len(requests(fake, "openai/gpt-5-mini")) == 3


def test_reasks_are_bounded(fake):
    fake.serve({"claude-sonnet-4-5": ModelBehaviour(truncate_rate=1.0, reply=PLAN)})
    with pytest.raises(StructuredOutputError) as err:
        ask_structured("plan", model(fake, "anthropic/claude-sonnet-4-5"), MESSAGES, parse_plan, policy=FAST,
                       max_attempts=2)  # fmt: skip
    assert [c.error_kind for c in err.value.calls] == ["truncated", "truncated"]
    assert all(c.cost_usd > 0 for c in err.value.calls)  # truncated replies were still paid for
    assert len(requests(fake, "anthropic/claude-sonnet-4-5")) == 2


PERMANENT = [
    # (model, how the server fails, kind quorum must see)
    ("openai/gpt-5-mini", "auth", ErrorKind.auth),  # 401
    ("anthropic/claude-sonnet-4-5", "auth", ErrorKind.auth),  # 401 authentication_error
    ("gemini/gemini-2.5-flash", "auth", ErrorKind.auth),  # Gemini: 400 "API key not valid"
    ("openai/gpt-5-mini", "context_length", ErrorKind.context_length),
    ("anthropic/claude-sonnet-4-5", "context_length", ErrorKind.context_length),
    ("gemini/gemini-2.5-flash", "context_length", ErrorKind.context_length),
    ("openai/gpt-5-mini", "content_filter", ErrorKind.content_filter),
    ("anthropic/claude-sonnet-4-5", "content_filter", ErrorKind.content_filter),
    ("gemini/gemini-2.5-flash", "content_filter", ErrorKind.content_filter),
    # Plain 400s: no error type or code, only the message says what it is.
    ("openai/gpt-5-mini", {"kind": "auth", "status": 400, "message": "API key not valid. Please pass a valid API key."},
     ErrorKind.auth),
    ("openai/gpt-5-mini", {"kind": "context_length", "status": 400,
                           "message": "prompt is too long: 250000 tokens > 200000 maximum"}, ErrorKind.context_length),
    ("anthropic/claude-sonnet-4-5", {"kind": "content_filter", "status": 400,
                                     "message": "Output blocked by content filtering policy"}, ErrorKind.content_filter),
    # A gateway's 500 wrapping a refusal: a 5xx, yet retrying cannot help.
    ("openai/gpt-5-mini", {"kind": "content_filter", "status": 500,
                           "message": "upstream error: the prompt was flagged by the safety filters"},
     ErrorKind.content_filter),
]  # fmt: skip


@pytest.mark.parametrize(("name", "mode", "kind"), PERMANENT, ids=[f"{m}-{k.value}-{i}" for i, (m, _, k) in enumerate(PERMANENT)])
def test_permanent_errors_are_not_retried(fake, name, mode, kind):
    fake.serve({name.split("/")[1]: ModelBehaviour(fail_with=mode)})
    with pytest.raises(LLMCallError) as err:
        complete("plan", model(fake, name), MESSAGES, policy=FAST)
    assert err.value.kind is kind and not err.value.transient
    assert len(requests(fake, name)) == 1  # exactly one request: no retry
    (call,) = err.value.calls
    assert call.error_kind == kind.value and call.retries == 1 and "not retried" in call.error


def test_fallback_after_the_primary_keeps_failing_is_recorded(fake):
    fake.serve({
        "gpt-5-mini": ModelBehaviour(server_error_rate=1.0),
        "claude-sonnet-4-5": ModelBehaviour(reply="from the fallback"),
    })  # fmt: skip
    stage_model = model(fake, "openai/gpt-5-mini", fallbacks=[model(fake, "anthropic/claude-sonnet-4-5")])
    policy = FAST.model_copy(update={"max_attempts": 3})
    text, call = complete("review", stage_model, MESSAGES, policy=policy)
    assert text == "from the fallback"
    assert call.model == "anthropic/claude-sonnet-4-5" and call.provider == "anthropic"
    assert call.fallback_from == "openai/gpt-5-mini"
    assert call.retries == 3 and all(line.startswith("openai/gpt-5-mini request") for line in call.attempt_errors)
    assert len(requests(fake, "openai/gpt-5-mini")) == 3 and len(requests(fake, "anthropic/claude-sonnet-4-5")) == 1


def test_no_fallback_after_a_permanent_error(fake):
    fake.serve({"gpt-5-mini": ModelBehaviour(fail_with="auth"), "claude-sonnet-4-5": ModelBehaviour()})
    stage_model = model(fake, "openai/gpt-5-mini", fallbacks=[model(fake, "anthropic/claude-sonnet-4-5")])
    with pytest.raises(LLMCallError) as err:
        complete("review", stage_model, MESSAGES, policy=FAST)
    assert err.value.kind is ErrorKind.auth
    assert requests(fake, "anthropic/claude-sonnet-4-5") == []  # a broken key is reported, not papered over


def test_when_every_model_keeps_failing_each_one_is_recorded(fake):
    fake.serve({"gpt-5-mini": ModelBehaviour(server_error_rate=1.0), "claude-sonnet-4-5": ModelBehaviour(
        faults=["rate_limit"] * 5, retry_after_s=0.1)})  # fmt: skip
    stage_model = model(fake, "openai/gpt-5-mini", fallbacks=[model(fake, "anthropic/claude-sonnet-4-5")])
    with pytest.raises(LLMCallError) as err:
        complete("review", stage_model, MESSAGES, policy=FAST.model_copy(update={"max_attempts": 2}))
    assert err.value.transient and err.value.kind is ErrorKind.rate_limit
    assert [(c.model, c.error_kind, c.retries) for c in err.value.calls] == [
        ("openai/gpt-5-mini", "server_error", 2), ("anthropic/claude-sonnet-4-5", "rate_limit", 2)]


def test_fallback_that_breaks_reviewer_independence_is_rejected_at_load_time(tmp_path):
    roster = {
        "planner": {"model": "anthropic/claude-sonnet-4-5"},
        "implementer": {"model": "deepseek/deepseek-chat", "fallbacks": [{"model": "openai/gpt-5-mini"}]},
        "reviewers": [
            {"model": "gemini/gemini-2.5-flash"},
            {"model": "anthropic/claude-haiku-4-5", "fallbacks": [{"model": "deepseek/deepseek-reasoner"}]},
        ],
    }
    path = tmp_path / "roster.yaml"
    path.write_text(yaml.safe_dump(roster))
    with pytest.raises(RosterError) as err:
        load_roster(path)
    message = str(err.value)
    assert "reviewer anthropic/claude-haiku-4-5's fallback deepseek/deepseek-reasoner shares provider 'deepseek'" in message
    assert "implementer deepseek/deepseek-chat" in message
    # The implementer's fallback counts too: a reviewer on its provider is refused.
    roster["reviewers"][1] = {"model": "openai/gpt-5-mini"}
    path.write_text(yaml.safe_dump(roster))
    with pytest.raises(RosterError, match="implementer deepseek/deepseek-chat's fallback openai/gpt-5-mini"):
        load_roster(path)


def test_roster_with_api_base_key_variable_fallbacks_and_limits(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_LLM_URL", "http://127.0.0.1:8765")
    path = tmp_path / "fake.yaml"
    path.write_text("""
planner: {model: anthropic/claude-sonnet-4-5, api_base: "${FAKE_LLM_URL}", api_key_env: FAKE_LLM_KEY}
implementer: {model: deepseek/deepseek-chat, api_base: "${FAKE_LLM_URL}/"}
reviewers:
  - {model: openai/gpt-5-mini, api_base: "${UNSET_FAKE_URL:-http://localhost:9}",
     fallbacks: [{model: openai/gpt-5, api_base: "${FAKE_LLM_URL}"}]}
  - {model: gemini/gemini-2.5-flash}
limits:
  anthropic: {concurrency: 4, rpm: 100}
  openai: {concurrency: 8, tpm: 50000}
default_concurrency: 16
""")
    roster = load_roster(path)
    assert roster.planner.api_base == "http://127.0.0.1:8765" == roster.implementer.api_base
    assert roster.reviewers[0].api_base == "http://localhost:9"
    assert roster.reviewers[0].fallbacks[0].api_base == "http://127.0.0.1:8765"
    limits = roster.provider_limits()
    assert limits["anthropic"].concurrency == 4 and limits["anthropic"].rpm == 100
    assert limits["openai"].tpm == 50000 and limits["deepseek"].concurrency == 16
    with pytest.raises(ValueError, match="NAME of an environment variable"):
        StageModel(model="openai/gpt-5-mini", api_key_env="sk-this-is-a-key-not-a-name")
    monkeypatch.delenv("FAKE_LLM_URL")
    with pytest.raises(RosterError, match=r"\$\{FAKE_LLM_URL\} is not set"):
        load_roster(path)


def test_missing_key_variable_fails_before_any_request(fake, monkeypatch):
    fake.serve({"gpt-5-mini": ModelBehaviour()})
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(LLMCallError, match=f"{KEY_ENV} .* is not set") as err:
        complete("plan", model(fake, "openai/gpt-5-mini"), MESSAGES, policy=FAST)
    assert err.value.kind is ErrorKind.auth and requests(fake, "openai/gpt-5-mini") == []
