"""-X / -A: which way a small file goes.

Files in a directory nobody else may write to take the packed chain (the
source in a direct descriptor) like any file without -X: listxattrat by name
(Linux 6.13) says whether a file has xattrs, getxattrat reads those it has,
and they are written by FSETXATTR between the file's WRITE and its LINKAT.
Where that chain cannot take them (--fsync, say) a file with xattrs is read
through a plain source fd instead, from which they are read.  These tests
count the syscalls of each way (on io_uring: the sync backend has no packed
chain) and check the copies attribute by attribute on both backends.
"""

from __future__ import annotations

import errno
import json
import os
import struct
from pathlib import Path
from typing import Any, List

import pytest

from pyuring import _syscall
from pyuring.copy import api, filecopy
from pyuring.executor import make_executor

from .conftest import requires_root
from .test_copy_support import (
    acl_blob,
    copy_api,
    fix_times,
    loop_fs,
    mounted,
    one_file_tree,
    run_cli,
    write,
)
from .treecompare import assert_same_tree


def _has_listxattrat(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _syscall.XattrReader().names(fd, b".")
        return True
    except OSError as exc:
        return exc.errno not in (errno.ENOSYS, errno.EPERM)
    finally:
        os.close(fd)


def _tree(src: Path, plain: int, with_xattrs: int, with_acls: int) -> Path:
    (src / "sub").mkdir(parents=True)
    for i in range(plain):
        write(src / ("sub" if i % 2 else "") / f"plain{i}", b"p" * (1 + i * 37 % 900))
    for i in range(with_xattrs):
        p = src / f"x{i}"
        write(p, b"x" * (i + 1))
        os.setxattr(p, "user.k", f"value {i}".encode())
    for i in range(with_acls):
        p = src / f"acl{i}"
        write(p, b"a" * (i + 1), mode=0o640)
        os.setxattr(p, "system.posix_acl_access", acl_blob(0o640, users=[(1234, 6)]))
    fix_times(src)
    return src


def test_small_files_take_the_packed_chain_with_or_without_xattrs(tmp_path: Path,
                                                                   backend: str) -> None:
    if not _has_listxattrat(tmp_path):
        pytest.skip("no listxattrat here (Linux 6.13)")
    src = _tree(tmp_path / "src", plain=30, with_xattrs=6, with_acls=4)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True, acls=True)
    assert stats.exit_code == 0 and msgs == [], msgs
    assert_same_tree(src, tmp_path / "dst")  # (xattrs and ACLs included)
    assert os.getxattr(tmp_path / "dst" / "x3", "user.k") == b"value 3"
    assert os.listxattr(tmp_path / "dst" / "plain4") == []
    if backend == "sync":
        return
    calls = stats.direct_syscalls
    assert calls["listxattrat"] == 40  # every small file asked once (none is empty)
    assert calls["getxattrat"] == 10  # the one xattr of each of the 10 with some
    # no file's xattrs are read from an fd (the two directories' are compared
    # on both sides: 4), and none is written directly
    assert calls["flistxattr"] == 4, dict(calls)
    assert calls.get("fsetxattr", 0) == 0, dict(calls)
    assert stats.sqes_by_op["FSETXATTR"] == 10
    assert stats.sqes_by_op["READ"] == 40 and "openat" not in calls


def test_where_the_chain_cannot_take_xattrs_they_come_from_the_fd(tmp_path: Path,
                                                                 backend: str) -> None:
    """--fsync ends a file's chain at its FSYNC: its xattrs are written before,
    directly, from a plain source fd; files without any still take the packed
    chain."""
    if not _has_listxattrat(tmp_path):
        pytest.skip("no listxattrat here (Linux 6.13)")
    src = _tree(tmp_path / "src", plain=30, with_xattrs=6, with_acls=4)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True, acls=True,
                           fsync=True)
    assert stats.exit_code == 0 and msgs == [], msgs
    assert_same_tree(src, tmp_path / "dst")
    if backend == "sync":
        return
    calls = stats.direct_syscalls
    assert calls["listxattrat"] == 40 and calls.get("getxattrat", 0) == 0
    assert calls["flistxattr"] == 10 + 4, calls
    assert calls["fsetxattr"] == 10
    assert "FSETXATTR" not in stats.sqes_by_op


