"""The small-file chains: ``Executor.open_read_tmpfile`` (three operations) and
``Executor.write_linkat`` (two), one call each.

The io_uring executor writes each chain's SQEs with one ``pack_into`` instead
of one call per operation through ``openat2`` / ``read`` / ``write`` /
``linkat``.  These tests hold that shortcut to the long way: the same SQEs in
the SQ array, the same counters, the fallback where the SQ array wraps, and the
same results on both backends.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct
import time
from pathlib import Path
from typing import Any, List, Tuple

import pytest

from pyuring import _abi as A
from pyuring._mem import Buffer
from pyuring.executor import HARDLINK, LINK, SKIP, Executor, UringExecutor, make_executor
from pyuring.metadata import Metadata

from .conftest import URING
from .test_copy_support import BACKENDS, check_backend

needs_uring = pytest.mark.skipif(not URING, reason="io_uring is unavailable here")

Events = List[Tuple[int, int]]


def _sqes(ex: UringExecutor, first: int, n: int) -> List[Tuple[Any, ...]]:
    """The SQEs from SQ index ``first`` on, every field; for OPENAT2 the open_how
    and the name they point to instead of their addresses (which differ between
    two executors: each keeps its own open_how structs)."""
    ring = ex.ring
    out = []
    for i in range(first, first + n):
        off = (i & ring._sq_mask) << ring._sqe_shift
        raw = bytes(ring._sqes[off:off + 64])
        fields = list(A.SQE.unpack(raw))
        if fields[0] == A.IORING_OP_OPENAT2:  # off: the open_how, addr: the name
            fields[4] = ctypes.string_at(fields[4], A.OPEN_HOW.size)
            fields[5] = ctypes.string_at(fields[5])
        elif fields[0] == A.IORING_OP_LINKAT:  # off: the new name, addr: the old one
            fields[4] = ctypes.string_at(fields[4])
            fields[5] = ctypes.string_at(fields[5])
        out.append(tuple(fields))
    return out


def _prepare(ex: UringExecutor, shortcut: bool, dfd: int, buf: Buffer, events: Events,
             chain: str = "open_read_tmpfile", fd: int = -1) -> None:
    def cb(idx: int, res: int, extra: Any) -> None:
        events.append((idx, res))

    if chain == "open_read_tmpfile":
        call = ex.open_read_tmpfile if shortcut else Executor.open_read_tmpfile.__get__(ex)
        call(cb, dfd, b"file", 3, buf, 64, 101, dfd, 0o640)
    else:
        link = ex.write_linkat if shortcut else Executor.write_linkat.__get__(ex)
        link(cb, 0, fd, buf, 64, 100, 2, dfd, b"published")


def _move_tail(n: int, *executors: UringExecutor) -> None:
    """Move each ring's SQ tail by n: NOPs, submitted and reaped."""
    for e in executors:
        for _ in range(n):
            e.ring._push_raw(A.IORING_OP_NOP, 0, 0, 0, 0, 0, 0, A.IOSQE_CQE_SKIP_SUCCESS)
        e.ring.submit_and_wait(0)


_CHAINS = {
    "open_read_tmpfile": ([A.IORING_OP_OPENAT2, A.IORING_OP_READ, A.IORING_OP_OPENAT2],
                          {"OPENAT2": 2, "READ": 1}),
    "write_linkat": ([A.IORING_OP_WRITE, A.IORING_OP_LINKAT], {"WRITE": 1, "LINKAT": 1}),
}


@needs_uring
@pytest.mark.parametrize("offload", [False, True], ids=["inline", "offload"])
@pytest.mark.parametrize("chain", sorted(_CHAINS))
def test_the_shortcut_writes_the_same_sqes_as_the_long_way(tmp_path: Path, chain: str,
                                                           offload: bool) -> None:
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    buf = Buffer(4096)
    fast = UringExecutor(entries=16, direct_slots=8)
    slow = UringExecutor(entries=16, direct_slots=8)
    ops, counts = _CHAINS[chain]
    for ex in (fast, slow):
        ex.offload(offload)
    try:
        events: Events = []
        t0 = fast.ring._sq_tail
        _prepare(fast, True, dfd, buf, events, chain, fd=7)
        _prepare(slow, False, dfd, buf, events, chain, fd=7)
        assert fast.ring._sq_tail == slow.ring._sq_tail == t0 + len(ops)
        a, b = _sqes(fast, t0, len(ops)), _sqes(slow, t0, len(ops))
        assert a == b
        assert [s[0] for s in a] == ops
        assert fast.ring.stats.sqes_by_op == slow.ring.stats.sqes_by_op == counts
        # (SQE field 1: its flags; only open_read_tmpfile's source open is offloaded)
        asyncs = [bool(s[1] & A.IOSQE_ASYNC) for s in a]
        assert asyncs == [offload and chain == "open_read_tmpfile"] + [False] * (len(ops) - 1)
    finally:
        fast.close()
        slow.close()
        os.close(dfd)


