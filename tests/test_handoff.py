"""The workspace handoff to the sandbox work pool (quorum/sandbox/handoff.py): what is packed, and every
way a hostile archive is refused (with the member and the reason, nothing written outside, nothing left)."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from quorum.sandbox.handoff import (
    HandoffError,
    HandoffLimits,
    VerifyRequest,
    bounded_gunzip,
    check_member,
    error_reports,
    pack_workspace,
    secret_env_names,
    sha256_hex,
    unpack_workspace,
)

LIMITS = HandoffLimits()


def tree(root: Path) -> dict[str, tuple[str, str]]:
    """rel path -> (kind, content or link target), never following links."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            found[rel] = ("dir", "")
        else:
            found[rel] = ("file", path.read_text())
    return found


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "pkg" / "mod.py").write_text("x = 1\n")
    (ws / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(ws / "run.sh", 0o4777)  # setuid and world-writable: neither survives
    (ws / "pkg" / "alias.py").symlink_to("mod.py")
    (ws / "secrets").symlink_to("/etc/shadow")  # absolute: dropped, never read
    (ws / "up").symlink_to("../../outside")  # escapes: dropped
    (ws / ".git").mkdir()
    (ws / ".git" / "config").write_text("[core]\n")
    os.mkfifo(ws / "pipe")
    return ws


def test_pack_and_unpack_round_trip_keeps_the_tree_and_drops_what_must_not_cross(workspace: Path, tmp_path: Path) -> None:
    acceptance = tmp_path / "acc"
    acceptance.mkdir()
    (acceptance / "test_ok.py").write_text("def test_ok():\n    pass\n")
    data, manifest = pack_workspace(workspace, acceptance)
    assert manifest.files == 3 and manifest.symlinks == 1 and manifest.has_acceptance
    skipped = "\n".join(manifest.skipped)
    assert "ws/secrets: symlink pointing outside the tree (/etc/shadow)" in skipped
    assert "ws/up: symlink pointing outside the tree" in skipped and "ws/pipe: special file" in skipped
    out = unpack_workspace(data, tmp_path / "out", sha256_hex(data))
    got = tree(Path(out.workspace))
    assert got == {
        "pkg": ("dir", ""), "pkg/alias.py": ("link", "mod.py"), "pkg/mod.py": ("file", "x = 1\n"),
        "run.sh": ("file", "#!/bin/sh\n"),
    }  # fmt: skip
    assert stat.S_IMODE(os.stat(Path(out.workspace) / "run.sh").st_mode) == 0o755
    assert out.acceptance and tree(Path(out.acceptance)) == {"test_ok.py": ("file", "def test_ok():\n    pass\n")}


def test_pack_stops_at_the_caps(workspace: Path) -> None:
    with pytest.raises(HandoffError, match="exceeds 3 bytes"):
        pack_workspace(workspace, limits=HandoffLimits(max_bytes=3))
    with pytest.raises(HandoffError, match="more than 2 entries"):
        pack_workspace(workspace, limits=HandoffLimits(max_files=2))


def test_a_checksum_mismatch_is_refused_before_anything_is_written(workspace: Path, tmp_path: Path) -> None:
    data, _ = pack_workspace(workspace)
    with pytest.raises(HandoffError, match="checksum"):
        unpack_workspace(data, tmp_path / "out", "0" * 64)
    assert not (tmp_path / "out").exists()


def archive(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, content in members:
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, content: bytes = b"", linkname: str = "", mode: int = 0o644):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = linkname
    if kind == tarfile.REGTYPE:
        info.size = len(content)
        return info, content
    return info, None


WS = member("ws", tarfile.DIRTYPE, mode=0o755)
HOSTILE = {
    "absolute": ([WS, member("/tmp/quorum-handoff-escape")], "absolute path"),
    "dotdot": ([WS, member("ws/../quorum-handoff-escape")], "'..'"),
    "other_top": ([WS, member("etc/passwd")], "outside ws/ and acceptance/"),
    "hardlink": ([WS, member("ws/h", tarfile.LNKTYPE, linkname="ws")], "hard link members are not allowed"),
    "device": ([WS, member("ws/dev", tarfile.CHRTYPE)], "device members are not allowed"),
    "fifo": ([WS, member("ws/fifo", tarfile.FIFOTYPE)], "fifo members are not allowed"),
    "symlink_absolute": ([WS, member("ws/l", tarfile.SYMTYPE, linkname="/etc")], "symlink to an absolute path"),
    "symlink_escape": ([WS, member("ws/l", tarfile.SYMTYPE, linkname="../..")], "symlink pointing outside its tree"),
    "symlink_chain": (  # each link stays inside lexically; resolved together they leave the tree
        [WS, member("ws/b", tarfile.SYMTYPE, linkname="."), member("ws/a", tarfile.SYMTYPE, linkname="b/..")],
        "symlink resolves outside its tree",
    ),
    "write_through_link": (
        [WS, member("ws/sub", tarfile.DIRTYPE, mode=0o755), member("ws/l", tarfile.SYMTYPE, linkname="sub"),
         member("ws/l/f", content=b"x")],
        "'l' is a link or a file",
    ),  # fmt: skip
    "missing_parent": ([WS, member("ws/nodir/f", content=b"x")], "comes later or never"),
    "duplicate": ([WS, member("ws/f", content=b"1"), member("ws/f", content=b"2")], "could not be unpacked"),
    "no_workspace": ([member("acceptance", tarfile.DIRTYPE, mode=0o755)], "holds no ws/"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_archive_is_refused_and_leaves_nothing(case: str, tmp_path: Path) -> None:
    members, reason = HOSTILE[case]
    data = archive(*members)
    dest = tmp_path / "sandbox" / "out"
    dest.parent.mkdir()
    with pytest.raises(HandoffError) as refused:
        unpack_workspace(data, dest, sha256_hex(data))
    assert reason in str(refused.value)
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # removed, and nothing beside it
    assert not Path("/tmp/quorum-handoff-escape").exists() and not (tmp_path / "quorum-handoff-escape").exists()


def test_sizes_member_counts_and_set_id_bits(tmp_path: Path) -> None:
    data = archive(WS, member("ws/big", content=b"x" * 100))
    with pytest.raises(HandoffError, match="exceed 10 bytes"):
        unpack_workspace(data, tmp_path / "a", sha256_hex(data), HandoffLimits(max_bytes=10))
    with pytest.raises(HandoffError, match="more than 1 members"):
        unpack_workspace(data, tmp_path / "b", sha256_hex(data), HandoffLimits(max_files=1))
    data = archive(WS, member("ws/suid", content=b"#!/bin/sh\n", mode=0o6777))
    out = unpack_workspace(data, tmp_path / "c", sha256_hex(data))
    assert stat.S_IMODE(os.stat(Path(out.workspace) / "suid").st_mode) == 0o755


def test_a_gzip_bomb_is_not_inflated(tmp_path: Path) -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB of zeros in ~64 KiB
    assert len(bomb) < 1 << 20
    with pytest.raises(HandoffError, match="inflates past"):
        bounded_gunzip(bomb, 1 << 20)
    with pytest.raises(HandoffError, match="inflates past"):
        unpack_workspace(bomb, tmp_path / "out", sha256_hex(bomb), HandoffLimits(max_bytes=1 << 20, max_files=10))
    with pytest.raises(HandoffError, match="not valid gzip"):
        bounded_gunzip(b"not gzip at all", 1 << 20)
    with pytest.raises(HandoffError, match="truncated"):
        bounded_gunzip(gzip.compress(b"x" * 1000)[:-12], 1 << 20)
    assert bounded_gunzip(gzip.compress(b"hello"), 5) == b"hello"


def test_check_member_is_pure_and_names_the_reason() -> None:
    kw = dict(total_bytes=0, members=1, limits=LIMITS)
    assert check_member("ws/a.py", "file", "", 10, **kw) == ""
    assert check_member("acceptance/t/test_x.py", "file", "", 10, **kw) == ""
    assert check_member("ws/pkg/l", "symlink", "../other.py", 0, **kw) == ""
    assert check_member("ws/pkg/l", "symlink", "../../x", 0, **kw).startswith("symlink pointing outside")
    assert check_member("acceptance/l", "symlink", "../ws/x", 0, **kw).startswith("symlink pointing outside")
    assert check_member("ws/./a", "file", "", 1, **kw).startswith("'..', '.'")
    assert check_member("ws\\a", "file", "", 1, **kw).startswith("empty name or a NUL/backslash")


def test_request_response_helpers() -> None:
    with pytest.raises(ValueError):
        VerifyRequest(store_url="s", archive_key="k", archive_sha256="xyz", response_key="r", tools=["pytest"])
    with pytest.raises(ValueError):
        VerifyRequest(store_url="s", archive_key="k", archive_sha256="a" * 64, response_key="r", tools=[])
    env = {"ANTHROPIC_API_KEY": "v", "PATH": "/bin", "AWS_SECRET_ACCESS_KEY": "v", "MY_KEYRING": "v", "HOME": "/h",
           "PREFECT_API_URL": "http://x/api", "PREFECT_API_KEY": "pnu_x", "GITHUB_TOKEN": "t"}  # fmt: skip
    assert secret_env_names(env) == ["ANTHROPIC_API_KEY", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "MY_KEYRING", "PREFECT_API_KEY"]
    reports = error_reports(["semgrep", "pytest"], "sandbox_error", "no answer")
    assert [(r.tool, r.status.value, r.reason, r.summary) for r in reports] == [
        ("semgrep", "error", "sandbox_error", "semgrep: no answer"), ("pytest", "error", "sandbox_error", "pytest: no answer"),
    ]  # fmt: skip


def test_the_verify_deployment_and_handoff_store_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from quorum.sandbox.isolation import (
        HANDOFF_STORE_ENV,
        VERIFY_DEPLOYMENT_ENV,
        handoff_store,
        parse_verify_deployment,
        verify_deployment,
    )

    assert parse_verify_deployment(None) is None and parse_verify_deployment(" ") is None
    assert parse_verify_deployment("quorum-verify/sandbox") == "quorum-verify/sandbox"
    for bad in ("quorum-verify", "a/b/c", "/sandbox"):
        with pytest.raises(ValueError, match="flow-name/deployment-name"):
            parse_verify_deployment(bad)
    monkeypatch.delenv(VERIFY_DEPLOYMENT_ENV, raising=False)
    monkeypatch.delenv(HANDOFF_STORE_ENV, raising=False)
    assert verify_deployment() is None and handoff_store("s3://bucket/quorum") == "s3://bucket/quorum"
    monkeypatch.setenv(VERIFY_DEPLOYMENT_ENV, "quorum-verify/sandbox")
    monkeypatch.setenv(HANDOFF_STORE_ENV, "/handoff")
    assert verify_deployment() == "quorum-verify/sandbox" and handoff_store("s3://bucket/quorum") == "/handoff"
