"""build.py with a replaceable runner: plan purity, minimal environment, locking, failures, eviction.

These tests use a fake runner (no uv, no network); test_integration.py builds for real.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path


from quorum.environments.build import BuildLimits, ensure_environment, evict, plan_build, using_environment
from quorum.environments.requirements import EnvironmentSpec
from quorum.environments.runner import Command, CommandResult, run_local

COUNTER: Path | None = None  # set before forking; the fake runner appends one line per install


def make_spec(reqs=("attrs",)) -> EnvironmentSpec:
    return EnvironmentSpec(python_version="3.11.7", python_path="/usr/bin/python3", requirements=list(reqs))


def fake_runner(cmd: Command) -> CommandResult:
    res = CommandResult(name=cmd.name, argv=cmd.argv, returncode=0, duration_s=0.01)
    if cmd.name == "venv":
        venv = Path(cmd.argv[-1])
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").write_text("#!/bin/false\n")
        (venv / "lib").mkdir()
    elif cmd.name == "install":
        reqs = Path(cmd.cwd, "requirements.txt").read_text()
        if "does-not-exist" in reqs:
            res.returncode = 1
            res.stderr = "error: No solution found: does-not-exist was not found in the package registry"
            return res
        time.sleep(float(os.environ.get("FAKE_INSTALL_S", "0")))
        if COUNTER is not None:
            with open(COUNTER, "a") as f:
                f.write(f"{os.getpid()}\n")
    elif cmd.name == "freeze":
        res.stdout = "attrs==23.1.0\n"
    return res


def test_plan_is_pure_with_a_minimal_environment(tmp_path):
    source = {"OPENAI_API_KEY": "sk-x", "AWS_SECRET_ACCESS_KEY": "y", "PREFECT_API_URL": "http://p", "PYTHONPATH": "/work/main",
              "UV_INDEX_URL": "https://mirror.example/simple", "PIP_EXTRA_INDEX_URL": "https://extra.example/simple",
              "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt", "HOME": "/root"}
    plan = plan_build(make_spec(), tmp_path, uv="/opt/uv/bin/uv", source_env=source, staging_name="fixed")
    assert not any(tmp_path.iterdir())  # planning touched nothing
    for cmd in plan.commands:
        assert set(cmd.env) <= {"PATH", "HOME", "TMPDIR", "UV_CACHE_DIR", "UV_PYTHON_DOWNLOADS", "UV_NO_PROGRESS", "LANG",
                                "LC_ALL", "PYTHONNOUSERSITE", "PYTHONDONTWRITEBYTECODE", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "SSL_CERT_FILE"}
        assert cmd.env["HOME"].startswith(plan.staging_dir)
        assert cmd.env["UV_INDEX_URL"] == "https://mirror.example/simple"
        assert cmd.env["UV_EXTRA_INDEX_URL"] == "https://extra.example/simple"
        assert all(w.startswith(str(tmp_path.resolve())) for w in cmd.writable)
    by = {c.name: c for c in plan.commands}
    assert by["install"].network == "package-index" and by["venv"].network == "none"
    assert by["venv"].argv[:2] == ["/opt/uv/bin/uv", "venv"] and "--relocatable" in by["venv"].argv
    assert plan.requirements_txt == "attrs\n"
    assert plan.final_dir == str(tmp_path.resolve() / make_spec().key)


def test_build_then_reuse(tmp_path):
    r1 = ensure_environment(make_spec(), tmp_path, uv="uv", runner=fake_runner)
    assert r1.status == "built", r1.error
    final = Path(r1.env_dir)
    assert (final / "meta.json").is_file() and (final / "build.log").is_file()
    assert (final / "freeze.txt").read_text() == "attrs==23.1.0\n"
    assert json.loads((final / "spec.json").read_text())["requirements"] == ["attrs"]
    assert not any((tmp_path / ".staging").iterdir())
    r2 = ensure_environment(make_spec(), tmp_path, uv="uv", runner=fake_runner)
    assert r2.status == "reused" and r2.env_dir == r1.env_dir and r2.duration_s < 0.5


def _worker(cache: str, q, barrier) -> None:
    barrier.wait(30)  # all start together
    r = ensure_environment(make_spec(("attrs", "six")), cache, uv="uv", runner=fake_runner)
    q.put((r.status, r.waited_s))


def test_two_processes_never_build_the_same_environment_at_once(tmp_path, monkeypatch):
    global COUNTER
    COUNTER = tmp_path / "installs.txt"
    monkeypatch.setenv("FAKE_INSTALL_S", "1.5")
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_worker, args=(str(tmp_path / "cache"), q, barrier)) for _ in range(3)]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        results = sorted(q.get(timeout=5) for _ in procs)
    finally:
        COUNTER = None
    assert len((tmp_path / "installs.txt").read_text().splitlines()) == 1  # built once
    assert [s for s, _ in results] == ["built", "reused", "reused"]
    assert max(w for s, w in results if s == "reused") > 0.5  # the others waited for it


def test_failed_build_is_env_error_with_log_and_nothing_published(tmp_path):
    r = ensure_environment(make_spec(("does-not-exist==1.0",)), tmp_path, uv="uv", runner=fake_runner)
    assert r.status == "env_error" and not r.ok
    assert r.error.startswith("install failed")
    assert "does-not-exist was not found" in r.log
    assert not (tmp_path / make_spec(("does-not-exist==1.0",)).key).exists()
    rec = json.loads(Path(r.log_path).read_text())
    assert "does-not-exist" in rec["log"]
    assert not any((tmp_path / ".staging").iterdir())
    again = ensure_environment(make_spec(("does-not-exist==1.0",)), tmp_path, uv="uv", runner=fake_runner, failure_ttl_s=60)
    assert again.status == "env_error" and again.duration_s < 0.5  # recent failure reused, not rebuilt


def test_build_timeout_kills_and_fails(tmp_path):
    def slow_runner(cmd: Command) -> CommandResult:
        if cmd.name == "install":
            return run_local(cmd.model_copy(update={"argv": ["sh", "-c", "sleep 30 & sleep 30"]}))
        return fake_runner(cmd)

    started = time.monotonic()
    r = ensure_environment(make_spec(("slow",)), tmp_path, uv="uv", runner=slow_runner, limits=BuildLimits(timeout_s=1.5))
    assert time.monotonic() - started < 10
    assert r.status == "env_error" and "timed out" in r.error


def test_size_limit(tmp_path):
    r = ensure_environment(make_spec(("big",)), tmp_path, uv="uv", runner=fake_runner, limits=BuildLimits(max_env_bytes=1))
    assert r.status == "env_error" and "over the" in r.error


def test_eviction_by_age_and_size_skips_environments_in_use(tmp_path):
    a = ensure_environment(make_spec(("a",)), tmp_path, uv="uv", runner=fake_runner)
    b = ensure_environment(make_spec(("b",)), tmp_path, uv="uv", runner=fake_runner)
    c = ensure_environment(make_spec(("c",)), tmp_path, uv="uv", runner=fake_runner)
    old = time.time() - 30 * 86400
    os.utime(Path(a.env_dir) / "last_used", (old, old))
    rep = evict(tmp_path, max_age_s=7 * 86400)
    assert rep.removed == [a.key] and not Path(a.env_dir).exists()
    with using_environment(tmp_path, b.key):
        rep = evict(tmp_path, max_total_bytes=0)
    assert rep.skipped_in_use == [b.key] and rep.removed == [c.key]
    assert Path(b.env_dir).exists() and not Path(c.env_dir).exists()
    assert ensure_environment(make_spec(("c",)), tmp_path, uv="uv", runner=fake_runner).status == "built"
