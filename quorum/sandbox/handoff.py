"""Hand a workspace to the sandbox work pool through the artifact store, and get the reports back.

The process that holds model keys never runs repository code when verification is remote: it packs
the patched workspace (and the held-out acceptance tests) into one archive, stores it, and starts
the ``quorum-verify/sandbox`` deployment with a ``VerifyRequest``; the sandbox's flow run (an
execution context that holds no model key) unpacks it, runs the tools, and stores a
``VerifyResponse``.

The archive crosses a trust boundary both ways (the store may be writable by others; the workspace
holds whatever the repository and the patch put there), so:

* ``pack_workspace`` never follows a symlink: it stores links as links and drops (and reports) a
  link that points outside its tree, a special file (fifo, socket, device) and anything under
  ``.git`` and caches; it stops at a size and a file-count cap;
* ``check_member`` (pure) refuses, with the member and the reason: an absolute name, ``..``, a name
  outside ``ws/`` and ``acceptance/``, a hard link, a device, fifo or any special member, a
  symlink whose target is absolute or leaves its tree, sizes past the caps;
* ``unpack_workspace`` checks the archive's SHA-256 against the request, extracts member by member
  without ever writing through a symlink (every parent must be a real directory below the
  destination; files are created with ``O_EXCL | O_NOFOLLOW``), strips set-id and group/other
  write bits, and finally resolves every symlink of the tree and refuses the archive if one ends
  outside it. Any refusal removes what was extracted and raises ``HandoffError``.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from quorum.domain.models import VerificationReport

WORKSPACE_DIR = "ws"
ACCEPTANCE_DIR = "acceptance"
TOPS = (WORKSPACE_DIR, ACCEPTANCE_DIR)
SKIP_NAMES = frozenset({
    ".git", ".hg", ".svn", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox", ".nox",
    ".venv", ".quorum", ".quorum_acceptance",
})  # fmt: skip
DEFAULT_MAX_BYTES = 200 << 20
DEFAULT_MAX_FILES = 50_000
Tool = Literal["semgrep", "bandit", "pytest", "acceptance"]


class HandoffError(ValueError):
    """The archive was refused (or could not be built); the message names the member and the reason."""


class HandoffLimits(BaseModel):
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, gt=0, description="Total size of the files, unpacked.")
    max_files: int = Field(default=DEFAULT_MAX_FILES, gt=0, description="Members of the archive.")


class PackManifest(BaseModel):
    """What went into an archive, and what was left out and why."""

    entries: int = Field(default=0, description="Members of the archive: directories, files and links.")
    files: int = 0
    bytes: int = 0
    symlinks: int = 0
    skipped: list[str] = Field(default_factory=list, description="'path: reason' for every entry left out.")
    has_acceptance: bool = False


class HandoffArchive(BaseModel):
    key: str
    sha256: str
    size: int
    manifest: PackManifest


class VerifyRequest(BaseModel):
    """The parameters of the sandbox's verify flow: where the workspace is, what to run, where to answer."""

    store_url: str = Field(description="The store holding the archive and receiving the response (no secret in it).")
    archive_key: str
    archive_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    response_key: str
    tools: list[Tool] = Field(min_length=1)
    files: list[str] = Field(default_factory=list, description="Files the patch touched (the scanners' targets).")
    added_lines: dict[str, list[int]] = Field(default_factory=dict)
    label: str = ""
    bandit_min_severity: Literal["low", "medium", "high"] = "medium"
    bandit_min_confidence: Literal["low", "medium", "high"] = "medium"
    limits: HandoffLimits = Field(default_factory=HandoffLimits)


class VerifyResponse(BaseModel):
    """What the sandbox's verify flow stores (and returns)."""

    reports: list[VerificationReport]
    secret_env_names: list[str] = Field(
        description="Names (never values) of secret-looking variables in the verify run's environment: [] expected."
    )
    sandbox_mode: str = Field(description="The isolation mode tests got inside the verify run.")
    uid: int
    hostname: str = ""
    flow_run_id: str = ""


# ------------------------------------------------------------------------------------------- pure