@needs_uring
@pytest.mark.parametrize("start", [13, 14, 15])
def test_the_shortcut_steps_aside_where_the_sq_array_wraps(tmp_path: Path, start: int) -> None:
    """At SQ index 14 the three SQEs would run past the end of the array: they
    are written one by one (indexes 14, 15, 0) and the chain still works."""
    (tmp_path / "file").write_bytes(b"x" * 100)
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    buf = Buffer(4096)
    ex = UringExecutor(entries=16, direct_slots=8)
    ref = UringExecutor(entries=16, direct_slots=8)
    try:
        _move_tail(start, ex, ref)
        events: Events = []
        _prepare(ex, True, dfd, buf, events)
        _prepare(ref, False, dfd, buf, [])
        assert _sqes(ex, start, 3) == _sqes(ref, start, 3)
        while ex.busy():
            ex.run()
        assert sorted(events)[0] == (1, 100)  # a short read: the whole file
        (_, fd), = [e for e in events if e[0] == 2]
        assert fd >= 0
        st = os.fstat(fd)
        assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_nlink == 0  # an O_TMPFILE
        os.close(fd)
        assert bytes(buf.view[64:164]) == b"x" * 100
    finally:
        ex.close()
        ref.close()
        os.close(dfd)


@pytest.mark.parametrize("backend", BACKENDS)
def test_both_backends_run_the_chain_alike(tmp_path: Path, backend: str) -> None:
    check_backend(backend)
    (tmp_path / "file").write_bytes(b"abc" * 30)
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    buf = Buffer(4096)
    ex = make_executor(backend, entries=16, direct_slots=8)
    try:
        got: Events = []
        missing: Events = []
        ex.open_read_tmpfile(lambda i, r, x: got.append((i, r)), dfd, b"file", 2, buf, 0,
                             91, dfd, 0o600)
        ex.open_read_tmpfile(lambda i, r, x: missing.append((i, r)), dfd, b"gone", 3, buf,
                             1024, 91, dfd, 0o600)
        while ex.busy():
            ex.run()
        assert [e[0] for e in sorted(got)] == [1, 2]
        assert sorted(got)[0] == (1, 90)
        assert bytes(buf.view[:90]) == b"abc" * 30
        os.close(sorted(got)[1][1])
        # the source did not open: one completion, nothing else of the chain ran
        assert missing == [(0, -errno.ENOENT)]
        assert sorted(os.listdir(tmp_path)) == ["file"]
    finally:
        ex.close()
        os.close(dfd)


@needs_uring
@pytest.mark.parametrize("start", [14, 15])
def test_write_linkat_steps_aside_where_the_sq_array_wraps(tmp_path: Path, start: int) -> None:
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    buf = Buffer(4096)
    buf.view[64:164] = b"y" * 100
    ex = UringExecutor(entries=16, direct_slots=8)
    ref = UringExecutor(entries=16, direct_slots=8)
    fd = os.open(tmp_path, os.O_WRONLY | os.O_TMPFILE, 0o600)
    try:
        _move_tail(start, ex, ref)
        events: Events = []
        _prepare(ex, True, dfd, buf, events, "write_linkat", fd=fd)
        _prepare(ref, False, dfd, buf, [], "write_linkat", fd=fd)
        assert _sqes(ex, start, 2) == _sqes(ref, start, 2)
        while ex.busy():
            ex.run()
        assert events == [(2, 0)]
        assert (tmp_path / "published").read_bytes() == b"y" * 100
    finally:
        os.close(fd)
        ex.close()
        ref.close()
        os.close(dfd)


