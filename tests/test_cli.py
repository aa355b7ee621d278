"""The command line: help, bad input (exit 2, one clear line, nothing written), and a real demo run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def quorum(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "quorum", *args], cwd=cwd, capture_output=True, text=True, timeout=600,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def quorum_in_process(*args: str, cwd: Path, monkeypatch, capsys, unset: tuple[str, ...] = ()) -> tuple[int, str]:
    """`quorum ARGS` run by `main()` in this process (litellm is imported once, not per test); env restored after."""
    from unittest import mock

    from quorum.cli.main import main

    monkeypatch.chdir(cwd)
    with mock.patch.dict(os.environ):
        for name in unset:
            os.environ.pop(name, None)
        code = main(list(args))
    return code, capsys.readouterr().err


def test_help_lists_commands_and_exit_codes(tmp_path):
    result = quorum("--help", cwd=tmp_path)
    assert result.returncode == 0
    for word in ("batch", "run", "check-roster", "context", "Exit codes"):
        assert word in result.stdout


@pytest.fixture
def manifest(tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "a.py").write_text("x = 1\n")
    (tmp_path / "s.yaml").write_text("plan: {}\n")

    def write(**entry) -> str:
        data = {"batch": "b", "tasks": [{"id": "t", "repo": "repo", "task": "do", "script": "s.yaml", **entry}]}
        (tmp_path / "m.yaml").write_text(yaml.safe_dump(data))
        return str(tmp_path / "m.yaml")

    return write


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda m, t: ["batch", m(repo="nowhere"), "--roster", "scripted"], "repository path"),
        (lambda m, t: ["batch", m(colour="red"), "--roster", "scripted"], "Extra inputs are not permitted"),
        (lambda m, t: ["batch", str(t / "missing.yaml")], "does not exist"),
        (lambda m, t: ["batch", m(), "--roster", "nonexistent"], "unknown roster 'nonexistent'"),
        (lambda m, t: ["batch", m(), "--roster", "scripted", "--store", "gs://bucket/x"], "gs://bucket/x"),
        (lambda m, t: ["batch", m(script=None), "--roster", "scripted"], "have no script"),
        (lambda m, t: ["batch", m(), "--roster", "scripted", "--max-rounds", "0"], "--max-rounds"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, manifest, make_args, message, monkeypatch, capsys):
    args = make_args(manifest, tmp_path)
    args = [a for a in args if a is not None]
    code, stderr = quorum_in_process(*args, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("quorum: error:"), stderr
    assert message in lines[0]
    assert not (tmp_path / ".quorum").exists()


def test_unknown_model_in_roster_file_is_refused(tmp_path, manifest, monkeypatch, capsys):
    roster = {"planner": {"model": "anthropic/claude-nope-9"}, "implementer": {"model": "deepseek/deepseek-chat"},
              "reviewers": [{"model": "openai/gpt-5-mini", "temperature": 1.0}, {"model": "gemini/gemini-2.5-flash"}]}  # fmt: skip
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(roster))
    code, stderr = quorum_in_process(
        "batch", manifest(), "--roster", str(tmp_path / "r.yaml"), cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2
    assert "anthropic/claude-nope-9" in stderr


def test_a_temperature_the_model_refuses_is_refused_before_any_call(tmp_path, manifest, monkeypatch, capsys):
    roster = {"planner": {"model": "anthropic/claude-sonnet-4-5"}, "implementer": {"model": "deepseek/deepseek-chat"},
              "reviewers": [{"model": "openai/gpt-5-mini"}, {"model": "gemini/gemini-2.5-flash"}]}  # fmt: skip
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(roster))
    code, stderr = quorum_in_process(
        "batch", manifest(), "--roster", str(tmp_path / "r.yaml"), cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2 and "openai/gpt-5-mini refuses temperature 0" in stderr
    assert not (tmp_path / ".quorum").exists()


def test_missing_api_key_is_named_before_any_call(tmp_path, manifest, monkeypatch, capsys):
    keys = ("ANTHROPIC_API_KEY", "DEEPSEEK_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
    code, stderr = quorum_in_process(
        "batch", manifest(), "--roster", "default", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys, unset=keys
    )
    assert code == 2
    assert "missing API key" in stderr and "ANTHROPIC_API_KEY" in stderr
    assert not (tmp_path / ".quorum").exists()


@pytest.mark.heavy
def test_demo_batch_from_the_cli_then_warm_rerun_makes_no_calls(prefect_harness, tmp_path):
    """The README's demo command against the session's Prefect server: exit 1 (one escalation), then 0 new calls."""
    from prefect.settings import PREFECT_API_URL

    env = {"PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(tmp_path / "cache")}
    args = ("batch", str(ROOT / "examples/demo.yaml"), "--roster", "scripted", "--store", str(tmp_path / "store"))
    cold = quorum(*args, cwd=tmp_path, env=env)
    assert cold.returncode == 1, cold.stdout + cold.stderr
    for task_id, outcome in (("textkit-slugify", "resolved"), ("filestats-count-lines", "resolved"),
                             ("userdir-permission-cache", "escalated")):  # fmt: skip
        assert any(task_id in line and outcome in line for line in cold.stdout.splitlines()), cold.stdout
    assert "LLM calls this run: 16 made, 0 served from cache" in cold.stdout
    assert "simulated" in cold.stdout
    warm = quorum(*args, cwd=tmp_path, env=env)
    assert warm.returncode == 1
    assert "LLM calls this run: 0 made, 16 served from cache" in warm.stdout
    assert (tmp_path / "store/runs/demo/report.json").is_file()
