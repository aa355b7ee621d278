"""Run an untrusted command: own session, resource limits, hard timeout, capped output, scrubbed env.

What this gives today:

* the child starts in its own session and process group (``start_new_session=True``); when the
  command ends, times out or the caller is interrupted, the whole group gets SIGKILL, so
  grandchildren die too (a process that calls ``setsid()`` itself escapes; cgroups fix that);
* resource limits applied in the child before ``exec`` (CPU time, address space, file size,
  process count, no core dumps), each one optional (``None`` = leave the inherited limit);
* stdout and stderr go to unlinked temporary files, not pipes, so a grandchild that keeps the
  descriptors open cannot make us hang; output is capped keeping the head and the tail;
* an environment built from an allow-list (``scrubbed_env``), never a copy of ours.

What it does not give yet (issue 5): privilege drop and a network namespace. Both belong in
``_child_setup`` (which runs in the child between fork and exec), driven by new fields on
``ResourceLimits`` / a policy object. Note that ``RLIMIT_NPROC`` does not bind root, so until the
privilege drop lands a fork bomb run as root is only stopped by the timeout.

``preexec_fn`` is documented as unsafe when the parent has threads (Prefect runs tasks in
threads); to keep the risk minimal the child-side function only calls ``setrlimit`` with values
computed in the parent (no imports, no locks, no logging).
"""

from __future__ import annotations

import atexit
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Callable

from pydantic import BaseModel, ConfigDict

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

# Environment variables with these substrings (case-insensitive) in their names never reach a child.
SECRET_NAME_PARTS = (
    "KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE", "AUTH", "SESSION", "COOKIE",
)
# ... nor variables whose names start with these prefixes (provider and cloud credentials).
SECRET_NAME_PREFIXES = (
    "AWS_", "ANTHROPIC", "OPENAI", "GEMINI", "GOOGLE", "GCP_", "GCLOUD", "AZURE", "VERTEX",
    "MISTRAL", "COHERE", "GROQ", "DEEPSEEK", "TOGETHER", "XAI_", "OPENROUTER", "HF_", "HUGGING",
    "GITHUB_", "GH_", "GITLAB", "LITELLM", "PREFECT_API", "SEMGREP_APP", "DOCKER_", "KUBE",
    "SSH_", "GPG_", "NPM_", "PYPI", "TWINE_", "DATABASE_URL", "REDIS_URL", "SENTRY_",
)


class ResourceLimits(BaseModel):
    """Per-process limits applied in the child before exec. ``None`` leaves a limit as inherited.

    Soft and hard limits are both set to the value (the child cannot raise them again); a value
    above the inherited hard limit is clamped to it (only root could raise it).
    """

    model_config = ConfigDict(frozen=True)

    cpu_s: int | None = 600
    address_space_bytes: int | None = 4 << 30
    file_size_bytes: int | None = 256 << 20
    nproc: int | None = 1024
    core_bytes: int | None = 0

    def rlimits(self) -> list[tuple[int, tuple[int, int]]]:
        """(resource, (soft, hard)) pairs, computed in the parent, clamped to the current hard limit."""
        wanted = [
            (resource.RLIMIT_CPU, self.cpu_s),
            (resource.RLIMIT_AS, self.address_space_bytes),
            (resource.RLIMIT_FSIZE, self.file_size_bytes),
            (resource.RLIMIT_NPROC, self.nproc),
            (resource.RLIMIT_CORE, self.core_bytes),
        ]
        out: list[tuple[int, tuple[int, int]]] = []
        for res, value in wanted:
            if value is None:
                continue
            _, hard = resource.getrlimit(res)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            out.append((res, (value, value)))
        return out


DEFAULT_LIMITS = ResourceLimits()


class CommandResult(BaseModel):
    argv: list[str]
    returncode: int = -1
    timed_out: bool = False
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    spawn_error: str = ""

    @property
    def ok(self) -> bool:
        return not self.timed_out and not self.spawn_error and self.returncode == 0

    @property
    def signal_name(self) -> str:
        """The signal that ended the process ('SIGKILL'), or '' when it exited normally."""
        if self.returncode >= 0:
            return ""
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"

    def describe(self) -> str:
        """One line for summaries: how the command ended."""
        if self.spawn_error:
            return f"could not start: {self.spawn_error}"
        if self.timed_out:
            return f"timed out after {self.duration_s:.1f}s (process group killed)"
        if self.signal_name:
            return f"killed by {self.signal_name} after {self.duration_s:.1f}s"
        return f"exit code {self.returncode} after {self.duration_s:.1f}s"


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(part in upper for part in SECRET_NAME_PARTS) or upper.startswith(SECRET_NAME_PREFIXES)


_process_home: str | None = None


def _default_home() -> str:
    """One empty HOME per process for children that were not given one (removed at exit)."""
    global _process_home
    if _process_home is None or not os.path.isdir(_process_home):
        _process_home = tempfile.mkdtemp(prefix="quorum-home-")
        atexit.register(shutil.rmtree, _process_home, True)
    return _process_home


def scrubbed_env(extra: dict[str, str] | None = None, *, home: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """A minimal environment for untrusted children, built from an allow-list.

    Only PATH is taken from our environment; everything else is fixed. ``extra`` is added on top,
    except names that look like secrets (``is_secret_name``), which are dropped even from
    ``extra``: pass a full ``env`` to ``run_command`` directly if a child really needs one.
    """
    env = {
        "PATH": os.environ.get("PATH") or DEFAULT_PATH,
        "HOME": str(home) if home is not None else _default_home(),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONNOUSERSITE": "1",
    }
    for name, value in (extra or {}).items():
        if not is_secret_name(name):
            env[name] = str(value)
    return env


def _child_setup(rlimits: list[tuple[int, tuple[int, int]]]) -> Callable[[], None]:
    """The function run in the child between fork and exec. Issue 5 adds privilege drop and unshare here."""
    setrlimit = resource.setrlimit

    def setup() -> None:
        for res, pair in rlimits:
            setrlimit(res, pair)

    return setup


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_unreaped(pid: int, deadline: float) -> bool:
    """Wait until ``pid`` exits without reaping it (so its pgid cannot be reused). False on deadline."""
    delay = 0.002
    while True:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # someone else reaped it
            return True
        if info is not None:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.05)