def test_a_tree_where_nearly_every_file_has_xattrs_stops_asking(
        tmp_path: Path, backend: str) -> None:
    """(SELinux labels on every file, say, where the chain cannot take them):
    after 64 answers, 3 in 4 of them with xattrs, the question only costs a
    syscall: it is not asked again."""
    if not _has_listxattrat(tmp_path):
        pytest.skip("no listxattrat here (Linux 6.13)")
    n = filecopy._XATTRAT_TRIAL + 20
    src = _tree(tmp_path / "src", plain=0, with_xattrs=n, with_acls=0)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True, fsync=True)
    assert stats.exit_code == 0 and msgs == [], msgs
    assert_same_tree(src, tmp_path / "dst")
    if backend == "sync":
        return
    assert stats.direct_syscalls["listxattrat"] == filecopy._XATTRAT_TRIAL
    assert stats.direct_syscalls["fsetxattr"] == n


def test_where_the_chain_takes_them_every_file_is_asked(tmp_path: Path, backend: str) -> None:
    """The same tree without --fsync: every answer is used, so the question is
    never given up."""
    if not _has_listxattrat(tmp_path):
        pytest.skip("no listxattrat here (Linux 6.13)")
    n = filecopy._XATTRAT_TRIAL + 20
    src = _tree(tmp_path / "src", plain=0, with_xattrs=n, with_acls=0)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True)
    assert stats.exit_code == 0 and msgs == [], msgs
    assert_same_tree(src, tmp_path / "dst")
    if backend == "sync":
        return
    assert stats.direct_syscalls["listxattrat"] == n
    assert stats.direct_syscalls["getxattrat"] == n
    assert stats.direct_syscalls.get("fsetxattr", 0) == 0


_CAP = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)  # cap_net_bind_service


