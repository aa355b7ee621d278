"""Prompt caching: which calls mark their stable prefix for the provider's cache, and how (pure).

A stage's user message is laid out stable-first (repository context, task, plan) and variable-last
(patch, reports, round feedback); it says where its stable part ends with the key STABLE_CHARS
(characters of its content). The key never reaches a provider: `provider_messages` drops it, and for
an Anthropic-family model in a stage that repeats its prefix splits the message there and marks the
stable part with `cache_control` (Anthropic caches only what is marked). OpenAI, DeepSeek and Gemini
cache repeated prefixes on their own; for them the layout alone is what makes the prefix repeat.
"""

from __future__ import annotations

from typing import Any

from quorum.domain.caching import REPEATING_STAGES, is_anthropic_family, marks_prefix

__all__ = ["REPEATING_STAGES", "STABLE_CHARS", "is_anthropic_family", "marks_prefix", "provider_messages",
           "stable_prefix", "user_message"]  # fmt: skip

STABLE_CHARS = "quorum_stable_chars"
EPHEMERAL = {"type": "ephemeral"}


def user_message(stable: list[str], variable: list[str] | None = None) -> dict[str, Any]:
    """The user message: the stable parts, then the variable ones, separated by blank lines."""
    head = "\n\n".join(stable)
    content = "\n\n".join([head, *variable]) if variable else head
    return {"role": "user", "content": content, STABLE_CHARS: len(head)}


def stable_prefix(messages: list[dict[str, Any]]) -> str:
    """The text every call of this prompt repeats: messages up to the marked one, and its stable part."""
    parts = []
    for message in messages:
        content = str(message.get("content") or "")
        if STABLE_CHARS in message:
            parts.append(content[: message[STABLE_CHARS]])
            break
        parts.append(content)
    return "".join(parts)


def provider_messages(messages: list[dict[str, Any]], *, mark: bool) -> list[dict[str, Any]]:
    """Messages as sent: without STABLE_CHARS; with `mark`, the stable prefix ends at a cache_control breakpoint."""
    sent: list[dict[str, Any]] = []
    for message in messages:
        stable = message.get(STABLE_CHARS)
        clean = {key: value for key, value in message.items() if key != STABLE_CHARS}
        content = clean.get("content")
        if mark and stable and isinstance(content, str):
            blocks = [{"type": "text", "text": content[:stable], "cache_control": EPHEMERAL}]
            if content[stable:]:
                blocks.append({"type": "text", "text": content[stable:]})
            clean["content"] = blocks
            mark = False  # one breakpoint: the first marked message's stable part
        sent.append(clean)
    return sent