@pytest.mark.parametrize("backend", BACKENDS)
def test_both_backends_publish_alike(tmp_path: Path, backend: str) -> None:
    """Written and linked; a name that exists fails the link (EEXIST, the data is
    written); a write that fails (a read-only fd) links nothing."""
    check_backend(backend)
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    buf = Buffer(4096)
    buf.view[:5] = b"hello"
    (tmp_path / "taken").write_bytes(b"old")
    ex = make_executor(backend, entries=16, direct_slots=8)
    fds = [os.open(tmp_path, os.O_WRONLY | os.O_TMPFILE, 0o600) for _ in range(2)]
    ro = os.open(tmp_path / "taken", os.O_RDONLY)
    try:
        got: Events = []
        taken: Events = []
        failed: Events = []
        ex.write_linkat(lambda i, r, x: got.append((i, r)), 0, fds[0], buf, 0, 5, 2, dfd,
                        b"new")
        ex.write_linkat(lambda i, r, x: taken.append((i, r)), 0, fds[1], buf, 0, 5, 2, dfd,
                        b"taken")
        ex.write_linkat(lambda i, r, x: failed.append((i, r)), 0, ro, buf, 0, 5, 2, dfd,
                        b"never")
        while ex.busy():
            ex.run()
        assert got == [(2, 0)]
        assert (tmp_path / "new").read_bytes() == b"hello"
        assert taken == [(2, -errno.EEXIST)]
        assert (tmp_path / "taken").read_bytes() == b"old"
        assert failed == [(0, -errno.EBADF)]
        assert sorted(os.listdir(tmp_path)) == ["new", "taken"]
    finally:
        for fd in (*fds, ro):
            os.close(fd)
        ex.close()
        os.close(dfd)


def _recorder(events: Events) -> Any:
    return lambda i, r, x: events.append((i, r))


@pytest.mark.parametrize("backend", BACKENDS)
def test_xattrs_between_write_and_link(tmp_path: Path, backend: str) -> None:
    """WRITE (LINK|SKIP) -> FSETXATTR (HARDLINK) ... -> LINKAT, the chain of a new
    file with xattrs: each FSETXATTR completes, a failing one does not stop
    the link; a failed WRITE silences the rest (nothing set, nothing linked).
    On io_uring the xattrs are SQEs: no direct fsetxattr."""
    check_backend(backend)
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    buf = Buffer(4096)
    buf.view[:5] = b"hello"
    (tmp_path / "ro").write_bytes(b"old")
    ex = make_executor(backend, entries=16)
    if not ex.has_fsetxattr:
        ex.close()
        os.close(dfd)
        pytest.skip("no IORING_OP_FSETXATTR (Linux 5.19)")
    fds = [os.open(tmp_path, os.O_WRONLY | os.O_TMPFILE, 0o600) for _ in range(2)]
    ro = os.open(tmp_path / "ro", os.O_RDONLY)
    try:
        runs: List[Events] = [[], [], []]
        # (names and values made here and dropped before the submit: the
        # executor keeps them until the kernel has copied them; values with NULs)
        for events, fd, name, attrs in (
                (runs[0], fds[0], b"good", [("user.a", "1"), ("user.b", "\0two\0")]),
                (runs[1], fds[1], b"partly", [("user.a", "1"), ("bogus.x", "2"),
                                               ("user.c", "3")]),
                (runs[2], ro, b"never", [("user.a", "1")])):
            cid = ex.chain(_recorder(events))
            ex.write(cid, 0, fd, buf, 0, 5, 0, LINK | SKIP)
            for n, v in attrs:
                ex.fsetxattr(cid, 5, fd, n.encode(), (v * 3).encode(), HARDLINK)
            ex.linkat(cid, 2, fd, b"", dfd, name, A.AT_EMPTY_PATH)
        del n, v, attrs
        while ex.busy():
            ex.run()
        assert runs[0] == [(5, 0), (5, 0), (2, 0)]
        assert (tmp_path / "good").read_bytes() == b"hello"
        assert os.getxattr(tmp_path / "good", "user.b") == b"\0two\0" * 3
        assert os.getxattr(tmp_path / "partly", "user.c") == b"333"
        assert runs[1] == [(5, 0), (5, -errno.EOPNOTSUPP), (5, 0), (2, 0)]
        assert sorted(os.listxattr(tmp_path / "partly")) == ["user.a", "user.c"]
        assert runs[2] == [(0, -errno.EBADF)]
        assert os.listxattr(tmp_path / "ro") == []
        assert sorted(os.listdir(tmp_path)) == ["good", "partly", "ro"]
        if isinstance(ex, UringExecutor):
            assert ex.ring.stats.sqes_by_op["FSETXATTR"] == 6
        with pytest.raises(ValueError):
            ex.fsetxattr(ex.chain(lambda i, r, x: None), 0, fds[0], b"user.a", b"", LINK)
        with pytest.raises(ValueError):
            ex.fsetxattr(ex.chain(lambda i, r, x: None), 0, fds[0], b"user.a", b"", SKIP)
    finally:
        for fd in (*fds, ro):
            os.close(fd)
        ex.close()
        os.close(dfd)


