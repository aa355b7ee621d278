"""Build an :class:`EnvironmentSpec` into a cached virtual environment with ``uv`` (I/O).

Layout of the cache directory::

    <cache>/<key>/            a published environment (complete: it only appears by rename)
        venv/                 the virtual environment (``uv venv --relocatable``)
        spec.json             the spec it was built from
        freeze.txt            exact versions installed (``uv pip freeze``)
        build.log             every command, its output and timing
        meta.json             timings, size, python, base interpreter prefix
        last_used             touched on every use (eviction by age)
    <cache>/.staging/<key>-<random>/   builds in progress (same filesystem: rename is atomic)
    <cache>/.locks/<key>.lock          flock: exclusive to build/evict, shared while in use
    <cache>/.failed/<key>.json         the last failed build of a key (status env_error, log)
    <cache>/.uv-cache/                 uv's download/wheel cache (shared by all builds)

Concurrency: :func:`ensure_environment` takes the key's lock exclusively only when the
environment is missing; a second process asking for the same key blocks on the lock, then finds
the published environment and reuses it (or the failure the first one just recorded). Two
different keys build in parallel. :func:`using_environment` holds the lock shared while tests run,
so :func:`evict` (non-blocking exclusive) never removes an environment in use.

The project itself is never installed (see ``requirements.py``); at test time its source root is
put on ``PYTHONPATH`` (``testrun.py``). So an environment holds no path of any workspace and one
environment serves every workspace, round and commit with the same dependency files.

Every command is produced first (:func:`plan_build` is pure) and run by a replaceable
``runner`` (``runner.run_local`` by default; quorum's sandbox in the integration). The commands'
environment is minimal: PATH, HOME and TMPDIR inside the staging directory, UV_CACHE_DIR, and
only the index/TLS/proxy settings copied from the caller (:data:`PASS_THROUGH`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Literal

from pydantic import BaseModel, Field

from quorum.environments.requirements import EnvironmentSpec
from quorum.environments.runner import Command, CommandResult, Runner, run_local

# Copied from the caller's environment into build commands when set (nothing else is).
PASS_THROUGH = (
    "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_INDEX", "UV_INDEX_STRATEGY",
    "UV_NATIVE_TLS", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
)
# pip's names mapped to uv's when uv's are not set.
PIP_TO_UV = {"PIP_INDEX_URL": "UV_INDEX_URL", "PIP_EXTRA_INDEX_URL": "UV_EXTRA_INDEX_URL"}


# A build's runner and the uv cache it uses, held for one whole build (e.g. one sandbox uid).
BuildRunnerFactory = Callable[[Path], ContextManager[tuple[Runner, "Path | None"]]]


class BuildLimits(BaseModel):
    timeout_s: float = Field(default=900, description="Whole build (all commands together).")
    max_env_bytes: int = Field(default=3 << 30, description="A larger environment is a failed build.")
    lock_wait_s: float = Field(default=1800, description="How long to wait for another build of the same key.")


class BuildPlan(BaseModel):
    """Everything a build will do; produced purely by :func:`plan_build`."""

    key: str
    spec: EnvironmentSpec
    cache_dir: str
    staging_dir: str
    final_dir: str
    requirements_txt: str
    constraints_txt: str
    commands: list[Command]
    allow_fail: list[str] = Field(default_factory=list, description="Command names whose failure is tolerated.")
    project_tree: str | None = Field(default=None, description="build-deps: the tree copied to <staging>/project.")


class EnvBuildResult(BaseModel):
    key: str
    status: Literal["built", "reused", "env_error"]
    env_dir: str = ""
    python: str = Field(default="", description="The environment's interpreter.")
    readable_dirs: list[str] = Field(default_factory=list, description="What a sandboxed test run must read.")
    duration_s: float = 0.0
    waited_s: float = Field(default=0.0, description="Time spent waiting for another builder.")
    size_bytes: int = 0
    error: str = ""
    log: str = ""
    log_path: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "env_error"


def _build_env(staging: Path, uv_cache: Path, source_env: dict[str, str]) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(staging / "home"),
        "TMPDIR": str(staging / "tmp"),
        "UV_CACHE_DIR": str(uv_cache),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",  # only compileall writes bytecode (for the published path)
    }
    for name in PASS_THROUGH:
        if source_env.get(name):
            env[name] = source_env[name]
    for pip_name, uv_name in PIP_TO_UV.items():
        if source_env.get(pip_name) and uv_name not in env:
            env[uv_name] = source_env[pip_name]
    return env


def plan_build(
    spec: EnvironmentSpec,
    cache_dir: str | os.PathLike[str],
    *,
    uv: str,
    tree: str | None = None,
    limits: BuildLimits | None = None,
    source_env: dict[str, str] | None = None,
    staging_name: str | None = None,
    uv_cache_dir: str | os.PathLike[str] | None = None,
) -> BuildPlan:
    """The commands that build ``spec`` (pure). ``tree``: the repository, needed only for
    ``install_project == 'build-deps'``. ``source_env``: where index settings are copied from
    (default: ``os.environ``)."""
    limits = limits or BuildLimits()
    cache = Path(cache_dir).resolve()
    key = spec.key
    staging = cache / ".staging" / (staging_name or f"{key}-{secrets.token_hex(4)}")
    final = cache / key
    venv = staging / "venv"
    vpy = str(venv / "bin" / "python")
    uv_cache = Path(uv_cache_dir).resolve() if uv_cache_dir else cache / ".uv-cache"
    env = _build_env(staging, uv_cache, dict(os.environ) if source_env is None else source_env)
    base_prefix = str(Path(os.path.realpath(spec.python_path)).parent.parent)
    readable = [base_prefix, str(Path(uv).resolve().parent)]
    writable = [str(staging), str(uv_cache)]
    reqs = list(spec.requirements)
    if spec.install_project == "build-deps":
        if not tree:
            raise ValueError("install_project='build-deps' needs the repository tree")
        extras = f"[{','.join(spec.project_extras)}]" if spec.project_extras else ""
        # built from a copy inside the staging directory: its build code writes next to its sources
        reqs.append(f"{staging / 'project'}{extras}")
    common = dict(cwd=str(staging), env=env, writable=writable, readable=readable)
    t = limits.timeout_s
    install = [uv, "pip", "install", "--no-config", "--python", vpy, "--link-mode", "copy",
               "-r", str(staging / "requirements.txt")]
    if spec.constraints:
        install += ["-c", str(staging / "constraints.txt")]
    if spec.extra_index_url:
        install += ["--extra-index-url", spec.extra_index_url]
    commands = [
        Command(name="venv", argv=[uv, "venv", "--no-config", "--no-project", "--relocatable", "--python",
                                   spec.python_path, str(venv)], timeout_s=min(120, t), network="none", **common),
        Command(name="install", argv=install, timeout_s=t, network="package-index", **common),
    ]
    if spec.install_project == "build-deps" and spec.project_name:
        commands.append(Command(name="uninstall-project", argv=[uv, "pip", "uninstall", "--no-config", "--python", vpy,
                                                                 spec.project_name], timeout_s=120, **common))
    # Byte-compile for the path the venv will have once published (the sandbox mounts it read-only,
    # so nothing could cache bytecode later). -s/-p need python >= 3.9. No -j: its forkserver
    # socket lives in TMPDIR, whose path can be too long for AF_UNIX.
    commands.append(Command(
        name="compile", argv=[vpy, "-m", "compileall", "-q", "-s", str(venv), "-p", str(final / "venv"),
                              str(venv / "lib")], timeout_s=min(600, t), **common))
    commands.append(Command(name="freeze", argv=[uv, "pip", "freeze", "--no-config", "--python", vpy],
                            timeout_s=120, **common))
    commands.append(Command(name="smoke", argv=[vpy, "-c", "import sys, pytest; print(sys.version.split()[0], pytest.__version__)"],
                            timeout_s=120, **common))
    return BuildPlan(
        key=key, spec=spec, cache_dir=str(cache), staging_dir=str(staging), final_dir=str(final),
        requirements_txt="\n".join(reqs) + "\n", constraints_txt="\n".join(spec.constraints) + "\n",
        commands=commands, allow_fail=["compile"],
        project_tree=str(Path(tree).resolve()) if spec.install_project == "build-deps" and tree else None,
    )


# --------------------------------------------------------------------------------------------
# locking


class LockTimeout(RuntimeError):
    pass


@contextlib.contextmanager
def _flock(path: Path, mode: int, wait_s: float) -> Iterator[float]:
    """Hold an flock on ``path``; yields the seconds spent waiting."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    started = time.monotonic()
    try:
        delay = 0.05
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() - started > wait_s:
                    raise LockTimeout(f"lock {path} still held after {wait_s:.0f}s") from None
                time.sleep(delay)
                delay = min(delay * 1.5, 1.0)
        yield time.monotonic() - started
    finally:
        os.close(fd)  # releases the lock