def check_member(
    name: str, kind: str, linkname: str, size: int, *, total_bytes: int, members: int, limits: HandoffLimits
) -> str:
    """'' when the member may be extracted, else why not. ``kind``: 'file', 'dir', 'symlink' or another tarfile type."""
    if not name or "\x00" in name or "\\" in name:
        return "empty name or a NUL/backslash in it"
    if name.startswith("/"):
        return "absolute path"
    parts = name.rstrip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "'..', '.' or an empty component in the path"
    if parts[0] not in TOPS:
        return f"outside {WORKSPACE_DIR}/ and {ACCEPTANCE_DIR}/"
    if members > limits.max_files:
        return f"more than {limits.max_files} members"
    if kind == "file":
        if total_bytes + size > limits.max_bytes:
            return f"the files exceed {limits.max_bytes} bytes"
        return ""
    if kind == "dir":
        return ""
    if kind == "symlink":
        if not linkname or "\x00" in linkname:
            return "symlink without a target"
        if linkname.startswith("/"):
            return f"symlink to an absolute path ({linkname})"
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name.rstrip("/")), linkname))
        if resolved != parts[0] and not resolved.startswith(parts[0] + "/"):
            return f"symlink pointing outside its tree ({linkname})"
        return ""
    return f"{kind} members are not allowed"


def safe_mode(mode: int, is_dir: bool) -> int:
    """Permission bits kept on extraction: owner rwx as given, read/execute for others, no set-id, no group/other write."""
    keep = stat.S_IMODE(mode) & 0o755
    return keep | (0o700 if is_dir else 0o600)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tar_size_bound(limits: HandoffLimits) -> int:
    """The most a tar within the limits can weigh: the files plus 4 KiB of headers per member, plus the end."""
    return limits.max_bytes + 4096 * (limits.max_files + 1) + 10240


def bounded_gunzip(data: bytes, bound: int) -> bytes:
    """Decompress gzip ``data`` but never past ``bound`` bytes (a gzip bomb is refused, not inflated)."""
    inflater = zlib.decompressobj(wbits=31)
    out = bytearray()
    try:
        chunk = inflater.decompress(data, 1 << 20)
        while True:
            out += chunk
            if len(out) > bound:
                raise HandoffError(f"the archive inflates past {bound} bytes")
            if not inflater.unconsumed_tail:
                break
            chunk = inflater.decompress(inflater.unconsumed_tail, 1 << 20)
        out += inflater.flush()
    except zlib.error as exc:
        raise HandoffError(f"the archive is not valid gzip: {exc}") from None
    if len(out) > bound:
        raise HandoffError(f"the archive inflates past {bound} bytes")
    if not inflater.eof:
        raise HandoffError("the archive is truncated")
    return bytes(out)


# -------------------------------------------------------------------------------------------- I/O


def pack_workspace(workspace: Path, acceptance: Path | None = None, limits: HandoffLimits | None = None) -> tuple[bytes, PackManifest]:
    """A gzip'd tar of ``workspace`` under ``ws/`` (and ``acceptance`` under ``acceptance/``), never following links."""
    limits = limits or HandoffLimits()
    manifest = PackManifest(has_acceptance=acceptance is not None)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for top, root in ((WORKSPACE_DIR, workspace), (ACCEPTANCE_DIR, acceptance)):
            if root is None:
                continue
            root = Path(root)
            if not root.is_dir() or root.is_symlink():
                raise HandoffError(f"{root}: not a directory")
            tar.add(str(root), arcname=top, recursive=False, filter=_normalized)
            manifest.entries += 1
            _pack_tree(tar, root, top, manifest, limits)
    return buffer.getvalue(), manifest


