"""Ring conformance: lifetimes of the memory in-flight requests point to,
and resource leaks over many operations.

design.md, "Lifetimes": a buffer, path, statx buffer, timespec or iovec an
in-flight SQE references must stay alive until its CQE is reaped, even when
the caller drops it -- and must be released once the CQE is reaped.

Use-after-free is detected two ways: a weak reference that must survive the
caller's ``del`` + ``gc.collect()``, and "memory spraying": after the drop,
many same-sized objects are allocated; had the ring let the buffer go, one
of them would reuse its memory and receive the kernel's write (or, for memory
the kernel reads, feed it garbage).
"""

from __future__ import annotations

import ctypes
import errno
import gc
import os
import socket
import sys
import threading
import time
import weakref
from typing import Any, List

import pytest

from pyuring import Ring, _core, _mem
from pyuring import _abi as A

from .conftest import URING
from .test_ring_support import (
    by_ud,
    fd_count,
    make_ring,
    one,
    opened,
    pipe,
    ring_fixture,
    run,
    write_file,
)

pytestmark = pytest.mark.skipif(not URING, reason="io_uring is unavailable here")
ring = ring_fixture()


class Buf(bytearray):
    """A bytearray that can be weakly referenced."""


MARK = b"\xa5" * 7


def _spray(size: int, n: int = 2000) -> List[bytearray]:
    """Allocate many bytearrays of ``size`` bytes filled with a marker."""
    fill = (MARK * (size // len(MARK) + 1))[:size]
    return [bytearray(fill) for _ in range(n)]


def _clean(spray: List[bytearray], size: int) -> None:
    fill = (MARK * (size // len(MARK) + 1))[:size]
    assert all(bytes(b) == fill for b in spray), "the kernel wrote into freed memory"


def _reachable(root: object, target: object, depth: int = 6) -> bool:
    """Is ``target`` reachable from ``root`` through object references?"""
    level, seen = [root], {id(root)}
    for _ in range(depth):
        nxt = []
        for obj in level:
            if isinstance(obj, memoryview) and obj.obj is target:
                return True
            for ref in gc.get_referents(obj):
                if ref is target:
                    return True
                if id(ref) not in seen:
                    seen.add(id(ref))
                    nxt.append(ref)
        level = nxt
    return False


def _io_uring_maps() -> int:
    with open("/proc/self/maps") as f:
        return sum("io_uring" in line for line in f)


# ---------------------------------------------------------------------------
# buffers the kernel writes
# ---------------------------------------------------------------------------

def test_dropped_read_buffer_stays_pinned_until_reaped(ring: Ring) -> None:
    with pipe() as (r, w):
        buf = Buf(64)
        ref = weakref.ref(buf)
        ring.prep_read(r, buf, 64, -1, user_data=1)
        ring.submit()
        del buf
        gc.collect()
        assert ref() is not None, "the ring let go of an in-flight buffer"
        spray = _spray(64)
        os.write(w, b"written after the caller dropped its buffer")
        cqe = one(ring)
        assert cqe.res == 43
        _clean(spray, 64)
    gc.collect()
    assert ref() is None, "the buffer is still pinned after its completion was reaped"
    assert ring.inflight() == 0


def test_dropped_buffer_receives_the_data(ring: Ring) -> None:
    with pipe() as (r, w):
        buf = Buf(16)
        ref = weakref.ref(buf)
        ring.prep_read(r, buf, 16, -1)
        ring.submit()
        del buf
        gc.collect()
        survivor = ref()  # alive only because the ring pins it
        assert survivor is not None
        os.write(w, b"0123456789abcdef")
        assert one(ring).res == 16
        assert bytes(survivor) == b"0123456789abcdef"
        del survivor
    gc.collect()
    assert ref() is None


def test_dropped_readv_buffers_and_iovec_array(ring: Ring) -> None:
    with pipe() as (r, w):
        bufs = [Buf(5), Buf(7)]
        refs = [weakref.ref(b) for b in bufs]
        ring.prep_readv(r, bufs, -1)
        ring.submit()
        del bufs
        gc.collect()
        assert all(x() is not None for x in refs)
        spray = _spray(32)  # the 2-entry iovec array is 32 bytes
        spray16 = _spray(16)
        kept = [x() for x in refs]  # strong again, but only thanks to the ring
        os.write(w, b"hello, world")
        assert one(ring).res == 12
        _clean(spray, 32)
        _clean(spray16, 16)
        assert [bytes(k) for k in kept if k is not None] == [b"hello", b", world"]
        del kept
    gc.collect()
    assert all(x() is None for x in refs)


def test_dropped_recvmsg_buffers(ring: Ring) -> None:
    a, b = socket.socketpair()
    try:
        bufs = [Buf(4), Buf(4)]
        refs = [weakref.ref(x) for x in bufs]
        ring.prep_recvmsg(b.fileno(), bufs)
        ring.submit()
        del bufs
        gc.collect()
        assert all(x() is not None for x in refs)
        spray = _spray(56)  # sizeof(struct msghdr)
        a.sendall(b"12345678")
        assert one(ring).res == 8
        _clean(spray, 56)
    finally:
        a.close()
        b.close()
    gc.collect()
    assert all(x() is None for x in refs)


def test_dropped_statx_buffer(ring: Ring, tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    write_file(path, b"x" * 1234)
    with pipe() as (r, w):
        sx = Buf(A.STATX.size)
        ref = weakref.ref(sx)
        # the statx waits behind a pipe read, so it runs after the drop
        ring.prep_read(r, bytearray(1), 1, -1, flags=A.IOSQE_IO_LINK, user_data=1)
        ring.prep_statx(A.AT_FDCWD, path, 0, A.STATX_BASIC_STATS, sx, user_data=2)
        ring.submit()
        del sx
        gc.collect()
        assert ref() is not None
        spray = _spray(A.STATX.size)
        survivor = ref()
        assert survivor is not None
        os.write(w, b"!")
        got = by_ud(run(ring, 2))
        assert got[2].res == 0
        _clean(spray, A.STATX.size)
        assert A.STATX.unpack(bytes(survivor))[9] == 1234  # stx_size
        del survivor
    gc.collect()
    assert ref() is None


# ---------------------------------------------------------------------------
# memory the kernel reads: paths, timespecs
# ---------------------------------------------------------------------------

def test_path_bytes_are_pinned_and_released(ring: Ring, tmp_path: Any) -> None:
    path = os.fsencode(os.path.join(str(tmp_path), "f")) + b""
    path = bytes(bytearray(path))  # a fresh, unshared bytes object
    write_file(os.fsdecode(path), b"")
    base = sys.getrefcount(path)
    ring.prep_openat(A.AT_FDCWD, path, os.O_RDONLY)
    assert sys.getrefcount(path) > base  # pinned by the ring
    fd = one(ring).check()
    os.close(fd)
    assert sys.getrefcount(path) == base  # released after the completion


@pytest.mark.parametrize("kind", ["str", "pathlike"])
def test_dropped_path_is_still_read_correctly(ring: Ring, tmp_path: Any, kind: str) -> None:
    import pathlib

    target = os.path.join(str(tmp_path), "target-file-with-a-long-name" * 3)
    write_file(target, b"right file")
    with pipe() as (r, w):
        # the open waits behind a pipe read: the kernel reads the path only
        # when it gets there, long after the caller dropped it
        ring.register_files_sparse(1)
        ring.prep_read(r, bytearray(1), 1, -1, flags=A.IOSQE_IO_LINK, user_data=1)
        p: Any = "".join(list(target)) if kind == "str" else pathlib.Path(target)
        ring.prep_openat_direct(A.AT_FDCWD, p, os.O_RDONLY, 0, 0, user_data=2)
        ring.submit()
        del p
        gc.collect()
        spray = _spray(len(target) + 1)
        sprayed_paths = [os.fsencode(target[:-1] + "X") for _ in range(2000)]
        os.write(w, b"!")
        got = by_ud(run(ring, 2))
        assert got[2].res == 0
        _clean(spray, len(target) + 1)
        del sprayed_paths
    buf = bytearray(32)
    ring.prep_read(0, buf, 32, 0, flags=A.IOSQE_FIXED_FILE)
    assert one(ring).res == 10 and bytes(buf[:10]) == b"right file"


def test_copied_path_keeps_its_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: where bytes have no usable address (not CPython), the path
    is copied -- and that copy, not just the original, must be pinned."""
    monkeypatch.setattr(_mem, "_bytes_data_offset", -1)
    addr, raw = _mem.path_address("/some/path")
    assert raw == b"/some/path"
    gc.collect()
    _spray(11)
    assert ctypes.string_at(addr) == b"/some/path"
    assert isinstance(raw, bytes)
    assert ctypes.addressof(raw.copy) == addr  # type: ignore[attr-defined]


def test_dropped_timespecs(ring: Ring) -> None:
    """The ring builds each timespec itself; the caller cannot even hold it.
    Spraying 16-byte buffers with an invalid timespec must not matter."""
    bad = A.TIMESPEC.pack(0, 5_000_000_000)  # tv_nsec out of range: EINVAL
    with pipe() as (r, _w):
        ring.prep_timeout(0.02, user_data=1)
        ring.prep_read(r, bytearray(1), 1, -1, flags=A.IOSQE_IO_LINK, user_data=2)
        ring.prep_link_timeout(0.03, user_data=3)
        gc.collect()
        spray = [bytearray(bad) for _ in range(3000)]
        t0 = time.monotonic()
        got = by_ud(run(ring, 3))
        assert got[1].res == -errno.ETIME  # not -EINVAL
        assert got[2].res == -errno.ECANCELED and got[3].res == -errno.ETIME
        assert time.monotonic() - t0 >= 0.015
        del spray
    ring.prep_timeout(10, user_data=4)
    ring.submit()
    gc.collect()
    spray = [bytearray(bad) for _ in range(3000)]
    ring.prep_timeout_update(0.01, 4, user_data=5)
    del spray
    got = by_ud(run(ring, 2))
    assert got[5].res == 0 and got[4].res == -errno.ETIME
    assert ring.inflight() == 0 and not ring._inflight


# ---------------------------------------------------------------------------
# skip-success requests, close()
# ---------------------------------------------------------------------------

def test_skip_success_pins_ride_with_the_chain(ring: Ring, tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    with opened(path, os.O_RDWR | os.O_CREAT) as fd:
        data = Buf(b"chained")
        ref = weakref.ref(data)
        ring.prep_write(fd, data, None, 0, flags=A.IOSQE_IO_LINK | A.IOSQE_CQE_SKIP_SUCCESS)
        ring.prep_fsync(fd, user_data=2)
        del data
        gc.collect()
        assert ref() is not None
        assert one(ring).user_data == 2
        gc.collect()
        assert ref() is None  # released with the chain's last completion
        assert os.pread(fd, 7, 0) == b"chained"


def test_skip_success_at_chain_end_is_never_freed(tmp_path: Any) -> None:
    """No completion will ever say such a request is done, and IOSQE_IO_DRAIN
    cannot be used to find out (see the next test): its memory stays pinned,
    and close() leaks it rather than risk a use-after-free."""
    path = os.path.join(str(tmp_path), "f")
    r = Ring(8)
    with opened(path, os.O_RDWR | os.O_CREAT) as fd:
        data = Buf(b"orphan")
        ref = weakref.ref(data)
        r.prep_write(fd, data, None, 0, flags=A.IOSQE_CQE_SKIP_SUCCESS)
        r.prep_nop(user_data=1)
        del data
        assert one(r).user_data == 1
        gc.collect()
        assert ref() is not None
        t0 = time.monotonic()
        r.close()
        assert time.monotonic() - t0 < 1
        gc.collect()
        assert ref() is not None
        assert _reachable(_core._graveyard, ref())
        assert os.pread(fd, 6, 0) == b"orphan"


def test_drain_is_refused_once_skip_success_was_used(ring: Ring) -> None:
    """Why close() cannot use a drained NOP as its barrier."""
    ring.prep_nop(user_data=1, flags=A.IOSQE_IO_DRAIN)
    assert one(ring).res == 0
    ring.prep_nop(user_data=2, flags=A.IOSQE_CQE_SKIP_SUCCESS)
    ring.prep_nop(user_data=3, flags=A.IOSQE_IO_DRAIN)
    cqe = one(ring)
    assert (cqe.user_data, cqe.res) == (3, -errno.EOPNOTSUPP)


def test_close_forgets_unsubmitted_requests() -> None:
    with pipe() as (r, _w):
        ring = Ring(8)
        buf = Buf(8)
        ref = weakref.ref(buf)
        ring.prep_read(r, buf, 8, -1, user_data=1)  # never submitted
        ring.prep_openat(A.AT_FDCWD, "/", os.O_RDONLY, user_data=1)
        del buf
        t0 = time.monotonic()
        ring.close()
        assert time.monotonic() - t0 < 1  # no completion was awaited
        gc.collect()
        assert ref() is None


@pytest.mark.parametrize("async_read", [False, True])
def test_close_with_requests_in_flight(async_read: bool) -> None:
    """Regression: close() dropped the pins of requests the kernel had not
    finished; a read still pending (or running in io-wq) could then write
    into freed memory."""
    with pipe() as (r, w):
        ring = Ring(8)
        buf = Buf(8)
        ref = weakref.ref(buf)
        ring.prep_read(r, buf, 8, -1, flags=A.IOSQE_ASYNC if async_read else 0)
        ring.prep_timeout(30)
        ring.submit()
        time.sleep(0.01)
        del buf
        ring.prep_nop()  # prepared, never submitted: simply forgotten
        t0 = time.monotonic()
        ring.close()
        assert time.monotonic() - t0 < 2  # cancelled, not waited out
        gc.collect()
        assert ref() is None  # released: the kernel provably finished with it
        os.write(w, b"x")
        assert os.read(r, 1) == b"x"  # the read was cancelled, it consumed nothing


def test_close_waits_until_the_kernel_is_done_with_memory(tmp_path: Any) -> None:
    """Regression: close() returned while an io-wq worker was still copying
    from the request's buffer; with the caller free to drop or reuse that
    memory right away, the file received whatever came next.  Here the
    buffer is overwritten as soon as close() returns: none of the new bytes
    may reach the file."""
    size = 32 << 20
    path = os.path.join(str(tmp_path), "big")
    with opened(path, os.O_RDWR | os.O_CREAT) as fd:
        data = bytearray(b"\xab") * size
        ring = Ring(8)
        ring.prep_write(fd, data, size, 0, flags=A.IOSQE_ASYNC)
        ring.submit()
        time.sleep(0.002)  # the worker is copying now
        ring.close()
        ctypes.memset(ctypes.addressof(ctypes.c_char.from_buffer(data)), 0xCD, size)
        time.sleep(0.05)
        written = os.pread(fd, size, 0)
    assert written.count(0xCD) == 0, "the kernel read the buffer after close() returned"
    assert written == b"\xab" * len(written)


def test_close_from_another_thread_keeps_the_pins() -> None:
    """A SINGLE_ISSUER ring closed from a foreign thread cannot wait for its
    requests: their memory must be kept (leaked), never freed."""
    with pipe() as (r, _w):
        ring = Ring(8)
        buf = Buf(8)
        ref = weakref.ref(buf)
        ring.prep_read(r, buf, 8, -1)
        ring.submit()
        del buf
        t = threading.Thread(target=ring.close)
        t.start()
        t.join()
        assert ring.closed
        gc.collect()
        assert ref() is not None
        # parked in the module's graveyard, under the request's user_data (0)
        assert any(0 in inflight for inflight, _, _ in _core._graveyard)
        assert _reachable(_core._graveyard, ref())


def test_gc_of_an_unclosed_ring_is_safe() -> None:
    with pipe() as (r, w):
        ring = Ring(8)
        fd = ring.fd
        buf = Buf(8)
        ref = weakref.ref(buf)
        ring.prep_read(r, buf, 8, -1)
        ring.submit()
        del buf, ring
        gc.collect()
        assert ref() is None
        with pytest.raises(OSError):
            os.fstat(fd)
        os.write(w, b"y")
        assert os.read(r, 1) == b"y"


# ---------------------------------------------------------------------------
# leaks over many operations
# ---------------------------------------------------------------------------

def test_no_leaks_after_100k_operations_on_one_ring(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    data = os.urandom(4096)
    write_file(path, data)
    fds0, maps0 = fd_count(), _io_uring_maps()
    with make_ring("fast", 128) as r, opened(path, os.O_RDONLY) as fd:
        fds1 = fd_count()  # (python's mmap keeps a dup of the ring fd per mapping)
        done = 0
        for _ in range(50_000 // 100):
            for i in range(100):
                r.prep_nop(user_data=i)
            done += len(run(r, 100))
        buf = bytearray(64)
        for _ in range(30_000 // 100):
            for i in range(100):
                r.prep_read(fd, buf, 64, (i * 64) % 4000, user_data=i)
            assert all(c.res == 64 for c in run(r, 100))
            done += 100
        for _ in range(10_000 // 50):
            for i in range(50):
                r.prep_openat(A.AT_FDCWD, path, os.O_RDONLY, user_data=i)
            opened_fds = [c.check() for c in run(r, 50)]
            for i, f in enumerate(opened_fds):
                r.prep_close(f, user_data=i)
            assert all(c.res == 0 for c in run(r, 50))
            done += 100
        assert done == 100_000
        assert r.stats.sqes == 100_000 and r.stats.completions == 100_000
        assert r.inflight() == 0 and not r._inflight and not r._orphans
        assert fd_count() == fds1
    assert fd_count() == fds0
    assert _io_uring_maps() == maps0


def test_no_leaks_with_many_rings(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    write_file(path, b"x" * 100)
    fds0, maps0 = fd_count(), _io_uring_maps()
    modes = ["fast", "plain", "sqpoll"]
    for n in range(300):
        with make_ring(modes[n % 3], 8) as r:
            if n % 10 == 0:
                r.register_ring_fd()
                r.register_files_sparse(4)
                r.register_buf_ring(4, 1, 64)
                r.register_buffers([bytearray(4096)])
                r.register_personality()
            r.prep_openat(A.AT_FDCWD, path, os.O_RDONLY, user_data=1)
            fd = one(r).check()
            buf = bytearray(100)
            r.prep_read(fd, buf, 100, 0, user_data=2, flags=A.IOSQE_IO_LINK)
            r.prep_close(fd, user_data=3)
            got = by_ud(run(r, 2))
            assert got[2].res == 100 and got[3].res == 0
            for i in range(30):
                r.prep_nop(user_data=i)
            run(r, 30)
    assert fd_count() == fds0
    assert _io_uring_maps() == maps0
