"""Run an untrusted command: privilege drop, namespaces, resource limits, hard timeout, capped output.

Every command gets (``run_command``):

* its own session and process group; when the command ends, times out or the caller is
  interrupted, the whole group gets SIGKILL;
* resource limits (CPU time, address space, file size, process count, no core dumps), each one
  optional (``None`` = leave the inherited limit);
* stdout and stderr in unlinked temporary files, not pipes, so a grandchild that keeps the
  descriptors open cannot make us hang; output is capped keeping the head and the tail; the
  files cannot outgrow the file-size limit, which applies to every writer;
* an environment built from an allow-list (``scrubbed_env``), never a copy of ours.

Confined commands (``confine=Confinement(...)``, used for pytest and acceptance tests) run through
the launcher in ``quorum/sandbox/launch.py`` (a fresh single-threaded process, so nothing
privileged runs in a ``preexec_fn`` of a threaded parent), in one of the modes of
``quorum.sandbox.isolation`` (reported as ``Isolation.mode``):

* ``root`` (we run as root): an unprivileged uid/gid of their own: one *slot* from a pool of uids
  reserved for the sandbox (``QUORUM_SANDBOX_UID_BASE``, default 2000000000,
  ``QUORUM_SANDBOX_SLOTS`` slots), held with an ``flock`` for the run, so parallel runs never share
  a uid and ``RLIMIT_NPROC`` (which does not bind root) bounds each run on its own; no
  supplementary groups; afterwards every process of the slot uid is killed as well (``kill(-1)``
  as that uid, which is how leftovers are handled where no PID namespace is allowed);
* ``userns`` (we are an ordinary user and the kernel allows user namespaces): new user, PID,
  network, IPC and mount namespaces entered in one step, our uid mapped to the same unprivileged
  id inside, no capabilities; our home, runtime directory and PREFECT_HOME hidden (the command
  runs as our uid outside, so it could read them otherwise); any refusal is fatal;
* ``none``: neither is possible. ``run_command`` raises ``IsolationUnavailable`` (the verdict is
  ``error`` / ``no_isolation`` with how to fix it) unless ``QUORUM_SANDBOX_ALLOW_UNISOLATED=1``
  is set; then the command runs like an unconfined one and ``Isolation.describe()`` says
  ``unisolated``.

In both isolated modes:

* ``PR_SET_NO_NEW_PRIVS``, empty capability sets;
* a PID namespace in which the command is PID 1 with a fresh ``/proc``: when it exits or is
  killed at the deadline, the kernel kills everything else in the namespace at once, including
  grandchildren that called ``setsid()``, before any of them can notice (so nothing can rewrite a
  report afterwards); what is left of the namespace (or of the slot uid) is killed and counted in
  ``Isolation.leftover_processes``; none of our processes is visible from inside;
* a network namespace with only loopback: no network (``Isolation.network_isolated``);
* a mount namespace in which the whole tree is read-only, ``/tmp``, ``/var/tmp`` and ``/dev/shm``
  are fresh tmpfs that vanish with the run, hidden directories are empty except for the
  ``expose`` directories (the interpreter), and only the ``writable`` directories (the throwaway
  workspace, its HOME, TMPDIR and report directory) can be written.

What the kernel refuses in root mode (namespaces in an unprivileged container) is reported in
``Isolation`` and the command still runs with what is left; the privilege drop itself is never
skipped as root.

Not covered: the command can read world-readable files (without network it can only put them in
its own output), and in userns mode also files of our uid outside the hidden directories, and it
keeps our supplementary groups (the kernel forbids dropping them without privilege: give the
worker's user none that grant anything, e.g. no ``docker`` group); there is no cgroup, so memory is bounded per process (``RLIMIT_AS``) times the
process limit, not in total; ``RLIMIT_NPROC`` counts threads too; and code running inside the
sandboxed process can of course lie about its own results (see ``quorum.verify.pytest_runner``).
Unconfined commands (``confine=None``: semgrep, bandit, which read untrusted files but run
trusted code) keep the process-group kill: a grandchild that calls ``setsid()`` escapes it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import resource
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Callable, Iterator

from pydantic import BaseModel, ConfigDict, Field

from quorum.sandbox import launch as sandbox_launch
from quorum.sandbox.isolation import (
    IsolationPlan,
    Mode,
    current_plan,
    no_isolation_message,
    private_dirs_of_current_user,
    unisolated_line,
)
from quorum.settings import settings

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


LAUNCHER = Path(sandbox_launch.__file__).resolve()
LAUNCHER_GRACE_S = 15.0  # the launcher enforces the deadline; we step in only if it is stuck
STATUS_READ_S = 5.0
PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")


class SandboxUnavailable(RuntimeError):
    """No sandbox slot could be taken (all busy, or the lock directory is unusable)."""


class IsolationUnavailable(SandboxUnavailable):
    """Neither root nor a user namespace can isolate a confined command, and no opt-in: it did not run."""

    def __init__(self, plan: IsolationPlan):
        super().__init__(no_isolation_message(plan))
        self.plan = plan


class SandboxSlot(BaseModel):
    """One uid/gid reserved for one confined run (held with an flock while the run lasts)."""

    model_config = ConfigDict(frozen=True)

    index: int
    uid: int
    gid: int


class Confinement(BaseModel):
    """What a confined command may touch. ``slot=None`` (not root) runs it unconfined, and says so."""

    model_config = ConfigDict(frozen=True)

    slot: SandboxSlot | None
    writable: list[str] = Field(default_factory=list, description="Directories the command may write.")
    expose: list[str] = Field(default_factory=list, description="Directories it must be able to read (interpreter).")
    network: bool = False
    private_tmp: tuple[str, ...] = PRIVATE_TMP


class Isolation(BaseModel):
    """How a confined command was actually isolated (what the OS allowed)."""

    mode: Mode | None = Field(
        default=None,
        description="'root' (uid drop + namespaces), 'userns' (rootless: user + other namespaces) or "
        "'none' (unisolated, only with QUORUM_SANDBOX_ALLOW_UNISOLATED=1); set on every confined run.",
    )
    privilege_drop: bool = Field(
        default=False,
        description="The command ran with no capability, as an unprivileged id (root mode: a reserved uid; "
        "userns mode: our uid mapped inside its user namespace).",
    )
    uid: int | None = Field(default=None, description="The command's uid (inside its user namespace in userns mode).")
    gid: int | None = None
    outer_uid: int | None = Field(default=None, description="userns mode: the uid it has outside (ours).")
    network_isolated: bool = False
    pid_namespace: bool = False
    pid_ns: int | None = Field(default=None, description="Inode of the command's PID namespace (leftover checks).")
    mount_namespace: bool = False
    readonly_root: bool = False
    private_tmp: list[str] = Field(default_factory=list)
    hidden: list[str] = Field(default_factory=list, description="Directories replaced by an empty tmpfs.")
    leftover_processes: int = Field(
        default=0, description="Processes of the sandbox (its uid or PID namespace) found after the run (killed)."
    )
    notes: list[str] = Field(default_factory=list)

    @property
    def unisolated(self) -> bool:
        return self.mode == "none"

    def describe(self) -> str:
        """One line for summaries; says plainly what is missing."""
        if self.mode == "none":
            text = "sandbox: " + unisolated_line()
            return text + (" (" + "; ".join(self.notes[:3]) + ")" if self.notes else "")
        if not self.privilege_drop:
            parts = ["no privilege drop"]
        elif self.mode == "userns":
            parts = [f"user namespace (uid {self.uid} inside, {self.outer_uid} outside, no capabilities)"]
        else:
            parts = [f"uid {self.uid}"]
        spaces = [n for n, on in (("pid", self.pid_namespace), ("net", self.network_isolated),
                                  ("mount", self.mount_namespace)) if on]  # fmt: skip
        if self.privilege_drop and spaces:
            parts.append(f"{'/'.join(spaces)} namespaces")
        if self.privilege_drop and self.readonly_root:
            parts.append("read-only filesystem outside the workspace")
        parts.append("network isolated" if self.network_isolated else "NETWORK NOT ISOLATED")
        text = "sandbox: " + ", ".join(parts)
        if self.notes:
            text += " (" + "; ".join(self.notes[:3]) + ")"
        return text


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
    cpu_s: float | None = Field(default=None, description="CPU time of the command and the children it waited for.")
    maxrss_kb: int | None = None
    isolation: Isolation | None = Field(default=None, description="Set for confined commands.")

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
    confine: Confinement | None = None,
) -> CommandResult:
    """Run ``argv`` in ``cwd`` under the sandbox rules above; never raises for the child's behaviour.

    ``env=None`` means ``scrubbed_env()`` with a fresh, throwaway HOME (never our environment).
    ``limits=None`` means ``DEFAULT_LIMITS``. Whatever is left of the process group when the
    command ends (background grandchildren) is killed too. With ``confine`` (and as root) the
    command runs through the launcher: see the module docstring; ``result.isolation`` says what
    was achieved.
    """
    argv = [str(a) for a in argv]
    limits = limits or DEFAULT_LIMITS
    plan = _plan_for(confine)  # raises IsolationUnavailable before anything runs
    home_dir: str | None = None
    if env is None:
        home_dir = tempfile.mkdtemp(prefix="quorum-home-")
        env = scrubbed_env(home=home_dir)
    started = time.monotonic()
    try:
        with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
            if confine is not None and plan is not None and plan.mode != "none":
                result = _run_confined(argv, cwd, timeout_s, env, limits, confine, plan.mode, out_f, err_f, started)
            else:
                result = _run_plain(argv, cwd, timeout_s, env, limits, out_f, err_f, started)
                if confine is not None and plan is not None:
                    result.isolation = Isolation(mode="none", notes=[plan.why] if plan.why else [])
            stdout, out_trunc, out_n = read_capped(out_f, output_cap_bytes)
            stderr, err_trunc, err_n = read_capped(err_f, output_cap_bytes)
            return result.model_copy(
                update=dict(
                    stdout=stdout, stderr=stderr, stdout_truncated=out_trunc, stderr_truncated=err_trunc,
                    stdout_bytes=out_n, stderr_bytes=err_n,
                )
            )
    finally:
        if home_dir is not None:
            shutil.rmtree(home_dir, ignore_errors=True)


def _plan_for(confine: Confinement | None) -> IsolationPlan | None:
    """The isolation a confined command gets here; raises IsolationUnavailable when it must not run."""
    if confine is None:
        return None
    plan = current_plan()
    if plan.mode == "root" and confine.slot is None:
        plan = IsolationPlan(
            mode="none", allowed=False,
            why="running as root but the caller gave no sandbox slot (use sandbox_slot())",
        )  # fmt: skip
    if not plan.allowed:
        raise IsolationUnavailable(plan)
    return plan


def _run_plain(argv, cwd, timeout_s, env, limits, out_f, err_f, started) -> CommandResult:
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
        try:
            _, wstatus, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(wstatus)
        except ChildProcessError:  # reaped elsewhere: no status, no usage
            usage = None
            proc.wait()
    return CommandResult(
        argv=argv,
        returncode=proc.returncode,
        timed_out=timed_out,
        duration_s=round(time.monotonic() - started, 3),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 3) if usage else None,
        maxrss_kb=usage.ru_maxrss if usage else None,
    )


def _run_confined(
    argv, cwd, timeout_s, env, limits, confine: Confinement, mode: Mode, out_f, err_f, started
) -> CommandResult:
    slot = confine.slot
    rootless = mode == "userns"
    if rootless:  # our own ids, mapped to themselves inside the user namespace
        uid, gid = os.geteuid(), os.getegid()
    else:
        assert slot is not None
        uid, gid = slot.uid, slot.gid
    read_fd, write_fd = os.pipe()
    config = {
        "mode": mode,
        "argv": argv,
        "cwd": str(Path(cwd).resolve()),
        "uid": uid,
        "gid": gid,
        "hide": private_dirs_of_current_user() if rootless else [],
        "rlimits": [[res, soft, hard] for res, (soft, hard) in limits.rlimits()],
        "network": confine.network,
        "writable": [str(Path(p).resolve()) for p in confine.writable],
        "expose": [str(Path(p).resolve()) for p in confine.expose],
        "private_tmp": list(confine.private_tmp),
        "deadline_s": timeout_s,
        "status_fd": write_fd,
        "parent_pid": os.getpid(),
    }
    try:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(LAUNCHER), json.dumps(config)],
                cwd=str(cwd),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out_f,
                stderr=err_f,
                start_new_session=True,
                close_fds=True,
                pass_fds=(write_fd,),
            )
        finally:
            os.close(write_fd)
    except (OSError, subprocess.SubprocessError) as exc:
        os.close(read_fd)
        return CommandResult(
            argv=argv, returncode=127, spawn_error=f"sandbox launcher: {type(exc).__name__}: {exc}",
            duration_s=time.monotonic() - started,
        )
    stuck = False
    try:
        stuck = not _wait_unreaped(proc.pid, started + timeout_s + LAUNCHER_GRACE_S)
    finally:
        _kill_group(proc.pid)
        proc.wait()
        events = _read_status(read_fd)
    duration = round(time.monotonic() - started, 3)

    isolation = Isolation(mode=mode, uid=uid, gid=gid, outer_uid=uid if rootless else None)
    result = CommandResult(argv=argv, duration_s=duration, timed_out=stuck, isolation=isolation)
    exit_event = None
    for event in events:
        kind = event.get("event")
        if kind == "setup":
            isolation.privilege_drop = True
            isolation.pid_namespace = bool(event.get("pid"))
            isolation.pid_ns = event.get("pid_ns")
            isolation.network_isolated = bool(event.get("net"))
            isolation.mount_namespace = bool(event.get("mount"))
            isolation.readonly_root = bool(event.get("readonly_root"))
            isolation.private_tmp = list(event.get("private_tmp") or [])
            isolation.hidden = list(event.get("hidden") or [])
            isolation.notes.extend(event.get("notes") or [])
        elif kind == "note":
            isolation.notes.append(str(event.get("note")))
        elif kind == "timeout":
            result.timed_out = True
        elif kind == "exit":
            exit_event = event
        elif kind == "done" and event.get("outlived"):
            isolation.notes.append(f"{event['outlived']} process(es) outlived the command and were killed")
        elif kind in ("fatal", "exec_error"):
            result.spawn_error = str(event.get("error"))
            isolation.notes.extend(event.get("notes") or [])
    if exit_event is not None:
        result.returncode = os.waitstatus_to_exitcode(int(exit_event["wstatus"]))
        result.cpu_s = exit_event.get("cpu_s")
        result.maxrss_kb = exit_event.get("maxrss_kb")
    elif result.spawn_error:
        result.returncode = 127
    elif result.timed_out:
        result.returncode = -signal.SIGKILL
    else:
        result.returncode = proc.returncode if proc.returncode else -signal.SIGKILL
        isolation.notes.append(f"the launcher ended without reporting the command's exit ({proc.returncode})")
    if stuck:
        isolation.notes.append("the launcher did not finish in time; its process group was killed")
    in_namespace = _namespace_after_teardown(isolation.pid_ns) if isolation.pid_ns else []
    if rootless:
        isolation.leftover_processes = len(in_namespace)
        for pid in in_namespace:  # never kill(-1): this uid is ours
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return result
    assert slot is not None
    isolation.leftover_processes = len(set(sandbox_launch.processes_of(slot.uid)) | set(in_namespace))
    if isolation.leftover_processes:
        _kill_uid(slot)
    return result


NAMESPACE_TEARDOWN_S = 5.0


def _namespace_after_teardown(pid_ns: int) -> list[int]:
    """The processes still alive in the run's PID namespace once the kernel has had time to end them.

    When the namespace's first process (the launcher) exits, the kernel SIGKILLs every other process in
    it, but a killed process is only gone once it has released its memory: a memory bomb's takes a while
    on a loaded machine. Those are dying, not leftovers; only what is still there after
    NAMESPACE_TEARDOWN_S counts (and is killed)."""
    deadline = time.monotonic() + NAMESPACE_TEARDOWN_S
    while True:
        alive = sandbox_launch.processes_in_pid_namespace(pid_ns)
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def _read_status(fd: int) -> list[dict]:
    """Status events from the launcher (JSON lines), read until EOF or a short deadline."""
    data = b""
    deadline = time.monotonic() + STATUS_READ_S
    try:
        os.set_blocking(fd, False)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                break
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                break
            data += chunk
            if len(data) > 1_000_000:
                break
    finally:
        os.close(fd)
    events = []
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def _kill_uid(slot: SandboxSlot) -> None:
    subprocess.run(
        [sys.executable, "-I", "-S", str(LAUNCHER), "--kill-uid", str(slot.uid), str(slot.gid)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False,
    )


# --- Sandbox slots ------------------------------------------------------------------------------


def _uid_pool() -> tuple[int, int]:
    configured = settings()
    base, slots = configured.sandbox_uid_base, configured.sandbox_slots
    if not (1000 <= base and base + slots < 2**32 - 2 and slots >= 1):
        raise SandboxUnavailable(f"bad sandbox uid pool: base {base}, {slots} slots")
    return base, slots


def _lock_dir() -> Path:
    """A root-only directory for the slot locks (refused if anyone else could plant files in it)."""
    for parent in ("/run", tempfile.gettempdir()):
        path = Path(parent) / "quorum-sandbox"
        try:
            path.mkdir(mode=0o700, exist_ok=True)
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o022:
            return path
    raise SandboxUnavailable("no usable lock directory for sandbox slots (/run/quorum-sandbox)")


@contextlib.contextmanager
def sandbox_slot(wait_s: float = 300.0) -> Iterator[SandboxSlot | None]:
    """Reserve a sandbox uid for one run; ``None`` when we are not root (no privilege drop possible).

    Slots are shared by every quorum process on the machine through ``flock``; a slot whose
    holder died is free again (the kernel drops the lock), and the launcher kills anything the
    previous holder left behind before using it.
    """
    if os.geteuid() != 0:
        yield None
        return
    base, slots = _uid_pool()
    directory = _lock_dir()
    deadline = time.monotonic() + wait_s
    while True:
        for index in range(slots):
            fd = os.open(directory / f"slot-{index}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield SandboxSlot(index=index, uid=base + index, gid=base + index)
            finally:
                os.close(fd)
            return
        if time.monotonic() > deadline:
            raise SandboxUnavailable(f"all {slots} sandbox slots stayed busy for {wait_s:g}s")
        time.sleep(0.1)


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give ``root`` and everything below it to uid/gid, never following symlinks."""
    os.chown(root, uid, gid, follow_symlinks=False)
    for directory, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            os.chown(os.path.join(directory, name), uid, gid, follow_symlinks=False)


def interpreter_dirs(python: str) -> list[str]:
    """Directories a sandboxed ``python`` must be able to read: its prefixes and site-packages.

    Deliberately not the rest of ``sys.path`` (our own project directory may hold secrets).
    """
    real = os.path.realpath(python)
    if real == os.path.realpath(sys.executable):
        candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
        candidates += [p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages"))]
    else:
        candidates = [os.path.dirname(os.path.dirname(os.path.abspath(python))), os.path.dirname(os.path.dirname(real))]
    found = {os.path.realpath(c) for c in candidates if c and os.path.isdir(c)} - {"/"}
    ordered = sorted(found, key=lambda p: (p.count("/"), p))
    return [p for p in ordered if not any(p != q and p.startswith(q + "/") for q in ordered)]


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
