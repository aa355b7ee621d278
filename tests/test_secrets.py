"""API keys never leave the process: plant one, make calls that succeed and fail, search every output.

The fake provider echoes the request's API key in its error messages (as some gateways do), and
litellm puts the provider's message into its exception text. Each test first shows the planted key
does reach that raw text, so it would fail if quorum's redaction were removed.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
import yaml

from quorum.llm.call_policy import RetryPolicy
from tests.support.fake_provider import FakeProviderConfig, FakeProviderServer, ModelBehaviour
from quorum.llm.client import LITELLM_LOGGERS, LLMCallError, complete, get_litellm
from quorum.domain.roster import Roster, StageModel

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV = "QUORUM_PLANTED_PROVIDER_AUTH"  # a name that does not look like a key's: only the roster says it is one
FAST = RetryPolicy(base_delay_s=0.05, max_delay_s=0.1, attempt_timeout_s=10, deadline_s=30, max_attempts=2)
MESSAGES = [{"role": "user", "content": "hello"}]


def planted_keys() -> list[str]:
    token = uuid.uuid4().hex
    # One shaped like a real key (caught by shape too), one that only its variable's value gives away.
    return [f"sk-quorum-PLANTED-{token}", f"quorum-PLANTED-{token[:16]}"]


@pytest.fixture
def all_logs_at_debug(caplog):
    """Capture every log record, litellm's own debug logging included (the worst case)."""
    get_litellm()  # configured first: it turns litellm's loggers down to WARNING, which we undo here
    caplog.set_level(logging.DEBUG)
    previous = {name: logging.getLogger(name).level for name in LITELLM_LOGGERS}
    for name in LITELLM_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield caplog
    for name, level in previous.items():
        logging.getLogger(name).setLevel(level)


def model(server: FakeProviderServer, name: str) -> StageModel:
    return StageModel(model=name, api_base=server.base_url, api_key_env=KEY_ENV, max_tokens=32)


@pytest.mark.parametrize("key_index", [0, 1], ids=["sk-shaped", "plain"])
def test_planted_key_is_in_no_exception_record_or_log(monkeypatch, all_logs_at_debug, capsys, key_index):
    key = planted_keys()[key_index]
    monkeypatch.setenv(KEY_ENV, key)
    config = FakeProviderConfig(models={
        "gpt-5-mini": ModelBehaviour(faults=["server_error"], echo_key_in_errors=True, reply="fine"),
        "gpt-5": ModelBehaviour(fail_with="auth", echo_key_in_errors=True),
        "gpt-4o": ModelBehaviour(server_error_rate=1.0, echo_key_in_errors=True),
        "claude-sonnet-4-5": ModelBehaviour(fail_with="auth", echo_key_in_errors=True),
        "gemini-2.5-flash": ModelBehaviour(faults=["rate_limit"], retry_after_s=0.05, echo_key_in_errors=True),
    })  # fmt: skip
    outputs: list[str] = []
    with FakeProviderServer(config) as server:
        for name in ("openai/gpt-5-mini", "gemini/gemini-2.5-flash"):  # fail, retried, then succeed
            text, call = complete("review", model(server, name), MESSAGES, policy=FAST)
            assert call.retries == 1
            outputs += [text, call.model_dump_json(), repr(call)]
        for name in ("openai/gpt-5", "anthropic/claude-sonnet-4-5", "openai/gpt-4o"):  # auth, auth, 5xx to the end
            with pytest.raises(LLMCallError) as err:
                complete("review", model(server, name), MESSAGES, policy=FAST)
            outputs += [str(err.value), repr(err.value), *(c.model_dump_json() for c in err.value.calls)]
            outputs += [str(arg) for arg in err.value.args]
            assert err.value.__cause__ is None and err.value.__context__ is None  # no raw exception chained
        captured = capsys.readouterr()
        outputs += [captured.out, captured.err]
        outputs += [record.getMessage() for record in all_logs_at_debug.records]
        outputs += [str(record.exc_text) for record in all_logs_at_debug.records if record.exc_text]
        everything = "\n".join(outputs)
        assert key not in everything
        assert key[-12:] not in everything  # not even a tail of it
        assert "REDACTED" in everything and "RAW RESPONSE" in everything  # echoed, and litellm's debug log captured

        # Without redaction the key would be there: litellm's own exception carries the echoed key.
        with pytest.raises(Exception) as raw:
            get_litellm().completion(model="openai/gpt-5", api_base=server.base_url, api_key=key,
                                     messages=MESSAGES, num_retries=0, max_retries=0)  # fmt: skip
        assert key in str(raw.value)


