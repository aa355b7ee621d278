"""The fake provider's decisions, with no I/O: admit or refuse a request, pick its fault, size its usage.

One `ModelState` per model name holds the caps' state (in-flight count, request and token buckets),
a seeded random generator and the counters. The server calls `admit` when a request arrives and
`release` when its reply has been sent (or the client gave up); time is passed in, so the logic is
testable without sleeping.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from collections import Counter, deque
from dataclasses import dataclass, field

from tests.support.fake_provider.config import PERMANENT_FAULTS, Fault, Latency, ModelBehaviour, PromptCache

CHARS_PER_TOKEN = 4
LOG_LENGTH = 10_000
CACHED_PROMPTS = 64  # automatic caching: recent prompts a new one may share a prefix with
INVALID_JSON_REPLY = 'Here is my answer: {"summary": "unfinished, "steps": ['


def estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


class TokenBucket:
    """Capacity `capacity`, refilled continuously at `capacity / 60` per second (a per-minute limit)."""

    def __init__(self, capacity: float, now: float):
        self.capacity = float(capacity)
        self.refill_per_s = self.capacity / 60.0
        self.level = self.capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.refill_per_s)
        self.updated = now

    def wait_s(self, amount: float, now: float) -> float:
        """Seconds until `amount` can be taken (0 when it can be taken now)."""
        self._refill(now)
        amount = min(amount, self.capacity)
        missing = amount - self.level
        return 0.0 if missing <= 1e-9 else missing / self.refill_per_s

    def take(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level -= min(amount, self.capacity)


@dataclass(frozen=True)
class ProviderRequest:
    """What the server understood of one request, whatever API it came in."""

    api: str  # "openai", "anthropic" or "gemini"
    model: str
    prompt: str
    max_tokens: int
    api_key: str = field(default="", repr=False)
    cache_points: tuple[int, ...] = ()  # Anthropic: characters of `prompt` up to each cache_control breakpoint
    response_format: dict | None = None  # the structured output asked for (None: free text)


@dataclass(frozen=True)
class Outcome:
    """What to answer: a reply (possibly truncated or invalid), an error of kind `fault`, or nothing (hang)."""

    fault: Fault
    latency_s: float = 0.0
    retry_after_s: float | None = None
    limited_by: str = ""  # for 429: concurrency, rpm, tpm or scripted
    text: str = ""
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, read from the prompt cache
    cache_write_tokens: int = 0  # of prompt_tokens, written to the prompt cache
    reports_cache: bool = False  # the model has a prompt cache: usage carries its figures
    admitted: bool = False  # holds an in-flight slot until released

    @property
    def hangs(self) -> bool:
        return self.fault is Fault.hang


def sample_latency(latency: Latency, rng: random.Random) -> float:
    if latency.kind == "uniform":
        return rng.uniform(latency.low, latency.high)
    if latency.kind == "lognormal":
        return 0.0 if latency.seconds <= 0 else rng.lognormvariate(math.log(latency.seconds), latency.sigma)
    return latency.seconds


class PrefixCache:
    """One model's prompt cache (see PromptCache): which input prefixes are cached, until when."""

    def __init__(self, config: PromptCache):
        self.config = config
        self.prefixes: dict[str, float] = {}  # explicit: digest of a breakpoint's prefix -> expiry
        self.prompts: deque[tuple[str, float]] = deque(maxlen=CACHED_PROMPTS)  # automatic: (prompt, expiry)

    def use(self, prompt: str, points: tuple[int, ...], now: float) -> tuple[int, int]:
        """(cached, written) tokens of this request's input; the cache then holds its prefixes."""
        if self.config.mode == "explicit":
            return self._explicit(prompt, points, now)
        return self._automatic(prompt, now), 0

    def _tokens(self, chars: int) -> int:
        return chars // CHARS_PER_TOKEN

    def _automatic(self, prompt: str, now: float) -> int:
        live = [(text, expiry) for text, expiry in self.prompts if expiry > now]
        shared = max((len(os.path.commonprefix([text, prompt])) for text, _ in live), default=0)
        self.prompts.clear()
        self.prompts.extend(live)
        self.prompts.append((prompt, now + self.config.ttl_s))
        block = self.config.block_tokens
        tokens = self._tokens(shared) // block * block
        return tokens if tokens >= self.config.min_tokens else 0

    def _explicit(self, prompt: str, points: tuple[int, ...], now: float) -> tuple[int, int]:
        eligible = [p for p in sorted(set(points)) if self._tokens(p) >= self.config.min_tokens]
        digests = {p: hashlib.sha256(prompt[:p].encode()).hexdigest() for p in eligible}
        read = max((self._tokens(p) for p in eligible if self.prefixes.get(digests[p], 0.0) > now), default=0)
        written = self._tokens(eligible[-1]) - read if eligible and self._tokens(eligible[-1]) > read else 0
        for digest in digests.values():
            self.prefixes[digest] = now + self.config.ttl_s  # written or refreshed
        return read, written


STAT_BY_FAULT = {
    Fault.ok: "ok",
    Fault.rate_limit: "rate_limited",
    Fault.server_error: "server_errors",
    Fault.overloaded: "server_errors",
    Fault.hang: "hangs",
    Fault.truncate: "truncated",
    Fault.invalid_json: "invalid_json",
    Fault.auth: "auth_errors",
    Fault.context_length: "context_length_errors",
    Fault.content_filter: "content_filtered",
}


