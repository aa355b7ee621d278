"""The fake provider server on its own: wire formats, caps answered with 429 + Retry-After, faults, CLI.

Plain HTTP (httpx) here; tests/test_reliability.py drives it through litellm.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.fake_provider import FakeProviderConfig, FakeProviderServer, ModelBehaviour
from tests.support.fake_provider.behaviour import ModelState, ProviderRequest, TokenBucket
from tests.support.fake_provider.config import Latency

ROOT = Path(__file__).resolve().parents[1]


def openai_body(model: str, text: str = "hello", max_tokens: int = 50) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}


@pytest.fixture
def fake():
    with FakeProviderServer(FakeProviderConfig()) as server:
        yield server


def post(server: FakeProviderServer, path: str, body: dict, **kwargs) -> httpx.Response:
    return httpx.post(server.base_url + path, json=body, timeout=kwargs.pop("timeout", 10), **kwargs)


def test_openai_chat_completion_with_canned_reply_and_usage(fake):
    fake.reconfigure(FakeProviderConfig(models={"gpt-5-mini": ModelBehaviour(
        replies=[{"contains": "PLAN-ME", "data": {"summary": "s", "steps": []}}], reply="default reply",
        completion_tokens=7,
    )}))  # fmt: skip
    response = post(fake, "/v1/chat/completions", openai_body("gpt-5-mini", "please PLAN-ME now" * 10))
    body = response.json()
    assert response.status_code == 200 and body["object"] == "chat.completion"
    assert json.loads(body["choices"][0]["message"]["content"]) == {"summary": "s", "steps": []}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 7 and body["usage"]["prompt_tokens"] == 45  # ~chars/4
    other = post(fake, "/chat/completions", openai_body("gpt-5-mini", "something else")).json()
    assert other["choices"][0]["message"]["content"] == "default reply"


def test_anthropic_and_gemini_wire_formats(fake):
    anthropic = post(fake, "/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 10, "system": "be brief",
                                            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
    assert anthropic.status_code == 200
    assert anthropic.json()["content"][0]["text"] == "ok" and anthropic.json()["stop_reason"] == "end_turn"
    gemini = post(fake, "/v1beta/models/gemini-2.5-flash:generateContent",
                  {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    assert gemini.status_code == 200
    assert gemini.json()["candidates"][0]["content"]["parts"][0]["text"] == "ok"
    assert set(fake.stats()["models"]) == {"claude-sonnet-4-5", "gemini-2.5-flash"}


def test_concurrency_cap_is_answered_with_429_and_retry_after(fake):
    fake.reconfigure(FakeProviderConfig(models={"m": ModelBehaviour(latency=0.4, concurrency=1, retry_after_s=1.5)}))
    results: list[httpx.Response] = []
    first = threading.Thread(target=lambda: results.append(post(fake, "/v1/chat/completions", openai_body("m"))))
    first.start()
    time.sleep(0.15)  # the first request is in flight (0.4 s latency)
    second = post(fake, "/v1/chat/completions", openai_body("m"))
    first.join()
    assert results[0].status_code == 200
    assert second.status_code == 429
    assert second.headers["retry-after"] == "2" and second.headers["retry-after-ms"] == "1500"
    assert second.json()["error"]["code"] == "rate_limit_exceeded"
    stats = fake.stats()["models"]["m"]
    assert stats["rate_limited_concurrency"] == 1 and stats["max_in_flight"] == 1 and stats["ok"] == 1


def test_requests_per_minute_cap_says_when_the_bucket_refills(fake):
    fake.reconfigure(FakeProviderConfig(models={"m": ModelBehaviour(rpm=2)}))
    codes = [post(fake, "/v1/chat/completions", openai_body("m")).status_code for _ in range(2)]
    refused = post(fake, "/v1/chat/completions", openai_body("m"))
    assert codes == [200, 200] and refused.status_code == 429
    assert 25 <= float(refused.headers["retry-after-ms"]) / 1000 <= 30  # one request refills in 30 s
    assert fake.stats()["models"]["m"]["rate_limited_rpm"] == 1


@pytest.mark.parametrize(
    ("path", "model", "statuses"),
    [
        ("/v1/chat/completions", "gpt-5", [401, 400, 400, 500, 503, 429, 200]),
        ("/v1/messages", "claude-sonnet-4-5", [401, 400, 400, 500, 529, 429, 200]),
        ("/v1beta/models/gemini-2.5-flash:generateContent", "gemini-2.5-flash", [400, 400, 400, 500, 503, 429, 200]),
    ],
)
def test_scripted_faults_in_order_with_each_providers_status_codes(fake, path, model, statuses):
    faults = ["auth", "context_length", "content_filter", "server_error", "overloaded", "rate_limit", "ok"]
    fake.reconfigure(FakeProviderConfig(models={model: ModelBehaviour(faults=faults)}))
    body = openai_body(model) if "chat" in path else {"model": model, "max_tokens": 5,
                                                       "messages": [{"role": "user", "content": "x"}],
                                                       "contents": [{"parts": [{"text": "x"}]}]}
    got = [post(fake, path, body).status_code for _ in faults]
    assert got == statuses
    counts = fake.stats()["models"][model]
    assert counts["auth_errors"] == counts["context_length_errors"] == counts["content_filtered"] == 1
    assert counts["server_errors"] == 2 and counts["rate_limited"] == 1 and counts["ok"] == 1
    assert [outcome for _, outcome in fake.request_log(model)] == faults


def test_error_messages_echo_the_api_key_only_when_asked(fake):
    fake.reconfigure(FakeProviderConfig(models={
        "echo": ModelBehaviour(fail_with="auth", echo_key_in_errors=True),
        "quiet": ModelBehaviour(fail_with="auth"),
    }))  # fmt: skip
    key = "PLANTED-key-0123456789"
    headers = {"Authorization": f"Bearer {key}"}
    assert key in post(fake, "/v1/chat/completions", openai_body("echo"), headers=headers).text
    assert key not in post(fake, "/v1/chat/completions", openai_body("quiet"), headers=headers).text
    anthropic = post(fake, "/v1/messages", {"model": "echo", "max_tokens": 5, "messages": []}, headers={"x-api-key": key})
    assert anthropic.status_code == 401 and key in anthropic.text


def test_permanent_error_with_chosen_status_and_message(fake):
    fake.reconfigure(FakeProviderConfig(models={"m": ModelBehaviour(
        fail_with={"kind": "content_filter", "status": 500, "message": "upstream: flagged by the safety filters"})}))
    response = post(fake, "/v1/chat/completions", openai_body("m"))
    assert response.status_code == 500 and "flagged by the safety filters" in response.text


def test_truncation_and_invalid_json(fake):
    fake.reconfigure(FakeProviderConfig(models={"m": ModelBehaviour(faults=["truncate", "invalid_json"],
                                                                     reply='{"summary": "complete"}')}))
    truncated = post(fake, "/v1/chat/completions", openai_body("m")).json()["choices"][0]
    invalid = post(fake, "/v1/chat/completions", openai_body("m")).json()["choices"][0]
    assert truncated["finish_reason"] == "length" and truncated["message"]["content"] == '{"summary":'
    with pytest.raises(json.JSONDecodeError):
        json.loads(invalid["message"]["content"])


def test_a_hang_sends_nothing_and_frees_its_slot_when_the_client_gives_up(fake):
    fake.reconfigure(FakeProviderConfig(models={"m": ModelBehaviour(faults=["hang"], concurrency=1)}))
    with pytest.raises(httpx.ReadTimeout):
        post(fake, "/v1/chat/completions", openai_body("m"), timeout=0.3)
    for _ in range(100):  # the server notices the closed connection
        if fake.stats()["models"]["m"]["in_flight"] == 0:
            break
        time.sleep(0.05)
    assert fake.stats()["models"]["m"]["in_flight"] == 0
    assert post(fake, "/v1/chat/completions", openai_body("m")).status_code == 200


def test_unknown_models_404_when_there_is_no_default(fake):
    fake.reconfigure(FakeProviderConfig(default=None, models={"known": ModelBehaviour()}))
    response = post(fake, "/v1/chat/completions", openai_body("nope"))
    assert response.status_code == 404 and "does not exist" in response.json()["error"]["message"]


def test_stats_endpoints(fake):
    post(fake, "/v1/chat/completions", openai_body("m"))
    assert httpx.get(fake.base_url + "/stats").json()["total"]["requests"] == 1
    (arrival, outcome), = httpx.get(fake.base_url + "/log", params={"model": "m"}).json()["requests"]
    assert outcome == "ok" and arrival <= time.monotonic()  # the machine's monotonic clock
    httpx.post(fake.base_url + "/stats/reset")
    assert fake.stats()["total"].get("requests", 0) == 0 and fake.request_log("m") == []


def test_token_bucket_and_latency_rules():
    bucket = TokenBucket(60, now=0.0)  # 60 per minute: 1 per second
    bucket.take(60, now=0.0)
    assert bucket.wait_s(1, now=0.0) == pytest.approx(1.0)
    assert bucket.wait_s(1, now=1.0) == 0.0
    assert Latency.model_validate(0.5).seconds == 0.5
    state = ModelState("m", ModelBehaviour(tpm=100), seed=0, now=0.0)
    request = ProviderRequest(api="openai", model="m", prompt="x" * 40, max_tokens=80)  # 10 + 80 tokens
    assert state.admit(request, now=0.0).fault.value == "ok"
    refused = state.admit(request, now=0.0)
    assert refused.fault.value == "rate_limit" and refused.limited_by == "tpm"
    assert refused.retry_after_s == pytest.approx(80 * 60 / 100)  # 80 of 90 tokens missing at 100/min


def test_command_line_server_writes_its_url_and_stops_on_sigterm(tmp_path):
    config = tmp_path / "fake.yaml"
    config.write_text(yaml.safe_dump({"models": {"m": {"reply": "from yaml", "latency": 0.01}}}))
    url_file = tmp_path / "url"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_provider", "--config", str(config), "--url-file", str(url_file)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url_file.read_text().strip() == url
        reply = httpx.post(url + "/v1/chat/completions", json=openai_body("m"), timeout=10).json()
        assert reply["choices"][0]["message"]["content"] == "from yaml"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