@needs_uring
def test_sqe128_rings_take_the_long_way(tmp_path: Path) -> None:
    """The packed layouts are 64 bytes each: on a ring with 128-byte SQEs the chains
    must be written one SQE at a time -- and still run."""
    from pyuring import Ring

    (tmp_path / "file").write_bytes(b"q" * 10)
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    buf = Buffer(4096)
    ring = Ring(16, flags=A.IORING_SETUP_SQE128)
    ex = UringExecutor(ring, direct_slots=8)
    try:
        assert ring._reserve(1) == -1
        events: Events = []
        link: Events = []
        for _ in range(3):  # around the ring: stale SQEs would show
            events.clear()
            link.clear()
            _prepare(ex, True, dfd, buf, events)
            while ex.busy():
                ex.run()
            assert sorted(events)[0] == (1, 10)
            (_, fd), = [e for e in events if e[0] == 2]
            ex.write_linkat(lambda i, r, x: link.append((i, r)), 0, fd, buf, 64, 10, 2, dfd,
                            b"out%d" % len(os.listdir(tmp_path)))
            while ex.busy():
                ex.run()
            assert link == [(2, 0)]
            os.close(fd)
        assert ex.background_errors == []
        assert sorted(os.listdir(tmp_path)) == ["file", "out1", "out2", "out3"]
        assert (tmp_path / "out3").read_bytes() == b"q" * 10
    finally:
        ex.close()
        ring.close()
        os.close(dfd)


@needs_uring
def test_a_chain_that_cannot_be_written_leaves_nothing_behind(tmp_path: Path) -> None:
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    buf = Buffer(4096)
    ex = UringExecutor(entries=16, direct_slots=8)
    try:
        tail = ex.ring._sq_tail
        with pytest.raises(struct.error):
            ex.write_linkat(lambda i, r, x: None, 0, 5, buf, 0, -1, 2, dfd, b"x")
        with pytest.raises(struct.error):
            ex.open_read_tmpfile(lambda i, r, x: None, dfd, b"x", 1, buf, 0, 10, dfd, -5)
        with pytest.raises(struct.error):
            ex.statx_many(_no_call, dfd, dfd, [b"x", b"z"], [b"y", b"w"], -1)
        with pytest.raises(struct.error):  # (the one-by-one way: a name not bytes)
            ex.statx_many(_no_call, dfd, dfd, [_Name(b"x")], [_Name(b"y")], -1)
        assert not ex._statx_by_ud and len(ex._statx.free) == len(ex._statx.chunks) * 256
        assert ex.ring._sq_tail == tail and ex.ring.pending() == 0
        assert not ex.busy()
        assert ex.ring.stats.sqes == 0
    finally:
        ex.close()
        os.close(dfd)


# -- statx_many: entries' source and destination STATX, one callback ------------------
class _Name(bytes):
    """A name that is not exactly bytes: statx_many writes its SQEs one by one."""


def _no_call(*args: Any) -> None:
    raise AssertionError("no callback expected")


def _statx_sqes(ex: UringExecutor, first: int, n: int) -> List[Tuple[Any, ...]]:
    """The SQEs with the name instead of its address, the statx buffer's address
    left out (each executor has its own pool), user_data less the first chain id."""
    out = []
    for fields in _sqes(ex, first, n):
        f = list(fields)
        f[4] = None  # off: the statx buffer
        f[5] = ctypes.string_at(f[5])  # addr: the name
        out.append(tuple(f))
    return out


