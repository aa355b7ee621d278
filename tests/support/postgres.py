"""A throwaway PostgreSQL server for tests: Debian's binaries, a fresh cluster, one database, gone on exit.

``with LocalPostgres() as pg:`` gives ``pg.url`` (``postgresql+asyncpg://...``, what Prefect's
``PREFECT_API_DATABASE_CONNECTION_URL`` takes). The cluster lives in a temporary folder under /tmp,
listens on a free port of 127.0.0.1 (and a unix socket in that folder), trusts local connections
(nothing but this test can reach it) and runs without fsync: it is thrown away. ``initdb`` refuses
to run as root, so as root every server command runs as the ``postgres`` system user that Debian's
package creates, owning the folder. On exit, even after a failure: ``pg_ctl stop -m immediate``,
SIGKILL to the postmaster if it is still there, and the folder removed.

A machine without PostgreSQL raises ``PostgresUnavailable`` saying what to install; tests let it
fail rather than skip, so a missing package is never mistaken for a pass.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

from tests.support.devstack import free_port

INSTALL_HINT = "install Debian's PostgreSQL server: apt-get install -y postgresql"
SERVER_USER = "postgres"
DATABASE = "prefect"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server binaries or its system user are missing on this machine."""


class PostgresError(RuntimeError):
    pass


def find_bindir() -> Path:
    """The newest /usr/lib/postgresql/<major>/bin holding initdb, pg_ctl and postgres (or $QUORUM_PG_BINDIR)."""
    candidates = [Path(os.environ["QUORUM_PG_BINDIR"])] if os.environ.get("QUORUM_PG_BINDIR") else []
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _major(p.parent.name), reverse=True)
    for bindir in [*candidates, *versions]:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres", "createdb", "psql")):
            return bindir
    raise PostgresUnavailable(
        f"no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql: {INSTALL_HINT}"
    )


def _major(name: str) -> int:
    return int(name) if name.isdigit() else -1


class LocalPostgres:
    """A PostgreSQL server of its own for one test session (see the module docstring)."""

    startup_timeout_s = 60

    def __init__(self, database: str = DATABASE) -> None:
        self.bindir = find_bindir()
        self.database = database
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                entry = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise PostgresUnavailable(
                    f"initdb refuses root and there is no '{SERVER_USER}' system user to run it as: {INSTALL_HINT}"
                ) from None
            self.uid, self.gid = entry.pw_uid, entry.pw_gid
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
        self.user = pwd.getpwuid(self.uid).pw_name
        self.port = 0
        self.root: Path | None = None

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None
        return self.root / "socket"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @property
    def log_path(self) -> Path:
        assert self.root is not None
        return self.root / "server.log"

    # ----------------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> Self:
        # Under /tmp (world-traversable), not under pytest's tmp_path (root-only 0700): the server user must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="quorum-postgres-"))
        try:
            self.socket_dir.mkdir()
            os.chown(self.root, self.uid, self.gid)
            os.chown(self.socket_dir, self.uid, self.gid)
            self._run(
                "initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "--encoding=UTF8", "--locale=C",
                "--no-sync",
            )  # fmt: skip
            self.port = free_port()
            options = " ".join([
                f"-p {self.port}", "-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={self.socket_dir}",
                "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off", "-c max_connections=200",
            ])  # fmt: skip
            self._run(
                "pg_ctl", "start", "-D", str(self.data), "-l", str(self.log_path), "-w",
                "-t", str(self.startup_timeout_s), "-o", options,
            )  # fmt: skip
            self._run("createdb", "-h", str(self.socket_dir), "-p", str(self.port), "-U", self.user, self.database)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server at once (it is thrown away) and remove its folder; safe to call twice."""
        if self.root is None:
            return
        try:
            if (self.data / "postmaster.pid").exists():
                with contextlib.suppress(PostgresError, subprocess.TimeoutExpired):
                    self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", timeout_s=40)
                self._kill_leftover()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def query(self, sql: str) -> str:
        """One SQL statement through psql over the unix socket; its unaligned output (``-At``)."""
        return self._run(
            "psql", "-h", str(self.socket_dir), "-p", str(self.port), "-U", self.user, "-d", self.database,
            "-v", "ON_ERROR_STOP=1", "-At", "-c", sql,
        ).strip()  # fmt: skip

    def _kill_leftover(self) -> None:
        """SIGKILL the postmaster if pg_ctl could not stop it (its pid is postmaster.pid's first line)."""
        pid_file = self.data / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                time.sleep(0.1)

    # ------------------------------------------------------------------------------------- helpers
    def _run(self, tool: str, *args: str, timeout_s: float = 120) -> str:
        """Run one of PostgreSQL's programs as the server user; raise with its output on failure."""
        argv = [str(self.bindir / tool), *args]
        env = {"PATH": f"{self.bindir}:/usr/bin:/bin", "LANG": "C", "LC_ALL": "C", "HOME": str(self.root)}
        privileges = {"user": self.uid, "group": self.gid, "extra_groups": []} if self.as_root else {}
        result = subprocess.run(
            argv, check=False, env=env, cwd=self.root, capture_output=True, text=True, timeout=timeout_s,
            **privileges,
        )  # fmt: skip
        if result.returncode != 0:
            log = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
            raise PostgresError(
                f"{tool} {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n{log}"
            )
        return result.stdout
