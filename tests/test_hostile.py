"""Hostile inputs against the verification sandbox: every case asserts its verdict AND that nothing
outside the workspace changed (a world-writable sentinel directory and file, the source repository,
escape files in /tmp, /var/tmp, /dev/shm) and that no process of the run is left (of its PID
namespace, and in root mode of its sandbox uid).

The suite runs as root in `make test` (root mode), and tests/test_unprivileged.py runs it again as
an ordinary user (userns mode: quorum as uid 10001 in the image): the same cases, the same
verdicts; each run records its mode and verdicts as JUnit properties.

Observed here (root and an ordinary user, Linux 6.18, user/pid/net/mount namespaces available):

=========================  ====================================================================
case                       verdict (status / reason [/ limit_hit])
=========================  ====================================================================
hang                       error / timeout (3 s deadline)
grandchild_holds_output    passed (returns in about a second; the sleeping grandchild is killed)
setsid_grandchild          passed (the setsid()+double-fork daemon is killed with the namespace)
fork_bomb                  error / resource_limit / processes (nproc 64; bomb capped at 1000 forks)
memory_bomb                error / resource_limit / memory (1 GiB address space; bomb capped at 3 GiB)
cpu_burn                   error / resource_limit / cpu (2 s CPU, 30 s deadline: not a timeout)
plain_failure              failed / failed
output_flood               failed / failed (50 MiB + invalid UTF-8 on pytest's real stdout; log capped)
network                    passed (connect to our 127.0.0.1 listener is refused; nothing arrives)
issue 19 attack            passed (reads /proc/*/environ of quorum and a key-holding process,
                           connects to our listener, writes /tmp: no key, nothing arrives, no file)
write_outside              failed / failed (on purpose, to log the attempts: absolute path to a
                           0666 sentinel, ``..``, symlinks out of the repo, /tmp, /var/tmp,
                           /dev/shm; every one refused or lost in a private tmpfs)
junit_rewrite_after_exit   failed / failed (the background forger dies with the namespace)
junit_rewrite_atexit       incomplete / inconsistent_report (exit 1 but the XML says passed)
junit_forged_exit0         incomplete / inconsistent_report (no pytest summary line)
junit_symlink              error / no_report (the XML is a symlink to /etc/passwd: not read)
acceptance_conftest        failed / failed (a repo conftest.py that forges passes is not loaded)
quoted_name_test           passed (test file named with quotes, $() and backticks)
quoted_name_scanners       semgrep failed, bandit failed (findings located in that file)
patch_* (8 cases)          refused with the offending path named (``..``, absolute, .git/config,
                           symlink created, symlink repointed, binary, malformed, oversize)
patch quoted name          applied: the file named with quotes, $() and backticks is created
patch CRLF                 applied, with LF content
=========================  ====================================================================
"""

from __future__ import annotations

import os
import socket
import stat
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest

from quorum.domain.models import VerificationReport, VerificationStatus
from quorum.edits import apply_reply
from quorum.sandbox import isolation
from quorum.sandbox.launch import processes_in_pid_namespace
from quorum.sandbox.runner import ResourceLimits
from quorum.verify.bandit import run_bandit
from quorum.verify.pytest_runner import run_pytest
from quorum.verify.semgrep import find_semgrep, run_semgrep
from quorum.workspace.workspace import prepare_workspace, workspace_diff
from tests.support.issue19_attack import run_attack

IS_ROOT = os.geteuid() == 0
EXPECTED_MODE = "root" if IS_ROOT else "userns"
needs_isolation = pytest.mark.skipif(
    not IS_ROOT and not isolation.probe_userns().available,
    reason=f"no isolation here (not root, and user namespaces unavailable: {isolation.probe_userns().error if not IS_ROOT else ''})",
)

SENTINEL_TEXT = "sentinel: must never change\n"
WEIRD = "test_q'\"$(touch PWNED)`touch PWNED2`.py"

FORGER_HEAD = '''
import os, sys, subprocess, time

def _arg(prefix):
    return next(a[len(prefix):] for a in sys.argv if a.startswith(prefix))

JUNIT = _arg("--junitxml=")
NONCE = _arg("junit_suite_name=")
PASS_XML = (
    f'<?xml version="1.0"?><testsuites><testsuite name="{NONCE}" tests="1">'
    '<testcase classname="test_x" name="test_x" file="test_x.py" line="0"/></testsuite></testsuites>'
)
'''


