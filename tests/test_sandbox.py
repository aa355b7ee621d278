"""quorum.sandbox.runner: process-group kill, limits, capped output, scrubbed environment, path helpers."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from quorum.sandbox import isolation
from quorum.sandbox import launch as sandbox_launch
from quorum.sandbox.isolation import IsolationPlan, UsernsProbe
from quorum.sandbox.runner import (
    CommandResult,
    Confinement,
    Isolation,
    IsolationUnavailable,
    ResourceLimits,
    chown_tree,
    in_patch,
    interpreter_dirs,
    is_secret_name,
    normalize_relpath,
    read_capped,
    run_command,
    sandbox_slot,
    scrubbed_env,
    select_targets,
)

PY = sys.executable


def py(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


def process_gone(pid: int, wait_s: float = 10.0) -> bool:
    """True once ``pid`` no longer runs (missing, or a zombie nobody reaped: PID 1 here may not reap)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


GRANDCHILD_HOLDS_STDOUT = """
import subprocess, sys, time
# The grandchild inherits stdout/stderr and would keep a pipe open for ten minutes.
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(child.pid, flush=True)
time.sleep(600)
"""


def test_timeout_kills_process_group_including_grandchild(tmp_path: Path) -> None:
    res = run_command(py(GRANDCHILD_HOLDS_STDOUT), cwd=tmp_path, timeout_s=1.5)
    assert res.timed_out is True
    assert res.returncode == -signal.SIGKILL
    assert res.signal_name == "SIGKILL"
    grandchild = int(res.stdout.split()[0])
    assert process_gone(grandchild), f"grandchild {grandchild} survived the timeout"
    assert "timed out" in res.describe()


def test_background_grandchild_is_killed_after_normal_exit(tmp_path: Path) -> None:
    code = """
    import subprocess, sys
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(child.pid, flush=True)
    """
    res = run_command(py(code), cwd=tmp_path, timeout_s=30)
    assert res.timed_out is False
    assert res.returncode == 0
    assert process_gone(int(res.stdout.split()[0]))


def test_output_cap_keeps_head_and_tail(tmp_path: Path) -> None:
    code = """
    import sys
    sys.stdout.write("HEAD-" + "x" * 200_000 + "-TAIL")
    sys.stderr.write("small")
    """
    res = run_command(py(code), cwd=tmp_path, timeout_s=30, output_cap_bytes=1000)
    assert res.stdout_truncated is True
    assert res.stdout.startswith("HEAD-")
    assert res.stdout.endswith("-TAIL")
    assert f"[... {200_010 - 1000} bytes truncated ...]" in res.stdout
    assert len(res.stdout) < 1100
    assert res.stdout_bytes == 200_010
    assert res.stderr == "small" and res.stderr_truncated is False


def test_read_capped_exact_fit_and_invalid_utf8(tmp_path: Path) -> None:
    with open(tmp_path / "f", "w+b") as f:
        f.write(b"ab\xffcd")
        text, truncated, size = read_capped(f, 5)
    assert (text, truncated, size) == ("ab\ufffdcd", False, 5)


def test_env_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_API_KEY", "sk-should-not-leak")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://example.invalid")
    monkeypatch.setenv("HARMLESS_SETTING", "also-not-copied")
    res = run_command(py("import json, os; print(json.dumps(dict(os.environ)))"), cwd=tmp_path, timeout_s=30)
    assert res.returncode == 0, res.stderr
    env = json.loads(res.stdout)
    assert "FAKE_API_KEY" not in env
    assert "sk-should-not-leak" not in res.stdout
    assert "OPENAI_BASE_URL" not in env
    assert "HARMLESS_SETTING" not in env  # allow-list, not deny-list
    assert env["LANG"] == "C.UTF-8"
    assert env["PYTHONHASHSEED"] == "0"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] != os.environ.get("HOME")
    assert not os.path.exists(env["HOME"])  # the throwaway HOME is removed afterwards


