"""DirectoryFd operations compared with what ``os`` reports, on both backends:
mkdir, symlink, readlink, link, unlink, rmdir, rename (NOREPLACE / EXCHANGE),
mknod, mkfifo, chmod, chown, utime, xattrs."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Iterator, NoReturn, Tuple

import pytest

import pyuring._syscall as syscall_mod
import pyuring.dirfd as dirfd_mod
from pyuring import DirectoryFd
from pyuring.dirfd import RENAME_EXCHANGE, RENAME_NOREPLACE
from pyuring.executor import make_executor

from .conftest import IS_ROOT, requires_root
from .test_dirfd_support import (
    BACKENDS,
    assert_matches_stat,
    check_backend,
    current_umask,
    open_root,
)


@pytest.fixture
def root(tmp_path: Path, backend: str) -> Iterator[Tuple[Path, DirectoryFd]]:
    with open_root(tmp_path, backend) as d:
        yield tmp_path, d


def _xattrs_supported(path: Path) -> bool:
    try:
        os.setxattr(path, "user.pyuring-probe", b"1")
        os.removexattr(path, "user.pyuring-probe")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------
# creating and removing
# --------------------------------------------------------------------------------------

def test_mkdir(root: Tuple[Path, DirectoryFd]) -> None:
    tmp, d = root
    umask = current_umask()
    d.mkdir("a")
    d.mkdir(b"b", 0o750)
    d.mkdir(b"\xff\xfe name", 0o700)
    assert stat.S_IMODE(os.lstat(tmp / "a").st_mode) == 0o777 & ~umask
    assert stat.S_IMODE(os.lstat(tmp / "b").st_mode) == 0o750 & ~umask
    assert os.path.isdir(os.path.join(os.fsencode(tmp), b"\xff\xfe name"))
    with pytest.raises(FileExistsError) as info:
        d.mkdir("a")
    assert "a" in str(info.value.filename)
    with d.open_dir("a") as a:
        a.mkdir("nested")
        assert_matches_stat(a.statx("nested"), os.lstat(tmp / "a" / "nested"))
    assert os.listdir(tmp / "a") == ["nested"]


def test_symlink_and_readlink(root: Tuple[Path, DirectoryFd]) -> None:
    tmp, d = root
    targets = [b"plain", b"../../escape/is/just/text", b"/absolute/path", b"\xff\xfe odd",
               b"x" * 4000]
    for i, t in enumerate(targets):
        d.symlink(t, f"l{i}")
        assert os.readlink(os.path.join(os.fsencode(tmp), b"l%d" % i)) == t
        assert d.readlink(f"l{i}") == t
        assert os.path.islink(tmp / f"l{i}")
    d.symlink("str-target", "ls")
    assert d.readlink("ls") == b"str-target"
    with pytest.raises(FileExistsError):
        d.symlink("x", "l0")
    (tmp / "file").write_bytes(b"")
    with pytest.raises(OSError) as info:
        d.readlink("file")
    assert info.value.errno == errno.EINVAL and "file" in str(info.value.filename)
    with pytest.raises(FileNotFoundError):
        d.readlink("missing")


def test_link_between_directories(root: Tuple[Path, DirectoryFd]) -> None:
    tmp, d = root
    (tmp / "f").write_bytes(b"data")
    os.symlink("f", tmp / "sym")
    (tmp / "other").mkdir()
    with d.open_dir("other") as other:
        d.link("f", other, "g")
        d.link("sym", other, "sym2")  # the symlink itself is linked, not its target
        other.link("g", d, "f3")
        with pytest.raises(FileExistsError) as info:
            d.link("f", other, "g")
        # the message names the destination (in ``other``), not a name in ``d``
        assert info.value.filename2 is not None
        assert os.path.join("other", "g") in str(info.value.filename2)
        with pytest.raises(FileNotFoundError) as info2:
            d.link("missing", other, "h")
        assert "missing" in str(info2.value.filename)
    st = os.lstat(tmp / "f")
    assert st.st_nlink == 3
    assert os.lstat(tmp / "other" / "g").st_ino == st.st_ino
    assert os.lstat(tmp / "f3").st_ino == st.st_ino
    assert os.lstat(tmp / "other" / "sym2").st_ino == os.lstat(tmp / "sym").st_ino
    assert os.path.islink(tmp / "other" / "sym2")


def test_unlink_and_rmdir(root: Tuple[Path, DirectoryFd]) -> None:
    tmp, d = root
    (tmp / "f").write_bytes(b"")
    (tmp / "dir").mkdir()
    (tmp / "full").mkdir()
    (tmp / "full" / "x").write_bytes(b"")
    os.symlink("dir", tmp / "link")
    d.unlink("link")  # the link goes, its target stays
    assert not os.path.lexists(tmp / "link") and os.path.isdir(tmp / "dir")
    with pytest.raises(IsADirectoryError):
        d.unlink("dir")
    with pytest.raises(NotADirectoryError):
        d.rmdir("f")
    with pytest.raises(OSError) as info:
        d.rmdir("full")
    assert info.value.errno == errno.ENOTEMPTY and "full" in str(info.value.filename)
    d.unlink("f")
    d.rmdir("dir")
    assert sorted(os.listdir(tmp)) == ["full"]
    with pytest.raises(FileNotFoundError):
        d.unlink("f")
    with pytest.raises(FileNotFoundError):
        d.rmdir("dir")


def test_rename(root: Tuple[Path, DirectoryFd]) -> None:
    tmp, d = root
    (tmp / "a").write_bytes(b"A")
    (tmp / "b").write_bytes(b"B")
    (tmp / "sub").mkdir()
    ino_a = os.lstat(tmp / "a").st_ino
    with d.open_dir("sub") as sub:
        d.rename("a", sub, "a2")  # plain, across directories
        assert (tmp / "sub" / "a2").read_bytes() == b"A" and not (tmp / "a").exists()
        sub.rename("a2", d, "b")  # plain rename replaces
        assert (tmp / "b").read_bytes() == b"A" and os.lstat(tmp / "b").st_ino == ino_a
        (tmp / "c").write_bytes(b"C")
        with pytest.raises(FileExistsError) as info:
            d.rename("c", d, "b", RENAME_NOREPLACE)
        assert "c" in str(info.value.filename) or "b" in str(info.value.filename2)
        assert (tmp / "b").read_bytes() == b"A" and (tmp / "c").read_bytes() == b"C"
        d.rename("c", sub, "c", RENAME_NOREPLACE)
        assert (tmp / "sub" / "c").read_bytes() == b"C"
        # exchange: a file and a directory swap names atomically
        ino_sub = os.lstat(tmp / "sub").st_ino
        d.rename("b", d, "sub", RENAME_EXCHANGE)
        assert os.lstat(tmp / "b").st_ino == ino_sub and os.path.isdir(tmp / "b")
        assert os.lstat(tmp / "sub").st_ino == ino_a and (tmp / "sub").read_bytes() == b"A"
        with pytest.raises(FileNotFoundError):
            d.rename("missing", d, "sub", RENAME_EXCHANGE)
        # the open handle follows its directory, wherever its name went
        assert [e.name for e in sub.entries()] == [b"c"]


def test_mkfifo_and_mknod(root: Tuple[Path, DirectoryFd]) -> None:
    tmp, d = root
    umask = current_umask()
    d.mkfifo("fifo")
    d.mkfifo("fifo2", 0o640)
    d.mknod("sock", stat.S_IFSOCK | 0o600)
    d.mknod("reg", stat.S_IFREG | 0o644)
    st = os.lstat(tmp / "fifo")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o666 & ~umask
    st = os.lstat(tmp / "fifo2")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640 & ~umask
    assert stat.S_ISSOCK(os.lstat(tmp / "sock").st_mode)
    assert stat.S_ISREG(os.lstat(tmp / "reg").st_mode)
    for n in ("fifo", "fifo2", "sock", "reg"):
        assert_matches_stat(d.statx(n), os.lstat(tmp / n), n)
    with pytest.raises(FileExistsError):
        d.mkfifo("fifo")


@requires_root
def test_mknod_devices(root: Tuple[Path, DirectoryFd]) -> None:
    tmp, d = root
    d.mknod("null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    d.mknod("blk", stat.S_IFBLK | 0o600, os.makedev(7, 1))
    d.mknod("big", stat.S_IFCHR | 0o600, os.makedev(4000, 1_000_000))
    for n, kind, dev in (("null", stat.S_IFCHR, os.makedev(1, 3)),
                         ("blk", stat.S_IFBLK, os.makedev(7, 1)),
                         ("big", stat.S_IFCHR, os.makedev(4000, 1_000_000))):
        st = os.lstat(tmp / n)
        assert stat.S_IFMT(st.st_mode) == kind and st.st_rdev == dev
        md = d.statx(n)
        assert_matches_stat(md, st, n)
        assert md.rdev == dev


# --------------------------------------------------------------------------------------
# metadata setters
# --------------------------------------------------------------------------------------

def test_chmod(root: Tuple[Path, DirectoryFd]) -> None:
    tmp, d = root
    (tmp / "f").write_bytes(b"")
    (tmp / "dir").mkdir()
    os.mkfifo(tmp / "fifo")
    os.symlink("f", tmp / "link")
    for mode in (0o6755, 0o4711, 0o2755, 0o1777, 0o0, 0o7777, 0o644):
        d.chmod("f", mode)
        assert stat.S_IMODE(os.lstat(tmp / "f").st_mode) == mode
        assert d.statx("f").permissions == mode
    d.chmod("dir", 0o1777)
    assert stat.S_IMODE(os.lstat(tmp / "dir").st_mode) == 0o1777
    d.chmod("dir", 0o2750)
    assert stat.S_IMODE(os.lstat(tmp / "dir").st_mode) == 0o2750
    d.chmod("fifo", 0o600)
    assert stat.S_IMODE(os.lstat(tmp / "fifo").st_mode) == 0o600
    d.chmod(None, 0o3711)  # the directory itself
    assert stat.S_IMODE(os.lstat(tmp).st_mode) == 0o3711
    d.chmod(None, 0o700)
    # a symlink's mode cannot be changed on Linux, and chmod never follows it
    before = os.lstat(tmp / "f").st_mode
    with pytest.raises(OSError) as info:
        d.chmod("link", 0o600)
    assert info.value.errno in (errno.EOPNOTSUPP, errno.ENOTSUP)
    assert "link" in str(info.value.filename)
    assert os.lstat(tmp / "f").st_mode == before
    with pytest.raises(FileNotFoundError):
        d.chmod("missing", 0o600)


@requires_root
def test_chown(root: Tuple[Path, DirectoryFd]) -> None:
    tmp, d = root
    (tmp / "f").write_bytes(b"")
    (tmp / "dir").mkdir()
    os.symlink("f", tmp / "link")
    os.chmod(tmp / "f", 0o6755)
    d.chown("f", 1234, 5678)
    st = os.lstat(tmp / "f")
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    d.chown("f", -1, 42)  # -1 keeps a field
    st = os.lstat(tmp / "f")
    assert (st.st_uid, st.st_gid) == (1234, 42)
    d.chown("f", 99, -1)
    assert (os.lstat(tmp / "f").st_uid, os.lstat(tmp / "f").st_gid) == (99, 42)
    # on a symlink: the link changes, not its target
    d.chown("link", 4321, 8765)
    assert (os.lstat(tmp / "link").st_uid, os.lstat(tmp / "link").st_gid) == (4321, 8765)
    assert (os.lstat(tmp / "f").st_uid, os.lstat(tmp / "f").st_gid) == (99, 42)
    assert d.statx("link").uid == 4321
    d.chown("dir", 7, 8)
    assert (os.lstat(tmp / "dir").st_uid, os.lstat(tmp / "dir").st_gid) == (7, 8)
    with d.open_dir("dir") as sub:
        sub.chown(None, 9, 10)
    assert (os.lstat(tmp / "dir").st_uid, os.lstat(tmp / "dir").st_gid) == (9, 10)
    d.chown(None, 0, 0)
    with pytest.raises(FileNotFoundError):
        d.chown("missing", 1, 1)


NS_CASES = [
    (1_234_567_891_123_456_789, 1_000_000_000_000_000_001),
    (-1_500_000_001, -86_400_000_000_007),  # before 1970
    (13_569_465_600_987_654_321, 13_569_465_600_000_000_001),  # year 2400
    (0, 0),
    (1, 999_999_999),
]


@pytest.mark.parametrize("times", NS_CASES)
def test_utime(root: Tuple[Path, DirectoryFd], times: Tuple[int, int]) -> None:
    tmp, d = root
    (tmp / "f").write_bytes(b"data")
    (tmp / "dir").mkdir()
    os.symlink("f", tmp / "link")
    target_before = os.lstat(tmp / "f")
    at, mt = times
    # on a symlink: the link's times change, the target is untouched
    d.utime("link", at, mt)
    st = os.lstat(tmp / "link")
    assert (st.st_atime_ns, st.st_mtime_ns) == (at, mt)
    after = os.lstat(tmp / "f")
    assert (after.st_atime_ns, after.st_mtime_ns) == (
        target_before.st_atime_ns, target_before.st_mtime_ns)
    md = d.statx("link")
    assert (md.atime_ns, md.mtime_ns) == (at, mt)
    for name in ("f", "dir"):
        d.utime(name, at, mt)
        st = os.lstat(tmp / name)
        assert (st.st_atime_ns, st.st_mtime_ns) == (at, mt), name
        assert_matches_stat(d.statx(name), st, name)
    with d.open_dir("dir") as sub:
        sub.utime(None, mt, at)
    st = os.lstat(tmp / "dir")
    assert (st.st_atime_ns, st.st_mtime_ns) == (mt, at)


def test_utime_missing(root: Tuple[Path, DirectoryFd]) -> None:
    _, d = root
    with pytest.raises(FileNotFoundError) as info:
        d.utime("missing", 1, 2)
    assert "missing" in str(info.value.filename)


def _check_xattrs(d: DirectoryFd, name: str, path: Path, attr: str) -> None:
    value = b"\x00\xffbinary value\n"
    big = os.urandom(2_000)  # larger than a first-guess buffer, fits ext4's one block
    d.setxattr(name, attr, value)
    assert os.getxattr(path, attr, follow_symlinks=False) == value
    assert d.getxattr(name, attr) == value
    assert d.getxattr(name, attr.encode()) == value
    d.setxattr(name, attr + ".big", big)
    assert d.getxattr(name, attr + ".big") == big
    assert os.getxattr(path, attr + ".big", follow_symlinks=False) == big
    d.setxattr(name, attr + ".empty", b"")
    assert d.getxattr(name, attr + ".empty") == b""
    listed = sorted(d.listxattr(name))
    assert listed == sorted(os.fsencode(x) for x in os.listxattr(path, follow_symlinks=False))
    assert {attr.encode(), (attr + ".big").encode(), (attr + ".empty").encode()} <= set(listed)
    # XATTR_CREATE on an existing attribute fails, XATTR_REPLACE on a missing one too
    with pytest.raises(FileExistsError):
        d.setxattr(name, attr, b"x", os.XATTR_CREATE)
    with pytest.raises(OSError) as info:
        d.setxattr(name, attr + ".nope", b"x", os.XATTR_REPLACE)
    assert info.value.errno == errno.ENODATA
    d.setxattr(name, attr, b"replaced", os.XATTR_REPLACE)
    assert os.getxattr(path, attr, follow_symlinks=False) == b"replaced"
    for a in (attr, attr + ".big", attr + ".empty"):
        d.removexattr(name, a)
    assert sorted(d.listxattr(name)) == sorted(
        os.fsencode(x) for x in os.listxattr(path, follow_symlinks=False))
    with pytest.raises(OSError) as info:
        d.getxattr(name, attr)
    assert info.value.errno == errno.ENODATA
    with pytest.raises(OSError) as info:
        d.removexattr(name, attr)
    assert info.value.errno == errno.ENODATA


def test_xattrs_file_and_dir(root: Tuple[Path, DirectoryFd]) -> None:
    tmp, d = root
    if not _xattrs_supported(tmp):
        pytest.skip("no user xattrs on this filesystem")
    (tmp / "f").write_bytes(b"")
    (tmp / "dir").mkdir()
    if IS_ROOT:
        os.chmod(tmp / "f", 0)  # root: by fd even when the mode forbids reading
    _check_xattrs(d, "f", tmp / "f", "user.pyuring")
    _check_xattrs(d, "dir", tmp / "dir", "user.pyuring")
    with d.open_dir("dir") as sub:
        sub.setxattr(None, "user.self", b"me")
        assert os.getxattr(tmp / "dir", "user.self") == b"me"
        assert sub.getxattr(None, "user.self") == b"me"
        assert sub.listxattr() == [b"user.self"]
        sub.removexattr(None, "user.self")
        assert sub.listxattr(None) == []


@requires_root
def test_xattrs_symlink(root: Tuple[Path, DirectoryFd]) -> None:
    tmp, d = root
    (tmp / "f").write_bytes(b"")
    os.symlink("f", tmp / "link")
    try:
        os.setxattr(tmp / "link", "trusted.probe", b"1", follow_symlinks=False)
        os.removexattr(tmp / "link", "trusted.probe", follow_symlinks=False)
    except OSError as exc:
        pytest.skip(f"no trusted xattrs on symlinks here: {exc}")
    target_before = sorted(os.listxattr(tmp / "f"))
    _check_xattrs(d, "link", tmp / "link", "trusted.pyuring")
    d.setxattr("link", "trusted.keep", b"on the link")
    assert os.getxattr(tmp / "link", "trusted.keep", follow_symlinks=False) == b"on the link"
    assert sorted(os.listxattr(tmp / "f")) == target_before  # the target is untouched
    # user.* xattrs are not allowed on symlinks: the kernel's answer, not a follow
    with pytest.raises(PermissionError):
        d.setxattr("link", "user.nope", b"1")
    assert "user.nope" not in os.listxattr(tmp / "f")


@requires_root
def test_xattrs_special_files(root: Tuple[Path, DirectoryFd]) -> None:
    tmp, d = root
    os.mkfifo(tmp / "fifo")
    os.mknod(tmp / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    for name in ("fifo", "null"):
        d.setxattr(name, "trusted.t", b"v")
        assert os.getxattr(tmp / name, "trusted.t", follow_symlinks=False) == b"v"
        assert d.getxattr(name, "trusted.t") == b"v"
        assert b"trusted.t" in d.listxattr(name)
        d.removexattr(name, "trusted.t")
        assert "trusted.t" not in os.listxattr(tmp / name, follow_symlinks=False)


def test_xattr_missing_file(root: Tuple[Path, DirectoryFd]) -> None:
    _, d = root
    for call in (lambda: d.getxattr("missing", "user.x"),
                 lambda: d.setxattr("missing", "user.x", b""),
                 lambda: d.listxattr("missing"),
                 lambda: d.removexattr("missing", "user.x")):
        with pytest.raises(FileNotFoundError) as info:
            call()
        assert "missing" in str(info.value.filename)


# --------------------------------------------------------------------------------------
# fallbacks for older kernels, forced
# --------------------------------------------------------------------------------------

def _enosys(*args: object, **kwargs: object) -> NoReturn:
    raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))


@requires_root
def test_xattrs_without_xattrat(root: Tuple[Path, DirectoryFd],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Before Linux 6.13 (no *xattrat): symlinks and special files by their name
    below /proc/self/fd/<dirfd>, still never following the symlink."""
    tmp, d = root
    (tmp / "f").write_bytes(b"")
    os.symlink("f", tmp / "link")
    os.mkfifo(tmp / "fifo")
    for fn in ("getxattrat", "setxattrat", "listxattrat", "removexattrat"):
        monkeypatch.setattr(syscall_mod, fn, _enosys)
    monkeypatch.setattr(dirfd_mod, "_have_xattrat", [True])
    _check_xattrs(d, "link", tmp / "link", "trusted.pyuring")
    _check_xattrs(d, "fifo", tmp / "fifo", "trusted.pyuring")
    assert dirfd_mod._have_xattrat == [False]
    d.setxattr("link", "trusted.only-link", b"1")
    assert "trusted.only-link" not in os.listxattr(tmp / "f")
    with pytest.raises(FileNotFoundError) as info:
        d.getxattr("missing", "trusted.x")
    assert "missing" in str(info.value.filename)
    assert d.executor.direct_syscalls["lgetxattr"] > 0


