"""What the race tests share: atomic name swaps (the attack) and inotify (the proof
that nothing outside a tree was touched).  No pytest here: scripts/stress.py uses it."""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path
from typing import Dict, List, Tuple, Union

_libc = ctypes.CDLL(None, use_errno=True)


def libc() -> ctypes.CDLL:
    return _libc


RENAME_EXCHANGE = 2
AT_FDCWD = -100


def exchange(a: bytes, b: bytes, dfd: int = AT_FDCWD) -> None:
    """renameat2(RENAME_EXCHANGE): swap two names atomically."""
    if _libc.renameat2(dfd, a, dfd, b, RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), os.fsdecode(a))


def has_exchange(directory: Union[bytes, Path]) -> bool:
    """Does the file system at ``directory`` support RENAME_EXCHANGE?"""
    base = os.fsencode(directory)
    a, b = os.path.join(base, b".xchg-a"), os.path.join(base, b".xchg-b")
    try:
        for p in (a, b):
            with open(p, "wb"):
                pass
        exchange(a, b)
        return True
    except (OSError, AttributeError):
        return False
    finally:
        for p in (a, b):
            try:
                os.unlink(p)
            except OSError:
                pass


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


def describe(events: List[Tuple[bytes, bytes, str]]) -> List[str]:
    """One readable line per event: "EVENT|NAMES path"."""
    return [f"{what} {os.fsdecode(os.path.join(where, name))}" for where, name, what in events]


def uring_works() -> bool:
    """Can this process set up an io_uring at all (kernel, seccomp, io_uring_disabled)?"""
    try:
        from pyuring import Ring

        Ring(2).close()
        return True
    except OSError:
        return False
