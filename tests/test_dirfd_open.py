"""Opening below a DirectoryFd: one name component at a time, never through a
symlink, names checked before any syscall, fds close-on-exec and never leaked.
Both backends."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

import pyuring._syscall as syscall_mod
import pyuring.dirfd as dirfd_mod
from pyuring import DirectoryFd, InvalidName

from .test_dirfd_support import leaked_fds, open_fds, open_root


@pytest.fixture
def tree(tmp_path: Path, backend: str) -> Iterator[Tuple[Path, DirectoryFd]]:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "inner").write_bytes(b"inner")
    (tmp_path / "file").write_bytes(b"content")
    os.symlink("dir", tmp_path / "link_dir")
    os.symlink("file", tmp_path / "link_file")
    os.symlink("/", tmp_path / "link_root")
    os.symlink("missing", tmp_path / "dangling")
    with open_root(tmp_path, backend) as d:
        yield tmp_path, d


def _is_cloexec(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)


# --------------------------------------------------------------------------------------
# symlinks are never followed
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["link_dir", "link_file", "link_root", "dangling"])
def test_open_dir_refuses_symlink(tree: Tuple[Path, DirectoryFd], name: str) -> None:
    _, d = tree
    with pytest.raises(OSError) as info:
        d.open_dir(name)
    assert info.value.errno == errno.ELOOP == 40
    assert name in str(info.value.filename)


@pytest.mark.parametrize("name", ["link_dir", "link_file", "link_root", "dangling"])
@pytest.mark.parametrize("flags", [
    os.O_RDONLY, os.O_WRONLY, os.O_RDWR | os.O_CREAT, os.O_WRONLY | os.O_TRUNC,
    os.O_RDONLY | os.O_DIRECTORY, os.O_PATH,
])
def test_open_file_refuses_symlink(tree: Tuple[Path, DirectoryFd], name: str,
                                   flags: int) -> None:
    tmp, d = tree
    if flags & os.O_PATH:
        # O_PATH | O_NOFOLLOW: the kernel hands out a handle on the link itself
        fd = d.open_file(name, flags)
        try:
            assert stat.S_ISLNK(os.fstat(fd).st_mode)
            assert os.fstat(fd).st_ino == os.lstat(tmp / name).st_ino
        finally:
            os.close(fd)
        return
    with pytest.raises(OSError) as info:
        os.close(d.open_file(name, flags))
    assert info.value.errno in (errno.ELOOP, errno.ENOTDIR)
    if not flags & os.O_DIRECTORY:
        assert info.value.errno == errno.ELOOP
    assert name in str(info.value.filename)
    assert (tmp / "file").read_bytes() == b"content"  # O_TRUNC went nowhere
    assert not (tmp / "missing").exists()  # O_CREAT created nothing


def test_open_dir_of_a_file_is_enotdir(tree: Tuple[Path, DirectoryFd]) -> None:
    _, d = tree
    with pytest.raises(NotADirectoryError) as info:
        d.open_dir("file")
    assert "file" in str(info.value.filename)


def test_open_dir_enotdir_when_the_entry_vanishes(tree: Tuple[Path, DirectoryFd],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """open_dir looks again when the kernel says ENOTDIR (to report a symlink as
    ELOOP); if that second look fails, the original ENOTDIR is what is raised."""
    _, d = tree

    def vanished(*args: Any, **kwargs: Any) -> Any:
        raise FileNotFoundError(errno.ENOENT, "gone", "file")

    monkeypatch.setattr(DirectoryFd, "statx", vanished)
    with pytest.raises(NotADirectoryError) as info:
        d.open_dir("file")
    assert "file" in str(info.value.filename)


# --------------------------------------------------------------------------------------
# opening what is there
# --------------------------------------------------------------------------------------

def test_open_file_reads_and_creates(tree: Tuple[Path, DirectoryFd]) -> None:
    tmp, d = tree
    fd = d.open_file("file")
    try:
        assert os.read(fd, 100) == b"content"
        assert _is_cloexec(fd)
    finally:
        os.close(fd)
    umask = os.umask(0o022)
    os.umask(umask)
    fd = d.open_file("new", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        os.write(fd, b"written")
        assert _is_cloexec(fd)
    finally:
        os.close(fd)
    assert (tmp / "new").read_bytes() == b"written"
    assert stat.S_IMODE(os.lstat(tmp / "new").st_mode) == 0o640 & ~umask
    with pytest.raises(FileExistsError) as info:
        d.open_file("new", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    assert "new" in str(info.value.filename)
    with d.open_dir("dir") as sub:
        fd = sub.open_file(b"inner")
        try:
            assert os.read(fd, 100) == b"inner"
        finally:
            os.close(fd)


def test_fds_are_cloexec(tree: Tuple[Path, DirectoryFd], backend: str) -> None:
    tmp, d = tree
    assert _is_cloexec(d.fileno())
    with d.open_dir("dir") as sub:
        assert _is_cloexec(sub.fileno())
    for flags in (os.O_RDONLY, os.O_RDWR, os.O_PATH, os.O_WRONLY | os.O_CREAT):
        fd = d.open_file("file" if not flags & os.O_CREAT else "created", flags)
        try:
            assert _is_cloexec(fd), flags
        finally:
            os.close(fd)
    with DirectoryFd.open(tmp, backend=backend, follow=False) as other:
        assert _is_cloexec(other.fileno())
    # the O_PATH handle the metadata setters use
    fd = d._open_path(b"link_file")
    try:
        assert _is_cloexec(fd)
    finally:
        os.close(fd)


def test_root_open(tmp_path: Path, backend: str) -> None:
    (tmp_path / "real").mkdir()
    os.symlink("real", tmp_path / "alias")
    (tmp_path / "file").write_bytes(b"")
    # the root a user names may be a symlink (it is resolved as a path) ...
    with DirectoryFd.open(tmp_path / "alias", backend=backend) as d:
        assert d.statx().ino == os.stat(tmp_path / "real").st_ino
        assert d.backend == backend
        assert d.path == os.fsencode(tmp_path / "alias")
    # ... unless follow=False
    with pytest.raises(OSError) as info:
        DirectoryFd.open(tmp_path / "alias", backend=backend, follow=False)
    assert info.value.errno == errno.ELOOP
    assert "alias" in str(info.value.filename)
    with pytest.raises(NotADirectoryError) as info2:
        DirectoryFd.open(tmp_path / "file", backend=backend)
    assert "file" in str(info2.value.filename)
    with pytest.raises(FileNotFoundError) as info3:
        DirectoryFd.open(os.fsencode(tmp_path) + b"/missing\xff", backend=backend)
    assert "missing" in str(info3.value.filename)
    with pytest.raises(ValueError):
        DirectoryFd.open(tmp_path, backend="nonsense")


def test_lifetime(tmp_path: Path, backend: str) -> None:
    before = open_fds()
    d = open_root(tmp_path, backend)
    fd = d.fileno()
    assert not d.closed and f"fd={fd}" in repr(d) and backend in repr(d)
    with d:
        pass
    assert d.closed
    with pytest.raises(OSError) as info:
        os.fstat(fd)
    assert info.value.errno == errno.EBADF
    d.close()  # twice is fine
    assert leaked_fds(before) == []


# --------------------------------------------------------------------------------------
# names: one component, checked before any syscall
# --------------------------------------------------------------------------------------

BAD_NAMES: List[Any] = [
    "", ".", "..", "a/b", "a\0b", "/", "/etc", "dir/", "..\0", b"", b".", b"..", b"a/b",
    b"a\0b", b"\0", Path("a/b"), Path(".."), "../outside",
]


class _Tripwire:
    """Stands in for a module or an executor: any call of a function fails the test."""

    def __init__(self, real: Any, allowed: Tuple[str, ...] = ()) -> None:
        self._real = real
        self._allowed = allowed
        self.calls: List[str] = []

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._real, attr)
        if attr in self._allowed or not callable(value) or isinstance(value, type):
            return value

        def tripped(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(attr)
            raise AssertionError(f"{attr} called before the name was checked")
        return tripped


def _all_calls(d: DirectoryFd, other: DirectoryFd, bad: Any
               ) -> Dict[str, Callable[[], object]]:
    return {
        "open_dir": lambda: d.open_dir(bad),
        "open_file": lambda: d.open_file(bad, os.O_RDWR | os.O_CREAT),
        "statx": lambda: d.statx(bad),
        "statx_follow": lambda: d.statx(bad, follow=True),
        "statx_many": lambda: d.statx_many(["file", bad]),
        "readlink": lambda: d.readlink(bad),
        "mkdir": lambda: d.mkdir(bad),
        "symlink": lambda: d.symlink("target", bad),
        "link_src": lambda: d.link(bad, other, "x"),
        "link_dst": lambda: d.link("file", other, bad),
        "unlink": lambda: d.unlink(bad),
        "rmdir": lambda: d.rmdir(bad),
        "rename_src": lambda: d.rename(bad, other, "x"),
        "rename_dst": lambda: d.rename("file", other, bad),
        "mknod": lambda: d.mknod(bad, stat.S_IFIFO | 0o600),
        "mkfifo": lambda: d.mkfifo(bad),
        "chmod": lambda: d.chmod(bad, 0o777),
        "chown": lambda: d.chown(bad, 0, 0),
        "utime": lambda: d.utime(bad, 0, 0),
        "getxattr": lambda: d.getxattr(bad, "user.x"),
        "setxattr": lambda: d.setxattr(bad, "user.x", b"x"),
        "listxattr": lambda: d.listxattr(bad),
        "removexattr": lambda: d.removexattr(bad, "user.x"),
    }


@pytest.mark.parametrize("bad", BAD_NAMES, ids=repr)
def test_invalid_names_rejected_before_any_syscall(
        tree: Tuple[Path, DirectoryFd], bad: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp, d = tree
    listing = sorted(os.listdir(tmp))
    with d.open_dir("dir") as other:
        ex_trip = _Tripwire(d.executor)
        os_trip = _Tripwire(os, allowed=("fsencode", "fsdecode", "fspath", "strerror"))
        sys_trip = _Tripwire(syscall_mod)
        for op, call in _all_calls(d, other, bad).items():
            monkeypatch.setattr(d, "executor", ex_trip)
            monkeypatch.setattr(dirfd_mod, "os", os_trip)
            monkeypatch.setattr(dirfd_mod, "_syscall", sys_trip)
            try:
                with pytest.raises(InvalidName) as info:
                    call()
            finally:
                monkeypatch.undo()
            assert isinstance(info.value, ValueError), op
            assert "component" in str(info.value), op
        assert ex_trip.calls == [] and os_trip.calls == [] and sys_trip.calls == []
    assert sorted(os.listdir(tmp)) == listing


def test_invalid_name_counts(tree: Tuple[Path, DirectoryFd]) -> None:
    """The executor's own counters do not move either."""
    _, d = tree
    ex = d.executor
    ring = getattr(ex, "ring", None)
    direct = dict(ex.direct_syscalls)
    ops = dict(getattr(ex, "ops", {}))
    sqes = ring.stats.sqes if ring is not None else 0
    with d.open_dir("dir") as other:
        for bad in BAD_NAMES:
            for call in _all_calls(d, other, bad).values():
                with pytest.raises(InvalidName):
                    call()
    # open_dir("dir") is the only operation
    if ring is not None:
        assert ring.stats.sqes - sqes == 1
    else:
        ops_now = dict(getattr(ex, "ops", {}))
        assert {k: v - ops.get(k, 0) for k, v in ops_now.items() if v != ops.get(k, 0)} == {
            "openat2": 1}
    assert dict(ex.direct_syscalls) == direct