def test_scrubbed_env_drops_secret_looking_extras() -> None:
    env = scrubbed_env(
        {
            "GITHUB_TOKEN": "t", "AWS_REGION": "eu", "ANTHROPIC_BASE_URL": "u", "DB_PASSWORD": "p",
            "GEMINI_MODEL": "g", "my_secret_thing": "s", "PYTHONPATH": "/src", "SEMGREP_SEND_METRICS": "off",
        },
        home="/nonexistent-home",
    )
    assert env["PYTHONPATH"] == "/src"
    assert env["SEMGREP_SEND_METRICS"] == "off"
    assert env["HOME"] == "/nonexistent-home"
    for name in ("GITHUB_TOKEN", "AWS_REGION", "ANTHROPIC_BASE_URL", "DB_PASSWORD", "GEMINI_MODEL", "my_secret_thing"):
        assert name not in env
    assert set(env) == {
        "PATH", "HOME", "LANG", "LC_ALL", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED", "PYTHONNOUSERSITE",
        "PYTHONPATH", "SEMGREP_SEND_METRICS",
    }
    assert is_secret_name("openai_api_key") and not is_secret_name("PYTHONPATH")


def test_resource_limits_are_applied_in_child(tmp_path: Path) -> None:
    limits = ResourceLimits(cpu_s=77, address_space_bytes=3 << 30, file_size_bytes=5 << 20, nproc=123, core_bytes=0)
    code = """
    import json, resource as r
    print(json.dumps({n: r.getrlimit(getattr(r, n)) for n in
        ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_NPROC", "RLIMIT_CORE")}))
    """
    res = run_command(py(code), cwd=tmp_path, timeout_s=30, limits=limits)
    got = json.loads(res.stdout)
    assert got["RLIMIT_CPU"] == [77, 77]
    assert got["RLIMIT_AS"] == [3 << 30, 3 << 30]
    assert got["RLIMIT_FSIZE"] == [5 << 20, 5 << 20]
    assert got["RLIMIT_NPROC"] == [123, 123]
    assert got["RLIMIT_CORE"] == [0, 0]


def test_none_leaves_limit_inherited(tmp_path: Path) -> None:
    inherited = list(resource.getrlimit(resource.RLIMIT_AS))
    code = "import json, resource as r; print(json.dumps(r.getrlimit(r.RLIMIT_AS)))"
    res = run_command(py(code), cwd=tmp_path, timeout_s=30, limits=ResourceLimits(address_space_bytes=None))
    assert json.loads(res.stdout) == inherited


def test_cpu_limit_stops_busy_loop(tmp_path: Path) -> None:
    res = run_command(py("while True: pass"), cwd=tmp_path, timeout_s=60, limits=ResourceLimits(cpu_s=1))
    assert res.timed_out is False
    assert res.returncode in (-signal.SIGXCPU, -signal.SIGKILL)


def test_memory_limit_bounded_allocation_fails(tmp_path: Path) -> None:
    # Bounded: asks for 1 GiB once under a 512 MiB address-space limit.
    code = "b = bytearray(1 << 30); print('allocated')"
    res = run_command(py(code), cwd=tmp_path, timeout_s=60, limits=ResourceLimits(address_space_bytes=512 << 20))
    assert res.returncode != 0
    assert "MemoryError" in res.stderr
    assert "allocated" not in res.stdout


def test_file_size_limit(tmp_path: Path) -> None:
    code = """
    with open("big.bin", "wb") as f:
        f.write(b"x" * (3 << 20))
    """
    res = run_command(py(code), cwd=tmp_path, timeout_s=60, limits=ResourceLimits(file_size_bytes=1 << 20))
    assert res.returncode != 0  # Python ignores SIGXFSZ, so the write fails with EFBIG
    assert (tmp_path / "big.bin").stat().st_size <= 1 << 20


def test_exit_code_stderr_and_cwd(tmp_path: Path) -> None:
    code = "import os, sys; print(os.getcwd()); sys.stderr.write('boom'); sys.exit(3)"
    res = run_command(py(code), cwd=tmp_path, timeout_s=30)
    assert res.returncode == 3 and not res.timed_out and not res.ok
    assert res.stdout.strip() == str(tmp_path)
    assert res.stderr == "boom"
    assert res.describe().startswith("exit code 3")


