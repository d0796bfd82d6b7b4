"""Ring conformance: directory-entry and xattr opcodes, compared with os.

liburing tests whose behaviour is ported here: rename, unlink, mkdir,
symlink, hardlink, xattr.
"""

from __future__ import annotations

import errno
import os
import stat
from functools import partial
from typing import Any, Dict, List, Tuple

import pytest

from pyuring import Ring, _syscall
from pyuring import _abi as A

from .conftest import URING
from .test_ring_support import (
    by_ud,
    one,
    opened,
    os_errno,
    read_file,
    ring_fixture,
    run,
    write_file,
)

pytestmark = pytest.mark.skipif(not URING, reason="io_uring is unavailable here")
ring = ring_fixture()

XATTR_CREATE = 1
XATTR_REPLACE = 2


def _tree(base: str) -> Dict[str, Tuple[str, bytes]]:
    """A snapshot of a directory: name -> (kind, content or link target)."""
    out: Dict[str, Tuple[str, bytes]] = {}
    for root, dirs, files in os.walk(base):
        for n in dirs + files:
            p = os.path.join(root, n)
            rel = os.path.relpath(p, base)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.fsencode(os.readlink(p)))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", b"")
            else:
                out[rel] = ("file", read_file(p))
    return out


def _twin_dirs(tmp_path: Any) -> Tuple[str, str]:
    """Two identical directories: one for the ring, one for os."""
    dirs = []
    for side in ("ring", "os"):
        d = os.path.join(str(tmp_path), side)
        os.mkdir(d)
        write_file(os.path.join(d, "a"), b"content of a")
        write_file(os.path.join(d, "b"), b"content of b")
        os.mkdir(os.path.join(d, "dir"))
        write_file(os.path.join(d, "dir", "inner"), b"inner")
        os.mkdir(os.path.join(d, "empty"))
        dirs.append(d)
    return dirs[0], dirs[1]


# ---------------------------------------------------------------------------
# rename
# ---------------------------------------------------------------------------

RENAMES: List[Tuple[str, str, int]] = [
    ("a", "c", 0),                       # plain rename
    ("b", "dir/b2", 0),                  # into a subdirectory
    ("dir/inner", "a2", 0),              # out of it
    ("c", "b-missing", A.RENAME_NOREPLACE),
    ("a2", "b-missing", A.RENAME_NOREPLACE),  # EEXIST now
    ("b-missing", "dir/b2", A.RENAME_EXCHANGE),
    ("nope", "x", 0),                    # ENOENT
    ("empty", "dir", 0),                 # ENOTEMPTY
    ("empty", "a2", 0),                  # ENOTDIR
    ("dir", "dir/sub", 0),               # EINVAL: into itself
    ("a2", "gone", A.RENAME_EXCHANGE),   # ENOENT: exchange needs both
    ("a2", "c", A.RENAME_NOREPLACE | A.RENAME_EXCHANGE),  # EINVAL
]


def test_renameat_matches_renameat2(ring: Ring, tmp_path: Any) -> None:
    mine, theirs = _twin_dirs(tmp_path)
    with opened(mine, os.O_RDONLY | os.O_DIRECTORY) as dm, \
            opened(theirs, os.O_RDONLY | os.O_DIRECTORY) as dt:
        results = []
        for old, new, flags in RENAMES:
            ring.prep_renameat(dm, old, dm, new, flags)
            res = one(ring).res
            expected = os_errno(partial(_syscall.renameat2, dt, old.encode(), dt,
                                        new.encode(), flags))
            assert res == -expected, (old, new, flags)
            assert _tree(mine) == _tree(theirs), (old, new, flags)
            results.append(res)
    assert results == [0, 0, 0, 0, -errno.EEXIST, 0, -errno.ENOENT, -errno.ENOTEMPTY,
                       -errno.ENOTDIR, -errno.EINVAL, -errno.ENOENT, -errno.EINVAL]