Got = List[List[Tuple[int, Any]]]


def _collect(got: Got) -> Any:
    def cb(results: List[int], mems: List[Any], offs: List[int]) -> None:
        # the memory is valid only during the call: parse it here
        got.append([(r, Metadata.from_statx(m, o) if r >= 0 else None)
                    for r, m, o in zip(results, mems, offs)])
    return cb


def _same_as_lstat(md: Metadata, path: Path) -> None:
    st = os.lstat(path)
    assert (md.ino, md.size, md.mode, md.mtime_ns, md.nlink) == \
        (st.st_ino, st.st_size, st.st_mode, st.st_mtime_ns, st.st_nlink)


def _files(tmp_path: Path, n: int) -> List[bytes]:
    names = []
    for i in range(n):
        (tmp_path / f"f{i}").write_bytes(b"x" * i)
        names.append(f"f{i}".encode())
    return names


@needs_uring
@pytest.mark.parametrize("start, pairs", [(0, 1), (7, 1), (15, 1), (0, 8), (3, 6), (9, 6)])
def test_statx_many_packed_writes_what_one_by_one_writes(tmp_path: Path, start: int,
                                                         pairs: int) -> None:
    """One pack_into (where the SQEs would wrap: one by one there too) against
    the one-by-one way; same counters, one callback with every result in
    order, every statx slot back afterwards."""
    names = _files(tmp_path, pairs)
    missing = [b"nope%d" % i for i in range(pairs)]
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    fast, slow = UringExecutor(entries=16), UringExecutor(entries=16)
    try:
        got: Got = []
        _move_tail(start, fast, slow)
        fast.statx_many(_collect(got), dfd, dfd, names, missing, A.AT_SYMLINK_NOFOLLOW)
        slow.statx_many(_collect(got), dfd, dfd, [_Name(n) for n in names],
                        [_Name(n) for n in missing], A.AT_SYMLINK_NOFOLLOW)
        assert _statx_sqes(fast, start, 2 * pairs) == _statx_sqes(slow, start, 2 * pairs)
        assert fast.ring.stats.sqes_by_op == slow.ring.stats.sqes_by_op
        assert fast.ring.stats.sqes_by_op["STATX"] == 2 * pairs
        for ex in (fast, slow):
            while ex.busy():
                ex.run()
        assert len(got) == 2
        for results in got:
            assert [r for r, _ in results] == [0, -errno.ENOENT] * pairs
            for k in range(pairs):
                _same_as_lstat(results[2 * k][1], tmp_path / os.fsdecode(names[k]))
                assert results[2 * k + 1][1] is None
        for ex in (fast, slow):
            pool = ex._statx  # every slot back, no record left
            assert len(pool.free) == len(pool.chunks) * pool.CHUNK
            assert not ex._statx_by_ud and not ex._batch_of
    finally:
        fast.close()
        slow.close()
        os.close(dfd)


@needs_uring
def test_statx_many_results_keep_their_place_in_any_order(tmp_path: Path) -> None:
    """Whichever request completes first, result i is request i's: the SQEs
    reversed in the SQ array complete the other way round."""
    names = _files(tmp_path, 4)
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    ex = UringExecutor(entries=16)
    order: List[int] = []
    real = ex.ring.reap_raw

    def reap_raw() -> Any:
        got = real()
        order.extend(ud >> 7 for ud, _, _ in got)
        return got

    ex.ring.reap_raw = reap_raw  # type: ignore[method-assign]
    try:
        got: Got = []
        ex.statx_many(_collect(got), dfd, dfd, names, names[::-1], A.AT_SYMLINK_NOFOLLOW)
        sqes = ex.ring._sqes
        blocks = [bytes(sqes[i * 64:(i + 1) * 64]) for i in range(8)]
        for i, b in enumerate(reversed(blocks)):
            sqes[i * 64:(i + 1) * 64] = b
        ex.ring.submit_and_wait(8)
        ex.run(wait=False)
        assert order == sorted(order, reverse=True)
        [results] = got
        for k, name in enumerate(names):
            _same_as_lstat(results[2 * k][1], tmp_path / os.fsdecode(name))
            _same_as_lstat(results[2 * k + 1][1], tmp_path / os.fsdecode(names[3 - k]))
        assert not ex._batch_of and not ex.busy()
    finally:
        ex.close()
        os.close(dfd)