def read_capped(f: IO[bytes], cap: int) -> tuple[str, bool, int]:
    """(text, truncated, total_bytes): the whole file if it fits, else its head and tail with a marker."""
    f.flush()
    size = os.fstat(f.fileno()).st_size
    f.seek(0)
    if size <= cap:
        return f.read().decode("utf-8", errors="replace"), False, size
    head_n = cap // 2
    tail_n = cap - head_n
    head = f.read(head_n)
    f.seek(size - tail_n)
    tail = f.read(tail_n)
    dropped = size - head_n - tail_n
    text = (
        head.decode("utf-8", errors="replace")
        + f"\n[... {dropped} bytes truncated ...]\n"
        + tail.decode("utf-8", errors="replace")
    )
    return text, True, size


def run_command(
    argv: list[str],
    *,
    cwd: Path,
    timeout_s: float,
    env: dict[str, str] | None = None,
    output_cap_bytes: int = 1_000_000,
    limits: ResourceLimits | None = None,
) -> CommandResult:
    """Run ``argv`` in ``cwd`` under the sandbox rules above; never raises for the child's behaviour.

    ``env=None`` means ``scrubbed_env()`` with a fresh, throwaway HOME (never our environment).
    ``limits=None`` means ``DEFAULT_LIMITS``. Whatever is left of the process group when the
    command ends (background grandchildren) is killed too.
    """
    argv = [str(a) for a in argv]
    limits = limits or DEFAULT_LIMITS
    home_dir: str | None = None
    if env is None:
        home_dir = tempfile.mkdtemp(prefix="quorum-home-")
        env = scrubbed_env(home=home_dir)
    started = time.monotonic()
    try:
        with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=str(cwd),
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out_f,
                    stderr=err_f,
                    start_new_session=True,
                    close_fds=True,
                    preexec_fn=_child_setup(limits.rlimits()),
                )
            except (OSError, subprocess.SubprocessError) as exc:
                return CommandResult(
                    argv=argv, returncode=127, spawn_error=f"{type(exc).__name__}: {exc}",
                    duration_s=time.monotonic() - started,
                )
            timed_out = False
            try:
                timed_out = not _wait_unreaped(proc.pid, started + timeout_s)
            finally:
                # The leader is not reaped yet, so its pid (= pgid) cannot have been reused.
                _kill_group(proc.pid)
                proc.wait()
            duration = time.monotonic() - started
            stdout, out_trunc, out_n = read_capped(out_f, output_cap_bytes)
            stderr, err_trunc, err_n = read_capped(err_f, output_cap_bytes)
            return CommandResult(
                argv=argv,
                returncode=proc.returncode,
                timed_out=timed_out,
                stdout=stdout,
                stderr=stderr,
                duration_s=round(duration, 3),
                stdout_truncated=out_trunc,
                stderr_truncated=err_trunc,
                stdout_bytes=out_n,
                stderr_bytes=err_n,
            )
    finally:
        if home_dir is not None:
            shutil.rmtree(home_dir, ignore_errors=True)


def tail_text(text: str, limit: int) -> str:
    """The last ``limit`` characters of ``text``, with a marker when something was cut."""
    if len(text) <= limit:
        return text
    return "[...]\n" + text[-limit:]


def middle_truncate(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters keeping the head and the tail."""
    if len(text) <= limit:
        return text
    half = max(limit // 2, 1)
    return text[:half] + f"\n[... {len(text) - 2 * half} chars truncated ...]\n" + text[-half:]


# --- Workspace path helpers shared by the verification tools ------------------------------------


def normalize_relpath(path: str) -> str:
    """'./a/./b.py' -> 'a/b.py' (tools report paths with and without './')."""
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return os.path.normpath(path) if path else path


def select_targets(workspace: Path, files: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Split ``files`` (relative to ``workspace``) into (existing, missing, outside).

    ``existing`` are regular files inside the workspace (normalised, de-duplicated, in order);
    ``missing`` do not exist (deleted by the patch); ``outside`` are absolute, escape the
    workspace (``..``, symlinks pointing out) or are not regular files: never scanned.
    """
    root = workspace.resolve()
    existing: list[str] = []
    missing: list[str] = []
    outside: list[str] = []
    seen: set[str] = set()
    for raw in files:
        rel = normalize_relpath(raw)
        if rel in seen:
            continue
        seen.add(rel)
        if not rel or os.path.isabs(rel) or rel == ".." or rel.startswith("../"):
            outside.append(raw)
            continue
        path = root / rel
        if not os.path.lexists(path):
            missing.append(rel)
            continue
        try:
            path.resolve().relative_to(root)
        except ValueError:
            outside.append(rel)
            continue
        if not path.is_file():
            outside.append(rel)
            continue
        existing.append(rel)
    return existing, missing, outside


def in_patch(file: str, line: int, added_lines: dict[str, list[int]] | None) -> bool:
    """True when the line was added by the patch. Without patch information every line counts."""
    if added_lines is None:
        return True
    lines = added_lines.get(normalize_relpath(file))
    if lines is None:
        lines = added_lines.get(file)
    return bool(lines) and line in lines