def test_odd_but_valid_names(tree: Tuple[Path, DirectoryFd]) -> None:
    tmp, d = tree
    for name in ["...", ".hidden", "..x", " ", "\\", "a\nb", "\udcff", "-"]:
        d.mkdir(name)
        with d.open_dir(name) as sub:
            assert sub.statx().is_dir()
        d.rmdir(name)
    assert not [n for n in os.listdir(tmp) if n not in
                ("dir", "file", "link_dir", "link_file", "link_root", "dangling")]


# --------------------------------------------------------------------------------------
# no fd leaks
# --------------------------------------------------------------------------------------

def test_no_fd_leaks(tree: Tuple[Path, DirectoryFd], backend: str) -> None:
    tmp, d = tree
    before = open_fds()
    for i in range(2000):
        with d.open_dir("dir") as sub:
            fd = sub.open_file("inner")
            os.close(fd)
            sub.statx("inner")
        fd = d.open_file("file", os.O_RDONLY)
        os.close(fd)
        for failing in (lambda: d.open_dir("link_dir"), lambda: d.open_dir("file"),
                        lambda: d.open_file("link_file"), lambda: d.open_file("missing"),
                        lambda: d.chmod("missing", 0o600), lambda: d.chmod("link_file", 0),
                        lambda: d.utime("missing", 0, 0), lambda: d.getxattr("file", "user.no"),
                        lambda: d.getxattr("missing", "user.no"),
                        lambda: d.statx("missing")):
            with pytest.raises(OSError):
                failing()
        if i % 10 == 0:
            d.utime("link_file", 0, 0)
            d.chmod("file", 0o644)
            d.listxattr("dir")
            d.listxattr("link_file")
            list(d.entries())
    assert leaked_fds(before) == []
    # an exception inside a ``with`` block closes the handle too
    with pytest.raises(RuntimeError), d.open_dir("dir"):
        raise RuntimeError("boom")
    assert leaked_fds(before) == []
    # and roots opened and closed many times leave nothing behind (rings included)
    for _ in range(100):
        with DirectoryFd.open(tmp, backend=backend) as r:
            r.statx("file")
    assert leaked_fds(before) == []


