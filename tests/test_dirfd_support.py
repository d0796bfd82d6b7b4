"""Helpers shared by the DirectoryFd test modules (``tests/test_dirfd_*.py``).

This module holds no tests.  Every DirectoryFd test runs against both
backends: each module declares a ``backend`` fixture parametrized over
:data:`BACKENDS` that calls :func:`check_backend` (the ``uring`` one skips
when io_uring cannot be used here).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any, Dict, Iterator, List, Optional, Tuple

from pyuring import DirectoryFd, Metadata

from .conftest import BACKENDS as BACKENDS
from .conftest import check_backend as check_backend

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