class ModelState:
    """Caps, faults and counters of one model. Not thread-safe: the server calls it from one event loop."""

    def __init__(self, model: str, behaviour: ModelBehaviour, seed: int, now: float):
        self.model = model
        self.behaviour = behaviour
        self.rng = random.Random(f"{seed}/{model}")
        self.in_flight = 0
        self.max_in_flight = 0
        self.scripted_index = 0
        self.cache = PrefixCache(behaviour.prompt_cache) if behaviour.prompt_cache else None
        self.request_bucket = TokenBucket(behaviour.rpm, now) if behaviour.rpm else None
        self.token_bucket = TokenBucket(behaviour.tpm, now) if behaviour.tpm else None
        self.counts: Counter[str] = Counter()
        self.log: deque[tuple[float, str]] = deque(maxlen=LOG_LENGTH)  # (arrival time, outcome) per request

    def admit(self, request: ProviderRequest, now: float) -> Outcome:
        self.counts["requests"] += 1
        outcome = self._decide(request, now)
        self.log.append((now, outcome.fault.value))
        self.counts[STAT_BY_FAULT[outcome.fault]] += 1
        if outcome.limited_by:
            self.counts[f"rate_limited_{outcome.limited_by}"] += 1
        if outcome.admitted:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.counts["prompt_tokens"] += outcome.prompt_tokens
            self.counts["completion_tokens"] += outcome.completion_tokens
            self.counts["cached_tokens"] += outcome.cached_tokens
            self.counts["cache_write_tokens"] += outcome.cache_write_tokens
        return outcome

    def release(self, outcome: Outcome) -> None:
        if outcome.admitted:
            self.in_flight -= 1

    def stats(self) -> dict[str, int]:
        return {**self.counts, "in_flight": self.in_flight, "max_in_flight": self.max_in_flight}

    def _decide(self, request: ProviderRequest, now: float) -> Outcome:
        behaviour = self.behaviour
        if behaviour.fail_with is not None:
            return Outcome(fault=Fault(behaviour.fail_with.kind))
        scripted = self._next_scripted()
        if scripted in PERMANENT_FAULTS:
            return Outcome(fault=scripted)
        if scripted is Fault.rate_limit:
            return self._rate_limited("scripted", behaviour.retry_after_s)
        refusal = self._refusal(request, now)
        if refusal is not None:
            return refusal
        fault = scripted or self._draw_fault()
        latency = sample_latency(behaviour.latency, self.rng)
        if fault in (Fault.server_error, Fault.overloaded):
            return Outcome(fault=fault, latency_s=latency, admitted=True)
        if fault is Fault.hang:
            return Outcome(fault=fault, admitted=True)
        return self._reply(request, fault, latency, now)

    def _next_scripted(self) -> Fault | None:
        if self.scripted_index < len(self.behaviour.faults):
            self.scripted_index += 1
            return self.behaviour.faults[self.scripted_index - 1]
        return None

    def _refusal(self, request: ProviderRequest, now: float) -> Outcome | None:
        """A 429 when a cap is reached; nothing is taken from any bucket unless all caps admit."""
        behaviour = self.behaviour
        if behaviour.concurrency is not None and self.in_flight >= behaviour.concurrency:
            return self._rate_limited("concurrency", behaviour.retry_after_s)
        charged_tokens = estimate_tokens(request.prompt) + request.max_tokens
        for name, bucket, amount in (("rpm", self.request_bucket, 1), ("tpm", self.token_bucket, charged_tokens)):
            if bucket is not None:
                wait = bucket.wait_s(amount, now)
                if wait > 0:
                    return self._rate_limited(name, wait)
        if self.request_bucket is not None:
            self.request_bucket.take(1, now)
        if self.token_bucket is not None:
            self.token_bucket.take(charged_tokens, now)
        return None

    @staticmethod
    def _rate_limited(limited_by: str, retry_after_s: float) -> Outcome:
        return Outcome(fault=Fault.rate_limit, retry_after_s=retry_after_s, limited_by=limited_by)

    def _draw_fault(self) -> Fault:
        behaviour = self.behaviour
        draw = self.rng.random()
        for fault, rate in (
            (Fault.server_error, behaviour.server_error_rate),
            (Fault.hang, behaviour.hang_rate),
            (Fault.truncate, behaviour.truncate_rate),
            (Fault.invalid_json, behaviour.invalid_json_rate),
        ):
            if draw < rate:
                return fault
            draw -= rate
        return Fault.ok

    def _reply(self, request: ProviderRequest, fault: Fault, latency: float, now: float = 0.0) -> Outcome:
        behaviour = self.behaviour
        text = behaviour.reply_for(request.prompt)
        structured = request.response_format is not None and behaviour.response_format == "honour"
        self.counts["structured_requests" if structured else "free_text_requests"] += 1
        if not structured and behaviour.free_text_json == "malformed":
            text = INVALID_JSON_REPLY
        finish_reason = "stop"
        if fault is Fault.truncate:
            text, finish_reason = text[: max(1, len(text) // 2)], "length"
        elif fault is Fault.invalid_json:
            text = INVALID_JSON_REPLY
        prompt_tokens = behaviour.prompt_tokens if behaviour.prompt_tokens is not None else estimate_tokens(request.prompt)
        completion_tokens = (
            behaviour.completion_tokens if behaviour.completion_tokens is not None else estimate_tokens(text)
        )
        cached = written = 0
        if self.cache is not None:
            cached, written = self.cache.use(request.prompt, request.cache_points, now)
            cached = min(cached, prompt_tokens)
            written = min(written, prompt_tokens - cached)
        return Outcome(
            fault=fault, latency_s=latency, text=text, finish_reason=finish_reason,
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cached_tokens=cached,
            cache_write_tokens=written, reports_cache=self.cache is not None, admitted=True,
        )  # fmt: skip
