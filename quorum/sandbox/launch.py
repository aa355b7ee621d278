"""Launcher for one untrusted command (used by ``quorum.sandbox.runner.run_command``).

Run as ``python -I -S launch.py CONFIG_JSON`` (or ``--kill-uid UID GID``, or ``--probe``). Standard
library only and single-threaded: every privileged step happens here, in a fresh process, instead
of in a ``preexec_fn`` of the (threaded) parent. One launcher, two ways in (``mode`` in the config):

* ``root`` (quorum runs as root): new mount, network, IPC and PID namespaces (each one optional:
  what the kernel refuses is reported, not fatal), and the command runs as the sandbox slot's
  uid/gid with no supplementary groups;
* ``userns`` (quorum runs as an ordinary user): one ``unshare`` of a new user namespace with mount,
  network, IPC and PID namespaces owned by it (all or nothing: any refusal is fatal, never a
  partial sandbox), ``setgroups`` denied, and our uid/gid mapped to the same, unprivileged ids
  inside. The launcher holds capabilities only inside that namespace, to set up the mounts; the
  command gets none (no ``root`` inside, bounding and ambient sets cleared, ``no_new_privs``), so
  it cannot undo the mounts below, and the fresh ``/proc`` is mandatory: without it the command,
  running as our uid outside, could read our processes' environments.

Then, the same steps for both, each reported on the status pipe:

1. mount namespace: everything private, the whole tree read-only (``mount_setattr`` recursive),
   fresh tmpfs on ``/tmp``, ``/var/tmp``, ``/dev/shm``; directories the command must not see
   (``hide``: in userns mode our home, runtime dir, PREFECT_HOME) and directories a stranger uid
   could not traverse (``/root`` holding the interpreter) are covered by an empty tmpfs, and only
   the directories it needs (``expose``) are bound back, read-only; the ``writable`` directories
   are bound back read-write. Writes anywhere else fail or land in a tmpfs that dies with the run;
2. network namespace: only a loopback interface (brought up so local servers in tests work);
3. PID namespace: the command is its PID 1, with a fresh ``/proc`` showing only the namespace, so
   when it exits (or is killed at the deadline) the kernel kills everything left in the namespace
   at once, even processes that called ``setsid()``, before any of them can notice. In root mode
   without a PID namespace, all processes of the sandbox uid are killed with ``kill(-1)`` from a
   helper running as that uid (never in userns mode: that uid is ours);
4. the command: identity checked, ``PR_SET_NO_NEW_PRIVS`` (setuid binaries do not elevate),
   capabilities dropped, resource limits, then ``execvpe``.

The launcher also enforces the deadline (``deadline_s``): it kills the command (the namespace's
init) and reports ``timeout``. Status lines are JSON objects, one per line, written to
``status_fd``. ``--probe`` tries the userns way in (namespaces, id maps, a fresh ``/proc`` and a
tmpfs) in a throwaway child and prints one JSON line: ``{"available": ..., "error": ..., "hints": [...]}``.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
SYS_MOUNT_SETATTR = 442  # same number on every architecture (new syscalls are unified)

PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

SIOCSIFFLAGS = 0x8914
IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x1, 0x8, 0x40

EXIT_SETUP_FAILED = 125
EXIT_EXEC_FAILED = 127

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), f"mount {target}")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, arg, 0, 0, 0), f"prctl {option}")


class Status:
    """JSON lines on the status pipe. Write errors are ignored: the parent may be gone."""

    def __init__(self, fd: int):
        self.fd = fd

    def send(self, **event) -> None:
        if self.fd < 0:
            return
        data = (json.dumps(event) + "\n").encode()
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError:
            pass


# ------------------------------------------------------------------------------------ namespaces


def unshare_namespaces(cfg: dict, notes: list[str]) -> dict[str, bool]:
    """Unshare what the config asks for; fall back to fewer namespaces when the kernel refuses."""
    wanted = {"mount": CLONE_NEWNS, "ipc": CLONE_NEWIPC, "pid": CLONE_NEWPID}
    if not cfg.get("network", False):
        wanted["net"] = CLONE_NEWNET
    got = {name: False for name in ("mount", "ipc", "pid", "net")}
    flags = 0
    for flag in wanted.values():
        flags |= flag
    if _libc.unshare(flags) == 0:
        return {name: name in wanted for name in got}
    notes.append(f"unshare of all namespaces failed ({os.strerror(ctypes.get_errno())}); trying one by one")
    for name, flag in wanted.items():
        if _libc.unshare(flag) == 0:
            got[name] = True
        else:
            notes.append(f"no {name} namespace: {os.strerror(ctypes.get_errno())}")
    return got


def enter_user_namespace(cfg: dict) -> dict[str, bool]:
    """The rootless way in: new user, mount, IPC, PID (and network) namespaces in one step, ids mapped.

    All or nothing: a partial sandbox as our own uid would leave our processes' environments and
    the network in reach, so any refusal raises.
    """
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWPID
    if not cfg.get("network", False):
        flags |= CLONE_NEWNET
    outer_uid, outer_gid = os.geteuid(), os.getegid()
    _check(_libc.unshare(flags), "unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWIPC|CLONE_NEWPID|CLONE_NEWNET)")
    write_id_maps(cfg["uid"], cfg["gid"], outer_uid, outer_gid)
    return {"mount": True, "ipc": True, "pid": True, "net": not cfg.get("network", False)}


def write_id_maps(inside_uid: int, inside_gid: int, outer_uid: int, outer_gid: int) -> None:
    """Map our uid/gid (one each: all an unprivileged process may map) to unprivileged ids inside."""
    if inside_uid == 0 or inside_gid == 0:
        raise OSError(errno.EINVAL, "the sandbox must not be root inside its user namespace")
    for name, text in (
        ("setgroups", "deny"),  # required before gid_map; the command can never change its groups
        ("uid_map", f"{inside_uid} {outer_uid} 1\n"),
        ("gid_map", f"{inside_gid} {outer_gid} 1\n"),
    ):
        fd = os.open(f"/proc/self/{name}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        except OSError as exc:
            raise OSError(exc.errno, f"writing /proc/self/{name}: {exc.strerror}") from None
        finally:
            os.close(fd)


def pid_namespace_for_children() -> int | None:
    """Inode of the PID namespace our children are born in (the sandbox's), for leftover checks.

    Readable only once the namespace's first process exists (after the fork)."""
    try:
        link = os.readlink("/proc/self/ns/pid_for_children")
    except OSError:
        return None
    digits = link[link.find("[") + 1 : link.rfind("]")]
    return int(digits) if digits.isdigit() else None


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        import fcntl

        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING))