@requires_root
@pytest.mark.parametrize("fsync", [False, True], ids=["chain", "fd-way"])
def test_owner_setuid_capability_and_acl_all_survive(tmp_path: Path, backend: str,
                                                     fsync: bool) -> None:
    """A setuid file of another user with security.capability, a user xattr
    and an ACL: the write, the chown and the setuid bits each clear what came
    before them, so the copy must make them in an order that keeps all
    (owner and mode, then the WRITE, then the xattrs, ACL last).  In the chain
    and the fd way alike; files with only an owner to change too."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "cap", b"#!/bin/true\n", mode=0o4750)
    try:
        os.setxattr(src / "cap", "security.capability", _CAP)
    except OSError as exc:
        pytest.skip(f"cannot set file capabilities here: {exc}")
    os.setxattr(src / "cap", "user.note", b"n")
    os.setxattr(src / "cap", "system.posix_acl_access",
                acl_blob(0o750, users=[(4321, 5)]))
    os.chown(src / "cap", 1234, 2345)  # (clears the capability and setuid:)
    os.setxattr(src / "cap", "security.capability", _CAP)
    os.chmod(src / "cap", 0o4750)
    write(src / "owned", b"o", mode=0o2755)
    os.chown(src / "owned", 1234, 2345)
    os.chmod(src / "owned", 0o2755)
    fix_times(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True, acls=True,
                           fsync=fsync)
    assert stats.exit_code == 0 and msgs == [], msgs
    assert_same_tree(src, tmp_path / "dst")
    d = os.stat(tmp_path / "dst" / "cap")
    assert (d.st_uid, d.st_gid, d.st_mode & 0o7777) == (1234, 2345, 0o4750)
    assert os.getxattr(tmp_path / "dst" / "cap", "security.capability") == _CAP
    assert os.getxattr(tmp_path / "dst" / "cap", "user.note") == b"n"
    d = os.stat(tmp_path / "dst" / "owned")
    assert (d.st_uid, d.st_gid, d.st_mode & 0o7777) == (1234, 2345, 0o2755)
    if backend == "uring":
        assert ("FSETXATTR" in stats.sqes_by_op) == (not fsync)


def test_an_xattr_the_destination_refuses_is_reported_and_the_file_published(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An FSETXATTR that fails (here: the kernel refuses an empty name, EINVAL)
    is reported once with the file's name, counts as an error, and does not
    keep the file, or its other xattrs, from being published."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "f", b"data")
    os.setxattr(src / "f", "user.a", b"1")
    os.setxattr(src / "f", "user.bad", b"2")
    os.setxattr(src / "f", "user.c", b"3")
    fix_times(src)

    def make(*a: Any, **kw: Any) -> Any:
        ex = make_executor(*a, **kw)
        real = ex.fsetxattr

        def fsetxattr(cid: int, idx: int, fd: int, name: bytes, value: bytes,
                      flags: int = 0) -> None:
            real(cid, idx, fd, b"user." if name == b"user.bad" else name, value, flags)

        ex.fsetxattr = fsetxattr  # type: ignore[method-assign]
        return ex

    monkeypatch.setattr(api, "make_executor", make)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True)
    if backend == "uring" and stats.sqes_by_op.get("FSETXATTR", 0) == 0:
        pytest.skip("the xattrs did not go through the chain here")
    assert stats.exit_code == 23 and stats.errors == 1, msgs
    assert msgs == ['cannot copy extended attributes of "f": Invalid argument (22)'], msgs
    f = tmp_path / "dst" / "f"
    assert f.read_bytes() == b"data"
    assert sorted(os.listxattr(f)) == ["user.a", "user.c"]
    assert os.stat(f).st_mtime_ns == os.stat(src / "f").st_mtime_ns


@requires_root
def test_a_destination_without_xattrs_is_one_error(tmp_path: Path, backend: str) -> None:
    """ramfs refuses every xattr (EOPNOTSUPP): each FSETXATTR of the chain fails,
    one message and one error are given for the run (exit 23, as rsync: the
    xattrs asked for are lost), and every file is there, whole."""
    src = _tree(tmp_path / "src", plain=3, with_xattrs=4, with_acls=0)
    with mounted("ramfs", tmp_path / "ram") as ram:
        try:
            os.setxattr(ram, "user.probe", b"1")
            pytest.skip("this ramfs takes xattrs")
        except OSError:
            pass
        stats, msgs = copy_api(src, ram / "dst", backend=backend, xattrs=True)
        assert stats.exit_code == 23 and stats.errors == 1, msgs
        assert len(msgs) == 1 and "not supported on the destination" in msgs[0], msgs
        for i in range(4):
            assert (ram / "dst" / f"x{i}").read_bytes() == b"x" * (i + 1)
        assert stats.transferred == 7
        if backend == "uring" and _has_listxattrat(tmp_path):
            assert stats.sqes_by_op["FSETXATTR"] == 4  # (each refused in its chain)


@requires_root
def test_the_destination_root_is_named_dot_in_its_xattr_message(tmp_path: Path,
                                                               backend: str) -> None:
    """Only the source root has an xattr, which ramfs refuses: the one
    message names it "." (before: "")."""
    src = tmp_path / "src"
    src.mkdir()
    os.setxattr(src, "user.k", b"v")
    with mounted("ramfs", tmp_path / "ram") as ram:
        r = run_cli(["-aX", "--backend", backend, f"{src}/", str(ram / "dst")])
        assert r.returncode == 23, r
        assert r.err_lines == ["pyuring-copy: extended attributes are not supported on the "
                               'destination: those of "." and of any later file are not '
                               "copied"], r


@requires_root
@pytest.mark.parametrize("with_acl", [True, False])
def test_acls_onto_a_destination_without_them(tmp_path: Path, backend: str,
                                              with_acl: bool) -> None:
    """-aA onto ramfs: an ACL asked for and lost is exit 23 with one message
    (rsync: 23; cp -a: 1); before, exit 0.  Without any ACL in the source
    nothing is lost: exit 0 and no message."""
    src = _tree(tmp_path / "src", plain=3, with_xattrs=0, with_acls=2 if with_acl else 0)
    with mounted("ramfs", tmp_path / "ram") as ram:
        r = run_cli(["-aA", "--backend", backend, f"{src}/", str(ram / "dst")])
        assert "Traceback" not in r.stderr, r
        if with_acl:
            assert r.returncode == 23, r
            assert len(r.err_lines) == 1 and "not supported" in r.err_lines[0], r
        else:
            assert r.returncode == 0 and r.err_lines == [], r
        assert sorted(os.listdir(ram / "dst")) == sorted(os.listdir(src))


@pytest.mark.parametrize("err", [errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP],
                         ids=["ENOSYS", "EPERM", "EOPNOTSUPP"])
def test_what_a_refused_question_means(tmp_path: Path, backend: str, err: int,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSYS (a kernel before 6.13) or EPERM (a filter): asked once, then
    every file takes the fd way, as before the question existed.  EOPNOTSUPP
    (a file system without xattrs): that file has none."""
    src = _tree(tmp_path / "src", plain=12, with_xattrs=0, with_acls=0)
    asked: List[bytes] = []

    def refuse(self: Any, dfd: int, name: bytes) -> Any:
        asked.append(name)
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(_syscall.XattrReader, "names", refuse)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True)
    assert stats.exit_code == 0 and msgs == [], msgs
    assert_same_tree(src, tmp_path / "dst")
    if backend == "sync":
        return
    gone = err != errno.EOPNOTSUPP
    assert len(asked) == (1 if gone else 12)
    # (the two directories' xattrs are compared on both sides: 4)
    assert stats.direct_syscalls["flistxattr"] == (12 if gone else 0) + 4


