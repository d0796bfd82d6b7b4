"""The DirectoryFd security model under attack, on both backends.

An attacker swaps, in a tight loop, a directory (or a file) inside the tree with
a symlink that points outside it -- atomically, with renameat2(RENAME_EXCHANGE)
of prepared entries -- while the test walks, opens, reads, stats and changes
metadata through DirectoryFd.  Outside the tree sits a canary directory holding
entries with the same names as the tree's.  Afterwards nothing outside may have
been opened, read, changed or created: inotify saw no event there, and the
canary's content, mode, owner, times (atime set older than mtime, so that a read
would move it under relatime), xattrs and the directory listing are unchanged;
every read returned tree content.

The attacker runs as a thread (the GIL is released in every syscall, so both
sides are in the kernel at once) and, for true parallelism, as a process.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Set

import pytest

from pyuring import DirectoryFd, InvalidName

from .conftest import IS_ROOT
from .race_support import Inotify, exchange, has_exchange, inotify_works
from .test_dirfd_support import (
    leaked_fds,
    open_fds,
    open_root,
    walk,
)

ITERATIONS = 300
TREE_DATA = b"TREE-DATA: inside the tree\n"
TREE_FILE = b"TREE-FILE: inside the tree\n"
CANARY = b"CANARY: outside the tree, must never be read or changed\n"
#: errors a raced operation may legitimately end with
RACE_ERRNOS = {
    errno.ELOOP,  # the name was the symlink when opened
    errno.ENOTDIR,  # O_DIRECTORY on the symlink / a file
    errno.EOPNOTSUPP,  # chmod of the symlink itself
    errno.EPERM,  # user.* xattrs on the symlink itself
    errno.ENODATA,  # getxattr where the attribute is not set
    errno.ENOENT,  # only with the two-rename fallback (no RENAME_EXCHANGE)
}


class World:
    """The tree, the canary outside it, and a snapshot of everything outside."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.outside = base / "outside"
        self.tree = base / "tree"
        self.outside.mkdir()
        # the canary holds the names the tree holds: data, inner/, sub/, file
        (self.outside / "data").write_bytes(CANARY)
        (self.outside / "file").write_bytes(CANARY)
        (self.outside / "inner").mkdir()
        (self.outside / "inner" / "data").write_bytes(CANARY)
        (self.outside / "sub").mkdir()
        self.xattrs = False
        try:
            os.setxattr(self.outside / "data", "user.canary", b"canary")
            self.xattrs = True
        except OSError:
            pass
        os.chmod(self.outside / "data", 0o640)
        for p in (self.outside / "data", self.outside / "file", self.outside / "inner" / "data",
                  self.outside / "inner", self.outside / "sub", self.outside):
            # atime older than mtime: under relatime any read or listing moves it
            os.utime(p, ns=(1_000_000_000_000_000_000, 1_100_000_000_000_000_000))

        self.tree.mkdir()
        (self.tree / "sub").mkdir()
        (self.tree / "sub" / "data").write_bytes(TREE_DATA)
        (self.tree / "sub" / "inner").mkdir()
        (self.tree / "file").write_bytes(TREE_FILE)
        os.symlink(self.outside, self.tree / ".swap_sub")  # absolute
        os.symlink("../outside/data", self.tree / ".swap_file")  # relative
        self.tree_inos = {
            os.lstat(p).st_ino for p in (self.tree / "sub", self.tree / "sub" / "data",
                                         self.tree / "sub" / "inner", self.tree / "file",
                                         self.tree / ".swap_sub", self.tree / ".swap_file")
        }
        self.before = self.snapshot()

    def outside_paths(self) -> List[Path]:
        return [self.outside, self.outside / "data", self.outside / "file",
                self.outside / "inner", self.outside / "inner" / "data", self.outside / "sub"]

    def outside_inos(self) -> Set[int]:
        return {os.lstat(p).st_ino for p in self.outside_paths()}

    def snapshot(self) -> Dict[str, object]:
        """Everything observable about the outside, without reading or opening it.

        (lstat and getxattr by path neither open nor read: no inotify event,
        no atime change.)"""
        snap: Dict[str, object] = {}
        for p in self.outside_paths():
            st = os.lstat(p)
            snap[str(p)] = (st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_nlink,
                            st.st_size, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)
            if self.xattrs:
                snap[str(p) + "#xattrs"] = sorted(
                    (a, os.getxattr(p, a, follow_symlinks=False))
                    for a in os.listxattr(p, follow_symlinks=False))
        return snap

    def check_outside_untouched(self) -> None:
        assert self.snapshot() == self.before
        # reading and listing come last: they would change atimes themselves
        for p in (self.outside / "data", self.outside / "file", self.outside / "inner" / "data"):
            assert p.read_bytes() == CANARY
        assert sorted(os.listdir(self.outside)) == ["data", "file", "inner", "sub"]
        assert os.listdir(self.outside / "inner") == ["data"]
        assert os.listdir(self.outside / "sub") == []
        for d in (self.base, self.base.parent):
            leftovers = [n for n in os.listdir(d) if n.startswith(("created", "newdir"))]
            assert leftovers == []


