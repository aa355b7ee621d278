"""A throwaway local Prefect stack: a real server (SQLite, or a given database) and process workers, as subprocesses.

The end-to-end tests and the fan-out benchmark use it to run quorum the way a team does:
`prefect deploy --all` from the real prefect.yaml, workers polling a process work pool, runs
started by schedule, API or event. Everything lives under one temporary PREFECT_HOME and is
killed (process groups, so flow-run subprocesses too) on stop. ``database_url`` points the server at
another database (tests/support/postgres.py makes a PostgreSQL one); ``ui=True`` serves the Prefect UI
at ``stack.ui_url`` (off by default: it costs startup time).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
POOL = "quorum-process"
SANDBOX_POOL = "quorum-sandbox"


def descendants(pid: int) -> list[int]:
    """Every live process under `pid` (children, their children...), from /proc (Linux)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended meanwhile
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StackError(RuntimeError):
    pass


class LocalPrefectStack:
    """`with LocalPrefectStack(home) as stack:` a server on an ephemeral port; then deploy and add workers."""

    startup_timeout_s = 180.0  # benchmarks on a busy machine may wait longer for the server

    def __init__(
        self,
        home: Path,
        *,
        quorum_home: Path = REPO_ROOT,
        extra_env: dict[str, str] | None = None,
        database_url: str | None = None,
        ui: bool = False,
    ):
        self.home = Path(home)
        self.quorum_home = quorum_home
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.ui_url = f"http://127.0.0.1:{self.port}"
        self.logs = self.home / "logs"
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(self.home / "prefect"),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "true" if ui else "false",
            "PREFECT_API_DATABASE_CONNECTION_URL": database_url or f"sqlite+aiosqlite:///{self.home / 'prefect.db'}",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "2",
            "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(self.home / "results"),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "QUORUM_HOME": str(quorum_home),
            **(extra_env or {}),
        }
        # A test's own in-process server settings must not leak into the stack's processes.
        self.env.pop("PREFECT_API_KEY", None)
        self.processes: dict[str, subprocess.Popen] = {}

    # ----------------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> LocalPrefectStack:
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            self._spawn("server", [self._prefect(), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)])
            self._wait_healthy(timeout_s=self.startup_timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for name in list(self.processes):
            self.kill(name)

    def kill(self, name: str, grace_s: float = 5.0) -> None:
        """Stop a process and everything it started (its process group): SIGTERM, then SIGKILL; then whatever it
        started in sessions of its own and left behind."""
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        children = descendants(process.pid)
        try:
            for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    return
                try:
                    process.wait(timeout=wait)
                    return
                except subprocess.TimeoutExpired:
                    continue
        finally:
            for pid in children:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def hard_kill(self, name: str) -> None:
        """SIGKILL a process group at once, as a crashed machine would end it, and every process it started:
        a process worker may start a flow run in a session of its own, which the group's kill would miss."""
        process = self.processes.pop(name)
        children = descendants(process.pid)
        os.killpg(process.pid, signal.SIGKILL)
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(timeout=10)

    # --------------------------------------------------------------------------------------- steps
    def prefect(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
        """Run a prefect CLI command against this stack from QUORUM_HOME; raise with its output on failure."""
        result = subprocess.run(
            [self._prefect(), "--no-prompt", *args],
            cwd=self.quorum_home, env=self.env, capture_output=True, text=True, timeout=timeout_s,
        )  # fmt: skip
        if result.returncode != 0:
            raise StackError(f"prefect {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def deploy_all(self) -> None:
        for pool in (POOL, SANDBOX_POOL):
            self.prefect("work-pool", "create", pool, "--type", "process", "--overwrite")
        self.prefect("deploy", "--all")

    def start_worker(
        self, name: str, *, limit: int | None = None, pool: str = POOL, env: dict[str, str] | None = None
    ) -> None:
        """A process worker; ``env`` replaces the stack's environment for it (and its flow runs)."""
        argv = [self._prefect(), "worker", "start", "--pool", pool, "--name", name]
        if limit is not None:
            argv += ["--limit", str(limit)]
        self._spawn(name, argv, env=env)

    def python(self, code: str, *, timeout_s: float = 120) -> str:
        """Run Python code in a fresh process that talks to this stack; return its stdout."""
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=self.quorum_home, env=self.env,
            capture_output=True, text=True, timeout=timeout_s,
        )  # fmt: skip
        if result.returncode != 0:
            raise StackError(f"python snippet failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """A call to the server's REST API (what the Prefect client does), JSON in and out."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.api_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        for attempt in range(6):  # a busy SQLite server answers 503 now and then, as the Prefect client retries
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    raw = response.read()
                return json.loads(raw) if raw else None
            except urllib.error.HTTPError as exc:
                if exc.code not in (502, 503, 504) or attempt == 5:
                    raise
            except (urllib.error.URLError, TimeoutError):
                if attempt == 5:
                    raise
            time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    def log_text(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # ------------------------------------------------------------------------------------- helpers
    def _prefect(self) -> str:
        return str(Path(sys.executable).with_name("prefect"))

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.processes[name] = subprocess.Popen(
            argv, cwd=self.quorum_home, env=self.env if env is None else env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        server = self.processes["server"]
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise StackError(f"prefect server exited with {server.returncode}:\n{self.log_text('server')[-3000:]}")
            try:
                with urllib.request.urlopen(self.api_url + "/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise StackError(f"prefect server not healthy after {timeout_s:.0f}s:\n{self.log_text('server')[-3000:]}")

    # ------------------------------------------------------------------------------------- queries
    def run_deployment(self, name: str, parameters: dict[str, Any]) -> str:
        """Create a flow run of a deployment by name (like `prefect deployment run`); returns its id."""
        flow_name, deployment_name = name.split("/", 1)
        deployment = self.api("GET", f"/deployments/name/{flow_name}/{deployment_name}")
        run = self.api("POST", f"/deployments/{deployment['id']}/create_flow_run", {"parameters": parameters})
        return run["id"]

    def flow_run(self, run_id: str) -> dict[str, Any]:
        return self.api("GET", f"/flow_runs/{run_id}")

    def wait_final(self, run_id: str, timeout_s: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            run = self.flow_run(run_id)
            if run["state"] and run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                return run
            time.sleep(1)
        raise StackError(f"flow run {run_id} not finished after {timeout_s:.0f}s: {self.flow_run(run_id)['state']}")

    def flow_runs(self, *, deployment: str | None = None, tags: list[str] | None = None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"limit": 200}
        if deployment:
            flow_name, deployment_name = deployment.split("/", 1)
            found = self.api("GET", f"/deployments/name/{flow_name}/{deployment_name}")
            body["deployments"] = {"id": {"any_": [found["id"]]}}
        if tags:
            body["flow_runs"] = {"tags": {"all_": tags}}
        return self.api("POST", "/flow_runs/filter", body)
