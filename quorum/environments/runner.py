"""Commands as data, and the default local runner that executes them.

Every I/O step of this package (``uv venv``, ``uv pip install``, ``pytest``) is first produced as a
:class:`Command` (argv, cwd, environment, timeout, and what it needs from a sandbox: which
directories it writes, which it reads, what network). A *runner* -- any callable
``Command -> CommandResult`` -- executes it. :func:`run_local` is the plain default (own process
group, killed on timeout, output in temporary files, capped). The integration replaces it with
quorum's sandbox (unprivileged uid, namespaces), using ``writable``/``readable``/``network`` to
configure the confinement.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from typing import Callable, Literal

from pydantic import BaseModel, Field

NetworkNeed = Literal["none", "loopback", "package-index"]


class Command(BaseModel):
    """One process to run. Pure data: building it never touches the system."""

    name: str = Field(description="Short label for logs: 'venv', 'install', 'pytest', ...")
    argv: list[str]
    cwd: str
    env: dict[str, str] = Field(description="The complete environment (never merged with the caller's).")
    timeout_s: float
    writable: list[str] = Field(default_factory=list, description="Directories the command must be able to write.")
    readable: list[str] = Field(default_factory=list, description="Directories it must be able to read (besides the system).")
    network: NetworkNeed = "none"
    output_cap_bytes: int = 2_000_000


class CommandResult(BaseModel):
    name: str = ""
    argv: list[str] = Field(default_factory=list)
    returncode: int = -1
    timed_out: bool = False
    spawn_error: str = ""
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.spawn_error

    def describe(self) -> str:
        if self.spawn_error:
            return f"{self.name}: could not start: {self.spawn_error}"
        if self.timed_out:
            return f"{self.name}: timed out after {self.duration_s:.1f}s (process group killed)"
        return f"{self.name}: exit code {self.returncode} after {self.duration_s:.1f}s"

    def log_text(self) -> str:
        parts = [f"$ {' '.join(self.argv)}", self.describe()]
        if self.stdout.strip():
            parts.append(self.stdout.rstrip())
        if self.stderr.strip():
            parts.append(self.stderr.rstrip())
        return "\n".join(parts) + "\n"


Runner = Callable[[Command], CommandResult]


def _read_capped(f, cap: int) -> str:
    f.flush()
    size = os.fstat(f.fileno()).st_size
    f.seek(0)
    if size <= cap:
        return f.read().decode("utf-8", errors="replace")
    head = f.read(cap // 2)
    f.seek(size - (cap - cap // 2))
    tail = f.read()
    return (head.decode("utf-8", "replace") + f"\n[... {size - cap} bytes truncated ...]\n"
            + tail.decode("utf-8", "replace"))


def run_local(cmd: Command) -> CommandResult:
    """Run ``cmd`` as the current user in its own session; SIGKILL the whole group at the deadline.

    Output goes to unlinked temporary files (not pipes: a grandchild holding them open cannot make
    us hang). No sandboxing: ``writable``/``readable``/``network`` are not enforced here.
    """
    started = time.monotonic()
    res = CommandResult(name=cmd.name, argv=list(cmd.argv))
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        try:
            proc = subprocess.Popen(
                cmd.argv, cwd=cmd.cwd, env=cmd.env, stdin=subprocess.DEVNULL, stdout=out_f, stderr=err_f,
                start_new_session=True,
            )
        except OSError as exc:
            res.spawn_error = str(exc)
            res.duration_s = time.monotonic() - started
            return res
        try:
            res.returncode = proc.wait(timeout=cmd.timeout_s)
        except subprocess.TimeoutExpired:
            res.timed_out = True
            _kill_group(proc.pid)
            res.returncode = proc.wait()
        finally:
            _kill_group(proc.pid)  # leftovers (background grandchildren) of a finished command
        res.duration_s = time.monotonic() - started
        res.stdout = _read_capped(out_f, cmd.output_cap_bytes)
        res.stderr = _read_capped(err_f, cmd.output_cap_bytes)
    return res


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