def test_rename_exchange_swaps(ring: Ring, tmp_path: Any) -> None:
    a = os.path.join(str(tmp_path), "a")
    b = os.path.join(str(tmp_path), "b")
    write_file(a, b"AAA")
    os.mkdir(b)
    ino_a, ino_b = os.stat(a).st_ino, os.stat(b).st_ino
    ring.prep_renameat(A.AT_FDCWD, a, A.AT_FDCWD, b, A.RENAME_EXCHANGE)
    assert one(ring).res == 0
    assert os.stat(a).st_ino == ino_b and stat.S_ISDIR(os.stat(a).st_mode)
    assert os.stat(b).st_ino == ino_a and read_file(b) == b"AAA"


def test_rename_noreplace_error(ring: Ring, tmp_path: Any) -> None:
    a = os.path.join(str(tmp_path), "a")
    b = os.path.join(str(tmp_path), "b")
    write_file(a, b"a")
    write_file(b, b"b")
    ring.prep_renameat(A.AT_FDCWD, a, A.AT_FDCWD, b, A.RENAME_NOREPLACE)
    cqe = one(ring)
    with pytest.raises(FileExistsError) as ei:
        cqe.check()
    assert ei.value.filename == a and "RENAMEAT" in str(ei.value)
    assert read_file(b) == b"b"
    ring.prep_rename(a, b)  # the AT_FDCWD shorthand, replacing
    assert one(ring).res == 0
    assert read_file(b) == b"a" and not os.path.exists(a)


# ---------------------------------------------------------------------------
# unlink, mkdir
# ---------------------------------------------------------------------------

UNLINKS: List[Tuple[str, int]] = [
    ("a", 0),
    ("a", 0),                  # ENOENT
    ("dir", 0),                # EISDIR
    ("dir", A.AT_REMOVEDIR),   # ENOTEMPTY
    ("b", A.AT_REMOVEDIR),     # ENOTDIR
    ("empty", A.AT_REMOVEDIR),
    ("dir/inner", 0),
    ("dir", A.AT_REMOVEDIR),
    ("b", 0x8000),             # unknown flag: EINVAL
]


def _os_unlinkat(dfd: int, name: str, flags: int) -> None:
    if flags & ~A.AT_REMOVEDIR:
        raise OSError(errno.EINVAL, "unknown flag")
    if flags & A.AT_REMOVEDIR:
        os.rmdir(name, dir_fd=dfd)
    else:
        os.unlink(name, dir_fd=dfd)


def test_unlinkat_matches_os(ring: Ring, tmp_path: Any) -> None:
    mine, theirs = _twin_dirs(tmp_path)
    with opened(mine, os.O_RDONLY | os.O_DIRECTORY) as dm, \
            opened(theirs, os.O_RDONLY | os.O_DIRECTORY) as dt:
        results = []
        for name, flags in UNLINKS:
            ring.prep_unlinkat(dm, name, flags)
            res = one(ring).res
            expected = os_errno(partial(_os_unlinkat, dt, name, flags))
            assert res == -expected, (name, flags)
            assert _tree(mine) == _tree(theirs)
            results.append(res)
    assert results == [0, -errno.ENOENT, -errno.EISDIR, -errno.ENOTEMPTY, -errno.ENOTDIR,
                       0, 0, 0, -errno.EINVAL]
    assert sorted(os.listdir(mine)) == ["b"]