def test_executor_openat2_directory_with_mode(tmp_path: Path, backend: str) -> None:
    from pyuring.executor import RESOLVE_SAFE, make_executor

    (tmp_path / "sub").mkdir()
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    box: List[int] = []
    try:
        with make_executor(backend) as ex:
            ex.openat2(ex.chain(lambda _i, res, _e: box.append(res)), 0, dfd, b"sub",
                       os.O_RDONLY | os.O_DIRECTORY, 0o755, RESOLVE_SAFE)
            while not box:
                ex.run()
    finally:
        os.close(dfd)
        if box and box[0] >= 0:
            os.close(box[0])
    assert box[0] >= 0, os.strerror(-box[0])


def test_a_subdirectory_outlives_the_handle_it_was_opened_from(tmp_path: Path,
                                                                  backend: str) -> None:
    """``DirectoryFd.open(root).open_dir("sub")``: the root's handle is
    garbage at once, and its __del__ closed the executor it owned and the
    subdirectory shares ("operation on a closed Ring" on the uring backend).
    A handle keeps the one whose executor it uses alive."""
    import gc

    (tmp_path / "sub" / "deep").mkdir(parents=True)
    (tmp_path / "sub" / "a").write_bytes(b"x")
    (tmp_path / "sub" / "deep" / "b").write_bytes(b"yy")
    sub = open_root(tmp_path, backend).open_dir("sub")
    deep = open_root(tmp_path, backend).open_dir("sub").open_dir("deep")
    gc.collect()
    try:
        assert sub.statx("a").size == 1
        assert sorted(sub.listdir()) == [b"a", b"deep"]
        assert deep.statx("b").size == 2 and deep.backend == backend
    finally:
        sub.close()
        deep.close()


def test_a_listing_stops_when_its_handle_is_closed(tmp_path: Path, backend: str) -> None:
    """An entries() iteration went on reading the old fd number after close();
    once the number was reused by another open it listed that directory."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for i in range(3000):  # (more than one 64 KiB getdents answer)
        (tmp_path / "a" / f"f{i:04d}-{'x' * 20}").write_bytes(b"")
        (tmp_path / "b" / f"g{i:04d}").write_bytes(b"")
    d = open_root(tmp_path / "a", backend)
    it = d.entries()
    first = next(it)
    assert first.name.startswith(b"f")
    number = d.fd
    d.close()
    other = os.open(tmp_path / "b", os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert other == number  # (the number is reused: what the old code then read)
        names = []
        with pytest.raises(ValueError, match="closed"):
            for e in it:
                names.append(e.name)
        assert not any(n.startswith(b"g") for n in names)
    finally:
        os.close(other)
