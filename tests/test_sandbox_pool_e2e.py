"""The sandbox work pool end to end (issue 19, item 3), against a real `prefect server start`.

The `quorum-verify/sandbox` deployment from the real prefect.yaml, on the `quorum-sandbox` process
pool, served by a second worker started with an environment that holds no key. The pipeline's
side runs in its own process with a planted model key and QUORUM_VERIFY_DEPLOYMENT set, calls
`verify_round` and `verify_acceptance` (what the pipeline calls), and gets back the same verdicts a
local run gives, while the key never reaches the sandbox worker, its flow runs, or the store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from quorum.domain.models import VerificationStatus
from quorum.sandbox.runner import is_secret_name
from quorum.store import LocalStore
from quorum.verify.bandit import run_bandit
from quorum.verify.pytest_runner import run_pytest
from quorum.verify.semgrep import find_semgrep, run_semgrep
from tests.support.devstack import SANDBOX_POOL, LocalPrefectStack

DEPLOYMENT = "quorum-verify/sandbox"
PLANTED = "sk-ant-planted-e2e-0123456789abcdef"

PIPELINE_SIDE = """
import json, sys
from quorum.domain.models import PatchResult
from quorum.domain.policy import Policy
from quorum.flows.verify import verify_acceptance, verify_round

workspace, acceptance, store = sys.argv[1:4]
patch = PatchResult(applied=True, files=["app.py"], added_lines={"app.py": [1, 2, 3, 4]})
reports = verify_round(workspace, patch, label="e2e", policy=Policy(), store_url=store, prefix="runs/e2e/task/1")
accepted = verify_acceptance(workspace, acceptance, label="e2e", store_url=store, prefix="runs/e2e/task")
print("RESULT " + json.dumps([r.model_dump(mode="json") for r in [*reports, accepted]]))
"""


def keyless(env: dict[str, str]) -> dict[str, str]:
    """The stack's environment without anything that looks like a secret (PREFECT_API_URL is not one)."""
    return {k: v for k, v in env.items() if k == "PREFECT_API_URL" or not (is_secret_name(k) or "KEY" in k.upper())}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("sandbox-stack")
    with LocalPrefectStack(home) as stack:
        stack.prefect("work-pool", "create", SANDBOX_POOL, "--type", "process", "--overwrite")
        stack.prefect("deploy", "--name", "sandbox")  # only the verify deployment of prefect.yaml
        stack.start_worker("sandbox-worker", pool=SANDBOX_POOL, env={**keyless(stack.env), "PREFECT_LOGGING_LEVEL": "INFO"})
        yield stack


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, Path]:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "app.py").write_text(textwrap.dedent("""\
        import subprocess

        def run(cmd):
            return subprocess.call(cmd, shell=True)
    """))
    (ws / "test_app.py").write_text("from app import run\n\ndef test_true():\n    assert run('true') == 0\n")
    acceptance = tmp_path / "acceptance"
    acceptance.mkdir()
    (acceptance / "test_accept.py").write_text("from app import run\n\ndef test_false():\n    assert run('false') == 0\n")
    return ws, acceptance


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode(errors="replace").split("=", 1) for item in raw.split(b"\0") if b"=" in item)


def test_the_pipeline_verifies_on_the_sandbox_pool_and_the_key_stays_behind(stack, workspace, tmp_path: Path) -> None:
    ws, acceptance = workspace
    store = tmp_path / "store"
    env = {**stack.env, "ANTHROPIC_API_KEY": PLANTED, "QUORUM_VERIFY_DEPLOYMENT": DEPLOYMENT}
    done = subprocess.run(
        [sys.executable, "-c", PIPELINE_SIDE, str(ws), str(acceptance), str(store)],
        cwd=stack.quorum_home, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    remote = {r["tool"]: r for r in json.loads(line[len("RESULT "):])}

    # The same verdicts as verifying here.
    local = {
        "bandit": run_bandit(ws, ["app.py"], {"app.py": [1, 2, 3, 4]}),
        "pytest": run_pytest(ws),
        "acceptance": run_pytest(ws, tool="acceptance", extra_tests=acceptance),
    }
    if find_semgrep()[0] is not None:
        local["semgrep"] = run_semgrep(ws, ["app.py"], {"app.py": [1, 2, 3, 4]})
    assert set(remote) == {"semgrep", "bandit", "pytest", "acceptance"}
    for tool, report in local.items():
        got = remote[tool]
        assert (got["status"], got["reason"]) == (report.status.value, report.reason), (tool, got["summary"])
        assert sorted(f["rule"] for f in got["findings"]) == sorted(f.rule for f in report.findings), tool
    assert remote["bandit"]["status"] == VerificationStatus.failed.value
    assert remote["pytest"]["status"] == "passed" and remote["acceptance"]["status"] == "failed"
    assert remote["pytest"]["sandbox"]["mode"] == ("root" if os.geteuid() == 0 else "userns")

    # Both runs were flow runs of the sandbox deployment, on the sandbox pool, submitted by its worker.
    runs = stack.flow_runs(deployment=DEPLOYMENT)
    assert len(runs) == 2 and all(r["state"]["type"] == "COMPLETED" for r in runs)
    assert {r["work_pool_name"] for r in runs} == {SANDBOX_POOL}
    log = stack.log_text("sandbox-worker")
    assert all(r["id"] in log for r in runs), log[-2000:]

    # The key stayed with the pipeline's process: not in the sandbox worker, its flow runs, or the store.
    worker_env = environ_of(stack.processes["sandbox-worker"].pid)
    assert [k for k in worker_env if "KEY" in k.upper()] == [] and PLANTED not in worker_env.values()
    assert "PREFECT_API_URL" in worker_env
    objects = LocalStore(store).list("runs/e2e/")
    responses = [k for k in objects if k.endswith("/response.json")]
    archives = [k for k in objects if k.endswith("/workspace.tar.gz")]
    assert len(responses) == 2 and len(archives) == 2, objects
    for key in responses:
        response = json.loads((store / key).read_text())
        assert response["secret_env_names"] == [], response["secret_env_names"]  # the flow run's own environment
        assert response["flow_run_id"] in {r["id"] for r in runs}
    for key in objects:
        assert PLANTED.encode() not in (store / key).read_bytes(), key