def test_the_answer_is_about_the_name_not_a_symlink_target(tmp_path: Path,
                                                           backend: str) -> None:
    """A symlink is not followed: a name that is a symlink to a file with xattrs
    is asked about itself (as a file here it is copied as the symlink it is)."""
    if not _has_listxattrat(tmp_path):
        pytest.skip("no listxattrat here (Linux 6.13)")
    d = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        write(tmp_path / "target", b"t")
        os.setxattr(tmp_path / "target", "user.t", b"1")
        os.symlink("target", tmp_path / "link")
        reader = _syscall.XattrReader()
        assert reader.names(d, b"target") == b"user.t\0"
        assert reader.value(d, b"target", b"user.t") == b"1"
        assert reader.names(d, b"link") == b""
        with pytest.raises(OSError) as info:
            reader.value(d, b"link", b"user.t")
        assert info.value.errno == errno.ENODATA
        with pytest.raises(FileNotFoundError):
            reader.names(d, b"missing")
    finally:
        os.close(d)


@pytest.mark.parametrize("size", [0, 1, 255, 256, 257, 4000])
def test_the_reader_gives_values_of_any_length(tmp_path: Path, backend: str,
                                               size: int) -> None:
    """Values are first asked for with a short buffer (the kernel allocates what
    it is offered) and, past it, again with the longest there can be."""
    if not _has_listxattrat(tmp_path):
        pytest.skip("no listxattrat here (Linux 6.13)")
    src = tmp_path / "src"
    src.mkdir()
    write(src / "f", b"data")
    value = bytes(i % 251 for i in range(size))
    try:
        os.setxattr(src / "f", "user.v", value)
    except OSError as exc:  # (ext4 holds up to a block's worth)
        pytest.skip(f"this file system refuses a {size}-byte value: {exc}")
    d = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    try:
        reader = _syscall.XattrReader()
        assert reader.value(d, b"f", b"user.v") == value
        assert reader.value(d, b"f", b"user.v") == value  # (the buffer is reused)
    finally:
        os.close(d)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True)
    assert msgs == [] and stats.errors == 0
    assert os.getxattr(tmp_path / "dst" / "f", "user.v") == value


def _acl(path: Path) -> Any:
    try:
        return os.getxattr(path, "system.posix_acl_access")
    except OSError:
        return None


