"""A fake LLM provider on loopback, speaking the OpenAI, Anthropic and Gemini HTTP APIs.

Test and benchmark infrastructure that exercises litellm's real HTTP path: latency, concurrency
and per-minute caps answered with 429 + Retry-After, 5xx, hangs, truncation, invalid JSON, permanent
errors (auth, context length, content filter) and canned replies, all configured per model.

    python -m tests.support.fake_provider --config fake.yaml --port 8765
"""

from tests.support.fake_provider.config import (
    ErrorMode,
    FakeProviderConfig,
    Fault,
    Latency,
    ModelBehaviour,
    PromptCache,
    ReplyRule,
    load_config,
)
from tests.support.fake_provider.server import FakeProviderServer

__all__ = [
    "ErrorMode",
    "FakeProviderConfig",
    "FakeProviderServer",
    "Fault",
    "Latency",
    "ModelBehaviour",
    "PromptCache",
    "ReplyRule",
    "load_config",
]
