"""Run a command where user namespaces are unavailable, the way Docker's default seccomp profile does it.

    python tests/support/no_userns.py COMMAND [ARG...]

Installs a seccomp BPF filter (stdlib ctypes only), then execs COMMAND; the filter is inherited by
everything COMMAND starts and cannot be removed. It makes ``unshare`` and ``clone`` fail with
EPERM when their flags hold ``CLONE_NEWUSER``, and ``clone3`` (whose flags sit behind a pointer a
filter cannot read) fail with ENOSYS, so the C library falls back to ``clone``. Everything else
is allowed. Used by the tests to show that the sandbox fails closed where the kernel refuses user
namespaces (``no_isolation``), instead of a setting that only pretends.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import sys

CLONE_NEWUSER = 0x10000000
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000

# BPF opcodes
BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
BPF_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
BPF_RET_K = 0x06  # BPF_RET | BPF_K

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6];
OFFSET_NR, OFFSET_ARCH, OFFSET_ARG0_LOW = 0, 4, 16  # little-endian: the low half of args[0] comes first

ARCHES = {  # machine -> (AUDIT_ARCH_*, unshare, clone, clone3)
    "x86_64": (0xC000003E, 272, 56, 435),
    "aarch64": (0xC00000B7, 97, 220, 435),
}


def filter_program(machine: str) -> list[tuple[int, int, int, int]]:
    """The BPF program as (code, jt, jf, k) instructions. Pure."""
    try:
        audit_arch, nr_unshare, nr_clone, nr_clone3 = ARCHES[machine]
    except KeyError:
        raise SystemExit(f"no_userns.py: unsupported machine {machine!r}") from None
    allow, eperm, enosys = 8, 9, 10  # indexes of the three return instructions below
    program = [
        (BPF_LD_W_ABS, 0, 0, OFFSET_ARCH),  # 0
        (BPF_JEQ_K, 0, allow - 2, audit_arch),  # 1: another ABI: allow
        (BPF_LD_W_ABS, 0, 0, OFFSET_NR),  # 2
        (BPF_JEQ_K, enosys - 4, 0, nr_clone3),  # 3
        (BPF_JEQ_K, 6 - 5, 0, nr_unshare),  # 4: -> 6
        (BPF_JEQ_K, 0, allow - 6, nr_clone),  # 5: not clone -> allow
        (BPF_LD_W_ABS, 0, 0, OFFSET_ARG0_LOW),  # 6: flags
        (BPF_JSET_K, eperm - 8, 0, CLONE_NEWUSER),  # 7: CLONE_NEWUSER -> EPERM
        (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),  # 8
        (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM),  # 9
        (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS),  # 10
    ]
    assert [program[i][0] for i in (allow, eperm, enosys)] == [BPF_RET_K] * 3
    return program


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(machine: str | None = None) -> None:
    program = filter_program(machine or platform.machine())
    raw = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(raw, len(raw))
    prog = SockFprog(len(program), ctypes.cast(buffer, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write(__doc__ or "")
        return 2
    install()
    os.execvp(argv[0], argv)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