def _lock_path(cache: Path, key: str) -> Path:
    return cache / ".locks" / f"{key}.lock"


@contextlib.contextmanager
def using_environment(cache_dir: str | os.PathLike[str], key: str, wait_s: float = 60) -> Iterator[None]:
    """Hold the key's lock shared while an environment is in use (eviction then skips it)."""
    with _flock(_lock_path(Path(cache_dir).resolve(), key), fcntl.LOCK_SH, wait_s):
        yield


# --------------------------------------------------------------------------------------------
# building


def _result_for(final: Path, status: Literal["built", "reused"], duration: float, waited: float) -> EnvBuildResult:
    meta = json.loads((final / "meta.json").read_text())
    (final / "last_used").touch()
    return EnvBuildResult(
        key=final.name, status=status, env_dir=str(final), python=str(final / "venv" / "bin" / "python"),
        readable_dirs=[str(final), *meta.get("readable", [])], duration_s=duration, waited_s=waited,
        size_bytes=meta.get("size_bytes", 0), log_path=str(final / "build.log"),
        log=(final / "build.log").read_text()[-20000:] if status == "built" else "",
    )


def tree_size(root: Path) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def execute_plan(plan: BuildPlan, runner: Runner, limits: BuildLimits) -> tuple[bool, str, str]:
    """Run the plan's commands in its staging directory; (ok, error, log). Does not publish."""
    staging = Path(plan.staging_dir)
    for sub in ("home", "tmp"):
        (staging / sub).mkdir(parents=True, exist_ok=True)
    if plan.project_tree:
        shutil.copytree(plan.project_tree, staging / "project", symlinks=True,
                        ignore=shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".venv", ".tox"))
    (staging / "requirements.txt").write_text(plan.requirements_txt)
    (staging / "constraints.txt").write_text(plan.constraints_txt)
    Path(plan.commands[0].env["UV_CACHE_DIR"]).mkdir(parents=True, exist_ok=True)
    log: list[str] = [f"# environment {plan.key}", "# requirements.txt", plan.requirements_txt]
    if plan.spec.constraints:
        log += ["# constraints.txt", plan.constraints_txt]
    deadline = time.monotonic() + limits.timeout_s
    for cmd in plan.commands:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False, f"build timed out after {limits.timeout_s:.0f}s (before {cmd.name})", "\n".join(log)
        cmd = cmd.model_copy(update={"timeout_s": min(cmd.timeout_s, remaining)})
        res: CommandResult = runner(cmd)
        log.append(res.log_text())
        if cmd.name == "freeze" and res.ok:
            (staging / "freeze.txt").write_text(res.stdout)
        if not res.ok and cmd.name not in plan.allow_fail:
            reason = res.describe()
            if res.timed_out:
                reason = f"build timed out ({cmd.name}) after {limits.timeout_s:.0f}s"
            return False, f"{cmd.name} failed: {reason}", "\n".join(log)
    size = tree_size(staging / "venv")
    if size > limits.max_env_bytes:
        return False, f"environment is {size >> 20} MiB, over the {limits.max_env_bytes >> 20} MiB limit", "\n".join(log)
    return True, "", "\n".join(log)