def test_A_removes_the_access_acl_a_destination_directory_hands_down(
        tmp_path: Path, backend: str) -> None:
    """Files created in a destination directory with a default ACL get an access
    ACL from it (and a mode masked by it).  -A copies the source's ACLs: a file
    without one must not keep the inherited one, nor its mask (rsync -A and
    cp -a give the source's mode and no ACL).  Small, empty and large files, one
    in a new subdirectory (which inherits the default ACL itself), and one with
    an ACL of its own; a FIFO too."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    write(src / "plain", b"p" * 10, mode=0o644)
    write(src / "empty", b"", mode=0o600)
    write(src / "big", b"b" * (300 << 10), mode=0o640)
    write(src / "sub" / "inner", b"i", mode=0o604)
    write(src / "own", b"o", mode=0o640)
    os.setxattr(src / "own", "system.posix_acl_access", acl_blob(0o640, users=[(1234, 6)]))
    write(src / "labelled", b"l", mode=0o664)
    os.setxattr(src / "labelled", "user.k", b"v")
    os.mkfifo(src / "fifo", 0o640)
    fix_times(src)
    dst = tmp_path / "dst"
    dst.mkdir()
    try:
        os.setxattr(dst, "system.posix_acl_default", acl_blob(0o750, users=[(4321, 7)]))
    except OSError as exc:
        pytest.skip(f"no ACLs here: {exc}")
    assert _acl(dst) is None
    stats, msgs = copy_api(src, dst, backend=backend, xattrs=True, acls=True)
    assert stats.exit_code == 0 and msgs == [], msgs
    for name in ("plain", "empty", "big", "sub/inner", "labelled", "fifo"):
        assert _acl(dst / name) is None, name
        assert os.stat(dst / name).st_mode == os.stat(src / name).st_mode, name
    assert _acl(dst / "own") == _acl(src / "own")
    assert_same_tree(src, dst)  # (the root's default ACL goes at its end: SRC has none)


def test_A_rerun_into_a_directory_that_got_a_default_acl(tmp_path: Path,
                                                          backend: str) -> None:
    """The first run gives dst/d the source's default ACL at d's end; a changed
    file written into it on the next run inherits from it -- and must not keep
    what it inherited."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    try:
        os.setxattr(src / "d", "system.posix_acl_default", acl_blob(0o770, groups=[(99, 7)]))
    except OSError as exc:
        pytest.skip(f"no ACLs here: {exc}")
    write(src / "d" / "f", b"one", mode=0o600)
    write(src / "d" / "g", b"b" * (200 << 10), mode=0o600)
    for p in (src / "d" / "f", src / "d" / "g"):
        os.removexattr(p, "system.posix_acl_access")  # (inherited when written)
        os.chmod(p, 0o600)
    fix_times(src)
    dst = tmp_path / "dst"
    stats, msgs = copy_api(src, dst, backend=backend, acls=True)
    assert stats.exit_code == 0 and msgs == [], msgs
    assert_same_tree(src, dst)
    write(src / "d" / "f", b"changed", mode=0o600)
    write(src / "d" / "g", b"c" * (210 << 10), mode=0o600)
    for p in (src / "d" / "f", src / "d" / "g"):
        os.removexattr(p, "system.posix_acl_access")
        os.chmod(p, 0o600)
    fix_times(src, mtime_ns=1_700_000_000_000_000_001)
    stats, msgs = copy_api(src, dst, backend=backend, acls=True)
    assert stats.exit_code == 0 and msgs == [], msgs
    assert stats.transferred == 2
    assert _acl(dst / "d" / "f") is None and _acl(dst / "d" / "g") is None
    assert_same_tree(src, dst)