@pytest.mark.parametrize("backend", BACKENDS)
def test_statx_many_on_both_backends(tmp_path: Path, backend: str) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "d").mkdir()
    (tmp_path / "s" / "f").write_bytes(b"1234")
    os.symlink("f", tmp_path / "d" / "f")  # not followed: the link's own metadata
    ex = make_executor(check_backend(backend))
    sfd = os.open(tmp_path / "s", os.O_RDONLY | os.O_DIRECTORY)
    dfd = os.open(tmp_path / "d", os.O_RDONLY | os.O_DIRECTORY)
    try:
        got: Got = []
        ex.statx_many(_collect(got), sfd, dfd, [b"f", b"gone"], [b"f", b"f"],
                      A.AT_SYMLINK_NOFOLLOW)
        with pytest.raises(ValueError):
            ex.statx_many(_no_call, sfd, dfd, [b"f"], [b"f", b"g"], A.AT_SYMLINK_NOFOLLOW)
        with pytest.raises(ValueError):
            ex.statx_many(_no_call, sfd, dfd, [], [], A.AT_SYMLINK_NOFOLLOW)
        while ex.busy():
            ex.run()
        [[(r1, m1), (r2, m2), (r3, m3), (r4, m4)]] = got
        assert (r1, r2, r3, r4) == (0, 0, -errno.ENOENT, 0)
        assert stat.S_ISREG(m1.mode) and m1.size == 4
        _same_as_lstat(m1, tmp_path / "s" / "f")
        assert stat.S_ISLNK(m2.mode) and m2.size == 1
        _same_as_lstat(m2, tmp_path / "d" / "f")
        assert m3 is None and m4 == m2
    finally:
        os.close(sfd)
        os.close(dfd)
        ex.close()


@needs_uring
@pytest.mark.parametrize("bad", [1, 3])
def test_statx_many_whose_later_sqe_cannot_be_written(tmp_path: Path, bad: int) -> None:
    """Some STATX are queued, then one is refused: their completions give
    their slots back and reach no chain -- not the next one handed out."""
    (tmp_path / "a").write_bytes(b"x")
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    ex = UringExecutor(entries=16)
    r, w = os.pipe()
    try:
        with pytest.raises((struct.error, TypeError)):
            if bad == 1:  # (an fd that does not fit the SQE's __s32)
                ex.statx_many(_no_call, dfd, 1 << 40, [_Name(b"a")], [_Name(b"a")],
                              A.AT_SYMLINK_NOFOLLOW)
            else:  # (the fourth name is no name at all)
                ex.statx_many(_no_call, dfd, dfd, [b"a", b"a"], [b"a", 5],  # type: ignore[list-item]
                              A.AT_SYMLINK_NOFOLLOW)
        assert ex.ring.pending() == bad
        seen: List[Tuple[int, int]] = []
        buf = Buffer(16)
        ex.read(ex.chain(lambda i, res, x: seen.append((i, res))), 0, r, buf, 0, 16, 2**64 - 1)
        # the STATX completions, however they come (one may already be in at
        # the first reap: then a wait for `bad` more would wait on the READ)
        deadline = time.monotonic() + 10
        while ex._statx_by_ud and time.monotonic() < deadline:
            ex.run(wait=True, timeout=0.05)
        assert not ex._statx_by_ud and seen == []
        os.write(w, b"hello")
        while ex.busy():
            ex.run()
        assert seen == [(0, 5)]
        pool = ex._statx
        assert len(pool.free) == len(pool.chunks) * pool.CHUNK and not ex._statx_by_ud
    finally:
        ex.close()
        os.close(dfd)
        os.close(r)
        os.close(w)


@needs_uring
def test_a_refused_prep_queues_nothing() -> None:
    from pyuring import Ring

    with Ring(8) as ring:
        with pytest.raises((struct.error, OverflowError, ValueError)):
            ring.prep_close(1 << 40)
        assert ring.pending() == 0
        ring.prep_nop(user_data=7)
        ring.submit_and_wait(1)
        assert [c.user_data for c in ring.reap()] == [7]