def ensure_environment(
    spec: EnvironmentSpec,
    cache_dir: str | os.PathLike[str],
    *,
    uv: str | None = None,
    tree: str | None = None,
    runner: Runner = run_local,
    limits: BuildLimits | None = None,
    source_env: dict[str, str] | None = None,
    failure_ttl_s: float = 0,
    uv_cache_dir: str | os.PathLike[str] | None = None,
    runner_factory: BuildRunnerFactory | None = None,
) -> EnvBuildResult:
    """The environment for ``spec``: reused from the cache, or built now (never twice at once).

    A failed build returns ``status='env_error'`` with the log (and is recorded in
    ``.failed/<key>.json``). A process that waited for another's build of the same key reuses its
    outcome, failure included; ``failure_ttl_s`` > 0 also reuses a recorded failure that recent.

    ``runner_factory(cache)``: a context manager yielding ``(runner, uv_cache_dir)`` for the whole
    build (quorum's sandbox: one unprivileged uid and its own uv cache; see ``sandboxed.py``);
    it replaces ``runner`` and ``uv_cache_dir``. The lock, the rename, ``meta.json`` and
    ``.failed/`` are done here, by the caller, outside it; the published environment is made
    read-only for everyone (``seal``).
    """
    limits = limits or BuildLimits()
    uv = uv or shutil.which("uv") or "uv"
    cache = Path(cache_dir).resolve()
    key = spec.key
    final = cache / key
    started = time.monotonic()
    wall_started = time.time()
    if (final / "meta.json").exists():
        try:
            return _result_for(final, "reused", time.monotonic() - started, 0.0)
        except FileNotFoundError:  # evicted meanwhile: build it under the lock
            pass
    failed_path = cache / ".failed" / f"{key}.json"
    try:
        with _flock(_lock_path(cache, key), fcntl.LOCK_EX, limits.lock_wait_s) as waited:
            if (final / "meta.json").exists():
                return _result_for(final, "reused", time.monotonic() - started, waited)
            if failed_path.exists():
                rec = json.loads(failed_path.read_text())
                if rec.get("finished_at", 0) >= wall_started or (
                    failure_ttl_s > 0 and time.time() - rec.get("finished_at", 0) < failure_ttl_s
                ):
                    return EnvBuildResult(key=key, status="env_error", error=rec.get("error", ""), log=rec.get("log", ""),
                                          duration_s=time.monotonic() - started, waited_s=waited,
                                          log_path=str(failed_path))
            factory = runner_factory or (lambda _cache: contextlib.nullcontext((runner, uv_cache_dir)))
            with factory(cache) as (build_runner, build_uv_cache):
                plan = plan_build(spec, cache, uv=uv, tree=tree, limits=limits, source_env=source_env,
                                  uv_cache_dir=build_uv_cache)
                return _build_and_publish(plan, spec, build_runner, limits, failed_path, started, waited)
    except LockTimeout as exc:
        return EnvBuildResult(key=key, status="env_error", error=str(exc), duration_s=time.monotonic() - started)


