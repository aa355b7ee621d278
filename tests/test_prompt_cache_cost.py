"""Cache-aware cost: cached-read and cache-write tokens recorded per call and priced as litellm prices them.

Over real HTTP: quorum.llm.client -> litellm -> the fake provider server, which reports prompt-cache
usage the way each provider does when a prefix repeats within its TTL.
"""

from __future__ import annotations

import pytest

from quorum.domain.cost import merge_summaries, summarize_calls
from quorum.domain.models import LLMCall
from quorum.domain.results import cached_note
from quorum.domain.roster import StageModel
from quorum.llm.call_policy import RetryPolicy
from quorum.llm.client import complete, get_litellm
from quorum.llm.pricing import cache_tokens, litellm_price
from tests.support.fake_provider import FakeProviderConfig, FakeProviderServer, ModelBehaviour, PromptCache
from tests.support.fake_provider.behaviour import PrefixCache

KEY_ENV = "QUORUM_TEST_PROVIDER_KEY"
FAST = RetryPolicy(base_delay_s=0.05, max_delay_s=0.2, attempt_timeout_s=10, deadline_s=30)
STABLE = "The repository, the task and the plan: the same in every round. " * 200  # ~3,200 tokens
AUTOMATIC = {
    "openai/gpt-5-mini": PromptCache(block_tokens=128),
    "deepseek/deepseek-chat": PromptCache(block_tokens=64),
    "gemini/gemini-2.5-flash": PromptCache(),
}


@pytest.fixture(scope="module")
def server():
    with FakeProviderServer(FakeProviderConfig()) as fake:
        yield fake


@pytest.fixture
def fake(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "test-key-not-secret-0001")
    return server


def serve(fake: FakeProviderServer, name: str, cache: PromptCache) -> StageModel:
    fake.reconfigure(FakeProviderConfig(models={name.partition("/")[2]: ModelBehaviour(reply="done", prompt_cache=cache)}))
    return StageModel(model=name, api_base=fake.base_url, api_key_env=KEY_ENV, max_tokens=64)


def messages(variable: str) -> list[dict]:
    return [{"role": "system", "content": "You review code."}, {"role": "user", "content": STABLE + variable}]