def test_unlink_shorthand_and_error(ring: Ring, tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    write_file(path, b"")
    ring.prep_unlink(path)
    assert one(ring).res == 0 and not os.path.lexists(path)
    ring.prep_unlink(path)
    cqe = one(ring)
    with pytest.raises(FileNotFoundError) as ei:
        cqe.check()
    assert ei.value.filename == path and "UNLINKAT" in str(ei.value)
    os.mkdir(path)
    ring.prep_unlink(path, A.AT_REMOVEDIR)
    assert one(ring).res == 0 and not os.path.lexists(path)


def test_mkdirat_matches_os(ring: Ring, tmp_path: Any) -> None:
    mine, theirs = _twin_dirs(tmp_path)
    cases = [("new", 0o755), ("new", 0o755), ("dir/sub", 0o700), ("nope/sub", 0o755),
             ("a/sub", 0o755), ("odd", 0o1777), ("wide", 0o777)]
    with opened(mine, os.O_RDONLY | os.O_DIRECTORY) as dm, \
            opened(theirs, os.O_RDONLY | os.O_DIRECTORY) as dt:
        for name, mode in cases:
            ring.prep_mkdirat(dm, name, mode)
            res = one(ring).res
            expected = os_errno(partial(os.mkdir, name, mode, dir_fd=dt))
            assert res == -expected, name
    assert _tree(mine) == _tree(theirs)
    for name in ("new", "dir/sub", "odd", "wide"):
        assert os.stat(os.path.join(mine, name)).st_mode == \
            os.stat(os.path.join(theirs, name)).st_mode
    ring.prep_mkdir(os.path.join(mine, "new"), 0o755)
    cqe = one(ring)
    with pytest.raises(FileExistsError) as ei:
        cqe.check()
    assert ei.value.filename == os.path.join(mine, "new") and "MKDIRAT" in str(ei.value)


# ---------------------------------------------------------------------------
# symlink, link
# ---------------------------------------------------------------------------

def test_symlinkat_matches_os(ring: Ring, tmp_path: Any) -> None:
    mine, theirs = _twin_dirs(tmp_path)
    cases = [("a", "l1"), ("/etc/passwd", "l2"), ("does/not/exist", "dangling"),
             ("a", "l1"), ("a", "nope/l3"), ("x" * 5000, "toolong")]
    with opened(mine, os.O_RDONLY | os.O_DIRECTORY) as dm, \
            opened(theirs, os.O_RDONLY | os.O_DIRECTORY) as dt:
        for target, name in cases:
            ring.prep_symlinkat(target, dm, name)
            res = one(ring).res
            expected = os_errno(partial(os.symlink, target, name, dir_fd=dt))
            assert res == -expected, (target, name)
    assert _tree(mine) == _tree(theirs)
    assert os.readlink(os.path.join(mine, "dangling")) == "does/not/exist"
    link = os.path.join(mine, "l1")
    ring.prep_symlink("a", link)
    cqe = one(ring)
    with pytest.raises(FileExistsError) as ei:
        cqe.check()
    assert ei.value.filename == link and "SYMLINKAT" in str(ei.value)


def test_linkat(ring: Ring, tmp_path: Any) -> None:
    base = str(tmp_path)
    target = os.path.join(base, "target")
    write_file(target, b"shared")
    os.symlink("target", os.path.join(base, "sym"))
    with opened(base, os.O_RDONLY | os.O_DIRECTORY) as dfd:
        ring.prep_linkat(dfd, "target", dfd, "hard", user_data=1)
        ring.prep_linkat(dfd, "sym", dfd, "hard-to-sym", user_data=2)
        ring.prep_linkat(dfd, "sym", dfd, "hard-followed", A.AT_SYMLINK_FOLLOW, user_data=3)
        ring.prep_linkat(dfd, "missing", dfd, "x", user_data=4)
        ring.prep_linkat(dfd, "target", dfd, "hard", user_data=5)  # EEXIST (after 1)
        got = by_ud(run(ring, 5))
        assert [got[i].res for i in range(1, 4)] == [0, 0, 0]
        assert got[4].res == -os_errno(lambda: os.link("missing", "x", src_dir_fd=dfd,
                                                        dst_dir_fd=dfd))
        assert got[4].res == -errno.ENOENT
        assert got[5].res == -errno.EEXIST
    st = os.stat(target)
    assert st.st_nlink == 3
    assert os.stat(os.path.join(base, "hard")).st_ino == st.st_ino
    assert os.stat(os.path.join(base, "hard-followed")).st_ino == st.st_ino
    # without AT_SYMLINK_FOLLOW the new name is a link to the symlink itself
    assert os.lstat(os.path.join(base, "hard-to-sym")).st_ino == \
        os.lstat(os.path.join(base, "sym")).st_ino
    with pytest.raises(FileExistsError) as ei:
        got[5].check()
    assert ei.value.filename == "hard" and "LINKAT" in str(ei.value)


def test_linkat_empty_path_publishes_an_o_tmpfile(ring: Ring, tmp_path: Any) -> None:
    """The copy engine's atomic publish: O_TMPFILE + linkat(fd, "", AT_EMPTY_PATH)."""
    base = str(tmp_path)
    fd = os.open(base, os.O_TMPFILE | os.O_RDWR, 0o640)
    try:
        os.write(fd, b"complete content")
        assert os.listdir(base) == []
        ring.prep_linkat(fd, "", A.AT_FDCWD, os.path.join(base, "published"),
                         A.AT_EMPTY_PATH)
        assert one(ring).res == 0
        assert os.listdir(base) == ["published"]
        assert os.stat(os.path.join(base, "published")).st_ino == os.fstat(fd).st_ino
    finally:
        os.close(fd)
    assert read_file(os.path.join(base, "published")) == b"complete content"


# ---------------------------------------------------------------------------
# xattrs
# ---------------------------------------------------------------------------

def test_fsetxattr_fgetxattr_match_os(ring: Ring, tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    write_file(path, b"")
    value = b"v\x00binary\xff" * 10
    with opened(path, os.O_RDWR) as fd:
        ring.prep_fsetxattr(fd, "user.ring", value, user_data=1)
        assert one(ring).res == 0
        assert os.getxattr(fd, "user.ring") == value
        os.setxattr(fd, "user.os", b"set by os")
        buf = bytearray(64)
        ring.prep_fgetxattr(fd, "user.os", buf)
        res = one(ring).res
        assert res == 9 and bytes(buf[:res]) == b"set by os"
        # size 0 asks for the length only, like getxattr(2)
        ring.prep_fgetxattr(fd, b"user.ring", bytearray(0), 0)
        assert one(ring).res == len(value)
        # XATTR_CREATE on an existing name, XATTR_REPLACE on a missing one
        ring.prep_fsetxattr(fd, "user.ring", b"x", XATTR_CREATE, user_data=2)
        ring.prep_fsetxattr(fd, "user.absent", b"x", XATTR_REPLACE, user_data=3)
        ring.prep_fgetxattr(fd, "user.absent", bytearray(8), user_data=4)
        ring.prep_fgetxattr(fd, "user.ring", bytearray(4), user_data=5)  # too small
        got = by_ud(run(ring, 4))
        assert got[2].res == -os_errno(
            lambda: os.setxattr(fd, "user.ring", b"x", os.XATTR_CREATE)) == -errno.EEXIST
        assert got[3].res == -os_errno(
            lambda: os.setxattr(fd, "user.absent", b"x", os.XATTR_REPLACE)) == -errno.ENODATA
        assert got[4].res == -os_errno(lambda: os.getxattr(fd, "user.absent")) == -errno.ENODATA
        assert got[5].res == -errno.ERANGE
        with pytest.raises(ValueError):
            ring.prep_fgetxattr(fd, "user.ring", bytearray(4), 100)  # length > buffer
    assert sorted(os.listxattr(path)) == ["user.os", "user.ring"]


def test_setxattr_getxattr_by_path(ring: Ring, tmp_path: Any) -> None:
    base = str(tmp_path)
    path = os.path.join(base, "f")
    write_file(path, b"")
    link = os.path.join(base, "link")
    os.symlink("f", link)
    # through the symlink: the path forms follow links, like setxattr(2)
    ring.prep_setxattr("user.k", b"by path", link)
    assert one(ring).res == 0
    assert os.getxattr(path, "user.k") == b"by path"
    buf = bytearray(32)
    ring.prep_getxattr("user.k", buf, link)
    res = one(ring).res
    assert res == 7 and bytes(buf[:res]) == os.getxattr(link, "user.k")
    missing = os.path.join(base, "missing")
    ring.prep_getxattr("user.k", buf, missing)
    cqe = one(ring)
    assert cqe.res == -os_errno(lambda: os.getxattr(missing, "user.k")) == -errno.ENOENT
    with pytest.raises(FileNotFoundError) as ei:
        cqe.check()
    assert ei.value.filename == missing and "GETXATTR" in str(ei.value)
    ring.prep_setxattr("user.k", b"v", path, XATTR_CREATE)
    cqe = one(ring)
    with pytest.raises(FileExistsError) as ei2:
        cqe.check()
    assert ei2.value.filename == path and "SETXATTR" in str(ei2.value)
    # an unknown namespace is refused, as by os.setxattr
    ring.prep_setxattr("bogus.k", b"v", path)
    assert one(ring).res == -os_errno(lambda: os.setxattr(path, "bogus.k", b"v"))