def _traversable_by_others(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return bool(st.st_mode & 0o001)


def _hidden_ancestor(path: str) -> str | None:
    """The highest ancestor of ``path`` (or ``path``) that a stranger uid cannot traverse."""
    parts = [p for p in path.split("/") if p]
    current = ""
    for part in parts:
        current += "/" + part
        if not _traversable_by_others(current):
            return current
    return None


def _readonly_tree(notes: list[str]) -> bool:
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    result = _libc.syscall(
        ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD), b"/", ctypes.c_uint(AT_RECURSIVE),
        ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    if result == 0:
        return True
    err = ctypes.get_errno()
    # Older kernels: remount every mount point read-only, one by one.
    failed = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            points = [line.split()[4].encode().decode("unicode_escape") for line in f if line.strip()]
    except OSError as exc:
        notes.append(f"read-only root: mount_setattr failed ({os.strerror(err)}), mountinfo unreadable ({exc})")
        return False
    for point in points:
        try:
            mount(None, point, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        except OSError:
            failed.append(point)
    if failed:
        notes.append(f"read-only root: could not remount {len(failed)} mount(s) read-only: {', '.join(failed[:5])}")
    return not failed


def make_writable(path: str) -> None:
    """Clear the read-only flag of the bind mount at ``path`` and set nosuid and nodev; noexec and
    atime flags stay as they are (inside a user namespace, clearing a flag the mount was created
    with is refused). Older kernels without ``mount_setattr``: a remount keeping noexec."""
    attr = _MountAttr(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, MOUNT_ATTR_RDONLY, 0, 0)
    result = _libc.syscall(
        ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD), os.fsencode(path), ctypes.c_uint(0),
        ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    if result == 0:
        return
    keep = os.statvfs(path).f_flag
    flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV
    if keep & os.ST_NOEXEC:
        flags |= MS_NOEXEC
    mount(None, path, None, flags)


def make_readonly(path: str) -> None:
    """Set the read-only flag on the mount at ``path`` only (the binds below it keep theirs)."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    result = _libc.syscall(
        ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD), os.fsencode(path), ctypes.c_uint(0),
        ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    if result != 0:
        mount(None, path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def setup_mounts(cfg: dict, notes: list[str]) -> dict:
    """Private, read-only tree with private tmpfs dirs and only the needed directories bound back."""
    info = {"readonly_root": False, "private_tmp": [], "hidden": []}
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    writable = [os.path.realpath(p) for p in cfg.get("writable", [])]
    expose = [os.path.realpath(p) for p in cfg.get("expose", [])]
    keep = sorted(set(writable) | set(expose), key=lambda p: (p.count("/"), p))
    # File descriptors opened before anything is covered up: binds come from them.
    fds = {path: os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for path in keep}
    hidden_set = {a for a in (_hidden_ancestor(p) for p in keep) if a}
    hidden_set |= {os.path.realpath(p) for p in cfg.get("hide", []) if os.path.isdir(p) and os.path.realpath(p) != "/"}
    hidden = sorted(hidden_set, key=lambda p: (p.count("/"), p))

    info["readonly_root"] = _readonly_tree(notes)
    for directory in cfg.get("private_tmp", []):
        if os.path.isdir(directory) and not os.path.islink(directory):
            mount("tmpfs", directory, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={cfg.get('tmpfs_size', '256m')}")
            info["private_tmp"].append(directory)
    for directory in hidden:
        if any(directory == t or directory.startswith(t + "/") for t in info["private_tmp"] + info["hidden"]):
            continue  # already covered by a fresh tmpfs
        mount("tmpfs", directory, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
        info["hidden"].append(directory)

    for path in keep:
        fd = fds[path]
        want_rw = path in writable
        try:
            same = os.stat(path)
            target = os.fstat(fd)
            reachable = (same.st_dev, same.st_ino) == (target.st_dev, target.st_ino)
        except OSError:
            reachable = False
        if reachable and not want_rw:
            continue
        os.makedirs(path, mode=0o755, exist_ok=True)
        mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        if want_rw:
            make_writable(path)
    for fd in fds.values():
        os.close(fd)
    for directory in info["hidden"]:  # empty and read-only: only what was bound back is there
        make_readonly(directory)
    return info


# -------------------------------------------------------------------------------------- command


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def drop_capability_sets() -> None:
    """Empty the bounding and ambient sets (needs CAP_SETPCAP: call before giving up root or the
    user namespace's capabilities), so nothing the command execs can ever regain a capability."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as f:
            last = int(f.read().strip())
    except (OSError, ValueError):
        last = 40
    for cap in range(last + 1):
        prctl(PR_CAPBSET_DROP, cap)
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "prctl PR_CAP_AMBIENT_CLEAR_ALL")


def clear_capabilities() -> None:
    """Effective, permitted and inheritable sets to zero (the command starts with none)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def exec_command(cfg: dict, status: Status) -> None:
    """In the forked child: drop privileges, apply limits, exec. Never returns."""
    try:
        uid, gid = cfg["uid"], cfg["gid"]
        rootless = cfg.get("mode") == "userns"
        drop_capability_sets()
        if not rootless:  # in a user namespace setgroups is denied: the groups we had stay, unmapped
            os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if (os.getresuid(), os.getresgid()) != ((uid, uid, uid), (gid, gid, gid)) or (os.getgroups() and not rootless):
            raise OSError(errno.EPERM, "privilege drop did not stick")
        clear_capabilities()
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        for res, soft, hard in cfg.get("rlimits", []):
            resource.setrlimit(res, (soft, hard))
        os.chdir(cfg["cwd"])
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        argv = cfg["argv"]
        os.execvpe(argv[0], argv, dict(os.environ))
    except BaseException as exc:  # noqa: BLE001 - report anything, then leave without cleanup
        status.send(event="exec_error", error=f"{type(exc).__name__}: {exc}")
        os._exit(EXIT_EXEC_FAILED)


def wait_with_deadline(pid: int, deadline: float) -> tuple[int, object] | None:
    """(wait status, rusage) of ``pid``, or None when the deadline passed first."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = -1
    try:
        while True:
            got, wstatus, usage = os.wait4(pid, os.WNOHANG)
            if got == pid:
                return wstatus, usage
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if pidfd >= 0:
                select.select([pidfd], [], [], remaining)
            else:
                time.sleep(min(0.05, remaining))
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def usage_fields(usage) -> dict:
    return {"cpu_s": round(usage.ru_utime + usage.ru_stime, 3), "maxrss_kb": usage.ru_maxrss}


def become_init(status: Status, required: bool) -> None:
    """In the PID namespace's first process, before the command replaces it.

    The command itself is PID 1 of the namespace, so its exit kills every other process in the
    namespace atomically (the kernel does it before any of them is reparented or can notice the
    exit): nothing it started can touch the workspace or the JUnit XML afterwards. The price is
    PID-1 semantics for the command (signals it sends itself without a handler are ignored, and
    it does not reap orphans).

    A fresh ``/proc`` shows only the namespace. ``required`` (userns mode, where the command runs
    as our uid outside): without it the command could read our processes' environments through
    the old ``/proc``, so a failure raises instead of being noted.
    """
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        # A mount namespace of its own, so the launcher (outside the PID namespace) keeps the
        # host's /proc for its checks while the sandbox sees only its own processes.
        _check(_libc.unshare(CLONE_NEWNS), "unshare mount namespace for /proc")
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError as exc:
        if required:
            raise OSError(exc.errno, f"sandbox /proc: {exc}") from None
        status.send(event="note", note=f"sandbox /proc: {exc}")


def processes_of(uid: int) -> list[int]:
    """Live (non-zombie) processes whose real uid is ``uid``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", encoding="ascii", errors="replace") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        if fields.get("State", "").strip().startswith(("Z", "X")):
            continue
        uids = fields.get("Uid", "").split()
        if uids and int(uids[0]) == uid:
            found.append(int(name))
    return found


def kill_uid(uid: int, gid: int, rounds: int = 50) -> int:
    """SIGKILL every process of ``uid`` (kill(-1) as that uid is atomic against fork). Returns survivors."""
    for _ in range(rounds):
        if not processes_of(uid):
            return 0
        helper = os.fork()
        if helper == 0:
            try:
                os.setgroups([])
                os.setresgid(gid, gid, gid)
                os.setresuid(uid, uid, uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(helper, 0)
        time.sleep(0.02)
    return len(processes_of(uid))


def processes_in_pid_namespace(inode: int) -> list[int]:
    """Live (non-zombie) processes whose PID namespace is ``inode`` (as seen from outside it)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            link = os.readlink(f"/proc/{name}/ns/pid")
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if link == f"pid:[{inode}]" and state not in ("Z", "X"):
            found.append(int(name))
    return found


def launch(cfg: dict) -> int:
    status = Status(cfg.get("status_fd", -1))
    if status.fd >= 0:
        os.set_inheritable(status.fd, False)  # the command must not be able to write status lines
    parent = cfg.get("parent_pid")
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass
    if parent is not None and os.getppid() != parent:
        return EXIT_SETUP_FAILED  # the caller is already gone
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    deadline = time.monotonic() + float(cfg["deadline_s"])
    uid, gid = cfg["uid"], cfg["gid"]
    rootless = cfg.get("mode") == "userns"
    notes: list[str] = []
    setup = {
        "mode": "userns" if rootless else "root", "uid": uid, "gid": gid,
        "mount": False, "net": False, "ipc": False, "pid": False, "pid_ns": None,
    }  # fmt: skip
    try:
        if rootless:
            spaces = enter_user_namespace(cfg)
        else:
            stale = kill_uid(uid, gid)
            if stale:
                raise OSError(errno.EBUSY, f"{stale} process(es) of uid {uid} survive SIGKILL")
            spaces = unshare_namespaces(cfg, notes)
        setup.update(spaces)
        if spaces["mount"]:
            setup.update(setup_mounts(cfg, notes))
        if spaces["net"]:
            try:
                loopback_up()
            except OSError as exc:
                if rootless:
                    raise
                notes.append(f"loopback stays down: {exc}")
        os.chdir(cfg["cwd"])  # the old cwd may be covered by a mount now
    except Exception as exc:  # noqa: BLE001
        status.send(event="fatal", error=f"sandbox setup failed: {type(exc).__name__}: {exc}", notes=notes)
        return EXIT_SETUP_FAILED
    first = os.fork()
    if first == 0:
        if setup["pid"]:
            try:
                become_init(status, required=rootless)
            except OSError as exc:
                status.send(event="exec_error", error=str(exc))
                os._exit(EXIT_SETUP_FAILED)
        exec_command(cfg, status)
    if setup["pid"]:  # the namespace has an inode once its first process exists
        setup["pid_ns"] = pid_namespace_for_children()
    status.send(event="setup", notes=notes, **setup)

    waited = wait_with_deadline(first, deadline)
    if waited is None:
        status.send(event="timeout")
        try:
            os.kill(first, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(first, 0)
    else:
        status.send(event="exit", wstatus=waited[0], **usage_fields(waited[1]))
    if rootless:
        # Our own uid: never kill(-1) as it. The namespace died with its init; count what is left.
        left = processes_in_pid_namespace(setup["pid_ns"]) if setup["pid_ns"] else []
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        status.send(event="done", outlived=len(left), survivors=0)
        return 0
    outlived = len(processes_of(uid))
    survivors = kill_uid(uid, gid)
    status.send(event="done", outlived=outlived, survivors=survivors)
    return 0


# ------------------------------------------------------------------------------------------ probe


def userns_hints() -> list[str]:
    """Host settings known to refuse unprivileged user namespaces, as found on this host."""
    hints = []

    def read(path: str) -> str:
        try:
            with open(path, encoding="ascii") as f:
                return f.read().strip()
        except OSError:
            return ""

    if read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
        hints.append("sysctl kernel.unprivileged_userns_clone is 0 (Debian's switch)")
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
        hints.append("sysctl kernel.apparmor_restrict_unprivileged_userns is 1 (Ubuntu's AppArmor restriction)")
    if read("/proc/sys/user/max_user_namespaces") == "0":
        hints.append("sysctl user.max_user_namespaces is 0")
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            seccomp = dict(line.split(":", 1) for line in f if ":" in line).get("Seccomp", "").strip()
    except OSError:
        seccomp = ""
    if seccomp == "2":
        hints.append(
            "a seccomp filter is active (Docker's and Kubernetes' default profiles refuse unshare(CLONE_NEWUSER))"
        )
    return hints


def probe() -> dict:
    """Try the userns way in, in a throwaway child: namespaces, id maps, fresh /proc, tmpfs, loopback."""
    if os.geteuid() == 0:
        return {"available": False, "error": "running as root: the root way in applies", "hints": []}
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_fd)
        step = "unshare"
        try:
            uid, gid = os.geteuid(), os.getegid()
            enter_user_namespace({"uid": uid, "gid": gid})
            step = "mount"
            mount(None, "/", None, MS_REC | MS_PRIVATE)
            mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m")
            step = "loopback"
            loopback_up()
            step = "fork"
            init = os.fork()
            if init == 0:
                try:
                    become_init(Status(-1), required=True)
                    os._exit(0)
                except OSError as exc:
                    os.write(write_fd, str(exc).encode())
                    os._exit(1)
            _, wstatus = os.waitpid(init, 0)
            os._exit(os.waitstatus_to_exitcode(wstatus))
        except BaseException as exc:  # noqa: BLE001
            os.write(write_fd, f"{step}: {exc}".encode())
            os._exit(1)
    os.close(write_fd)
    error = b""
    while chunk := os.read(read_fd, 4096):
        error += chunk
    os.close(read_fd)
    _, wstatus = os.waitpid(child, 0)
    ok = os.waitstatus_to_exitcode(wstatus) == 0 and not error
    text = error.decode("utf-8", "replace") or f"probe exited with status {wstatus}"
    return {"available": ok, "error": "" if ok else text[:300], "hints": [] if ok else userns_hints()}


def main(args: list[str]) -> int:
    if args == ["--probe"]:
        print(json.dumps(probe()), flush=True)
        return 0
    if len(args) == 3 and args[0] == "--kill-uid":
        return 1 if kill_uid(int(args[1]), int(args[2])) else 0
    if len(args) != 1:
        sys.stderr.write("usage: launch.py CONFIG_JSON | --kill-uid UID GID | --probe\n")
        return 2
    return launch(json.loads(args[0]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