def test_missing_executable_is_reported_not_raised(tmp_path: Path) -> None:
    res = run_command(["/nonexistent/definitely-not-here"], cwd=tmp_path, timeout_s=5)
    assert isinstance(res, CommandResult)
    assert res.returncode == 127
    assert "FileNotFoundError" in res.spawn_error


def test_select_targets(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "outside.py").write_text("y = 2\n")
    (ws / "link.py").symlink_to(tmp_path / "outside.py")
    existing, missing, outside = select_targets(
        ws, ["./pkg/a.py", "pkg/a.py", "gone.py", "../outside.py", "/etc/passwd", "link.py", "pkg"]
    )
    assert existing == ["pkg/a.py"]
    assert missing == ["gone.py"]
    assert outside == ["../outside.py", "/etc/passwd", "link.py", "pkg"]


def test_in_patch_and_normalize() -> None:
    added = {"pkg/a.py": [3, 4]}
    assert in_patch("./pkg/a.py", 3, added) is True
    assert in_patch("pkg/a.py", 5, added) is False
    assert in_patch("other.py", 3, added) is False
    assert in_patch("other.py", 3, None) is True
    assert normalize_relpath("././a/./b.py") == "a/b.py"


# ---------- confined runs (privilege drop and namespaces; need root) ----------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop and namespaces need root")


def confined(tmp_path: Path, code: str, slot, timeout_s: float = 30, **kw) -> CommandResult:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    chown_tree(ws, slot.uid, slot.gid)
    confine = Confinement(slot=slot, writable=[str(ws)], expose=interpreter_dirs(PY))
    return run_command(py(code), cwd=ws, timeout_s=timeout_s, confine=confine, **kw)


