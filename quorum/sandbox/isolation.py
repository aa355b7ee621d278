"""Which isolation a confined command gets, decided once per process, and what to say when there is none.

Three modes (``Isolation.mode`` on every confined run):

* ``root``: quorum runs as root; the launcher drops the command to a reserved uid and gives it new
  PID, network, IPC and mount namespaces (``quorum.sandbox.launch``, "root" way in);
* ``userns``: quorum runs as an ordinary user and the kernel lets it create a user namespace; the
  launcher enters new user, PID, network, IPC and mount namespaces, maps the user to the same,
  unprivileged id inside, and runs the command there without capabilities ("userns" way in);
* ``none``: neither is possible. Untrusted commands do not run at all (``IsolationUnavailable``,
  verdict ``error`` / ``no_isolation``) unless the operator sets ``QUORUM_SANDBOX_ALLOW_UNISOLATED=1``;
  then they run with limits, a scrubbed environment and a process-group kill only, and every
  report says ``unisolated``.

``choose_mode``, ``no_isolation_message``, ``is_explicit_yes`` and ``parse_verify_deployment`` are
pure; ``probe_userns`` runs the launcher once per process (``launch.py --probe``: a real ``unshare``
of every namespace plus a fresh ``/proc`` mount, in a throwaway child) and caches its answer. The
settings (``QUORUM_SANDBOX_ALLOW_UNISOLATED``, ``QUORUM_SANDBOX_HIDE``, ``QUORUM_VERIFY_DEPLOYMENT``,
``QUORUM_HANDOFF_STORE``) are read through ``quorum.settings`` like every ``QUORUM_*`` variable.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import threading
from pathlib import Path
from typing import Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field

from quorum.settings import settings

Mode = Literal["root", "userns", "none"]

ALLOW_UNISOLATED_ENV = "QUORUM_SANDBOX_ALLOW_UNISOLATED"
HIDE_ENV = "QUORUM_SANDBOX_HIDE"
VERIFY_DEPLOYMENT_ENV = "QUORUM_VERIFY_DEPLOYMENT"
HANDOFF_STORE_ENV = "QUORUM_HANDOFF_STORE"
TRUE_VALUES = frozenset({"1", "true", "yes", "on"})
PROBE_TIMEOUT_S = 30.0


class UsernsProbe(BaseModel):
    """What the kernel said when the launcher tried the rootless way in."""

    model_config = ConfigDict(frozen=True)

    available: bool
    error: str = Field(default="", description="The step that failed and the kernel's error, when not available.")
    hints: list[str] = Field(default_factory=list, description="Host settings that explain a refusal.")


class IsolationPlan(BaseModel):
    """The mode confined commands get in this process, and why."""

    model_config = ConfigDict(frozen=True)

    mode: Mode
    allowed: bool = Field(description="False: confined commands must not run (no isolation and no opt-in).")
    why: str = Field(default="", description="Why neither root nor userns isolation is available ('' when one is).")


def is_explicit_yes(value: str | None) -> bool:
    """'1', 'true', 'yes', 'on' (any case): yes; anything else, a typo included: no. Pure."""
    return (value or "").strip().lower() in TRUE_VALUES


def allow_unisolated() -> bool:
    """True when the operator explicitly allowed untrusted commands to run without isolation."""
    return is_explicit_yes(settings().sandbox_allow_unisolated)


def choose_mode(euid: int, probe: UsernsProbe | None, allow: bool) -> IsolationPlan:
    """Root first, then a user namespace, else nothing (allowed only with the opt-in). Pure."""
    if euid == 0:
        return IsolationPlan(mode="root", allowed=True)
    if probe is not None and probe.available:
        return IsolationPlan(mode="userns", allowed=True)
    why = f"quorum runs as uid {euid}, not root, and user namespaces are unavailable"
    if probe is not None and probe.error:
        why += f" ({probe.error})"
    if probe is not None and probe.hints:
        why += "; " + "; ".join(probe.hints)
    return IsolationPlan(mode="none", allowed=allow, why=why)


def no_isolation_message(plan: IsolationPlan) -> str:
    """What a refused run says: why, and the three ways to fix it (and the risky opt-in). Pure."""
    return (
        f"untrusted tests were not run: no isolation is available: {plan.why}. Fix one of: run the worker as "
        "root (the sandbox drops each run to a reserved uid); allow unprivileged user namespaces "
        "(sysctl kernel.unprivileged_userns_clone=1 on Debian, kernel.apparmor_restrict_unprivileged_userns=0 "
        "on Ubuntu, or a seccomp profile that permits unshare(CLONE_NEWUSER)); or verify on the sandbox work "
        f"pool ({VERIFY_DEPLOYMENT_ENV}=quorum-verify/sandbox, see infra/README.md). To run them anyway, "
        f"without isolation (tests can then read this process's environment and files and use the network), "
        f"set {ALLOW_UNISOLATED_ENV}=1."
    )


def unisolated_line() -> str:
    """The words every report of an opted-in, unisolated run carries."""
    return (
        f"unisolated ({ALLOW_UNISOLATED_ENV}=1): no privilege drop, no namespaces, NETWORK NOT ISOLATED; "
        "the command could read this process's environment and files"
    )


# ------------------------------------------------------------------------------------------- I/O

_probe_lock = threading.Lock()
_probe_cache: UsernsProbe | None = None


def probe_userns() -> UsernsProbe:
    """Try the rootless way in once per process, in a throwaway child (the launcher's ``--probe``)."""
    global _probe_cache
    with _probe_lock:
        if _probe_cache is None:
            _probe_cache = _run_probe()
        return _probe_cache


def _run_probe() -> UsernsProbe:
    from quorum.sandbox import launch

    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", str(Path(launch.__file__).resolve()), "--probe"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, start_new_session=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        return UsernsProbe(available=False, error=f"the probe could not run: {type(exc).__name__}: {exc}")
    try:
        return UsernsProbe.model_validate(json.loads(done.stdout.decode("utf-8", "replace").strip().splitlines()[-1]))
    except (ValueError, IndexError):
        tail = (done.stderr or done.stdout).decode("utf-8", "replace").strip()[-300:]
        return UsernsProbe(available=False, error=f"the probe failed (exit {done.returncode}): {tail}")


def current_plan() -> IsolationPlan:
    """The plan for this process: root, else the (cached) probe, else the opt-in setting."""
    euid = os.geteuid()
    probe = None if euid == 0 else probe_userns()
    return choose_mode(euid, probe, allow_unisolated())


def parse_verify_deployment(value: str | None) -> str | None:
    """'flow/deployment', or None when unset or blank; anything else is refused with the expected form. Pure."""
    value = (value or "").strip()
    if not value:
        return None
    flow_name, _, deployment_name = value.partition("/")
    if not flow_name or not deployment_name or "/" in deployment_name:
        raise ValueError(f"{VERIFY_DEPLOYMENT_ENV}={value!r}: expected 'flow-name/deployment-name'")
    return value


def verify_deployment() -> str | None:
    """The deployment that verifies on the sandbox work pool, or None: verify here."""
    return parse_verify_deployment(settings().verify_deployment)


def handoff_store(default: str) -> str:
    """Where workspaces and reports cross to the sandbox: ``QUORUM_HANDOFF_STORE`` (e.g. a volume both
    workers mount, so the sandbox needs no store credential), else the run's own store."""
    return (settings().handoff_store or "").strip() or default


def private_dirs_of_current_user(environ: Mapping[str, str] | None = None, hide: str | None = None) -> list[str]:
    """Directories a userns sandbox must not see, because it runs as our uid outside its namespaces.

    In root mode the sandbox uid is a stranger to our files; in userns mode it is us, so our home
    (configuration, cloud credentials, ``~/.prefect``), ``XDG_RUNTIME_DIR`` (agent and bus sockets),
    ``PREFECT_HOME`` and whatever ``QUORUM_SANDBOX_HIDE`` lists (``:``-separated) are covered with
    an empty tmpfs. Only existing directories, never ``/``.
    """
    environ = os.environ if environ is None else environ
    hide = settings().sandbox_hide if hide is None else hide
    uid = os.geteuid()
    candidates: list[str] = []
    try:
        candidates.append(pwd.getpwuid(uid).pw_dir)
    except KeyError:
        pass
    candidates += [environ.get("HOME", ""), environ.get("XDG_RUNTIME_DIR", ""), f"/run/user/{uid}"]
    candidates.append(environ.get("PREFECT_HOME", ""))
    candidates += hide.split(os.pathsep)
    found: list[str] = []
    for candidate in candidates:
        if not candidate or not os.path.isabs(candidate):
            continue
        real = os.path.realpath(candidate)
        if real != "/" and os.path.isdir(real) and real not in found:
            found.append(real)
    return found
