"""Helpers shared by the DirectoryFd test modules (``tests/test_dirfd_*.py``).

This module holds no tests.  Every DirectoryFd test runs against both
backends: each module declares a ``backend`` fixture parametrized over
:data:`BACKENDS` that calls :func:`check_backend` (the ``uring`` one skips
when io_uring cannot be used here).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import stat
import struct
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from pyuring import DirectoryFd, Metadata

from .conftest import URING

BACKENDS = ["uring", "sync"]

#: ``Metadata`` field -> ``os.stat_result`` attribute: everything both report.
STAT_FIELDS: Dict[str, str] = {
    "mode": "st_mode",
    "uid": "st_uid",
    "gid": "st_gid",
    "nlink": "st_nlink",
    "ino": "st_ino",
    "dev": "st_dev",
    "rdev": "st_rdev",
    "size": "st_size",
    "blocks": "st_blocks",
    "blksize": "st_blksize",
    "atime_ns": "st_atime_ns",
    "mtime_ns": "st_mtime_ns",
    "ctime_ns": "st_ctime_ns",
}


def check_backend(backend: str) -> str:
    """Skip the test when ``backend`` cannot run here; else return it."""
    if backend == "uring" and not URING:
        pytest.skip("io_uring is unavailable here")
    return backend


def open_root(path: Any, backend: str) -> DirectoryFd:
    return DirectoryFd.open(path, backend=check_backend(backend))


def assert_matches_stat(md: Metadata, st: os.stat_result, what: object = "") -> None:
    """Field-by-field equality of a Metadata with an ``os.stat_result``."""
    diffs = {
        field: (getattr(md, field), getattr(st, attr))
        for field, attr in STAT_FIELDS.items()
        if getattr(md, field) != getattr(st, attr)
    }
    assert not diffs, f"{what!r}: statx != lstat for {diffs}"
    assert md.type == stat.S_IFMT(st.st_mode)
    assert md.permissions == stat.S_IMODE(st.st_mode)


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def open_fds() -> List[int]:
    """The fds this process has open (from /proc/self/fd)."""
    return sorted(int(n) for n in os.listdir("/proc/self/fd"))


def leaked_fds(before: List[int]) -> List[Tuple[int, str]]:
    """fds open now that were not in ``before`` (with what they point to)."""
    out = []
    for fd in open_fds():
        if fd in before:
            continue
        try:
            out.append((fd, os.readlink(f"/proc/self/fd/{fd}")))
        except OSError:  # the fd listdir itself used
            continue
    return out


# --------------------------------------------------------------------------------------
# libc helpers for the attacker and the observer (independent of pyuring)
# --------------------------------------------------------------------------------------

_libc: Any = None


def libc() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    return _libc


RENAME_EXCHANGE = 2
AT_FDCWD = -100


def exchange(a: bytes, b: bytes, dfd: int = AT_FDCWD) -> None:
    """renameat2(RENAME_EXCHANGE): swap two names atomically."""
    if libc().renameat2(dfd, a, dfd, b, RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def has_exchange(tmp: bytes) -> bool:
    a, b = os.path.join(tmp, b".xa"), os.path.join(tmp, b".xb")
    open(a, "wb").close()
    open(b, "wb").close()
    try:
        exchange(a, b)
        return True
    except (OSError, AttributeError):
        return False
    finally:
        os.unlink(a)
        os.unlink(b)


_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
IN_ALL_EVENTS = 0x00000FFF
_IN_EVENT = struct.Struct("iIII")
IN_NAMES = {
    0x1: "ACCESS", 0x2: "MODIFY", 0x4: "ATTRIB", 0x8: "CLOSE_WRITE", 0x10: "CLOSE_NOWRITE",
    0x20: "OPEN", 0x40: "MOVED_FROM", 0x80: "MOVED_TO", 0x100: "CREATE", 0x200: "DELETE",
    0x400: "DELETE_SELF", 0x800: "MOVE_SELF",
}


class Inotify:
    """A non-blocking inotify instance watching some paths for every event."""

    def __init__(self) -> None:
        fd = libc().inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd: int = fd
        self.watches: Dict[int, bytes] = {}

    def watch(self, path: bytes) -> None:
        wd = libc().inotify_add_watch(self.fd, path, IN_ALL_EVENTS)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.watches[wd] = path

    def events(self) -> List[Tuple[bytes, bytes, str]]:
        """(watched path, name, event names) of everything seen so far."""
        out: List[Tuple[bytes, bytes, str]] = []
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return out
            pos = 0
            while pos < len(data):
                wd, mask, _cookie, length = _IN_EVENT.unpack_from(data, pos)
                name = data[pos + 16: pos + 16 + length].rstrip(b"\0")
                pos += 16 + length
                names = "|".join(v for k, v in IN_NAMES.items() if mask & k)
                out.append((self.watches.get(wd, b"?"), name, names))

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Inotify:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def inotify_works() -> bool:
    try:
        Inotify().close()
        return True
    except (OSError, AttributeError):
        return False


def walk(root: DirectoryFd, depth: int = 0, max_depth: int = 8
         ) -> Iterator[Tuple[bytes, Optional[Metadata]]]:
    """Depth-first walk through DirectoryFd only: (path below root, statx of it)."""
    for entry in root.entries():
        try:
            md: Optional[Metadata] = root.statx(entry.name)
        except FileNotFoundError:
            md = None
        yield entry.name, md
        if entry.d_type == stat.S_IFDIR >> 12 and depth < max_depth:
            try:
                sub = root.open_dir(entry.name)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                    raise
                continue
            with sub:
                for path, smd in walk(sub, depth + 1, max_depth):
                    yield entry.name + b"/" + path, smd