@needs_root
def test_confined_identity_namespaces_and_filesystem(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("root's\n")
    os.chmod(tmp_path, 0o755)
    os.chmod(outside, 0o666)  # writable by anyone, as far as permissions go
    code = f"""
    import json, os, socket
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    facts = {{
        "ids": [os.getresuid(), os.getresgid(), os.getgroups()], "pid": os.getpid(),
        "nnp": status["NoNewPrivs"].strip(), "capeff": status["CapEff"].strip(),
        "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "ifaces": sorted(name for _, name in socket.if_nameindex()),
    }}
    open("mine.txt", "w").write("ok")
    for path in ({str(outside)!r}, "/tmp/quorum-confined-probe", "/etc/quorum-probe", "../up.txt"):
        try:
            open(path, "a").write("owned")
            facts[path] = "written"
        except OSError as exc:
            facts[path] = exc.strerror
    print(json.dumps(facts))
    """
    with sandbox_slot() as slot:
        res = confined(tmp_path, code, slot)
    assert res.returncode == 0, res.stderr
    facts = json.loads(res.stdout)
    u, g = slot.uid, slot.gid
    assert facts["ids"] == [[u, u, u], [g, g, g], []]
    assert facts["pid"] == 1 and facts["procs"] == [1]  # PID 1 of its own namespace
    assert facts["nnp"] == "1" and int(facts["capeff"], 16) == 0
    assert facts["ifaces"] == ["lo"]
    assert facts[str(outside)] == "Permission denied" or facts[str(outside)] == "Read-only file system"
    assert facts["/etc/quorum-probe"] == "Read-only file system"
    assert facts["/tmp/quorum-confined-probe"] == "written"  # into a private tmpfs...
    assert not Path("/tmp/quorum-confined-probe").exists()  # ...that died with the run
    assert outside.read_text() == "root's\n"
    assert (tmp_path / "ws" / "mine.txt").read_text() == "ok"
    iso = res.isolation
    assert iso is not None and iso.privilege_drop and iso.network_isolated and iso.pid_namespace
    assert iso.mount_namespace and iso.readonly_root and iso.uid == u and iso.leftover_processes == 0
    assert "NETWORK NOT ISOLATED" not in iso.describe()


def _userns_available() -> bool:
    return os.geteuid() != 0 and isolation.probe_userns().available


needs_userns = pytest.mark.skipif(
    not _userns_available(),
    reason="rootless isolation: runs as an ordinary user where user namespaces work (tests/test_unprivileged.py runs it)",
)


@needs_userns
def test_userns_confined_identity_namespaces_and_filesystem(tmp_path: Path) -> None:
    """The rootless way in, as the ordinary user quorum runs as in the image: same guarantees as root."""
    outside = tmp_path / "outside.txt"
    outside.write_text("ours\n")
    os.chmod(outside, 0o666)
    code = f"""
    import ctypes, json, os, socket
    libc = ctypes.CDLL(None, use_errno=True)
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    facts = {{
        "ids": [os.getresuid(), os.getresgid(), os.getgroups()], "pid": os.getpid(),
        "nnp": status["NoNewPrivs"].strip(),
        "caps": [int(status[k].strip(), 16) for k in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb")],
        "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "ifaces": sorted(name for _, name in socket.if_nameindex()),
        "quorum_environ": os.path.exists("/proc/{os.getpid()}/environ") and {os.getpid()} != 1,
        "umount_proc": libc.umount2(b"/proc", 2) == 0,  # MNT_DETACH: would reveal the host's /proc
        "mount_tmpfs": libc.mount(b"x", b"/etc", b"tmpfs", 0, None) == 0,
    }}
    open("mine.txt", "w").write("ok")
    for path in ({str(outside)!r}, "/tmp/quorum-confined-probe", "/etc/quorum-probe", "../up.txt"):
        try:
            open(path, "a").write("owned")
            facts[path] = "written"
        except OSError as exc:
            facts[path] = exc.strerror
    print(json.dumps(facts))
    """
    ws = tmp_path / "ws"
    ws.mkdir()
    confine = Confinement(slot=None, writable=[str(ws)], expose=interpreter_dirs(PY))
    res = run_command(py(code), cwd=ws, timeout_s=30, confine=confine)
    assert res.returncode == 0, res.stderr + res.spawn_error
    facts = json.loads(res.stdout)
    u, g = os.geteuid(), os.getegid()
    assert facts["ids"][:2] == [[u, u, u], [g, g, g]]  # not root inside: our own, unprivileged ids
    assert set(facts["ids"][2]) <= {g}  # groups cannot be dropped without privilege: only our own here
    assert facts["pid"] == 1 and facts["procs"] == [1]  # none of our processes is visible
    assert facts["quorum_environ"] is False
    assert facts["nnp"] == "1" and facts["caps"] == [0, 0, 0, 0, 0]
    assert facts["umount_proc"] is False and facts["mount_tmpfs"] is False  # cannot undo its sandbox
    assert facts["ifaces"] == ["lo"]
    assert facts[str(outside)] == "Read-only file system"  # writable by anyone, but not from here
    assert facts["/etc/quorum-probe"] == "Read-only file system"
    assert facts["../up.txt"] == "Read-only file system"
    assert facts["/tmp/quorum-confined-probe"] == "written"  # into a private tmpfs...
    assert not Path("/tmp/quorum-confined-probe").exists()  # ...that died with the run
    assert outside.read_text() == "ours\n" and not (tmp_path / "up.txt").exists()
    assert (ws / "mine.txt").read_text() == "ok"
    iso = res.isolation
    assert iso is not None and iso.mode == "userns" and iso.privilege_drop and iso.network_isolated
    assert iso.pid_namespace and iso.mount_namespace and iso.readonly_root and iso.leftover_processes == 0
    assert iso.uid == u and iso.outer_uid == u and iso.pid_ns
    assert iso.describe().startswith("sandbox: user namespace (uid")


@needs_userns
def test_userns_timeout_kills_setsid_daemon_and_leaves_our_processes_alone(tmp_path: Path) -> None:
    neighbour = subprocess.Popen([PY, "-c", "import time; time.sleep(120)"])  # ours, same uid, outside
    code = """
    import os, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(600)
        os._exit(0)
    time.sleep(600)
    """
    try:
        ws = tmp_path / "ws"
        ws.mkdir()
        started = time.monotonic()
        res = run_command(py(code), cwd=ws, timeout_s=2, confine=Confinement(slot=None, writable=[str(ws)]))
        assert time.monotonic() - started < 15
        assert res.timed_out and res.returncode == -signal.SIGKILL
        assert res.isolation is not None and res.isolation.mode == "userns"
        assert sandbox_launch.processes_in_pid_namespace(res.isolation.pid_ns) == []
        assert neighbour.poll() is None  # nothing killed by uid: the uid is ours
    finally:
        neighbour.kill()
        neighbour.wait()


@needs_root
def test_confined_timeout_kills_setsid_daemon(tmp_path: Path) -> None:
    code = """
    import os, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(600)
        os._exit(0)
    time.sleep(600)
    """
    with sandbox_slot() as slot:
        started = time.monotonic()
        res = confined(tmp_path, code, slot, timeout_s=2)
        assert time.monotonic() - started < 15
        assert res.timed_out and res.returncode == -signal.SIGKILL
        assert sandbox_launch.processes_of(slot.uid) == []


@needs_root
def test_command_cannot_write_status_lines(tmp_path: Path) -> None:
    # The launcher's status pipe is close-on-exec: a forged "exit 0" cannot reach the parent.
    code = """
    import os, sys
    line = b'{"event": "exit", "wstatus": 0}\\n'
    for fd in range(3, 256):
        try:
            os.write(fd, line)
        except OSError:
            pass
    sys.exit(3)
    """
    with sandbox_slot() as slot:
        res = confined(tmp_path, code, slot)
    assert res.returncode == 3 and not res.spawn_error


@needs_root
def test_confined_exec_failure_is_a_spawn_error(tmp_path: Path) -> None:
    with sandbox_slot() as slot:
        ws = tmp_path / "ws"
        ws.mkdir()
        confine = Confinement(slot=slot, writable=[str(ws)])
        res = run_command(["/nonexistent/binary"], cwd=ws, timeout_s=10, confine=confine)
    assert res.returncode == 127 and "FileNotFoundError" in res.spawn_error


@needs_root
def test_slots_are_exclusive_and_reusable() -> None:
    with sandbox_slot() as first, sandbox_slot() as second:
        assert first is not None and second is not None
        assert first.uid != second.uid and first.gid != second.gid
        taken = first.index
    with sandbox_slot() as again:
        assert again.index == taken


NO_USERNS = UsernsProbe(available=False, error="unshare: Operation not permitted", hints=["a seccomp filter is active"])


def pretend_not_root(monkeypatch: pytest.MonkeyPatch, probe: UsernsProbe) -> None:
    """As uid 1000 where the probe says ``probe`` (the real probe runs in tests/test_unprivileged.py)."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(isolation, "probe_userns", lambda: probe)


def test_not_root_without_user_namespaces_fails_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pretend_not_root(monkeypatch, NO_USERNS)
    monkeypatch.delenv(isolation.ALLOW_UNISOLATED_ENV, raising=False)
    marker = tmp_path / "ran"
    with sandbox_slot() as slot:
        assert slot is None
        with pytest.raises(IsolationUnavailable) as refused:
            run_command(py(f"open({str(marker)!r}, 'w')"), cwd=tmp_path, timeout_s=30, confine=Confinement(slot=slot))
    assert not marker.exists()  # nothing ran
    message = str(refused.value)
    assert "uid 1000, not root" in message and "Operation not permitted" in message and "seccomp" in message
    for fix in ("run the worker as root", "kernel.unprivileged_userns_clone=1", "QUORUM_VERIFY_DEPLOYMENT=quorum-verify/sandbox",
                "QUORUM_SANDBOX_ALLOW_UNISOLATED=1"):  # fmt: skip
        assert fix in message
    # Unconfined commands (the scanners) are not affected.
    assert run_command(py("print('scan')"), cwd=tmp_path, timeout_s=30).stdout.strip() == "scan"


def test_not_root_with_the_opt_in_runs_unisolated_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pretend_not_root(monkeypatch, NO_USERNS)
    monkeypatch.setenv(isolation.ALLOW_UNISOLATED_ENV, "1")
    with sandbox_slot() as slot:
        res = run_command(py("print('hi')"), cwd=tmp_path, timeout_s=30, confine=Confinement(slot=slot))
    assert res.returncode == 0 and res.stdout.strip() == "hi"
    iso = res.isolation
    assert iso is not None and iso.mode == "none" and iso.unisolated
    assert not iso.privilege_drop and not iso.network_isolated and not iso.pid_namespace
    assert "not root" in iso.notes[0]
    text = iso.describe()
    assert text.startswith("sandbox: unisolated (QUORUM_SANDBOX_ALLOW_UNISOLATED=1)")
    assert "no privilege drop" in text and "NETWORK NOT ISOLATED" in text


def test_root_without_a_slot_is_refused_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.delenv(isolation.ALLOW_UNISOLATED_ENV, raising=False)
    with pytest.raises(IsolationUnavailable, match="no sandbox slot"):
        run_command(py("print(1)"), cwd=tmp_path, timeout_s=30, confine=Confinement(slot=None))


def test_choose_mode_prefers_root_then_userns_and_needs_the_opt_in_for_none() -> None:
    ok = UsernsProbe(available=True)
    assert isolation.choose_mode(0, None, False) == IsolationPlan(mode="root", allowed=True)
    assert isolation.choose_mode(0, NO_USERNS, True).mode == "root"
    assert isolation.choose_mode(1000, ok, False) == IsolationPlan(mode="userns", allowed=True)
    refused = isolation.choose_mode(1000, NO_USERNS, False)
    assert (refused.mode, refused.allowed) == ("none", False)
    assert refused.why == (
        "quorum runs as uid 1000, not root, and user namespaces are unavailable "
        "(unshare: Operation not permitted); a seccomp filter is active"
    )
    assert isolation.choose_mode(1000, NO_USERNS, True).allowed is True
    assert isolation.choose_mode(1000, None, False).allowed is False


@pytest.mark.parametrize(("value", "allowed"), [("1", True), ("true", True), ("YES", True), ("0", False), ("", False),
                                                ("no", False), ("please", False), ("ture", False)])  # fmt: skip
def test_the_opt_in_takes_an_explicit_yes_only(value: str, allowed: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isolation.is_explicit_yes(value) is allowed
    monkeypatch.setenv(isolation.ALLOW_UNISOLATED_ENV, value)
    assert isolation.allow_unisolated() is allowed  # read through quorum.settings
    monkeypatch.delenv(isolation.ALLOW_UNISOLATED_ENV)
    assert isolation.allow_unisolated() is False


def test_private_dirs_of_a_userns_sandbox(tmp_path: Path) -> None:
    home, runtime, extra = (tmp_path / name for name in ("home", "run-user", "extra"))
    for directory in (home, runtime, extra):
        directory.mkdir()
    environ = {"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime), "PREFECT_HOME": "relative/ignored"}
    found = isolation.private_dirs_of_current_user(environ, hide=f"{extra}:/:{tmp_path / 'missing'}")
    assert {str(home), str(runtime), str(extra)} <= set(found)
    assert "/" not in found and str(tmp_path / "missing") not in found
    assert all(os.path.isabs(p) for p in found)


def test_isolation_describe_names_what_is_missing() -> None:
    partial = Isolation(privilege_drop=True, uid=5, pid_namespace=True, notes=["no net namespace: EPERM"])
    text = partial.describe()
    assert "uid 5" in text and "pid namespaces" in text and "NETWORK NOT ISOLATED" in text and "EPERM" in text


@needs_root
def test_chown_tree_never_follows_symlinks(tmp_path: Path) -> None:
    target = tmp_path / "target.txt"
    target.write_text("x")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f.txt").write_text("y")
    (tree / "link").symlink_to(target)
    (tree / "dirlink").symlink_to(tmp_path)
    chown_tree(tree, 4242, 4343)
    assert os.lstat(tree / "sub" / "f.txt").st_uid == 4242 and os.lstat(tree / "sub").st_gid == 4343
    assert os.lstat(tree / "link").st_uid == 4242  # the link itself
    assert os.stat(target).st_uid == 0 and os.stat(tmp_path).st_uid == 0


def test_interpreter_dirs_cover_the_interpreter_not_the_project() -> None:
    dirs = interpreter_dirs(sys.executable)
    assert "/" not in dirs
    real_base = os.path.realpath(sys.base_prefix)
    assert any(real_base == d or real_base.startswith(d + "/") for d in dirs)
    project = str(Path(__file__).resolve().parents[1])
    assert not any(project == d or project.startswith(d + "/") for d in dirs)
