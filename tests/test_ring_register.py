"""Ring conformance: io_uring_register(2) and the resources it manages.

liburing tests whose behaviour is ported here: file-register, file-update,
fixed-buf / read-write with fixed buffers, buf-ring, provide-buffers,
personality, eventfd, eventfd-disable, register-restrictions, ring-fd
registration, io-wq max workers, msg-ring, fixed-fd-install.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import struct
from typing import Any, Iterator, List, Tuple

import pytest

from pyuring import Buffer, Ring, UringError
from pyuring import _abi as A

from .conftest import IS_ROOT, URING
from .test_ring_support import (
    by_ud,
    fd_count,
    make_ring,
    need,
    nothing_more,
    one,
    opened,
    pipe,
    ring_fixture,
    run,
    write_file,
)

pytestmark = pytest.mark.skipif(not URING, reason="io_uring is unavailable here")
ring = ring_fixture()

FIXED = A.IOSQE_FIXED_FILE
SELECT = A.IOSQE_BUFFER_SELECT


@pytest.fixture
def files(tmp_path: Any) -> Iterator[List[Tuple[int, bytes]]]:
    """Three open files with distinct random content."""
    out = []
    for i in range(3):
        path = os.path.join(str(tmp_path), f"f{i}")
        data = os.urandom(1000 + i)
        write_file(path, data)
        out.append((os.open(path, os.O_RDWR), data))
    try:
        yield out
    finally:
        for fd, _ in out:
            os.close(fd)


def _read_slot(ring: Ring, slot: int, n: int = 64, ud: int = 0) -> Tuple[int, bytes]:
    buf = bytearray(n)
    ring.prep_read(slot, buf, n, 0, flags=FIXED, user_data=ud)
    res = one(ring).res
    return res, bytes(buf[:max(res, 0)])


# ---------------------------------------------------------------------------
# registered files
# ---------------------------------------------------------------------------

def test_register_files_and_fixed_reads(ring: Ring, files: List[Tuple[int, bytes]]) -> None:
    ring.register_files([fd for fd, _ in files] + [-1])
    for slot, (_, data) in enumerate(files):
        assert _read_slot(ring, slot) == (64, data[:64])
    assert _read_slot(ring, 3)[0] == -errno.EBADF  # the empty slot
    assert _read_slot(ring, 99)[0] == -errno.EBADF  # past the table
    # the table holds its own reference: closing our fd does not matter
    dup = os.dup(files[0][0])
    ring.register_files_update(3, [dup])
    os.close(dup)
    assert _read_slot(ring, 3) == (64, files[0][1][:64])
    ring.unregister_files()
    assert _read_slot(ring, 0)[0] == -errno.EBADF
    with pytest.raises(UringError) as ei:
        ring.unregister_files()
    assert ei.value.errno == errno.ENXIO


def test_files_update(ring: Ring, files: List[Tuple[int, bytes]]) -> None:
    ring.register_files_sparse(8)
    assert _read_slot(ring, 0)[0] == -errno.EBADF
    assert ring.register_files_update(2, [files[1][0], A.IORING_REGISTER_FILES_SKIP,
                                          files[2][0]]) == 3
    assert _read_slot(ring, 2) == (64, files[1][1][:64])
    assert _read_slot(ring, 3)[0] == -errno.EBADF  # skipped
    assert _read_slot(ring, 4) == (64, files[2][1][:64])
    assert ring.register_files_update(2, [-1]) == 1  # clear
    assert _read_slot(ring, 2)[0] == -errno.EBADF
    # the IORING_OP_FILES_UPDATE request does the same through the SQ
    ring.prep_files_update([files[0][0], files[0][0]], 6)
    assert one(ring).res == 2
    assert _read_slot(ring, 7) == (64, files[0][1][:64])
    with pytest.raises(UringError) as ei:
        ring.register_files_update(8, [files[0][0]])  # past the table
    assert ei.value.errno == errno.EINVAL


def test_register_files_twice_is_ebusy(ring: Ring, files: List[Tuple[int, bytes]]) -> None:
    ring.register_files([files[0][0]])
    with pytest.raises(UringError) as ei:
        ring.register_files([files[0][0]])
    assert ei.value.errno == errno.EBUSY
    assert "IORING_REGISTER_FILES" in str(ei.value)


def test_open_close_direct(ring: Ring, tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    write_file(path, b"direct descriptor")
    ring.register_files_sparse(4)
    before = fd_count()
    ring.prep_openat_direct(A.AT_FDCWD, path, os.O_RDONLY, 0, 2)
    assert one(ring).res == 0
    assert fd_count() == before  # no process fd was created
    assert _read_slot(ring, 2) == (17, b"direct descriptor")
    ring.prep_openat_direct(A.AT_FDCWD, path, os.O_RDONLY, 0, 9)  # past the table
    assert one(ring).res == -errno.EINVAL
    ring.prep_close_direct(2)
    assert one(ring).res == 0
    assert _read_slot(ring, 2)[0] == -errno.EBADF
    ring.prep_close_direct(2)
    assert one(ring).res == -errno.EBADF
    ring.prep_openat2_direct(A.AT_FDCWD, path, os.O_RDONLY, 0, A.RESOLVE_NO_SYMLINKS, 1)
    assert one(ring).res == 0
    assert _read_slot(ring, 1)[0] == 17


def test_file_index_alloc_and_range(ring: Ring, tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    write_file(path, b"x")
    ring.register_files_sparse(8)
    ALLOC = A.IORING_FILE_INDEX_ALLOC
    ring.prep_openat_direct(A.AT_FDCWD, path, os.O_RDONLY, 0, ALLOC)
    assert one(ring).res == 0  # the first free slot, returned as res
    ring.register_file_alloc_range(5, 2)
    slots = []
    for _ in range(3):
        ring.prep_openat_direct(A.AT_FDCWD, path, os.O_RDONLY, 0, ALLOC)
        slots.append(one(ring).res)
    assert slots == [5, 6, -errno.ENFILE]
    assert _read_slot(ring, 6) == (1, b"x")
    ring.prep_socket_direct(socket.AF_UNIX, socket.SOCK_STREAM, 0, 0, ALLOC)
    assert one(ring).res == -errno.ENFILE
    ring.prep_close_direct(5)
    assert one(ring).res == 0
    ring.prep_socket_direct(socket.AF_UNIX, socket.SOCK_STREAM, 0, 0, ALLOC)
    assert one(ring).res == 5


def test_fixed_fd_install(ring: Ring, tmp_path: Any) -> None:
    need("FIXED_FD_INSTALL")
    path = os.path.join(str(tmp_path), "f")
    write_file(path, b"installed")
    ring.register_files_sparse(2)
    ring.prep_openat_direct(A.AT_FDCWD, path, os.O_RDONLY, 0, 0)
    assert one(ring).res == 0
    ring.prep_fixed_fd_install(0)
    fd = one(ring).check()
    ring.prep_fixed_fd_install(0, A.IORING_FIXED_FD_NO_CLOEXEC)
    fd2 = one(ring).check()
    try:
        assert os.fstat(fd).st_ino == os.stat(path).st_ino
        assert os.pread(fd, 100, 0) == b"installed"
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert not fcntl.fcntl(fd2, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    finally:
        os.close(fd)
        os.close(fd2)
    ring.prep_fixed_fd_install(1)  # empty slot
    assert one(ring).res == -errno.EBADF


# ---------------------------------------------------------------------------
# fixed buffers
# ---------------------------------------------------------------------------

def test_fixed_buffers(ring: Ring, tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    data = os.urandom(8192)
    write_file(path, data)
    ba = bytearray(4096)
    pb = Buffer(8192)
    ring.register_buffers([ba, pb])
    with opened(path, os.O_RDWR) as fd:
        ring.prep_read_fixed(fd, ba, None, 100, 0, user_data=1)
        ring.prep_read_fixed(fd, memoryview(pb.mmap)[4096:], 4096, 0, 1, user_data=2)
        got = by_ud(run(ring, 2))
        assert got[1].res == 4096 and bytes(ba) == os.pread(fd, 4096, 100)
        assert got[2].res == 4096 and bytes(pb[4096:8192]) == data[:4096]
        ba[:5] = b"fixed"
        ring.prep_write_fixed(fd, memoryview(ba)[:5], 5, 8000, 0, user_data=3)
        assert one(ring).res == 5
        assert os.pread(fd, 5, 8000) == b"fixed"
        # memory outside the registered buffer: EFAULT
        other = bytearray(4096)
        ring.prep_read_fixed(fd, other, None, 0, 0, user_data=4)
        assert one(ring).res == -errno.EFAULT
        ring.prep_read_fixed(fd, ba, None, 0, 7, user_data=5)  # no such index
        assert one(ring).res == -errno.EFAULT
    # the ring pins what it registered: a bytearray cannot be resized
    with pytest.raises(BufferError):
        ba.extend(b"grow")
    ring.unregister_buffers()
    ba.extend(b"grow")
    pb.close()


def test_fixed_buffers_sparse_and_update(ring: Ring, tmp_path: Any) -> None:
    """Regression: register_buffers_update refused pyuring.Buffer objects."""
    path = os.path.join(str(tmp_path), "f")
    data = os.urandom(4096)
    write_file(path, data)
    ring.register_buffers_sparse(4)
    pb = Buffer(4096)
    ba = bytearray(2048)
    assert ring.register_buffers_update(1, [pb, ba]) == 2
    with opened(path, os.O_RDONLY) as fd:
        ring.prep_read_fixed(fd, pb, None, 0, 1, user_data=1)
        ring.prep_read_fixed(fd, ba, None, 1000, 2, user_data=2)
        ring.prep_read_fixed(fd, ba, None, 0, 0, user_data=3)  # empty slot
        got = by_ud(run(ring, 3))
    assert got[1].res == 4096 and bytes(pb) == data
    assert got[2].res == 2048 and bytes(ba) == data[1000:3048]
    assert got[3].res == -errno.EFAULT
    pb.close()


def test_readv_writev_fixed(ring: Ring, tmp_path: Any) -> None:
    need("READV_FIXED")
    path = os.path.join(str(tmp_path), "f")
    with opened(path, os.O_RDWR | os.O_CREAT) as fd:
        reg = bytearray(8192)
        ring.register_buffers([reg])
        mv = memoryview(reg)
        mv[:6] = b"vector"
        mv[4096:4101] = b"-io!!"
        ring.prep_writev_fixed(fd, [mv[:6], mv[4096:4101]], 0, 0, 0, user_data=1)
        assert one(ring).res == 11
        assert os.pread(fd, 100, 0) == b"vector-io!!"
        ring.prep_readv_fixed(fd, [mv[100:103], mv[5000:5008]], 0, 0, 0, user_data=2)
        assert one(ring).res == 11
        assert bytes(mv[100:103]) == b"vec" and bytes(mv[5000:5008]) == b"tor-io!!"
        outside = bytearray(8)
        ring.prep_readv_fixed(fd, [outside], 0, 0, 0, user_data=3)
        assert one(ring).res == -errno.EFAULT
        mv.release()


# ---------------------------------------------------------------------------
# provided buffers
# ---------------------------------------------------------------------------

def test_provide_buffers_legacy(ring: Ring, tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    data = os.urandom(1024)
    write_file(path, data)
    pool = bytearray(4 * 256)
    ring.prep_provide_buffers(pool, 256, 4, 7, 10)
    assert one(ring).res == 0
    with opened(path, os.O_RDONLY) as fd:
        seen = []
        for i in range(5):
            ring.prep_rw(A.IORING_OP_READ, fd, 0, 200, i * 200, flags=SELECT, buf_index=7)
            seen.append(one(ring))
    for i, cqe in enumerate(seen[:4]):
        assert cqe.res == 200
        bid = cqe.buffer_id
        assert bid is not None and 10 <= bid < 14
        start = (bid - 10) * 256
        assert bytes(pool[start:start + 200]) == data[i * 200:(i + 1) * 200]
    assert sorted(c.buffer_id or 0 for c in seen[:4]) == [10, 11, 12, 13]
    assert seen[4].res == -errno.ENOBUFS and seen[4].buffer_id is None
    ring.prep_provide_buffers(pool, 256, 2, 7, 0)
    assert one(ring).res == 0
    ring.prep_remove_buffers(5, 7)
    assert one(ring).res == 2
    ring.prep_remove_buffers(1, 7)  # the group is empty now
    assert one(ring).res == 0
    ring.prep_remove_buffers(1, 99)  # no such group
    assert one(ring).res == -errno.ENOENT


@pytest.fixture
def sockpair() -> Iterator[Tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_buf_ring_recv_multishot(ring: Ring,
                                 sockpair: Tuple[socket.socket, socket.socket]) -> None:
    a, b = sockpair
    br = ring.register_buf_ring(4, 3, 64)
    ring.prep_recv_multishot(b.fileno(), 3, user_data=9)
    ring.submit()
    got: List[bytes] = []
    for i in range(6):
        msg = f"message {i}".encode()
        a.send(msg)
        cqe = one(ring)
        assert cqe.user_data == 9 and cqe.res == len(msg) and cqe.more
        bid = cqe.buffer_id
        assert bid is not None and 0 <= bid < 4
        got.append(bytes(br.buffer(bid, cqe.res)))
        br.recycle(bid)  # without this, the 5th message would find no buffer
    assert got == [f"message {i}".encode() for i in range(6)]
    assert ring.inflight() == 1
    ring.prep_cancel(9, user_data=10)
    cqes = by_ud(run(ring, 2))
    assert cqes[10].res == 0 and cqes[9].res == -errno.ECANCELED and not cqes[9].more
    assert ring.inflight() == 0


def test_buf_ring_exhaustion_ends_multishot(ring: Ring,
                                            sockpair: Tuple[socket.socket, socket.socket]) -> None:
    a, b = sockpair
    ring.register_buf_ring(2, 1, 32)
    ring.prep_recv_multishot(b.fileno(), 1, user_data=5)
    ring.submit()
    cqes = []
    for i in range(3):
        a.send(b"x" * (i + 1))
        cqes.append(one(ring))
    assert [c.res for c in cqes[:2]] == [1, 2] and all(c.more for c in cqes[:2])
    assert cqes[2].res == -errno.ENOBUFS and not cqes[2].more
    assert ring.inflight() == 0
    assert b.recv(10) == b"xxx"  # the unreceived data is still in the socket


def test_buf_ring_single_shot_read_and_unregister(ring: Ring, tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    data = os.urandom(300)
    write_file(path, data)
    br = ring.register_buf_ring(8, 4, 128)
    with opened(path, os.O_RDONLY) as fd:
        ring.prep_rw(A.IORING_OP_READ, fd, 0, 100, 50, flags=SELECT, buf_index=4)
        cqe = one(ring)
        assert cqe.res == 100 and cqe.buffer_id is not None
        assert bytes(br.buffer(cqe.buffer_id, 100)) == data[50:150]
        ring.unregister_buf_ring(4)
        ring.prep_rw(A.IORING_OP_READ, fd, 0, 100, 50, flags=SELECT, buf_index=4)
        assert one(ring).res == -errno.ENOBUFS
    with pytest.raises(ValueError):
        ring.register_buf_ring(3, 5, 64)


def test_read_multishot_on_a_pipe(ring: Ring) -> None:
    need("READ_MULTISHOT")
    br = ring.register_buf_ring(4, 2, 16)
    with pipe() as (r, w):
        ring.prep_read_multishot(r, 0, 0, 2, user_data=3)
        ring.submit()
        for msg in (b"one", b"two", b"three"):
            os.write(w, msg)
            cqe = one(ring)
            assert cqe.res == len(msg) and cqe.more and cqe.buffer_id is not None
            assert bytes(br.buffer(cqe.buffer_id, cqe.res)) == msg
            br.recycle(cqe.buffer_id)
        os.close(w)
        cqe = one(ring)  # EOF ends it
        assert cqe.res == 0 and not cqe.more
    assert ring.inflight() == 0


# ---------------------------------------------------------------------------
# eventfd
# ---------------------------------------------------------------------------

@pytest.fixture
def efd() -> Iterator[int]:
    if not hasattr(os, "eventfd"):
        pytest.skip("os.eventfd needs Python 3.10")
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    try:
        yield fd
    finally:
        os.close(fd)


def _eventfd_count(fd: int) -> int:
    try:
        return os.eventfd_read(fd)
    except BlockingIOError:
        return 0


def test_eventfd_counts_completions(ring: Ring, efd: int) -> None:
    ring.register_eventfd(efd)
    ring.prep_nop(user_data=1)
    one(ring)
    assert _eventfd_count(efd) >= 1
    assert _eventfd_count(efd) == 0  # read resets it
    for i in range(3):
        ring.prep_nop(user_data=i)
    run(ring, 3)
    assert 1 <= _eventfd_count(efd) <= 3
    ring.unregister_eventfd()
    ring.prep_nop()
    one(ring)
    assert _eventfd_count(efd) == 0
    with pytest.raises(UringError) as ei:
        ring.unregister_eventfd()
    assert ei.value.errno == errno.ENXIO


def test_eventfd_wakes_a_poller(efd: int) -> None:
    with make_ring("plain", 8) as r, pipe() as (pr, pw):
        r.register_eventfd(efd)
        r.prep_read(pr, bytearray(4), 4, -1, user_data=1)
        r.submit()
        poller = select.poll()
        poller.register(efd, select.POLLIN)
        assert poller.poll(20) == []
        os.write(pw, b"ping")
        assert poller.poll(5000) == [(efd, select.POLLIN)]
        assert _eventfd_count(efd) == 1
        assert one(r).res == 4


def test_eventfd_async_only(efd: int) -> None:
    with make_ring("plain", 8) as r, pipe() as (pr, pw):
        r.register_eventfd(efd, async_only=True)
        r.prep_nop()  # completes inline: no signal
        one(r)
        assert _eventfd_count(efd) == 0
        r.prep_read(pr, bytearray(4), 4, -1)
        r.submit()
        os.write(pw, b"late")  # completes from the poll wake-up: still not async
        assert one(r).res == 4
        assert _eventfd_count(efd) == 0
        r.prep_read(pr, bytearray(4), 4, -1, flags=A.IOSQE_ASYNC)
        r.submit()
        os.write(pw, b"wq!!")  # completes in an io-wq worker: async, signalled
        assert one(r).res == 4
        assert _eventfd_count(efd) == 1


# ---------------------------------------------------------------------------
# personality
# ---------------------------------------------------------------------------

def test_personality_block_entered_twice_restores_what_was_before(ring: Ring) -> None:
    """The same personality() object used in nested blocks (contextlib's version
    refused that): each exit restores what its own entry found."""
    block = ring.personality(4321)  # never registered: requests with it get EINVAL
    with block:
        with block:
            ring.prep_nop(user_data=1)
        ring.prep_nop(user_data=2)
    ring.prep_nop(user_data=3)
    got = by_ud(run(ring, 3))
    assert got[1].res == got[2].res == -errno.EINVAL
    assert got[3].res == 0


def test_personality_register_use_unregister(ring: Ring, tmp_path: Any) -> None:
    assert ring.features & A.IORING_FEAT_CUR_PERSONALITY
    pid = ring.register_personality()
    assert pid >= 1
    path = os.path.join(str(tmp_path), "f")
    write_file(path, b"x")
    with ring.personality(pid):
        ring.prep_openat(A.AT_FDCWD, path, os.O_RDONLY, user_data=1)
    with ring.personality(pid + 1000):
        ring.prep_nop(user_data=2)
    ring.prep_nop(user_data=3)  # outside the block: no personality
    got = by_ud(run(ring, 3))
    fd = got[1].check()
    os.close(fd)
    assert got[2].res == -errno.EINVAL
    assert got[3].res == 0
    ring.unregister_personality(pid)
    with ring.personality(pid):
        ring.prep_nop(user_data=4)
    assert one(ring).res == -errno.EINVAL
    with pytest.raises(UringError) as ei:
        ring.unregister_personality(pid)
    assert ei.value.errno == errno.EINVAL


def test_personality_keeps_the_registered_credentials(tmp_path: Any) -> None:
    """Registered as root, then the process drops to nobody: requests with the
    personality still act as root; requests without it do not."""
    if not IS_ROOT:
        pytest.skip("needs root to switch credentials")
    secret = os.path.join(str(tmp_path), "secret")
    write_file(secret, b"root only")
    os.chmod(secret, 0o600)
    os.chmod(str(tmp_path), 0o755)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            with Ring(8) as r:
                root = r.register_personality()
                os.setgid(65534)
                os.setuid(65534)
                with r.personality(root):
                    r.prep_openat(A.AT_FDCWD, secret, os.O_RDONLY, user_data=1)
                r.prep_openat(A.AT_FDCWD, secret, os.O_RDONLY, user_data=2)
                res = {c.user_data: c.res for c in (r.wait_cqe(timeout=5),
                                                    r.wait_cqe(timeout=5))}
                if res[1] >= 0 and os.read(res[1], 100) == b"root only" \
                        and res[2] == -errno.EACCES:
                    code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


# ---------------------------------------------------------------------------
# restrictions, ring fd, io-wq workers
# ---------------------------------------------------------------------------

def test_restrictions() -> None:
    with Ring(8, flags=A.IORING_SETUP_R_DISABLED) as r:
        r.register_restrictions([
            (A.IORING_RESTRICTION_SQE_OP, A.IORING_OP_NOP),
            (A.IORING_RESTRICTION_SQE_OP, A.IORING_OP_ASYNC_CANCEL),
            (A.IORING_RESTRICTION_REGISTER_OP, A.IORING_REGISTER_PROBE),
        ])
        r.enable_rings()
        r.prep_nop(user_data=1)
        r.prep_timeout(1, user_data=2)
        got = by_ud(run(r, 2))
        assert got[1].res == 0 and got[2].res == -errno.EACCES
        with pytest.raises(UringError) as ei:
            r.register_files([0])
        assert ei.value.errno == errno.EACCES
        assert r.probe().supports("NOP")


def test_register_ring_fd(ring: Ring) -> None:
    index = ring.register_ring_fd()
    assert index >= 0
    for i in range(10):
        ring.prep_nop(user_data=i)
    assert sorted(c.user_data for c in run(ring, 10)) == list(range(10))
    ring.register_files([0])  # register through the registered index works too
    ring.unregister_ring_fd()
    ring.unregister_ring_fd()  # no-op
    ring.prep_nop(user_data=99)
    assert one(ring).user_data == 99


def test_registered_ring_fd_is_released_on_close() -> None:
    """Regression: close() left the ring fd registered, keeping the ring alive
    until the thread exited; the 17th such ring failed with EBUSY."""
    for _ in range(40):
        with Ring(4) as r:
            r.register_ring_fd()
            r.prep_nop(user_data=1)
            assert one(r).user_data == 1


def test_iowq_max_workers(ring: Ring) -> None:
    old = ring.register_iowq_max_workers(0, 0)  # 0, 0: just ask
    assert old[0] >= 1 and old[1] >= 1
    assert ring.register_iowq_max_workers(2, 3) == old
    assert ring.register_iowq_max_workers(0, 0) == (2, 3)
    # the ring still works with the caps in place
    with pipe() as (r, w):
        ring.prep_read(r, bytearray(1), 1, -1, flags=A.IOSQE_ASYNC, user_data=1)
        ring.submit()
        os.write(w, b"!")
        assert one(ring).res == 1


# ---------------------------------------------------------------------------
# MSG_RING
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("target_mode", ["fast", "plain"])
def test_msg_ring_data(ring: Ring, target_mode: str) -> None:
    with make_ring(target_mode, 8) as other:
        ring.prep_msg_ring(other.fd, 1234, 0xABCDEF, user_data=1)
        ring.prep_msg_ring(other.fd, -5, 77, user_data=2)
        got = by_ud(run(ring, 2))
        assert got[1].res == 0 and got[2].res == 0
        theirs = by_ud(run(other, 2))
        assert theirs[0xABCDEF].res == 1234 and theirs[0xABCDEF].flags == 0
        assert theirs[77].res == -5
        ring.prep_msg_ring_cqe_flags(other.fd, 1, 55, 0, 0x12340000)
        assert one(ring).res == 0
        c = one(other)
        assert (c.user_data, c.res, c.flags) == (55, 1, 0x12340000)
        # IORING_MSG_RING_CQE_SKIP makes no sense for a data message: EINVAL
        ring.prep_msg_ring(other.fd, 0, 66, A.IORING_MSG_RING_CQE_SKIP, user_data=3)
        c = one(ring)
        assert (c.user_data, c.res) == (3, -errno.EINVAL)
        nothing_more(other)
    with pipe() as (r, _w):
        ring.prep_msg_ring(r, 0, 1)  # not a ring
        assert one(ring).res == -errno.EBADFD


@pytest.mark.parametrize("target_mode", ["fast", "plain"])
def test_sync_msg_ring_wakes_a_thread_waiting_on_the_ring(target_mode: str) -> None:
    """IORING_REGISTER_SEND_MSG_RING (Linux 6.13): a thread with no ring of its own
    posts a completion that ends another thread's wait in submit_and_wait."""
    import threading
    import time

    from pyuring.errors import OpcodeUnsupported
    from pyuring.register import sync_msg_ring

    with make_ring(target_mode, 8) as target:
        try:
            sync_msg_ring(target.fd, 0x77, -3)
        except OpcodeUnsupported:
            pytest.skip("kernel without IORING_REGISTER_SEND_MSG_RING (6.13)")
        c = one(target)
        assert (c.user_data, c.res) == (0x77, -3)
        errors: List[BaseException] = []

        def post() -> None:
            time.sleep(0.2)
            try:
                sync_msg_ring(target.fd, 0xFEED, 42)
            except BaseException as exc:  # (reported by the assertion below)
                errors.append(exc)

        t = threading.Thread(target=post)
        t0 = time.monotonic()
        t.start()
        c = one(target)  # waits until the other thread posts
        t.join()
        assert not errors
        assert (c.user_data, c.res) == (0xFEED, 42)
        assert time.monotonic() - t0 >= 0.15
        nothing_more(target)
    with pipe() as (r, _w), pytest.raises(UringError) as info:
        sync_msg_ring(r, 0, 1)  # not a ring
    assert info.value.errno == errno.EBADFD
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(UringError) as info:
        sync_msg_ring(r, 0, 1)  # no fd at all: that, not "unsupported"
    assert info.value.errno == errno.EBADF and not isinstance(info.value, OpcodeUnsupported)


