"""DirectoryFd.statx / statx_many: field-by-field equality with os.lstat.

Every kind of file, odd modes, times and names, and hypothesis-generated
trees (statx of every entry against os.lstat, entries() against os.listdir),
on both backends.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Tuple, Union, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyuring import DirectoryFd, Metadata
from pyuring import _abi as A

from .conftest import IS_ROOT, URING
from .test_dirfd_support import assert_matches_stat, open_root

# --------------------------------------------------------------------------------------
# every kind of file
# --------------------------------------------------------------------------------------

Maker = Callable[[bytes], bytes]  # builds one entry in a directory, returns its name

Y2400_NS = 13_569_465_600 * 10**9 + 987_654_321


def _regular(d: bytes) -> bytes:
    Path(os.fsdecode(d), "regular").write_bytes(b"hello world\n" * 1000)
    return b"regular"


def _empty(d: bytes) -> bytes:
    open(os.path.join(d, b"empty"), "wb").close()
    return b"empty"


def _dir(d: bytes) -> bytes:
    os.mkdir(os.path.join(d, b"dir"))
    open(os.path.join(d, b"dir", b"child"), "wb").close()
    return b"dir"


def _symlink(d: bytes) -> bytes:
    os.symlink(b"some/where/../else", os.path.join(d, b"symlink"))
    return b"symlink"


def _dangling(d: bytes) -> bytes:
    os.symlink(b"/nonexistent/pyuring/target", os.path.join(d, b"dangling"))
    return b"dangling"


def _fifo(d: bytes) -> bytes:
    os.mkfifo(os.path.join(d, b"fifo"), 0o640)
    return b"fifo"


def _socket(d: bytes) -> bytes:
    # bind through the directory's /proc magic link: sun_path stays short
    # however long the tmp path is
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(f"/proc/self/fd/{dfd}/socket")
    finally:
        s.close()
        os.close(dfd)
    return b"socket"


def _chardev(d: bytes) -> bytes:
    os.mknod(os.path.join(d, b"chardev"), stat.S_IFCHR | 0o620, os.makedev(1, 3))
    return b"chardev"


def _chardev_big(d: bytes) -> bytes:
    # large major/minor: exercises the dev_t encoding of rdev (12-bit major,
    # 20-bit minor split over both halves of the 64-bit dev_t)
    os.mknod(os.path.join(d, b"chardev_big"), stat.S_IFCHR | 0o600,
             os.makedev(4000, 1_000_000))
    return b"chardev_big"


def _blockdev(d: bytes) -> bytes:
    os.mknod(os.path.join(d, b"blockdev"), stat.S_IFBLK | 0o660, os.makedev(7, 200))
    return b"blockdev"


def _hardlink(d: bytes) -> bytes:
    p = os.path.join(d, b"hardlink")
    with open(p, "wb") as f:
        f.write(b"linked")
    os.link(p, os.path.join(d, b"hardlink2"))
    assert os.lstat(p).st_nlink == 2
    return b"hardlink"


def _sparse(d: bytes) -> bytes:
    p = os.path.join(d, b"sparse")
    with open(p, "wb") as f:
        f.write(b"data at the start")
        f.seek(512 * 1024)
        f.write(b"a little in the middle")
        f.truncate(1 << 30)
    st = os.lstat(p)
    assert st.st_size == 1 << 30 and st.st_blocks * 512 < 1 << 20, "filesystem is not sparse"
    return b"sparse"


def _setuid(d: bytes) -> bytes:
    p = os.path.join(d, b"setuid")
    open(p, "wb").close()
    os.chmod(p, 0o6755)
    return b"setuid"


def _sticky_dir(d: bytes) -> bytes:
    p = os.path.join(d, b"sticky")
    os.mkdir(p)
    os.chmod(p, 0o1777)
    return b"sticky"


def _setgid_dir(d: bytes) -> bytes:
    p = os.path.join(d, b"setgid_dir")
    os.mkdir(p)
    os.chmod(p, 0o2750)
    return b"setgid_dir"


def _no_perms(d: bytes) -> bytes:
    p = os.path.join(d, b"noperm")
    open(p, "wb").close()
    os.chmod(p, 0)
    return b"noperm"


def _pre_1970(d: bytes) -> bytes:
    p = os.path.join(d, b"pre1970")
    open(p, "wb").close()
    os.utime(p, ns=(-1_500_000_001, -86_400_000_000_007))
    st = os.lstat(p)
    assert st.st_mtime_ns < 0
    return b"pre1970"


def _pre_1970_symlink(d: bytes) -> bytes:
    p = os.path.join(d, b"oldlink")
    os.symlink(b"target", p)
    os.utime(p, ns=(-999_999_999, -1), follow_symlinks=False)
    return b"oldlink"


def _far_future(d: bytes) -> bytes:
    p = os.path.join(d, b"future")
    open(p, "wb").close()
    os.utime(p, ns=(Y2400_NS + 1, Y2400_NS))
    return b"future"


def _non_utf8(d: bytes) -> bytes:
    name = b"\xff\xfe name"
    with open(os.path.join(d, name), "wb") as f:
        f.write(b"x")
    return name


def _long_name(d: bytes) -> bytes:
    name = b"L" * 254 + b"\xe9"
    with open(os.path.join(d, name), "wb") as f:
        f.write(b"long")
    return name


def _odd_bytes(d: bytes) -> bytes:
    name = b" \n\t\x01*?[]\\\x7f\x80"
    os.mkdir(os.path.join(d, name))
    return name


def _foreign_owner(d: bytes) -> bytes:
    p = os.path.join(d, b"foreign")
    open(p, "wb").close()
    os.chown(p, 1234, 5678)
    return b"foreign"


ROOT_ONLY = {"chardev", "chardev_big", "blockdev", "foreign_owner"}
KINDS: Dict[str, Maker] = {
    "regular": _regular, "empty": _empty, "dir": _dir, "symlink": _symlink,
    "dangling": _dangling, "fifo": _fifo, "socket": _socket, "chardev": _chardev,
    "chardev_big": _chardev_big, "blockdev": _blockdev, "hardlink": _hardlink,
    "sparse": _sparse, "setuid": _setuid, "sticky_dir": _sticky_dir,
    "setgid_dir": _setgid_dir, "no_perms": _no_perms, "pre_1970": _pre_1970,
    "pre_1970_symlink": _pre_1970_symlink, "far_future": _far_future,
    "non_utf8": _non_utf8, "long_name": _long_name, "odd_bytes": _odd_bytes,
    "foreign_owner": _foreign_owner,
}
DT_OF = {
    stat.S_IFREG: A.DT_REG, stat.S_IFDIR: A.DT_DIR, stat.S_IFLNK: A.DT_LNK,
    stat.S_IFIFO: A.DT_FIFO, stat.S_IFSOCK: A.DT_SOCK, stat.S_IFCHR: A.DT_CHR,
    stat.S_IFBLK: A.DT_BLK,
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_statx_equals_lstat(tmp_path: Path, backend: str, kind: str) -> None:
    if kind in ROOT_ONLY and not IS_ROOT:
        pytest.skip("needs root")
    d = os.fsencode(tmp_path)
    name = KINDS[kind](d)
    path = os.path.join(d, name)
    with open_root(d, backend) as root:
        md = root.statx(name)
        st = os.lstat(path)
        assert_matches_stat(md, st, name)
        assert md == root.statx(os.fsdecode(name))  # str names (surrogateescape) too
        assert md == root.statx(Path(os.fsdecode(name)))  # and PathLike
        # the batch path returns the same value
        (batched,) = root.statx_many([name])
        assert isinstance(batched, Metadata)
        assert_matches_stat(batched, st, name)
        # the directory entry agrees
        (entry,) = [e for e in root.entries() if e.name == name]
        assert entry.ino == st.st_ino
        assert entry.d_type == DT_OF[stat.S_IFMT(st.st_mode)]
    assert md.is_dir() == stat.S_ISDIR(st.st_mode)
    assert md.is_file() == stat.S_ISREG(st.st_mode)
    assert md.is_symlink() == stat.S_ISLNK(st.st_mode)
    assert md.is_sparse == (kind == "sparse")
    assert md.mask & A.STATX_BASIC_STATS == A.STATX_BASIC_STATS
    if md.btime_ns is not None:
        assert md.mask & A.STATX_BTIME
    if md.mask & A.STATX_MNT_ID:
        assert md.mount_id > 0


def test_statx_specific_values(tmp_path: Path, backend: str) -> None:
    """Values the makers set are reported exactly (not only equal to lstat)."""
    d = os.fsencode(tmp_path)
    for make in (_pre_1970, _far_future, _hardlink, _sparse, _setuid, _empty):
        make(d)
    with open_root(d, backend) as root:
        old = root.statx("pre1970")
        assert (old.atime_ns, old.mtime_ns) == (-1_500_000_001, -86_400_000_000_007)
        fut = root.statx("future")
        assert (fut.atime_ns, fut.mtime_ns) == (Y2400_NS + 1, Y2400_NS)
        assert root.statx("hardlink").nlink == 2
        assert root.statx("hardlink").ino == root.statx("hardlink2").ino
        sparse = root.statx("sparse")
        assert sparse.size == 1 << 30 and sparse.blocks * 512 <= 1 << 20
        assert root.statx("setuid").permissions == 0o6755
        empty = root.statx("empty")
        assert empty.size == 0 and empty.blocks == 0 and empty.is_file()


def test_statx_of_the_directory_itself(tmp_path: Path, backend: str) -> None:
    os.mkdir(tmp_path / "sub")
    os.chmod(tmp_path / "sub", 0o3751)
    os.utime(tmp_path / "sub", ns=(-5, Y2400_NS))
    with open_root(tmp_path, backend) as root:
        assert_matches_stat(root.statx(), os.lstat(tmp_path), "root")
        assert_matches_stat(root.statx(None), os.lstat(tmp_path), "root")
        with root.open_dir("sub") as sub:
            md = sub.statx()
            assert_matches_stat(md, os.lstat(tmp_path / "sub"), "sub")
            assert md == root.statx("sub")
            assert md.permissions == 0o3751 and md.mtime_ns == Y2400_NS


def test_statx_follow(tmp_path: Path, backend: str) -> None:
    (tmp_path / "target").write_bytes(b"12345")
    os.symlink("target", tmp_path / "link")
    os.symlink("missing", tmp_path / "dangling")
    with open_root(tmp_path, backend) as root:
        followed = root.statx("link", follow=True)
        assert_matches_stat(followed, os.stat(tmp_path / "link"), "link")
        assert followed.is_file() and followed.size == 5
        assert root.statx("link").is_symlink()
        assert_matches_stat(root.statx("link", follow=False), os.lstat(tmp_path / "link"))
        with pytest.raises(FileNotFoundError) as info:
            root.statx("dangling", follow=True)
        assert "dangling" in str(info.value.filename)
        (batched,) = root.statx_many(["link"], follow=True)
        assert batched == followed


# --------------------------------------------------------------------------------------
# statx_many
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("count", [1, 100, 300, 1000])
def test_statx_many_matches_lstat(tmp_path: Path, backend: str, count: int) -> None:
    names = [f"f{i:05d}" for i in range(count)]
    for i, n in enumerate(names):
        (tmp_path / n).write_bytes(b"x" * (i % 97))
    with open_root(tmp_path, backend) as root:
        got = root.statx_many([*names, "missing", "f00000"])
    assert len(got) == count + 2
    for n, md in zip(names, got):
        assert isinstance(md, Metadata), (n, md)
        assert_matches_stat(md, os.lstat(tmp_path / n), n)
    err = got[count]
    assert isinstance(err, FileNotFoundError)
    assert err.errno == errno.ENOENT and "missing" in str(err.filename)
    assert got[count + 1] == got[0]


@pytest.mark.skipif(not URING, reason="io_uring is unavailable here")
def test_statx_many_is_one_submission(tmp_path: Path) -> None:
    for i in range(64):
        (tmp_path / f"f{i}").touch()
    with DirectoryFd.open(tmp_path, backend="uring") as root:
        ring = root.executor.ring  # type: ignore[attr-defined]
        before = ring.stats
        got = root.statx_many([f"f{i}" for i in range(64)])
        after = ring.stats
    assert all(isinstance(m, Metadata) for m in got)
    assert after.sqes_by_op.get("STATX", 0) - before.sqes_by_op.get("STATX", 0) == 64
    # the 64 SQEs leave together: a handful of io_uring_enter calls (one
    # submits them all, the others wait for the io-wq workers), not 64
    assert after.enters - before.enters <= 16


@pytest.mark.skipif(not URING, reason="io_uring is unavailable here")
def test_executor_statx_pool_growth(tmp_path: Path) -> None:
    from pyuring.executor import UringExecutor

    n = 300  # more than the default 256 statx slots
    for i in range(n):
        (tmp_path / f"f{i}").write_bytes(b"x" * i)
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    out: Dict[int, Union[Metadata, int]] = {}
    try:
        with UringExecutor() as ex:
            for i in range(n):
                def cb(_idx: int, res: int, extra: object, i: int = i) -> None:
                    out[i] = extra if isinstance(extra, Metadata) else res
                ex.statx(ex.chain(cb), 0, dfd, f"f{i}".encode(), A.AT_SYMLINK_NOFOLLOW)
            while len(out) < n:
                ex.run()
    finally:
        os.close(dfd)
    sizes = [m.size if isinstance(m, Metadata) else m for _, m in sorted(out.items())]
    assert sizes == list(range(n))


# --------------------------------------------------------------------------------------
# hypothesis: generated trees
# --------------------------------------------------------------------------------------

_name_bytes = st.binary(min_size=1, max_size=24).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b".."))
names_st = st.one_of(
    _name_bytes,
    st.text(min_size=1, max_size=12).map(os.fsencode).filter(
        lambda b: 0 < len(b) <= 255 and b"/" not in b and b"\0" not in b
        and b not in (b".", b"..")),
    st.integers(1, 255).map(lambda n: b"N" * n),
)
_MIN_NS, _MAX_NS = -(2**31) * 10**9, 2**33 * 10**9  # inside ext4's and tmpfs' ranges
times_st = st.integers(_MIN_NS, _MAX_NS)
modes_st = st.integers(0, 0o7777)
Leaf = Tuple[str, int, int, int, int, bytes]  # kind, size, mode, atime, mtime, target
DirNode = Tuple[str, Dict[bytes, Leaf], int, int, int]  # "dir", children, mode, times
Spec = Dict[bytes, Union[Leaf, DirNode]]
leaf_st = st.tuples(
    st.sampled_from(["file", "file", "symlink", "fifo", "hardlink"]),
    st.one_of(st.integers(0, 5000), st.just(70_000), st.just(3 << 20)),
    modes_st, times_st, times_st, st.binary(min_size=1, max_size=40).filter(
        lambda b: b"\0" not in b),
)
tree_st = st.dictionaries(
    names_st,
    st.one_of(
        leaf_st,
        st.tuples(st.just("dir"), st.dictionaries(names_st, leaf_st, max_size=5),
                  modes_st, times_st, times_st),
    ),
    max_size=8,
)


def _build(d: bytes, spec: Mapping[bytes, Union[Leaf, DirNode]]) -> None:
    links = []
    for name, node in spec.items():
        p = os.path.join(d, name)
        if node[0] == "dir":
            _, children, mode, at, mt = cast(DirNode, node)
            os.mkdir(p)
            _build(p, children)
            os.chmod(p, mode | (0 if IS_ROOT else 0o700))
            os.utime(p, ns=(at, mt))
            continue
        kind, size, mode, at, mt, target = cast(Leaf, node)
        if kind == "symlink":
            os.symlink(target, p)
            os.utime(p, ns=(at, mt), follow_symlinks=False)
            continue
        if kind == "fifo":
            os.mkfifo(p)
        else:
            with open(p, "wb") as f:
                if size > 65536:  # sparse: a little data, then a hole
                    f.write(b"head")
                    f.truncate(size)
                else:
                    f.write(os.urandom(size))
            if kind == "hardlink":
                links.append(p)
        os.chmod(p, mode | (0 if IS_ROOT else 0o600))
        os.utime(p, ns=(at, mt))
    for i, p in enumerate(links):  # second names (nlink 2) once every name is taken
        second = os.path.join(d, b"hardlink-%d" % i)
        if not os.path.lexists(second):
            os.link(p, second)


def _compare_tree(root: DirectoryFd, path: bytes) -> List[Tuple[DirectoryFd, bytes]]:
    """statx of every entry == os.lstat, recursively; returns the directories opened."""
    opened = [(root, path)]
    names = os.listdir(path)
    for name in names:
        p = os.path.join(path, name)
        st_ = os.lstat(p)
        assert_matches_stat(root.statx(name), st_, p)
        if stat.S_ISDIR(st_.st_mode):
            opened.extend(_compare_tree(root.open_dir(name), p))
    # statx_many of the whole directory at once gives the same values
    for name, md in zip(names, root.statx_many(list(names))):
        assert isinstance(md, Metadata), md
        assert_matches_stat(md, os.lstat(os.path.join(path, name)), name)
    return opened


@pytest.mark.slow
@given(spec=tree_st)
def test_hypothesis_trees(tmp_path: Path, backend: str, spec: Spec) -> None:
    top = tempfile.mkdtemp(dir=tmp_path).encode()
    try:
        tree = os.path.join(top, b"tree")
        os.mkdir(tree)
        _build(tree, spec)
        with open_root(tree, backend) as root:
            opened = _compare_tree(root, tree)
            try:
                for dfd, path in opened:
                    want = {n: os.lstat(os.path.join(path, n)) for n in os.listdir(path)}
                    got = list(dfd.entries())
                    assert sorted(e.name for e in got) == sorted(want)
                    for e in got:
                        assert e.ino == want[e.name].st_ino
                        assert e.d_type == DT_OF[stat.S_IFMT(want[e.name].st_mode)]
                    assert_matches_stat(dfd.statx(), os.lstat(path), path)
            finally:
                for dfd, _ in opened[1:]:
                    dfd.close()
    finally:
        shutil.rmtree(top)


def test_from_stat_roundtrip(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    st_ = os.lstat(tmp_path / "f")
    md = Metadata.from_stat(st_)
    assert_matches_stat(md, st_)
    assert md.btime_ns is None