def _uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def processes_started_before(uid: int, uptime: float) -> list[str]:
    """Live processes of ``uid`` that started before ``uptime`` (later ones belong to other runs)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            status = Path(f"/proc/{name}/status").read_text()
            stat_fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields["Uid"].split()[0]) != uid or stat_fields[0] in ("Z", "X"):
            continue
        if int(stat_fields[19]) / ticks <= uptime:
            found.append(f"{name} {fields.get('Name', '').strip()}")
    return found


def tree_state(root: Path) -> dict[str, tuple]:
    state = {}
    for path in sorted([root, *root.rglob("*")]):
        st = os.lstat(path)
        content = path.read_bytes() if stat.S_ISREG(st.st_mode) else os.readlink(path) if path.is_symlink() else b""
        state[str(path)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, content)
    return state


class Guard:
    """A world-writable sentinel outside every workspace, and the checks run after each case."""

    def __init__(self, repo: Path):
        # One sentinel where the sandbox gets a private tmpfs (/tmp), one on the read-only tree:
        # /run or /var/lib as root; as an ordinary user, a directory of its own outside /tmp and
        # its home (tests/test_unprivileged.py sets QUORUM_TEST_READONLY_ROOT).
        readonly_roots = ["/run", "/var/lib", os.environ.get("QUORUM_TEST_READONLY_ROOT", "")]
        roots = ["/tmp", next(r for r in readonly_roots if r and os.access(r, os.W_OK))]
        self.dirs = [Path(tempfile.mkdtemp(prefix="quorum-sentinel-", dir=root)) for root in roots]
        self.dir = self.dirs[0]
        for directory in self.dirs:
            os.chmod(directory, 0o777)  # writable by anyone, as far as permissions go
            (directory / "sentinel.txt").write_text(SENTINEL_TEXT)
            os.chmod(directory / "sentinel.txt", 0o666)
        self.file = self.dir / "sentinel.txt"
        self.files = [d / "sentinel.txt" for d in self.dirs]
        self.nonce = self.dir.name.rsplit("-", 1)[-1]
        self.escapes = [Path(d) / f"quorum-escape-{self.nonce}" for d in ("/tmp", "/var/tmp", "/dev/shm")]
        self.repo = repo
        self.cwd = Path.cwd()
        self.before = [tree_state(d) for d in self.dirs]

    def check(self, report: VerificationReport | None = None) -> None:
        assert [tree_state(d) for d in self.dirs] == self.before, "a sentinel directory changed"
        assert all(f.read_text() == SENTINEL_TEXT for f in self.files)
        for escape in self.escapes:
            assert not escape.exists(), f"{escape} was written from the sandbox"
        for where in (self.cwd, self.repo, self.dir):
            assert not list(where.glob("PWNED*")), f"a file name was shell-interpreted in {where}"
        if report is not None and report.sandbox.get("mode") == "root":
            left = processes_started_before(report.sandbox["uid"], _uptime())
            assert left == [], f"processes of the sandbox uid survived: {left}"
        if report is not None and report.sandbox.get("mode") in ("root", "userns"):
            assert report.sandbox["pid_ns"], "the run had no PID namespace"
            left_in_ns = processes_in_pid_namespace(report.sandbox["pid_ns"])
            assert left_in_ns == [], f"processes of the sandbox's PID namespace survived: {left_in_ns}"
            assert report.sandbox["leftover_processes"] == 0

    def cleanup(self) -> None:
        for directory in self.dirs:
            for path in sorted(directory.rglob("*"), reverse=True):
                path.unlink() if not path.is_dir() or path.is_symlink() else path.rmdir()
            directory.rmdir()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    return root


@pytest.fixture
def guard(repo: Path):
    g = Guard(repo)
    yield g
    g.cleanup()


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def repo_state(repo: Path) -> dict:
    return tree_state(repo)


# ------------------------------------------------------------------------ sandboxed pytest runs

# name -> (test files, run_pytest kwargs, (status, reason, limit_hit))
CASES: dict[str, tuple[dict[str, str], dict, tuple[str, str, str]]] = {
    "hang": (
        {"test_hang.py": "import time\n\ndef test_hang():\n    time.sleep(600)\n"},
        {"timeout_s": 3},
        ("error", "timeout", ""),
    ),
    "grandchild_holds_output": (
        {"test_bg.py": """
            import subprocess

            def test_spawn():
                # Inherits every descriptor, pytest's saved real stdout/stderr included.
                subprocess.Popen(["sleep", "600"], close_fds=False)
        """},
        {"timeout_s": 60},
        ("passed", "", ""),
    ),
    "setsid_grandchild": (
        {"test_daemon.py": """
            import os, time

            def test_daemon():
                r, w = os.pipe()
                if os.fork() == 0:
                    os.setsid()
                    if os.fork() == 0:
                        os.write(w, b"up")
                        time.sleep(600)
                    os._exit(0)
                assert os.read(r, 2) == b"up"
        """},
        {"timeout_s": 60},
        ("passed", "", ""),
    ),
    "fork_bomb": (
        {"test_bomb.py": """
            import os, time

            def test_fork_bomb():
                for _ in range(1000):  # bounded, so a sandbox bug cannot take the machine down
                    if os.fork() == 0:
                        time.sleep(60)
                        os._exit(0)
        """},
        {"timeout_s": 60, "limits": ResourceLimits(cpu_s=60, nproc=64)},
        ("error", "resource_limit", "processes"),
    ),
    "memory_bomb": (
        {"test_mem.py": """
            def test_memory_bomb():
                chunks = []
                for _ in range(12):  # at most 3 GiB, never more
                    chunks.append(bytearray(256 << 20))
        """},
        {"timeout_s": 60, "limits": ResourceLimits(cpu_s=60, address_space_bytes=1 << 30, nproc=64)},
        ("error", "resource_limit", "memory"),
    ),
    "cpu_burn": (
        {"test_cpu.py": "def test_burn():\n    while True:\n        pass\n"},
        {"timeout_s": 30, "limits": ResourceLimits(cpu_s=2, nproc=64)},
        ("error", "resource_limit", "cpu"),
    ),
    "plain_failure": (
        {"test_fail.py": "def test_fail():\n    assert 1 == 2\n"},
        {"timeout_s": 60},
        ("failed", "failed", ""),
    ),
    "output_flood": (
        {"test_flood.py": """
            import os

            def test_flood(request):
                capman = request.config.pluginmanager.getplugin("capturemanager")
                fd = capman._global_capturing.out.targetfd_save  # pytest's real stdout
                line = b"A" * 1023 + b"\\n"
                for _ in range(50 * 1024):
                    os.write(fd, line)
                os.write(fd, b"\\xff\\xfe\\xc3( not utf-8\\n")
                assert False, "flooded"
        """},
        {"timeout_s": 60},
        ("failed", "failed", ""),
    ),
    "junit_rewrite_after_exit": (
        {"test_x.py": FORGER_HEAD + """
