"""Run quorum as an ordinary user, from a test running as root: the user, an interpreter it can read, the runs.

The project's .venv is built from an interpreter under /root (pyenv), which an ordinary user cannot
read. Debian's /usr/bin/python3.X (same minor version, so the same extension-module ABI) can: a
pip-less venv made from it, owned by the user, gets a ``.pth`` that adds the project's
site-packages (compiled for that ABI, world-readable) with ``site.addsitedir``, so their own
``.pth`` files (the editable install of quorum) are processed too. Semgrep gets the same treatment
from .venv-semgrep, plus a ``semgrep`` script of its own. Building both takes well under a second.

Layout of a session (``/var/lib/quorum-ci/session-*``, mode 0755, owned by the user): ``venv/``,
``semgrep-venv/``, ``home/`` (HOME, PREFECT_HOME), ``work/`` (basetemp and outputs). Not under
/tmp, /var/tmp or /dev/shm (which a sandbox replaces with fresh tmpfs), nor under the user's home
(which a userns sandbox hides), so sandboxes see it read-only, like the rest of the tree.
"""

from __future__ import annotations

import contextlib
import os
import signal
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pydantic import BaseModel

REPO_ROOT = Path(__file__).resolve().parents[2]
USER_NAME = "quorum-ci-user"
SESSIONS = Path("/var/lib/quorum-ci")
PY_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
SYSTEM_PYTHON = Path(f"/usr/bin/python{PY_VERSION}")


class Unavailable(RuntimeError):
    """This host cannot run the ordinary-user tests (not root, no useradd, no readable interpreter)."""


class OrdinaryUser(BaseModel):
    name: str
    uid: int
    gid: int
    session: Path
    python: str
    semgrep: str | None
    home: Path
    work: Path

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """A plain environment for the user: its HOME, offline settings, no variable of ours."""
        return {
            "PATH": f"{Path(self.python).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "LANG": "C.UTF-8",
            "PREFECT_HOME": str(self.home / ".prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "SEMGREP_ENABLE_VERSION_CHECK": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            **({"QUORUM_SEMGREP": self.semgrep} if self.semgrep else {}),
            **(extra or {}),
        }

    def run(
        self, argv: list[str], *, env: dict[str, str], cwd: Path | None = None, timeout_s: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` as the user (its uid and gid, no supplementary group), in a new session.

        However the run ends (done, timed out, or the test interrupted), the whole session is killed,
        so no process of the user outlives it and misleads the next test's leftover check.
        """
        process = subprocess.Popen(
            argv, user=self.uid, group=self.gid, extra_groups=[], env=env, cwd=cwd or REPO_ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            if process.returncode is None:
                process.wait()
        return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def ensure_user(name: str = USER_NAME) -> tuple[int, int]:
    """The user's (uid, gid), creating it (system user, own group, no home, no login) if missing."""
    try:
        entry = pwd.getpwnam(name)
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        pass
    useradd = shutil.which("useradd") or ("/usr/sbin/useradd" if os.path.exists("/usr/sbin/useradd") else None)
    if useradd is None:
        raise Unavailable("useradd is not installed")
    done = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", name],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode not in (0, 9):  # 9: created meanwhile by a parallel session
        raise Unavailable(f"useradd {name} failed ({done.returncode}): {done.stderr.strip()}")
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def _readable_by_others(path: Path) -> bool:
    """Every directory up to ``path`` traversable and ``path`` readable by a stranger."""
    current = Path("/")
    for part in path.resolve().parts[1:]:
        current = current / part
        mode = current.stat().st_mode
        needed = 0o005 if current.is_dir() else 0o004
        if mode & needed != needed:
            return False
    return True


def _venv_with(target: Path, site_packages: Path) -> Path:
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(target)], check=True, capture_output=True)
    own_site = target / "lib" / f"python{PY_VERSION}" / "site-packages"
    (own_site / "quorum-ci-deps.pth").write_text(f"import site; site.addsitedir({str(site_packages)!r})\n")
    return target / "bin" / "python"


def make_session(name: str = USER_NAME) -> OrdinaryUser:
    """A fresh session for the user (see the module docstring). Raises Unavailable with the reason."""
    if os.geteuid() != 0:
        raise Unavailable("creating a user and running as it needs root")
    if not SYSTEM_PYTHON.is_file():
        raise Unavailable(f"{SYSTEM_PYTHON} (an interpreter an ordinary user can read) is not installed")
    site_packages = REPO_ROOT / ".venv" / "lib" / f"python{PY_VERSION}" / "site-packages"
    if not site_packages.is_dir() or not _readable_by_others(site_packages) or not _readable_by_others(REPO_ROOT):
        raise Unavailable(f"{site_packages} or the checkout is not readable by other users")
    uid, gid = ensure_user(name)
    SESSIONS.mkdir(mode=0o755, parents=True, exist_ok=True)
    session = Path(tempfile.mkdtemp(prefix="session-", dir=SESSIONS))
    python = _venv_with(session / "venv", site_packages)
    semgrep = None
    semgrep_site = REPO_ROOT / ".venv-semgrep" / "lib" / f"python{PY_VERSION}" / "site-packages"
    if semgrep_site.is_dir() and _readable_by_others(semgrep_site):
        semgrep_python = _venv_with(session / "semgrep-venv", semgrep_site)
        for script_name, module in (("semgrep", "entrypoint"), ("pysemgrep", "pysemgrep")):  # semgrep execs pysemgrep
            script = session / "semgrep-venv" / "bin" / script_name
            script.write_text(
                f"#!{semgrep_python}\nimport sys\nfrom semgrep.console_scripts.{module} import main\n"
                "if __name__ == '__main__':\n    sys.exit(main())\n"
            )
            script.chmod(0o755)
        semgrep = str(session / "semgrep-venv" / "bin" / "semgrep")
    home, work = session / "home", session / "work"
    home.mkdir()
    work.mkdir()
    for directory, _, files in os.walk(session):
        os.chown(directory, uid, gid)
        for file in files:
            os.chown(os.path.join(directory, file), uid, gid, follow_symlinks=False)
    os.chmod(session, 0o755)
    return OrdinaryUser(
        name=name, uid=uid, gid=gid, session=session, python=str(python), semgrep=semgrep, home=home, work=work
    )


def remove_session(user: OrdinaryUser) -> None:
    shutil.rmtree(user.session, ignore_errors=True)


def processes_of(uid: int) -> list[str]:
    """Live (non-zombie) processes of ``uid``: 'pid name' each."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            status = Path(f"/proc/{name}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields["Uid"].split()[0]) == uid and not fields.get("State", "").strip().startswith(("Z", "X")):
            found.append(f"{name} {fields.get('Name', '').strip()}")
    return found