_ATTACKER = textwrap.dedent(r"""
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    a, b, stop = (x.encode() for x in sys.argv[1:4])
    print("ready", flush=True)
    n = 0
    while not os.path.exists(stop):
        for _ in range(64):
            if libc.renameat2(-100, a, -100, b, 2) != 0:
                sys.exit("renameat2: " + os.strerror(ctypes.get_errno()))
            n += 1
    if n % 2:
        libc.renameat2(-100, a, -100, b, 2)
    print(n, flush=True)
""")


class Attacker:
    """Swaps ``a`` and ``b`` (one a real entry, one a symlink out) until stopped."""

    def __init__(self, a: Path, b: Path, kind: str, use_exchange: bool) -> None:
        self.a, self.b = os.fsencode(a), os.fsencode(b)
        self.kind = kind
        self.use_exchange = use_exchange
        self.swaps = 0
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._proc: Optional[subprocess.Popen[str]] = None
        self._stop_file = a.parent.parent / "stop-attacker"

    def _swap(self) -> None:
        if self.use_exchange:
            exchange(self.a, self.b)
        else:  # two renames through a spare name: briefly, neither name exists
            spare = self.a + b".spare"
            os.rename(self.a, spare)
            os.rename(self.b, self.a)
            os.rename(spare, self.b)

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                self._swap()
                self.swaps += 1
            if self.swaps % 2:
                self._swap()
                self.swaps += 1
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def __enter__(self) -> Attacker:
        if self.kind == "thread":
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        else:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _ATTACKER, self.a.decode(), self.b.decode(),
                 str(self._stop_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True)
            assert self._proc.stdout is not None
            assert self._proc.stdout.readline().strip() == "ready"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(10)
            assert not self._thread.is_alive()
        if self._proc is not None:
            self._stop_file.touch()
            out, err = self._proc.communicate(timeout=30)
            assert self._proc.returncode == 0, err
            self.swaps = int(out.strip())
            os.unlink(self._stop_file)
        if self.error is not None:
            raise self.error


class Tally:
    """How raced operations ended: every outcome counted, unexpected errors raised."""

    def __init__(self) -> None:
        self.ok = 0
        self.errors: Dict[int, int] = {}

    def attempt(self, fn: Callable[[], object]) -> bool:
        try:
            fn()
        except OSError as exc:
            if exc.errno not in RACE_ERRNOS:
                raise
            self.errors[exc.errno] = self.errors.get(exc.errno, 0) + 1
            return False
        self.ok += 1
        return True


def _read_all(fd: int) -> bytes:
    try:
        chunks: List[bytes] = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                return b"".join(chunks)
            chunks.append(b)
    finally:
        os.close(fd)


def _race_dir(root: DirectoryFd, world: World, outside: Set[int], tally: Tally, i: int) -> None:
    """Work on tree/sub while it is swapped with a symlink to the outside."""
    for _path, md in walk(root):
        assert md is None or md.ino not in outside, _path
    def stat_sub() -> None:
        assert root.statx("sub").ino in world.tree_inos
    tally.attempt(stat_sub)
    try:
        sub = root.open_dir("sub")
    except OSError as exc:
        assert exc.errno in RACE_ERRNOS, exc
        tally.errors[exc.errno] = tally.errors.get(exc.errno, 0) + 1
        sub = None
    if sub is not None:
        tally.ok += 1
        with sub:
            assert sub.statx().ino in world.tree_inos
            names = {e.name for e in sub.entries()}
            assert {b"data", b"inner"} <= names, names
            assert _read_all(sub.open_file("data")) == TREE_DATA
            assert sub.statx("data").ino in world.tree_inos
            sub.chmod("data", 0o600 | (i & 0o44))
            sub.utime("data", i, i)
            if world.xattrs:
                sub.setxattr("data", "user.race", b"%d" % i)
                assert sub.getxattr("data", "user.race") == b"%d" % i
            if IS_ROOT:
                sub.chown("data", i % 7, i % 5)
            fd = sub.open_file("created", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, b"new")
            os.close(fd)
            sub.unlink("created")
            sub.mkdir("newdir")
            with sub.open_dir("newdir") as nd:
                nd.mkfifo("fifo")
                nd.unlink("fifo")
            sub.rmdir("newdir")
            sub.chmod(None, 0o755)
            sub.utime(None, i, i)
            with sub.open_dir("inner") as inner, pytest.raises(FileNotFoundError):
                inner.statx("data")  # the outside's inner/data is not here
    # operations on the swapped name itself
    tally.attempt(lambda: root.chmod("sub", 0o755))
    tally.attempt(lambda: root.utime("sub", i, i))
    if world.xattrs:
        tally.attempt(lambda: root.setxattr("sub", "user.race", b"x"))
        tally.attempt(lambda: root.getxattr("sub", "user.race"))
        tally.attempt(lambda: root.listxattr("sub"))
        tally.attempt(lambda: root.removexattr("sub", "user.race"))
    if IS_ROOT:
        tally.attempt(lambda: root.chown("sub", 0, 0))
        tally.attempt(lambda: root.setxattr("sub", "trusted.race", b"x"))
    tally.attempt(lambda: os.close(root.open_file("sub", os.O_RDONLY | os.O_DIRECTORY)))
    for bad in ("..", "sub/data", ".swap_sub/data"):
        with pytest.raises(InvalidName):
            root.open_file(bad)