FORGER = '''
import os, sys, time
junit, xml, ppid = sys.argv[1], sys.argv[2], os.getppid()
for _ in range(30000):  # wait (bounded) for pytest to exit, then forge
    if os.getppid() != ppid:
        open(junit, "w").write(xml)
        break
    time.sleep(0.001)
'''

def test_x():
    subprocess.Popen([sys.executable, "-c", FORGER, JUNIT, PASS_XML], start_new_session=True)
    assert False, "really failed"
"""},
        {"timeout_s": 60},
        ("failed", "failed", ""),
    ),
    "junit_rewrite_atexit": (
        {"test_x.py": FORGER_HEAD + """
import atexit

def test_x():
    atexit.register(lambda: open(JUNIT, "w").write(PASS_XML))
    assert False, "really failed"
"""},
        {"timeout_s": 60},
        ("incomplete", "inconsistent_report", ""),
    ),
    "junit_forged_exit0": (
        {"test_x.py": FORGER_HEAD + """
def test_x():
    open(JUNIT, "w").write(PASS_XML)
    os._exit(0)
"""},
        {"timeout_s": 60},
        ("incomplete", "inconsistent_report", ""),
    ),
    "junit_symlink": (
        {"test_x.py": FORGER_HEAD + """
import atexit

def _swap():
    os.unlink(JUNIT)
    os.symlink("/etc/passwd", JUNIT)