def test_chmod_without_fchmodat2(root: Tuple[Path, DirectoryFd],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Before Linux 6.6 (no fchmodat2): chmod through the O_PATH fd's magic link;
    a symlink is refused (EOPNOTSUPP) and its target untouched."""
    tmp, d = root
    (tmp / "f").write_bytes(b"")
    (tmp / "dir").mkdir()
    os.symlink("f", tmp / "link")
    real_raw = syscall_mod.raw

    def raw(name: str, *args: object) -> int:
        if name == "fchmodat2":
            _enosys()
        return real_raw(name, *args)

    monkeypatch.setattr(syscall_mod, "raw", raw)
    d.chmod("f", 0o4711)
    assert stat.S_IMODE(os.lstat(tmp / "f").st_mode) == 0o4711
    d.chmod("dir", 0o1750)
    assert stat.S_IMODE(os.lstat(tmp / "dir").st_mode) == 0o1750
    with pytest.raises(OSError) as info:
        d.chmod("link", 0o600)
    assert info.value.errno == errno.EOPNOTSUPP and "link" in str(info.value.filename)
    assert stat.S_IMODE(os.lstat(tmp / "f").st_mode) == 0o4711
    assert d.executor.direct_syscalls["chmod"] == 2


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_without_openat2(tmp_path: Path, backend_name: str) -> None:
    """Kernels before 5.6: openat (through the ring: IORING_OP_OPENAT) with
    O_NOFOLLOW gives the same answers for one component."""
    check_backend(backend_name)
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_bytes(b"content")
    os.symlink("dir", tmp_path / "link_dir")
    os.symlink("file", tmp_path / "link_file")
    ex = make_executor(backend_name)
    try:
        ex.has_openat2 = False  # type: ignore[attr-defined]
        with DirectoryFd.open(tmp_path, executor=ex) as d:
            with d.open_dir("dir") as sub:
                assert sub.statx().ino == os.lstat(tmp_path / "dir").st_ino
            fd = d.open_file("file")
            try:
                assert os.read(fd, 100) == b"content"
            finally:
                os.close(fd)
            for name in ("link_dir", "link_file"):
                with pytest.raises(OSError) as info:
                    d.open_dir(name)
                assert info.value.errno == errno.ELOOP
                for flags in (os.O_RDONLY, os.O_WRONLY | os.O_CREAT):
                    with pytest.raises(OSError) as info:
                        d.open_file(name, flags)
                    assert info.value.errno == errno.ELOOP
            d.chmod("file", 0o600)
            assert stat.S_IMODE(os.lstat(tmp_path / "file").st_mode) == 0o600
        assert ex.has_openat2 is False  # type: ignore[attr-defined]
        # a shared executor outlives the handles that use it
        with DirectoryFd.open(tmp_path, executor=ex) as d2:
            assert d2.statx("file").size == 7
    finally:
        ex.close()