def _race_file(root: DirectoryFd, world: World, outside: Set[int], tally: Tally,
               i: int) -> None:
    """Work on tree/file while it is swapped with a symlink to the canary."""
    def read() -> None:
        assert _read_all(root.open_file("file")) == TREE_FILE

    def write() -> None:
        fd = root.open_file("file", os.O_WRONLY)
        try:
            os.pwrite(fd, TREE_FILE, 0)
        finally:
            os.close(fd)

    def append_create() -> None:
        fd = root.open_file("file", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            assert os.pread(fd, 100, 0) == TREE_FILE
        finally:
            os.close(fd)

    for fn in (read, write, append_create):
        tally.attempt(fn)
    assert root.statx("file").ino in world.tree_inos
    assert all(md is None or md.ino not in outside for _, md in walk(root))
    tally.attempt(lambda: root.chmod("file", 0o600 | (i & 0o44)))
    tally.attempt(lambda: root.utime("file", i, i))
    if world.xattrs:
        tally.attempt(lambda: root.setxattr("file", "user.race", b"%d" % i))
        tally.attempt(lambda: root.getxattr("file", "user.race"))
        tally.attempt(lambda: root.listxattr("file"))
        tally.attempt(lambda: root.removexattr("file", "user.race"))
    if IS_ROOT:
        tally.attempt(lambda: root.chown("file", i % 7, i % 5))
        tally.attempt(lambda: root.setxattr("file", "trusted.race", b"x"))
    tally.attempt(lambda: root.open_dir("file").close())
    (md,) = root.statx_many(["file"])
    assert not isinstance(md, OSError) and md.ino in world.tree_inos


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    if not has_exchange(os.fsencode(tmp_path)):
        pytest.skip("renameat2(RENAME_EXCHANGE) is unavailable here")
    yield World(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("attacker", ["thread", "process"])
@pytest.mark.parametrize("target", ["dir", "file"])
def test_swap_race(world: World, backend: str, target: str, attacker: str) -> None:
    fds_before = open_fds()
    watcher = Inotify() if inotify_works() else None
    try:
        if watcher is not None:
            for p in world.outside_paths():
                if p.is_dir():
                    watcher.watch(os.fsencode(p))
        outside = world.outside_inos()
        a, b = ((world.tree / "sub", world.tree / ".swap_sub") if target == "dir"
                else (world.tree / "file", world.tree / ".swap_file"))
        tally = Tally()
        race = _race_dir if target == "dir" else _race_file
        started = time.monotonic()
        with open_root(world.tree, backend) as root, Attacker(a, b, attacker, True) as att:
            for i in range(ITERATIONS):
                race(root, world, outside, tally, i)
        elapsed = time.monotonic() - started
        events = watcher.events() if watcher is not None else []
    finally:
        if watcher is not None:
            watcher.close()
    assert events == [], f"the outside was touched: {events[:10]}"
    world.check_outside_untouched()
    # the race really ran: the attacker swapped, and both states were met
    assert att.swaps > 0
    assert tally.ok > 0 and tally.errors.get(errno.ELOOP, 0) > 0, (tally.ok, tally.errors)
    assert not os.path.islink(a) and os.path.islink(b)
    assert leaked_fds(fds_before) == []  # failed and raced opens closed what they opened
    assert elapsed < 30
    print(f"{attacker} attacker: {att.swaps} swaps; {tally.ok} operations succeeded, "
          f"errors by errno {tally.errors}; {elapsed:.2f}s")


def test_swap_race_without_exchange(world: World, backend: str) -> None:
    """The same with plain renames (ENOENT windows included), shorter."""
    outside = world.outside_inos()
    tally = Tally()
    with open_root(world.tree, backend) as root, \
            Attacker(world.tree / "sub", world.tree / ".swap_sub", "thread", False):
        for i in range(50):
            _race_dir(root, world, outside, tally, i)
    world.check_outside_untouched()


def test_named_symlink_to_outside_is_refused(world: World, backend: str) -> None:
    """Without any race: every way of reaching through the symlinks is refused."""
    with open_root(world.tree, backend) as root:
        for name in (".swap_sub", ".swap_file"):
            with pytest.raises(OSError) as info:
                root.open_dir(name)
            assert info.value.errno == errno.ELOOP
            for flags in (os.O_RDONLY, os.O_WRONLY | os.O_TRUNC, os.O_RDWR | os.O_CREAT):
                with pytest.raises(OSError) as info:
                    root.open_file(name, flags)
                assert info.value.errno == errno.ELOOP
            assert root.statx(name).is_symlink()
            with pytest.raises(OSError):
                root.chmod(name, 0o777)
            root.utime(name, 5, 5)  # the link itself
            if IS_ROOT:
                root.chown(name, 1, 1)  # the link itself
                root.setxattr(name, "trusted.link", b"on the link")
            with pytest.raises(OSError):
                root.setxattr(name, "user.x", b"1")
        for bad in ("..", "../outside", "sub/../../outside", "/", "."):
            with pytest.raises(InvalidName):
                root.open_dir(bad)
    world.check_outside_untouched()


@pytest.mark.parametrize("backend", ["sync", "uring"])
def test_reopen_widened_changes_and_opens_only_the_inode_it_was_given(
        tmp_path: Path, backend: str) -> None:
    """The helper behind non-root re-runs into one's own 0000 files and u-r
    directories: the mode is widened only on the expected inode, the reopened fd
    must be that inode too, and every failure gives the mode back."""
    from pyuring.dirfd import _reopen_widened
    from pyuring.executor import make_executor

    ex = make_executor(backend)
    try:
        f = tmp_path / "f"
        f.write_bytes(b"secret")
        f.chmod(0o000)
        other = tmp_path / "other"
        other.write_bytes(b"other")
        other.chmod(0o640)
        st = f.stat()
        ident = (st.st_ino, st.st_dev)
        opath = os.open(f, os.O_PATH | os.O_NOFOLLOW)
        try:
            fd, old = _reopen_widened(ex, opath, ident, 0o600, lambda: os.open(f, os.O_RDONLY))
            try:
                assert old == 0o000 and os.read(fd, 16) == b"secret"
                assert f.stat().st_mode & 0o7777 == 0o600
            finally:
                os.close(fd)
            f.chmod(0o000)
            # an O_PATH fd of some other inode: nothing changed
            with pytest.raises(OSError) as ei:
                _reopen_widened(ex, opath, (st.st_ino + 1, st.st_dev), 0o600,
                                lambda: os.open(f, os.O_RDONLY))
            assert ei.value.errno == errno.ESTALE
            assert f.stat().st_mode & 0o7777 == 0o000
            # the name swapped between the chmod and the reopen: the mode goes
            # back and no fd is left open
            before = len(os.listdir("/proc/self/fd"))
            with pytest.raises(OSError) as ei:
                _reopen_widened(ex, opath, ident, 0o600, lambda: os.open(other, os.O_RDONLY))
            assert ei.value.errno == errno.ESTALE
            assert f.stat().st_mode & 0o7777 == 0o000
            assert len(os.listdir("/proc/self/fd")) == before
            # the reopen fails: the mode goes back
            with pytest.raises(FileNotFoundError):
                _reopen_widened(ex, opath, ident, 0o600,
                                lambda: os.open(tmp_path / "gone", os.O_RDONLY))
            assert f.stat().st_mode & 0o7777 == 0o000
            # ... and when giving the mode back fails too, the reopen's error is
            # the one raised, not the chmod's
            import pyuring.dirfd as dirfd_mod

            real_chmod = dirfd_mod._chmod_o_path
            calls: List[int] = []

            def chmod_then_fail(ex_: object, fd_: int, mode: int) -> None:
                calls.append(mode)
                if len(calls) > 1:
                    raise PermissionError(errno.EPERM, "restore refused")
                real_chmod(ex_, fd_, mode)  # type: ignore[arg-type]

            dirfd_mod._chmod_o_path = chmod_then_fail  # type: ignore[assignment]
            try:
                with pytest.raises(FileNotFoundError):
                    _reopen_widened(ex, opath, ident, 0o600,
                                    lambda: os.open(tmp_path / "gone", os.O_RDONLY))
            finally:
                dirfd_mod._chmod_o_path = real_chmod
            assert calls == [0o600, 0o000]
            f.chmod(0o000)
        finally:
            os.close(opath)
    finally:
        ex.close()
