"""Environment builds and repository test runs through quorum's sandbox (``quorum.sandbox.runner``).

A :class:`~quorum.environments.runner.Command` says what it writes (``writable``), what it must
read besides the system (``readable``: the base interpreter's prefix, uv's directory, the
environment) and what network it needs. Here that becomes ``run_command(..., confine=Confinement(...))``:

* root mode (quorum runs as root): the command runs as one unprivileged uid of the sandbox's uid
  pool; every ``writable`` directory is given to that uid first. A **build** holds one uid for
  all its commands (:func:`sandboxed_build`) and uses a uv cache of that uid's own
  (``<cache>/.uv-cache/uid-<uid>``), so no build can plant files in a cache another uid's build
  trusts; a **test run** takes a uid per command.
* userns mode (an ordinary user): the same through a user namespace (our uid mapped inside).
* no isolation possible and no opt-in: ``IsolationUnavailable`` (the caller reports it; nothing runs).

Network: ``package-index`` (only ``uv pip install``) runs with ``Confinement(network=True)``:
the sandbox's network switch is all or nothing, so that one command has the host's network
(including loopback services such as a Prefect server on 127.0.0.1). Every other build command
and every test run gets a network namespace with loopback only. docs/environments.md says what
this risks and what would narrow it (an index-only proxy).

The command's environment is the Command's own (built from nothing by ``build.py`` / ``testrun.py``);
names that look like secrets are dropped here once more.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

from quorum.environments.runner import Command, CommandResult, Runner
from quorum.sandbox.runner import (
    Confinement,
    ResourceLimits,
    SandboxSlot,
    chown_tree,
    is_secret_name,
    run_command,
    sandbox_slot,
)

# uv runs a thread pool and RLIMIT_NPROC counts threads: 256 is the least it needs here.
BUILD_LIMITS = ResourceLimits(cpu_s=None, address_space_bytes=None, file_size_bytes=2 << 30, nproc=512)
TEST_LIMITS = ResourceLimits(address_space_bytes=4 << 30, file_size_bytes=256 << 20, nproc=256)


def _owned_by(path: str, uid: int) -> bool:
    try:
        return os.lstat(path).st_uid == uid
    except FileNotFoundError:
        return True


def _give(paths: list[str], slot: SandboxSlot | None) -> None:
    """Make ``paths`` the slot uid's (root mode). Trees already its own are left alone."""
    if slot is None:
        return
    for path in paths:
        if os.path.isdir(path) and not _owned_by(path, slot.uid):
            chown_tree(Path(path), slot.uid, slot.gid)


# The launcher runs with our interpreter and imports stdlib modules after the mounts are set up:
# its standard library stays readable (the interpreter's base prefix, not quorum's environment).
LAUNCHER_STDLIB = os.path.realpath(sys.base_prefix)


def _confinement(cmd: Command, slot: SandboxSlot | None) -> Confinement:
    return Confinement(
        slot=slot, writable=list(cmd.writable), expose=[*cmd.readable, LAUNCHER_STDLIB],
        network=cmd.network == "package-index",
    )


def _clean_env(env: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if not is_secret_name(name)}


def run_in_sandbox(cmd: Command, slot: SandboxSlot | None, limits: ResourceLimits) -> CommandResult:
    """Run one Command confined (``slot``: the uid to run as in root mode; None otherwise)."""
    for path in cmd.writable:
        os.makedirs(path, exist_ok=True)
    _give(list(cmd.writable), slot)
    res = run_command(
        cmd.argv, cwd=Path(cmd.cwd), timeout_s=cmd.timeout_s, env=_clean_env(cmd.env),
        output_cap_bytes=cmd.output_cap_bytes, limits=limits, confine=_confinement(cmd, slot),
    )  # fmt: skip
    notes = []
    if res.isolation is not None:
        notes.append(res.isolation.describe())
    return CommandResult(
        name=cmd.name, argv=list(cmd.argv), returncode=res.returncode, timed_out=res.timed_out,
        spawn_error=res.spawn_error, stdout=res.stdout, stderr="\n".join([res.stderr, *notes]).strip("\n"),
        duration_s=res.duration_s,
    )  # fmt: skip


def test_runner(limits: ResourceLimits = TEST_LIMITS) -> Runner:
    """A Runner for repository test runs: one sandbox uid per command, loopback-only network."""

    def run(cmd: Command) -> CommandResult:
        with sandbox_slot() as slot:
            return run_in_sandbox(cmd, slot, limits)

    return run


test_runner.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


@contextlib.contextmanager
def sandboxed_build(cache: Path, limits: ResourceLimits = BUILD_LIMITS) -> Iterator[tuple[Runner, Path]]:
    """``build.ensure_environment(runner_factory=sandboxed_build)``: one sandbox uid for a whole
    build and that uid's own uv cache."""
    with sandbox_slot() as slot:
        uv_cache = cache / ".uv-cache" / (f"uid-{slot.uid}" if slot is not None else f"uid-{os.geteuid()}")
        uv_cache.mkdir(parents=True, exist_ok=True)
        os.chmod(uv_cache.parent, 0o755)

        def run(cmd: Command) -> CommandResult:
            return run_in_sandbox(cmd, slot, limits)

        yield run, uv_cache