def anthropic_messages(variable: str) -> list[dict]:
    return [
        {"role": "system", "content": [{"type": "text", "text": "You review code.", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": [
            {"type": "text", "text": STABLE, "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": variable},
        ]},
    ]  # fmt: skip


@pytest.mark.parametrize("name", sorted(AUTOMATIC))
def test_a_repeated_prefix_is_reported_cached_and_priced_cheaper(fake, name):
    model = serve(fake, name, AUTOMATIC[name])
    _, first = complete("implement", model, messages("round 1 feedback"), policy=FAST)
    _, second = complete("implement", model, messages("round 2: other feedback"), policy=FAST)
    assert first.cached_tokens == 0 and first.cache_write_tokens == 0
    block = AUTOMATIC[name].block_tokens
    assert second.cached_tokens >= 3000 and second.cached_tokens % block == 0
    assert second.cached_tokens < second.prompt_tokens
    assert second.cost_usd < first.cost_usd
    expected = litellm_price(model.pricing_model, second.prompt_tokens, second.completion_tokens, second.cached_tokens)
    assert second.cost_usd == pytest.approx(expected)


def test_anthropic_writes_then_reads_the_marked_prefix(fake):
    model = serve(fake, "anthropic/claude-sonnet-4-5", PromptCache(mode="explicit"))
    _, first = complete("implement", model, anthropic_messages("round 1"), policy=FAST)
    _, second = complete("implement", model, anthropic_messages("round 2, longer feedback"), policy=FAST)
    assert first.cached_tokens == 0 and first.cache_write_tokens >= 3000
    assert second.cached_tokens == first.cache_write_tokens and second.cache_write_tokens == 0
    # prompt_tokens counts every input token, read and written ones included (litellm's normalisation)
    assert first.prompt_tokens > first.cache_write_tokens and second.prompt_tokens > second.cached_tokens


def test_nothing_is_cached_after_the_ttl_or_below_the_minimum():
    cache = PrefixCache(PromptCache(ttl_s=10, min_tokens=1024, block_tokens=128))
    long_prompt = "x" * 8000  # 2,000 tokens
    assert cache.use(long_prompt + "a", (), now=0.0) == (0, 0)
    assert cache.use(long_prompt + "b", (), now=5.0) == (1920, 0)  # 2,000 tokens, in blocks of 128
    assert cache.use(long_prompt + "c", (), now=30.0) == (0, 0)  # expired
    assert cache.use("y" * 2000 + "a", (), now=31.0) == (0, 0)
    assert cache.use("y" * 2000 + "b", (), now=32.0) == (0, 0)  # 500 tokens shared: under the minimum
    explicit = PrefixCache(PromptCache(mode="explicit", ttl_s=10))
    assert explicit.use(long_prompt + "a", (8000,), now=0.0) == (0, 2000)
    assert explicit.use(long_prompt + "b", (8000,), now=1.0) == (2000, 0)
    assert explicit.use(long_prompt + "b", (), now=2.0) == (0, 0)  # no breakpoint: nothing read


@pytest.mark.parametrize("name", [*sorted(AUTOMATIC), "anthropic/claude-sonnet-4-5"])
def test_reported_cost_equals_litellms_completion_cost_for_the_same_reply(fake, name):
    """litellm.completion_cost of the very response equals quorum's price of the usage it records."""
    explicit = name.startswith("anthropic/")
    model = serve(fake, name, PromptCache(mode="explicit") if explicit else AUTOMATIC[name])
    build = anthropic_messages if explicit else messages
    litellm = get_litellm()
    kwargs = {"model": name, "api_base": fake.base_url, "api_key": "test-key-not-secret-0001", "max_tokens": 64}
    responses = [litellm.completion(messages=build(f"round {n}"), **kwargs) for n in (1, 2)]
    for response in responses:
        usage = response.usage
        cached = cache_tokens(usage)
        ours = litellm_price(model.pricing_model, usage.prompt_tokens, usage.completion_tokens, cached.read, cached.write)
        assert ours == pytest.approx(litellm.completion_cost(completion_response=response, model=name), rel=1e-9)
    assert cache_tokens(responses[1].usage).read > 0


def test_a_cached_call_priced_by_hand_from_litellms_table():
    info = get_litellm().get_model_info("anthropic/claude-sonnet-4-5")
    prompt, cached, written, completion = 10_000, 6_000, 3_000, 500
    by_hand = (
        (prompt - cached - written) * info["input_cost_per_token"]
        + cached * info["cache_read_input_token_cost"]
        + written * info["cache_creation_input_token_cost"]
        + completion * info["output_cost_per_token"]
    )
    assert by_hand == pytest.approx(0.02355)  # $3/M in, $0.30/M cached, $3.75/M written, $15/M out
    assert litellm_price("anthropic/claude-sonnet-4-5", prompt, completion, cached, written) == pytest.approx(by_hand)
    uncached = litellm_price("anthropic/claude-sonnet-4-5", prompt, completion)
    assert uncached == pytest.approx(prompt * 3e-6 + completion * 15e-6)


def test_summaries_carry_cached_tokens():
    calls = [
        LLMCall(stage="implement", model="m", provider="p", priced_as="m", simulated=False, started_at=1.0,
                prompt_tokens=1000, cached_tokens=800, cache_write_tokens=0),
        LLMCall(stage="review", model="r", provider="q", priced_as="r", simulated=False, started_at=1.0,
                prompt_tokens=500, cached_tokens=0, cache_write_tokens=400),
    ]  # fmt: skip
    summary = summarize_calls(calls)
    assert summary.total.cached_tokens == 800 and summary.total.cache_write_tokens == 400
    assert summary.by_stage["implement"].cached_tokens == 800 and summary.by_model["r"].cache_write_tokens == 400
    assert merge_summaries([summary, summary]).total.cached_tokens == 1600
    assert cached_note(summary.total) == "800 read from provider prompt caches, 400 written to them"