def _build_and_publish(plan: BuildPlan, spec: EnvironmentSpec, runner: Runner, limits: BuildLimits,
                       failed_path: Path, started: float, waited: float) -> EnvBuildResult:
    """Run the plan in its staging directory, then publish it by one rename (under the caller's lock)."""
    key, final = plan.key, Path(plan.final_dir)
    staging = Path(plan.staging_dir)
    try:
        ok, error, log = execute_plan(plan, runner, limits)
        if not ok:
            failed_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = failed_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"key": key, "error": error, "log": log[-200000:],
                                       "finished_at": time.time(), "spec": spec.model_dump()}))
            os.replace(tmp, failed_path)
            return EnvBuildResult(key=key, status="env_error", error=error, log=log,
                                  duration_s=time.monotonic() - started, waited_s=waited,
                                  log_path=str(failed_path))
        duration = time.monotonic() - started
        (staging / "build.log").write_text(log)
        (staging / "spec.json").write_text(spec.model_dump_json(indent=2))
        meta = {
            "key": key, "built_at": time.time(), "build_s": round(duration, 3),
            "python_version": spec.python_version, "python_path": spec.python_path,
            "readable": [str(Path(os.path.realpath(spec.python_path)).parent.parent)],
            "size_bytes": tree_size(staging),
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=2))
        for sub in ("home", "tmp", "project"):
            remove_tree(staging / sub)
        (staging / "last_used").touch()
        seal(staging)
        os.chmod(staging, 0o755)  # moving a directory to another parent needs write on it ("..")
        os.rename(staging, final)  # publish: atomic, same filesystem
        os.chmod(final, 0o555)
        failed_path.unlink(missing_ok=True)
        return _result_for(final, "built", duration, waited)
    finally:
        remove_tree(staging)