# ----- a whole task through the flow, with a roster on the fake provider ------------------------------


def _script() -> dict:
    return yaml.safe_load((ROOT / "examples/textkit/script.yaml").read_text())


def _fake_config() -> FakeProviderConfig:
    script = _script()
    reviews = script["review"]
    return FakeProviderConfig(models={
        # The planner is told to slow down once, a reviewer gets two 5xx: every error echoes the key.
        "claude-sonnet-4-5": ModelBehaviour(faults=["rate_limit"], retry_after_s=0.1, echo_key_in_errors=True,
                                            replies=[{"contains": "planning engineer", "data": script["plan"]}]),
        "deepseek-chat": ModelBehaviour(reply=script["implement"][1], echo_key_in_errors=True),
        "gpt-5-mini": ModelBehaviour(faults=["server_error", "overloaded"], echo_key_in_errors=True,
                                     replies=[{"contains": "independent code reviewer",
                                               "data": reviews["scripted/gpt-5-mini"][1]}]),
        "gemini-2.5-flash": ModelBehaviour(replies=[{"contains": "independent code reviewer",
                                                     "data": reviews["scripted/gemini-2.5-flash"][1]}]),
    })  # fmt: skip


def _roster(base_url: str) -> Roster:
    def at(name: str) -> dict:
        return {"model": name, "api_base": base_url, "api_key_env": KEY_ENV, "max_tokens": 2048}

    return Roster.model_validate({
        "name": "fake-secrets",
        "planner": at("anthropic/claude-sonnet-4-5"),
        "implementer": at("deepseek/deepseek-chat"),
        "reviewers": [{**at("openai/gpt-5-mini"), "temperature": 1.0}, at("gemini/gemini-2.5-flash")],  # its only temperature
        "limits": {"anthropic": {"concurrency": 2}, "openai": {"concurrency": 2}},
    })  # fmt: skip


def _prefect_records(since) -> list[str]:
    """Every log line, artifact and flow run the Prefect server holds from `since` on (all runs of the test)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, LogFilter, LogFilterTimestamp
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # logs are shipped in batches: send what is queued
    texts: list[str] = []
    with get_client(sync_client=True) as client:
        log_filter = LogFilter(timestamp=LogFilterTimestamp(after_=since))
        offset = 0
        while batch := client.read_logs(log_filter, limit=200, offset=offset):
            texts += [log.message for log in batch]
            offset += len(batch)
        texts += [f"{a.key} {a.data} {a.description}" for a in client.read_artifacts(artifact_filter=ArtifactFilter())]
        texts += [run.model_dump_json() for run in client.read_flow_runs()]
    return texts


def _files_containing(folder: Path, needle: bytes) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_planted_key_is_nowhere_after_a_whole_task_flow(prefect_harness, tmp_path, monkeypatch, all_logs_at_debug, capsys):
    from quorum.flows.request import task_request

    from datetime import datetime, timezone

    since = datetime.now(timezone.utc)
    key = planted_keys()[1]  # the plain one: only the variable's value can give it away
    monkeypatch.setenv(KEY_ENV, key)
    store = tmp_path / "store"
    task_text = (ROOT / "examples/textkit/task.md").read_text() + f"\n\n(secrets probe {uuid.uuid4().hex})"
    with FakeProviderServer(_fake_config()) as server:
        state = task_request(
            repo=str(ROOT / "examples/textkit/repo"), task=task_text, task_id="secrets-probe",
            acceptance=str(ROOT / "examples/textkit/acceptance"), roster=_roster(server.base_url),
            store_url=str(store), batch_id="secrets", return_state=True,
        )  # fmt: skip
        stats = server.stats()["models"]
    result = state.result()
    assert result.status.value == "resolved", result.reason
    assert stats["claude-sonnet-4-5"]["rate_limited"] == 1 and stats["gpt-5-mini"]["server_errors"] == 2
    needle = key.encode()
    assert _files_containing(store, needle) == []  # artifacts, reviews, call records, result, report
    assert _files_containing(prefect_harness, needle) == []  # Prefect's persisted task results
    captured = capsys.readouterr()
    everything = [captured.out, captured.err, *(r.getMessage() for r in all_logs_at_debug.records)]
    prefect_records = _prefect_records(since)
    everything += prefect_records
    assert not [text for text in everything if key in text]
    assert any("server_error (500)" in text and "REDACTED" in text for text in prefect_records)  # retries logged
    # The echoed key did reach quorum (3 failed requests) and was redacted in the records it keeps.
    stored_calls = "".join(p.read_text() for p in store.rglob("calls/*.json"))
    assert stored_calls.count("[REDACTED]") >= 3