def test_a_source_without_xattr_support_is_not_blamed_on_the_destination(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A symlink's xattrs are listed by name; a source file system without xattrs
    answers EOPNOTSUPP: nothing to copy, and no warning about the destination."""
    import pyuring.dirfd as dirfd_mod

    src = tmp_path / "src"
    src.mkdir()
    os.symlink("nowhere", src / "link")
    write(src / "f", b"x")
    fix_times(src)
    src_ino = os.stat(src).st_ino
    real = dirfd_mod._xattrat_list

    def source_refuses(dfd: int, name: bytes) -> List[bytes]:
        if os.fstat(dfd).st_ino == src_ino:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        return real(dfd, name)

    monkeypatch.setattr(dirfd_mod, "_xattrat_list", source_refuses)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True)
    assert stats.exit_code == 0 and msgs == [], msgs
    assert os.readlink(tmp_path / "dst" / "link") == "nowhere"


@pytest.mark.parametrize("xattrs", [False, True], ids=["a", "aX"])
def test_with_xattrs_the_source_reads_go_to_the_workers(
        tmp_path: Path, backend: str, xattrs: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """-X / -A keep the ring's thread busy with xattr syscalls: the copy asks its
    executor to offload the small files' source opens (IOSQE_ASYNC); without
    them it does not (both threads are busy then).  The copy is the same."""
    asked: List[bool] = []

    def make(*a: Any, **kw: Any) -> Any:
        ex = make_executor(*a, **kw)
        real = ex.offload

        def offload(on: bool) -> None:
            asked.append(on)
            real(on)

        ex.offload = offload  # type: ignore[method-assign]
        return ex

    monkeypatch.setattr(api, "make_executor", make)
    src = _tree(tmp_path / "src", plain=6, with_xattrs=2, with_acls=0)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=xattrs)
    assert stats.exit_code == 0 and msgs == [], msgs
    assert asked == [xattrs]
    if xattrs:
        assert_same_tree(src, tmp_path / "dst")


@pytest.mark.parametrize("shared", [False, True], ids=["by-name", "fd-way"])
def test_more_xattrs_than_a_chain_may_carry(tmp_path: Path, backend: str,
                                            shared: bool) -> None:
    """A chain must fit the SQ whole (else it can never be submitted): a file
    with more xattrs than that (12 with --queue-depth 8; 40 at any depth)
    has them written one by one; one with few still takes the chain."""
    src = tmp_path / "src"
    src.mkdir()
    sizes = {"few": 2, "twelve": 12, "forty": 40}
    for name, n in sizes.items():
        write(src / name, name.encode())
        for i in range(n):
            os.setxattr(src / name, f"user.k{i:02d}", f"v{i}".encode())
    fix_times(src)
    if shared:
        os.chmod(src, 0o777)  # (others may rename there: every file takes the fd way)
    # (as the CLI, whose run has a time limit: such a chain used to hang the copy)
    r = run_cli(["-aX", "--queue-depth", "8", "--json", "--backend", backend, f"{src}/",
                 str(tmp_path / "dst")])
    assert r.returncode == 0 and r.stderr == "", r
    assert_same_tree(src, tmp_path / "dst")
    for name, n in sizes.items():
        assert len(os.listxattr(tmp_path / "dst" / name)) == n
    stats = json.loads(r.stdout)
    if backend == "uring":
        assert stats["sqes_by_op"].get("FSETXATTR", 0) == 2
        assert stats["direct_syscalls"]["fsetxattr"] == 12 + 40


def test_past_sixteen_xattrs_the_old_way_reads_them_once(tmp_path: Path, backend: str) -> None:
    """At any queue depth a chain carries at most 16 FSETXATTR: a file with 17
    has them set one by one after its WRITE -- from what was read for the
    chain, not read again."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "many", b"m")
    for i in range(filecopy._CHAIN_XATTRS + 1):
        os.setxattr(src / "many", f"user.k{i:02d}", f"v{i}".encode())
    write(src / "one", b"o")
    os.setxattr(src / "one", "user.k", b"v")
    fix_times(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True)
    assert stats.exit_code == 0 and msgs == [], msgs
    assert_same_tree(src, tmp_path / "dst")
    if backend == "sync":
        return
    calls = stats.direct_syscalls
    assert stats.sqes_by_op["FSETXATTR"] == 1  # ("one")
    assert calls["fsetxattr"] == filecopy._CHAIN_XATTRS + 1
    # one listing and one read per value for "many" (the root directory is
    # compared on both sides: 2 more listings)
    assert calls["flistxattr"] == 1 + 2, dict(calls)
    assert calls["fgetxattr"] == filecopy._CHAIN_XATTRS + 1, dict(calls)


def test_files_with_xattrs_where_o_tmpfile_is_refused_leave_no_temporary_names(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A destination without O_TMPFILE (NFS, ...) is found by the packed chain's
    open: the files in flight then take temporary names, which must be renamed
    whatever their xattrs (found by review: a file whose xattrs were read by name
    was linked under its name with the temporary one left as a second link)."""
    from pyuring.copy import filecopy

    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        write(src / f"f{i}", b"x" * 100)
        os.setxattr(src / f"f{i}", "user.k", b"v%d" % i)
    real = filecopy._on_small

    def no_tmpfile(eng: Any, job: Any, idx: int, res: int, extra: Any) -> None:
        if idx == 2 and res >= 0:  # (as the kernel answers where there is none)
            os.close(res)
            res = -errno.EOPNOTSUPP
        real(eng, job, idx, res, extra)

    monkeypatch.setattr(filecopy, "_on_small", no_tmpfile)
    dst = tmp_path / "dst"
    stats, msgs = copy_api(src, dst, backend=backend, xattrs=True)
    assert msgs == [] and stats.errors == 0
    assert sorted(os.listdir(dst)) == [f"f{i}" for i in range(4)]
    for i in range(4):
        assert os.stat(dst / f"f{i}").st_nlink == 1
        assert os.getxattr(dst / f"f{i}", "user.k") == b"v%d" % i


@requires_root
def test_names_coreutils_skips_are_neither_copied_nor_removed(tmp_path: Path,
                                                              backend: str) -> None:
    """XFS shows root each ACL a second time as trusted.SGI_ACL_*: copied, or
    removed on a re-run as a name the source lacks, they change or delete the
    ACL itself.  They are left alone (libattr's /etc/xattr.conf list), here
    checked as plain trusted.* names on this file system."""
    src = one_file_tree(tmp_path / "src", b"data", trusted_SGI_ACL_FILE=b"src alias",
                        trusted_kept=b"1")
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True, acls=True)
    assert stats.exit_code == 0, msgs
    assert sorted(os.listxattr(tmp_path / "dst" / "f")) == ["trusted.kept"]
    # a destination's own alias stays on a re-run that changes the xattrs
    os.setxattr(tmp_path / "dst" / "f", "trusted.SGI_ACL_DEFAULT", b"dst alias")
    os.setxattr(src / "f", "trusted.kept", b"2")
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True, acls=True)
    assert stats.exit_code == 0, msgs
    assert os.getxattr(tmp_path / "dst" / "f", "trusted.kept") == b"2"
    assert os.getxattr(tmp_path / "dst" / "f", "trusted.SGI_ACL_DEFAULT") == b"dst alias"


def test_a_name_gone_when_it_is_removed_is_no_error(tmp_path: Path, backend: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Removing one name of a destination can take another with it (a file
    system's alias of the same data): its own removal then finds ENODATA,
    which is what was wanted, not an error."""
    src = one_file_tree(tmp_path / "src", b"data", user_keep=b"1")
    dst = tmp_path / "dst"
    copy_api(src, dst, backend=backend, xattrs=True)
    for name in ("user.a", "user.b"):
        os.setxattr(dst / "f", name, b"extra")
    real = os.removexattr
    gone: List[str] = []

    def removexattr(path: Any, name: str, *a: Any, **kw: Any) -> None:
        real(path, name, *a, **kw)
        if name == "user.a":  # (b goes with a)
            real(path, "user.b", *a, **kw)
        gone.append(name)

    monkeypatch.setattr(os, "removexattr", removexattr)
    stats, msgs = copy_api(src, dst, backend=backend, xattrs=True)
    assert (stats.exit_code, msgs) == (0, []), msgs
    assert os.listxattr(dst / "f") == ["user.keep"]
    assert gone == ["user.a"]  # (in name order: the same outcome on every run)


@requires_root
def test_acls_onto_xfs_stay_on_every_rerun(tmp_path: Path, backend: str) -> None:
    """XFS destination, root, -aAX: the re-runs find nothing to do and the ACLs
    (a file's, a directory's default) stay.  Before, every other run removed
    them through their trusted.SGI_ACL_* aliases and the next put them back."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    write(src / "f", b"x", mode=0o640)
    os.setxattr(src / "f", "system.posix_acl_access", acl_blob(0o640, users=[(1234, 7)]))
    os.setxattr(src / "d", "system.posix_acl_default", acl_blob(0o750, users=[(1234, 7)]))
    fix_times(src)
    with loop_fs(tmp_path, "xfs") as xfs:
        for run in range(3):
            r = run_cli(["-aAX", "-v", "--backend", backend, f"{src}/", str(xfs / "dst")])
            assert r.returncode == 0 and r.err_lines == [], r
            if run:  # (-v: no itemized line, only the closing summary)
                assert [ln for ln in r.stdout.splitlines() if not ln.startswith("sent ")] \
                    == [], r
            assert os.getxattr(xfs / "dst" / "f", "system.posix_acl_access") == \
                os.getxattr(src / "f", "system.posix_acl_access")
            assert os.getxattr(xfs / "dst" / "d", "system.posix_acl_default") == \
                os.getxattr(src / "d", "system.posix_acl_default")


@requires_root
def test_a_name_only_its_file_system_knows_is_one_line_per_file(
        tmp_path: Path, backend: str) -> None:
    """btrfs.compression has no meaning on ext4 (EOPNOTSUPP for that name):
    the other xattrs of the file and of later files are copied, and each
    file that loses it says so.  Before, the first refusal said that the
    destination had no xattrs at all, and later losses went unsaid."""
    with loop_fs(tmp_path, "btrfs", "200M") as fs:
        src = fs / "src"
        src.mkdir()
        for i in range(3):
            write(src / f"f{i}", b"x" * (i + 1))
            os.setxattr(src / f"f{i}", "user.keep", b"%d" % i)
            try:
                os.setxattr(src / f"f{i}", "btrfs.compression", b"zstd")
            except OSError as exc:
                pytest.skip(f"no btrfs.compression here: {exc}")
        fix_times(src)
        dst = tmp_path / "dst"
        stats, msgs = copy_api(src, dst, backend=backend, xattrs=True)
    assert stats.exit_code == 23, msgs
    assert sorted(msgs) == [f'cannot copy extended attribute "btrfs.compression" of "f{i}": '
                            f"Operation not supported (95)" for i in range(3)], msgs
    for i in range(3):
        assert os.getxattr(dst / f"f{i}", "user.keep") == b"%d" % i


def test_a_file_whose_xattrs_are_refused_is_two_lines(tmp_path: Path, backend: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A destination that refuses each of a file's many xattrs (ENOSPC, as
    ext4's full xattr block): the first refusal with its name, then how many
    more -- not one identical line per name (1,200 in a trial)."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "f", b"data")
    for i in range(40):  # (more than a publishing chain takes: set one by one)
        os.setxattr(src / "f", f"user.n{i:02d}", b"v")
    fix_times(src)
    real = os.setxattr

    def full(path: Any, name: Any, value: bytes, *a: Any, **k: Any) -> None:
        if isinstance(path, int) and os.fsencode(name).startswith(b"user.n"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, name, value, *a, **k)

    monkeypatch.setattr(os, "setxattr", full)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True)
    assert stats.exit_code == 23 and stats.errors == 2, msgs
    assert len(msgs) == 2, msgs
    assert msgs[0].startswith('cannot copy extended attribute "user.n') and \
        msgs[0].endswith('of "f": No space left on device (28)'), msgs
    assert msgs[1] == 'cannot copy 39 more extended attributes of "f"', msgs
    assert (tmp_path / "dst" / "f").read_bytes() == b"data"