def _normalized(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = safe_mode(info.mode, info.isdir())
    return info


def _pack_tree(tar: tarfile.TarFile, root: Path, top: str, manifest: PackManifest, limits: HandoffLimits) -> None:
    real_root = os.path.realpath(root)
    for directory, dirs, files in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(directory, root)
        dirs[:] = sorted(d for d in dirs if d not in SKIP_NAMES)
        for name in sorted(dirs) + sorted(f for f in files if f not in SKIP_NAMES):
            path = os.path.join(directory, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            arcname = f"{top}/{rel}"
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(path)
                resolved = os.path.realpath(path)
                if os.path.isabs(target) or (resolved != real_root and not resolved.startswith(real_root + "/")):
                    manifest.skipped.append(f"{arcname}: symlink pointing outside the tree ({target})")
                    if name in dirs:
                        dirs.remove(name)
                    continue
                if name in dirs:
                    dirs.remove(name)  # never walk through a link
                manifest.symlinks += 1
            elif stat.S_ISREG(st.st_mode):
                if manifest.bytes + st.st_size > limits.max_bytes:
                    raise HandoffError(f"{arcname}: the workspace exceeds {limits.max_bytes} bytes")
                manifest.bytes += st.st_size
                manifest.files += 1
            elif not stat.S_ISDIR(st.st_mode):
                manifest.skipped.append(f"{arcname}: special file (not a regular file, directory or link)")
                continue
            manifest.entries += 1
            if manifest.entries > limits.max_files:
                raise HandoffError(f"{arcname}: the workspace has more than {limits.max_files} entries")
            tar.add(path, arcname=arcname, recursive=False, filter=_normalized)


def _kind(member: tarfile.TarInfo) -> str:
    if member.isreg():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hard link"
    if member.ischr() or member.isblk():
        return "device"
    if member.isfifo():
        return "fifo"
    return f"type {member.type!r}"


class UnpackedWorkspace(BaseModel):
    root: str
    workspace: str
    acceptance: str | None = None
    files: int = 0
    bytes: int = 0


def unpack_workspace(data: bytes, dest: Path, expected_sha256: str, limits: HandoffLimits | None = None) -> UnpackedWorkspace:
    """Extract an archive made by ``pack_workspace`` into the new directory ``dest`` (see the module docstring)."""
    limits = limits or HandoffLimits()
    actual = sha256_hex(data)
    if actual != expected_sha256:
        raise HandoffError(f"archive checksum {actual} does not match the request's {expected_sha256}")
    tar_bytes = bounded_gunzip(data, tar_size_bound(limits))
    dest = Path(dest)
    dest.mkdir(mode=0o755)
    root = os.path.realpath(dest)
    total = members = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            for member in tar:
                members += 1
                kind = _kind(member)
                why = check_member(
                    member.name, kind, member.linkname, member.size, total_bytes=total, members=members, limits=limits
                )
                if why:
                    raise HandoffError(f"archive member {member.name!r} refused: {why}")
                target = _safe_parent(root, member.name)
                if kind == "dir":
                    if not os.path.lexists(target):
                        os.mkdir(target, safe_mode(member.mode, True))
                    elif not stat.S_ISDIR(os.lstat(target).st_mode):
                        raise HandoffError(f"archive member {member.name!r} refused: a directory over a non-directory")
                elif kind == "symlink":
                    os.symlink(member.linkname, target)
                else:
                    source = tar.extractfile(member)
                    assert source is not None
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 safe_mode(member.mode, False))  # fmt: skip
                    with os.fdopen(fd, "wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
                    total += member.size
        _check_links_stay_inside(root)
    except (HandoffError, tarfile.TarError, OSError, EOFError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        if isinstance(exc, HandoffError):
            raise
        raise HandoffError(f"archive could not be unpacked: {type(exc).__name__}: {exc}") from exc
    workspace = Path(root) / WORKSPACE_DIR
    acceptance = Path(root) / ACCEPTANCE_DIR
    if not workspace.is_dir() or workspace.is_symlink():
        shutil.rmtree(dest, ignore_errors=True)
        raise HandoffError(f"archive holds no {WORKSPACE_DIR}/ directory")
    return UnpackedWorkspace(
        root=root, workspace=str(workspace), files=members, bytes=total,
        acceptance=str(acceptance) if acceptance.is_dir() and not acceptance.is_symlink() else None,
    )  # fmt: skip


def _safe_parent(root: str, name: str) -> str:
    """The path to create for ``name``; every parent must already be a real directory under ``root``."""
    parts = name.rstrip("/").split("/")
    current = root
    for part in parts[:-1]:
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            raise HandoffError(f"archive member {name!r} refused: its directory {part!r} comes later or never") from None
        if not stat.S_ISDIR(st.st_mode):
            raise HandoffError(f"archive member {name!r} refused: {part!r} is a link or a file, not a directory")
    return os.path.join(current, parts[-1])


def _check_links_stay_inside(root: str) -> None:
    """Every symlink of the extracted tree resolves (through other links too) inside its top directory."""
    for directory, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                continue
            top = os.path.join(root, os.path.relpath(path, root).split(os.sep)[0])
            resolved = os.path.realpath(path)
            if resolved != top and not resolved.startswith(top + os.sep):
                rel = os.path.relpath(path, root)
                raise HandoffError(f"archive member {rel!r} refused: symlink resolves outside its tree ({os.readlink(path)})")


NOT_SECRETS = frozenset({"PREFECT_API_URL"})  # every flow run needs it; untrusted children still never get it


def secret_env_names(environ: dict[str, str]) -> list[str]:
    """Names (never values) of the variables in ``environ`` that look like secrets. Pure."""
    from quorum.sandbox.runner import is_secret_name

    return sorted(
        name for name in environ if name not in NOT_SECRETS and (is_secret_name(name) or "KEY" in name.upper())
    )


def error_reports(tools: list[str], reason: str, summary: str) -> list[VerificationReport]:
    """One ``error`` report per tool when the sandbox could not verify (never a silent pass). Pure."""
    from quorum.domain.models import VerificationStatus

    return [
        VerificationReport(tool=tool, status=VerificationStatus.error, reason=reason, summary=f"{tool}: {summary}")
        for tool in tools
    ]