def test_x():
    atexit.register(_swap)
"""},
        {"timeout_s": 60},
        ("error", "no_report", ""),
    ),
    "quoted_name_test": (
        {WEIRD: "def test_ok():\n    assert True\n"},
        {"timeout_s": 60},
        ("passed", "", ""),
    ),
}


@needs_isolation
@pytest.mark.parametrize("case", list(CASES))
def test_sandboxed_run(case: str, repo: Path, guard: Guard, record_property) -> None:
    files, kwargs, (status, reason, limit) = CASES[case]
    write(repo, files)
    before = repo_state(repo)
    report = run_pytest(repo, **kwargs)
    record_property("mode", report.sandbox.get("mode"))
    record_property("verdict", f"{report.status.value}/{report.reason}/{report.limit_hit}")
    assert (report.status.value, report.reason, report.limit_hit) == (status, reason, limit), report.summary
    assert report.sandbox["privilege_drop"] and report.network_isolated is True
    assert report.sandbox["mode"] == EXPECTED_MODE
    assert repo_state(repo) == before
    guard.check(report)
    if case in ("grandchild_holds_output", "setsid_grandchild"):
        assert report.duration_s < 30  # did not wait for the sleeping grandchild
    if case == "output_flood":
        assert len(report.log) < 600_000 and "bytes truncated" in report.log
        assert "\ufffd" in report.log  # the invalid bytes arrived and were replaced
        assert len(report.summary) <= 4000
    if case == "junit_symlink":
        assert "root:" not in report.raw + report.summary + report.log
    if case == "junit_rewrite_after_exit":
        assert 'name="test_x"' in report.raw and "really failed" in report.raw
    if case == "quoted_name_test":
        assert "1 passed" in report.summary


@needs_isolation
def test_network_is_blocked(repo: Path, guard: Guard) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                accepted.append(conn.recv(100) or b"(connected)")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    write(repo, {"test_net.py": f"""
        import socket

        def test_connect():
            try:
                conn = socket.create_connection(("127.0.0.1", {port}), timeout=3)
            except OSError as exc:
                print("blocked:", exc)
                return
            conn.sendall(b"escaped")
            conn.close()
            raise AssertionError("reached the host's listener")
    """})
    try:
        report = run_pytest(repo, timeout_s=60)
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    assert (report.status, report.reason) == (VerificationStatus.passed, ""), report.summary
    assert report.network_isolated is True and report.sandbox["mode"] == EXPECTED_MODE
    assert accepted == []
    guard.check(report)


@needs_isolation
def test_the_issue_19_attack_gets_no_secret_no_network_and_no_file(repo: Path, guard: Guard, record_property) -> None:
    """What the issue's attacker did, as a test a patch adds (tests/support/issue19_attack.py): read the
    environment of quorum's processes through /proc/<pid>/environ (quorum's own, its parent, and a
    process holding a model key from its start), send what it found to a loopback listener of
    ours, and write a file in /tmp."""
    outcome = run_attack(repo, guard.escapes[0])
    report = outcome.report
    record_property("mode", report.sandbox.get("mode"))
    record_property("verdict", f"{report.status.value}/{report.reason}/{report.limit_hit}")
    record_property("attack", outcome.attack_line)
    assert (report.status, report.reason) == (VerificationStatus.passed, ""), report.summary
    assert report.sandbox["mode"] == EXPECTED_MODE and report.network_isolated is True
    assert outcome.attack_line.startswith("ATTACK visible=")  # the attack ran and reported what it got
    own_key = os.environ.get("ANTHROPIC_API_KEY")
    for secret in filter(None, (outcome.planted, own_key)):
        assert secret not in report.log + report.raw + report.summary, "a key reached the report"
    assert "STOLEN=[]" in outcome.attack_line and "network=blocked" in outcome.attack_line
    assert "tmp=written" in outcome.attack_line  # ...into the sandbox's own /tmp, which died with it
    assert outcome.received == [] and not outcome.escape_written
    guard.check(report)


@needs_isolation
def test_writes_outside_the_workspace_change_nothing(repo: Path, guard: Guard) -> None:
    ro_file = guard.files[1]
    (repo / "link_file").symlink_to(guard.file)
    (repo / "link_dir").symlink_to(guard.dir)
    (repo / "link_ro").symlink_to(ro_file)
    targets = [
        str(guard.file), str(guard.dir / "new.txt"), str(repo / "planted.txt"),
        str(ro_file), str(ro_file.parent / "new.txt"), "link_ro",
        f"../quorum-escape-{guard.nonce}", f"../../quorum-escape-{guard.nonce}",
        *(str(p) for p in guard.escapes), "link_file", "link_dir/new.txt",
    ]
    write(repo, {"test_escape.py": f"""
        import os

        TARGETS = {targets!r}

        def test_escape():
            outcome = []
            for target in TARGETS:
                try:
                    with open(target, "w") as f:
                        f.write("owned")
                    outcome.append(f"WROTE {{target}}")
                except OSError as exc:
                    outcome.append(f"refused {{target}}: {{exc.strerror}}")
                for change in (lambda: os.chmod(target, 0o777), lambda: os.utime(target, (0, 0))):
                    try:
                        change()
                    except OSError:
                        pass
            # Fail on purpose, so the attempts show in the report.
            assert False, f"ATTEMPTED {{len(outcome)}}: " + " | ".join(outcome)
    """})
    before = repo_state(repo)
    report = run_pytest(repo, timeout_s=60)
    assert (report.status, report.reason) == (VerificationStatus.failed, "failed"), report.summary
    assert f"ATTEMPTED {len(targets)}" in report.log
    assert f"refused {guard.file}" in report.log  # the world-writable sentinels were out of reach
    assert f"refused {ro_file}: Read-only file system" in report.log
    assert repo_state(repo) == before
    assert all(os.lstat(f).st_uid == os.geteuid() for f in guard.files)  # chown of the copy did not follow links
    guard.check(report)


@needs_isolation
def test_acceptance_run_ignores_a_forging_repo_conftest(repo: Path, guard: Guard, tmp_path: Path) -> None:
    write(repo, {
        "calc.py": "def add(a, b):\n    return a - b\n",
        # Generated code trying to make the held-out tests pass whatever happens.
        "conftest.py": """
            import pytest

            @pytest.hookimpl(hookwrapper=True)
            def pytest_runtest_makereport(item, call):
                outcome = yield
                report = outcome.get_result()
                report.outcome = "passed"
        """,
        "sitecustomize.py": "raise SystemExit('sitecustomize from the repository ran')\n",
        "pytest.ini": "[pytest]\nconfcutdir = /\n",
    })
    acceptance = tmp_path / "acceptance"
    write(acceptance, {"test_accept.py": "from calc import add\n\ndef test_add():\n    assert add(1, 1) == 2\n"})
    report = run_pytest(repo, tool="acceptance", extra_tests=acceptance, timeout_s=60)
    assert (report.status, report.reason) == (VerificationStatus.failed, "failed"), report.summary
    assert report.findings and report.findings[0].file == ".quorum_acceptance/test_accept.py"
    guard.check(report)


# -------------------------------------------------------------------------------------- scanners


def test_quoted_file_name_is_scanned_not_shell_interpreted(repo: Path, guard: Guard) -> None:
    name = WEIRD.replace("test_", "mod_")
    write(repo, {name: "import subprocess\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"})
    added = {name: [1, 2, 3, 4]}
    bandit = run_bandit(repo, [name], added)
    assert bandit.status == VerificationStatus.failed, bandit.summary
    assert any(f.file == name and f.rule == "B602" for f in bandit.findings)
    if find_semgrep()[0] is not None:
        semgrep = run_semgrep(repo, [name], added)
        assert semgrep.status == VerificationStatus.failed, semgrep.summary
        assert any(f.file == name for f in semgrep.findings)
    guard.check()


# --------------------------------------------------------------------------------------- patches


def lines(*items: str) -> str:
    return "\n".join(items) + "\n"


PATCHES = {
    "dotdot": (lines("--- /dev/null", "+++ b/../escape.txt", "@@ -0,0 +1 @@", "+owned"), "../escape.txt"),
    "absolute": (lines("--- /dev/null", "+++ /tmp/quorum-escape-abs.txt", "@@ -0,0 +1 @@", "+owned"),
                 "/tmp/quorum-escape-abs.txt"),
    "git_config": (lines("diff --git a/.git/config b/.git/config", "--- a/.git/config", "+++ b/.git/config",
                         "@@ -1 +1,2 @@", " [core]", "+\thooksPath = /tmp"), ".git/config"),
    "symlink_create": (lines("diff --git a/etc b/etc", "new file mode 120000", "--- /dev/null", "+++ b/etc",
                             "@@ -0,0 +1 @@", "+/etc", "\\ No newline at end of file"), "etc"),
    "symlink_repoint": (lines("--- a/link", "+++ b/link", "@@ -1 +1 @@", "-app.py", "\\ No newline at end of file",
                              "+/etc", "\\ No newline at end of file"), "link"),
    "binary": (lines("diff --git a/blob.bin b/blob.bin", "new file mode 100644", "index 0000000..1111111",
                     "GIT binary patch", "literal 5", "McmZ?wbaG<=000310ssI2", "", "literal 0", "HcmV?d00001", ""),
               "blob.bin"),
    "interrupted_hunk": (lines("--- a/app.py", "+++ b/app.py", "@@ -1 +1,2 @@", " x = 1", "rm -rf /", "+y = 2"),
                         "app.py"),
    "oversize": (lines("--- /dev/null", "+++ b/big.txt", "@@ -0,0 +1,30000 @@",
                       *("+" + "x" * 10 for _ in range(30000))), "big.txt"),
}  # fmt: skip


@pytest.fixture
def git_ws(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    (source / "app.py").write_text("x = 1\n")
    (source / "link").symlink_to("app.py")
    return Path(prepare_workspace(source, tmp_path / "work").path)


@pytest.mark.parametrize("case", list(PATCHES))
def test_hostile_patch_is_refused_with_path_and_reason(case: str, git_ws: Path, guard: Guard) -> None:
    diff, path = PATCHES[case]
    before = tree_state(git_ws.parent)
    result = apply_reply(git_ws, diff)
    assert result.applied is False
    assert path in result.reason and result.reason.split(":")[0], result.reason
    assert workspace_diff(git_ws) == ""
    assert tree_state(git_ws.parent) == before
    assert not Path("/tmp/quorum-escape-abs.txt").exists() and not (git_ws.parent / "escape.txt").exists()
    guard.check()


def test_hunk_with_wrong_counts_applies_exactly_what_it_shows(git_ws: Path, guard: Guard) -> None:
    # Deliberate change: this was the "malformed" case above, refused because its header's counts are
    # wrong. Counts are not trusted now; the hunk's content places it, and nothing else may change.
    before = tree_state(git_ws.parent)
    result = apply_reply(git_ws, lines("--- a/app.py", "+++ b/app.py", "@@ -1,5 +1,6 @@", " x = 1", "+y = 2"))
    assert result.applied, result.reason
    assert result.files == ["app.py"] and (git_ws / "app.py").read_text() == "x = 1\ny = 2\n"
    after = tree_state(git_ws.parent)
    changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    assert changed == {str(git_ws / "app.py")}
    assert os.readlink(git_ws / "link") == "app.py"
    guard.check()


def test_patch_creating_a_quoted_name_applies_literally(git_ws: Path, guard: Guard) -> None:
    name = "it's \"$(touch PWNED)\" `touch PWNED2`.py"
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    diff = lines(f'diff --git "a/{quoted}" "b/{quoted}"', "new file mode 100644", "--- /dev/null",
                 f'+++ "b/{quoted}"', "@@ -0,0 +1 @@", "+x = 1")  # fmt: skip
    result = apply_reply(git_ws, diff)
    assert result.applied, result.reason
    assert result.files == [name] and (git_ws / name).read_text() == "x = 1\n"
    assert not list(git_ws.parent.rglob("PWNED*"))
    guard.check()


def test_crlf_patch_applies_with_lf_content(git_ws: Path, guard: Guard) -> None:
    diff = lines("--- a/app.py", "+++ b/app.py", "@@ -1 +1,2 @@", " x = 1", "+y = 2").replace("\n", "\r\n")
    result = apply_reply(git_ws, diff)
    assert result.applied, result.reason
    assert (git_ws / "app.py").read_bytes() == b"x = 1\ny = 2\n"
    guard.check()