def seal(root: Path) -> None:
    """Owned by root (when we are root), readable by all, writable by none: no test uid, and no
    later build, can change an environment another task will use. Never follows a symlink."""
    as_root = os.geteuid() == 0
    for directory, dirs, files in os.walk(root, topdown=False):
        for name in files + dirs:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            if as_root:
                os.chown(path, 0, 0, follow_symlinks=False)
            if not os.path.islink(path):
                os.chmod(path, (st.st_mode & 0o555) | (0o555 if os.path.isdir(path) else 0o444))
    if as_root:
        os.chown(root, 0, 0)
    os.chmod(root, 0o555)


def remove_tree(path: Path) -> None:
    """rmtree that also removes sealed (read-only) trees and trees a sandbox uid made read-only."""

    def onerror(func, p, _exc):
        try:
            for target in (os.path.dirname(p), p):
                if not os.path.islink(target) and os.path.isdir(target):
                    os.chmod(target, 0o700)
            func(p)
        except OSError:
            pass

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=onerror)


# --------------------------------------------------------------------------------------------
# eviction


class EvictionReport(BaseModel):
    removed: list[str] = Field(default_factory=list)
    kept: list[str] = Field(default_factory=list)
    skipped_in_use: list[str] = Field(default_factory=list)
    freed_bytes: int = 0
    total_bytes_after: int = 0


def evict(
    cache_dir: str | os.PathLike[str], *, max_age_s: float | None = None, max_total_bytes: int | None = None,
    now: float | None = None,
) -> EvictionReport:
    """Remove environments unused for ``max_age_s``, then the least recently used ones until the
    total is under ``max_total_bytes``. Environments in use (shared lock held) are skipped."""
    cache = Path(cache_dir).resolve()
    now = time.time() if now is None else now
    report = EvictionReport()
    entries = []
    for d in cache.iterdir() if cache.is_dir() else []:
        if d.name.startswith(".") or not (d / "meta.json").exists():
            continue
        try:
            meta = json.loads((d / "meta.json").read_text())
        except (OSError, ValueError):
            meta = {}
        used = (d / "last_used").stat().st_mtime if (d / "last_used").exists() else d.stat().st_mtime
        entries.append((used, d, int(meta.get("size_bytes", 0))))
    entries.sort()
    total = sum(e[2] for e in entries)
    for used, d, size in entries:
        too_old = max_age_s is not None and now - used > max_age_s
        too_big = max_total_bytes is not None and total > max_total_bytes
        if not (too_old or too_big):
            report.kept.append(d.name)
            continue
        try:
            with _flock(_lock_path(cache, d.name), fcntl.LOCK_EX, 0):
                trash = cache / ".trash" / f"{d.name}-{secrets.token_hex(4)}"
                trash.parent.mkdir(parents=True, exist_ok=True)
                os.rename(d, trash)
        except LockTimeout:
            report.skipped_in_use.append(d.name)
            continue
        remove_tree(trash)
        report.removed.append(d.name)
        report.freed_bytes += size
        total -= size
    report.total_bytes_after = total
    # staging directories of builds that died (their lock is free)
    for d in (cache / ".staging").iterdir() if (cache / ".staging").is_dir() else []:
        key = d.name.rsplit("-", 1)[0]
        try:
            with _flock(_lock_path(cache, key), fcntl.LOCK_EX, 0):
                remove_tree(d)
        except LockTimeout:
            pass
    return report