def test_executor_wake_after_close_posts_nothing() -> None:
    """wake() (Copier.interrupt from another thread) once the copy's ring is
    closed: its fd number may already be another ring's, which must get nothing."""
    from pyuring.executor import UringExecutor

    ex = UringExecutor(entries=8)
    old_fd = ex.ring.fd
    ex.close()
    with Ring(8) as mine:
        reused = mine.fd == old_fd  # (the case that matters: usual, not certain)
        assert ex.wake() is False
        assert mine.reap() == [], f"fd reused: {reused}"


def test_msg_ring_fd(ring: Ring, tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    write_file(path, b"passed along")
    with make_ring("fast", 8) as other:
        other.register_files_sparse(8)
        ring.register_files_sparse(2)
        ring.prep_openat_direct(A.AT_FDCWD, path, os.O_RDONLY, 0, 1)
        assert one(ring).res == 0
        ring.prep_msg_ring_fd(other.fd, 1, 5, 0x99)
        assert one(ring).res == 0
        c = one(other)
        assert c.user_data == 0x99 and c.res == 0
        assert _read_slot(other, 5) == (12, b"passed along")
        ring.prep_msg_ring_fd(other.fd, 0, 6, 1)  # empty source slot
        assert one(ring).res == -errno.EBADF
        # IORING_MSG_RING_CQE_SKIP: the descriptor arrives, the target gets no CQE
        ring.prep_msg_ring_fd(other.fd, 1, 7, 0x98, A.IORING_MSG_RING_CQE_SKIP)
        assert one(ring).res == 0
        nothing_more(other)
        assert _read_slot(other, 7) == (12, b"passed along")


def test_msg_ring_fd_alloc(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    write_file(path, b"alloc")
    with Ring(8) as src, Ring(8) as dst:
        dst.register_files_sparse(4)
        src.register_files_sparse(1)
        src.prep_openat_direct(A.AT_FDCWD, path, os.O_RDONLY, 0, 0)
        assert one(src).res == 0
        src.prep_msg_ring_fd(dst.fd, 0, A.IORING_FILE_INDEX_ALLOC, 7)
        assert one(src).res == 0
        c = one(dst)
        assert c.user_data == 7 and c.res == 0  # the allocated slot
        assert _read_slot(dst, 0) == (5, b"alloc")
        nothing_more(dst)


def test_socket_register_roundtrip(ring: Ring) -> None:
    """prep_socket_direct into a chosen slot, then use the slot with bind."""
    need("BIND")
    ring.register_files_sparse(2)
    ring.prep_socket_direct(socket.AF_INET, socket.SOCK_DGRAM, 0, 0, 1)
    assert one(ring).res == 0
    addr = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + \
        socket.inet_aton("127.0.0.1") + bytes(8)
    ring.prep_bind(1, addr, flags=FIXED)
    assert one(ring).res == 0
