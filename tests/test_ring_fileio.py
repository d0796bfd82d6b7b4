"""Ring conformance: file I/O opcodes, each compared with the equivalent os call.

liburing tests whose behaviour is ported here: open-close, openat2, statx,
read-write, short-read, fsync, fallocate, fadvise, madvise, truncate,
splice, tee, pipe, and the error mapping of failed requests.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import stat
import struct
import time
from functools import partial
from typing import Any, Dict, Tuple, Union

import pytest

from pyuring import Buffer, Ring, _syscall
from pyuring import _abi as A

from .conftest import IS_ROOT, URING
from .test_ring_support import (
    by_ud,
    need,
    one,
    opened,
    os_errno,
    pipe,
    read_file,
    ring_fixture,
    run,
    write_file,
)

pytestmark = pytest.mark.skipif(not URING, reason="io_uring is unavailable here")
ring = ring_fixture()

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10


def _libc_fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2) with a mode, which the os module does not offer."""
    libc = _syscall.libc()
    if libc.fallocate(fd, mode, ctypes.c_int64(offset), ctypes.c_int64(length)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@pytest.fixture
def datafile(tmp_path: Any) -> Tuple[str, bytes]:
    path = os.path.join(str(tmp_path), "data")
    data = os.urandom(3 * 4096 + 123)
    write_file(path, data)
    return path, data


# ---------------------------------------------------------------------------
# read / write
# ---------------------------------------------------------------------------

def test_read_at_offsets(ring: Ring, datafile: Tuple[str, bytes]) -> None:
    path, data = datafile
    with opened(path, os.O_RDONLY) as fd:
        cases = [(0, 4096), (1, 100), (4095, 2), (8192, 4096), (len(data) - 10, 10)]
        bufs = [bytearray(n) for _, n in cases]
        for i, ((off, n), b) in enumerate(zip(cases, bufs)):
            ring.prep_read(fd, b, n, off, user_data=i)
        got = by_ud(run(ring, len(cases)))
        for i, ((off, n), b) in enumerate(zip(cases, bufs)):
            assert got[i].res == n
            assert bytes(b) == os.pread(fd, n, off)


def test_short_read_at_eof(ring: Ring, datafile: Tuple[str, bytes]) -> None:
    path, data = datafile
    with opened(path, os.O_RDONLY) as fd:
        size = len(data)
        cases = [size - 100, size, size + 5000]
        bufs = [bytearray(4096) for _ in cases]
        for i, (off, b) in enumerate(zip(cases, bufs)):
            ring.prep_read(fd, b, 4096, off, user_data=i)
        got = by_ud(run(ring, 3))
        for i, (off, b) in enumerate(zip(cases, bufs)):
            expected = os.pread(fd, 4096, off)
            assert got[i].res == len(expected)
            assert bytes(b[:len(expected)]) == expected
        assert [got[i].res for i in range(3)] == [100, 0, 0]


def test_write_at_offsets(ring: Ring, tmp_path: Any) -> None:
    a = os.path.join(str(tmp_path), "ring")
    b = os.path.join(str(tmp_path), "os")
    writes = [(0, b"hello"), (10000, b"far away"), (3, b"XYZW"), (4096, os.urandom(5000))]
    with opened(a, os.O_RDWR | os.O_CREAT) as fa, opened(b, os.O_RDWR | os.O_CREAT) as fb:
        for i, (off, payload) in enumerate(writes):
            ring.prep_write(fa, payload, None, off, user_data=i)
            assert one(ring).res == len(payload)
            os.pwrite(fb, payload, off)
    assert read_file(a) == read_file(b)
    assert os.stat(a).st_size == os.stat(b).st_size == 10008


def test_offset_minus_one_uses_and_moves_the_file_position(ring: Ring, tmp_path: Any) -> None:
    assert ring.features & A.IORING_FEAT_RW_CUR_POS
    path = os.path.join(str(tmp_path), "f")
    write_file(path, b"0123456789" * 10)
    with opened(path, os.O_RDWR) as fd:
        os.lseek(fd, 20, os.SEEK_SET)
        buf = bytearray(5)
        ring.prep_read(fd, buf, 5, -1)
        assert one(ring).res == 5
        assert bytes(buf) == b"01234"
        assert os.lseek(fd, 0, os.SEEK_CUR) == 25
        ring.prep_write(fd, b"AB", None, -1)
        assert one(ring).res == 2
        ring.prep_write(fd, b"CD", None, -1)
        assert one(ring).res == 2
        assert os.lseek(fd, 0, os.SEEK_CUR) == 29
        assert os.pread(fd, 6, 24) == b"4ABCD9"
        # an explicit offset leaves the position alone
        ring.prep_read(fd, buf, 5, 0)
        assert one(ring).res == 5
        assert os.lseek(fd, 0, os.SEEK_CUR) == 29


def test_readv_writev_match_preadv_pwritev(ring: Ring, tmp_path: Any) -> None:
    a = os.path.join(str(tmp_path), "ring")
    b = os.path.join(str(tmp_path), "os")
    parts = [b"first-", os.urandom(4096), b"", b"last"]
    with opened(a, os.O_RDWR | os.O_CREAT) as fa, opened(b, os.O_RDWR | os.O_CREAT) as fb:
        ring.prep_writev(fa, parts, 100)
        assert one(ring).res == sum(map(len, parts))
        assert os.pwritev(fb, parts, 100) == sum(map(len, parts))
        assert read_file(a) == read_file(b)
        mine = [bytearray(50), bytearray(4000), bytearray(200)]
        theirs = [bytearray(50), bytearray(4000), bytearray(200)]
        ring.prep_readv(fa, mine, 90)
        res = one(ring).res
        assert res == os.preadv(fb, theirs, 90)
        assert mine == theirs


@pytest.mark.skipif(not hasattr(os, "RWF_APPEND"), reason="os.RWF_APPEND needs Python 3.10")
def test_writev_rwf_append(ring: Ring, tmp_path: Any) -> None:
    a = os.path.join(str(tmp_path), "ring")
    b = os.path.join(str(tmp_path), "os")
    write_file(a, b"base")
    write_file(b, b"base")
    with opened(a, os.O_RDWR) as fa, opened(b, os.O_RDWR) as fb:
        ring.prep_writev(fa, [b"-tail"], 0, os.RWF_APPEND)
        assert one(ring).res == 5
        os.pwritev(fb, [b"-tail"], 0, os.RWF_APPEND)
    assert read_file(a) == read_file(b) == b"base-tail"


def test_buffer_kinds(ring: Ring, datafile: Tuple[str, bytes]) -> None:
    """bytearray, memoryview slices, mmap, array and pyuring.Buffer all work."""
    import array

    path, data = datafile
    ba = bytearray(300)
    mv = memoryview(ba)[100:200]
    mm = mmap.mmap(-1, 4096)
    arr = array.array("I", [0] * 16)
    pb = Buffer(4096)
    with opened(path, os.O_RDONLY) as fd:
        ring.prep_read(fd, mv, None, 10, user_data=1)
        ring.prep_read(fd, mm, 4096, 0, user_data=2)
        ring.prep_read(fd, arr, None, 7, user_data=3)
        ring.prep_read(fd, pb, None, 4096, user_data=4)
        got = by_ud(run(ring, 4))
    assert got[1].res == 100 and ba[100:200] == data[10:110] and ba[:100] == bytes(100)
    assert got[2].res == 4096 and mm[:] == data[:4096]
    assert got[3].res == 64 and arr.tobytes() == data[7:71]
    assert got[4].res == 4096 and bytes(pb) == data[4096:8192]
    mv.release()
    mm.close()
    pb.close()


def test_read_into_read_only_buffer_is_refused(ring: Ring) -> None:
    with pytest.raises(TypeError):
        ring.prep_read(0, b"immutable", 9, 0)
    with pytest.raises(TypeError):
        ring.prep_read(0, memoryview(b"immutable"), 9, 0)
    assert ring.pending() == 0


def test_write_from_read_only_buffers(ring: Ring, tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    with opened(path, os.O_RDWR | os.O_CREAT) as fd:
        ring.prep_write(fd, b"bytes|", None, 0, user_data=1)
        ring.prep_write(fd, memoryview(b"..view|")[2:], None, 6, user_data=2)
        got = by_ud(run(ring, 2))
        assert got[1].res == 6 and got[2].res == 5
    assert read_file(path) == b"bytes|view|"


@pytest.mark.parametrize("case", ["read_dir", "write_rdonly", "read_wronly", "bad_fd"])
def test_rw_errors_match_os(ring: Ring, tmp_path: Any, case: str) -> None:
    path = os.path.join(str(tmp_path), "f")
    write_file(path, b"data")
    buf = bytearray(4)
    if case == "read_dir":
        fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
        expected = os_errno(lambda: os.read(fd, 4))
        ring.prep_read(fd, buf, 4, 0)
    elif case == "write_rdonly":
        fd = os.open(path, os.O_RDONLY)
        expected = os_errno(lambda: os.write(fd, b"x"))
        ring.prep_write(fd, b"x", None, 0)
    elif case == "read_wronly":
        fd = os.open(path, os.O_WRONLY)
        expected = os_errno(lambda: os.read(fd, 4))
        ring.prep_read(fd, buf, 4, 0)
    else:
        fd = os.open(path, os.O_RDONLY)
        os.close(fd)
        expected = os_errno(lambda: os.read(fd, 4))
        ring.prep_read(fd, buf, 4, 0)
    try:
        cqe = one(ring)
    finally:
        if case != "bad_fd":
            os.close(fd)
    assert expected != 0
    assert cqe.res == -expected
    with pytest.raises(OSError) as ei:
        cqe.check()
    assert ei.value.errno == expected
    assert "READ" in str(ei.value) or "WRITE" in str(ei.value)


# ---------------------------------------------------------------------------
# fsync, sync_file_range
# ---------------------------------------------------------------------------

def test_fsync_and_fdatasync(ring: Ring, tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    with opened(path, os.O_RDWR | os.O_CREAT) as fd:
        ring.prep_write(fd, b"durable", None, 0, user_data=1, flags=A.IOSQE_IO_LINK)
        ring.prep_fsync(fd, user_data=2, flags=A.IOSQE_IO_LINK)
        ring.prep_fsync(fd, A.IORING_FSYNC_DATASYNC, user_data=3)
        got = by_ud(run(ring, 3))
        assert [got[i].res for i in (1, 2, 3)] == [7, 0, 0]
        assert got[2].op_name == "FSYNC"
        assert os.pread(fd, 7, 0) == b"durable"
    # a read-only fd can be fsync'd, as with os.fsync
    with opened(path, os.O_RDONLY) as fd:
        ring.prep_fsync(fd)
        assert one(ring).res == 0 == os_errno(lambda: os.fsync(fd))
    # fsync of a pipe: EINVAL, as os.fsync
    with pipe() as (_r, w):
        ring.prep_fsync(w)
        assert one(ring).res == -os_errno(lambda: os.fsync(w)) == -errno.EINVAL


def test_fsync_bad_flags(ring: Ring, tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    with opened(path, os.O_RDWR | os.O_CREAT) as fd:
        ring.prep_fsync(fd, 0x80)
        assert one(ring).res == -errno.EINVAL


def test_sync_file_range(ring: Ring, tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    SYNC_FILE_RANGE_WRITE = 2
    with opened(path, os.O_RDWR | os.O_CREAT) as fd:
        os.write(fd, os.urandom(8192))
        ring.prep_sync_file_range(fd, 8192, 0, SYNC_FILE_RANGE_WRITE, user_data=1)
        ring.prep_sync_file_range(fd, 8192, 0, 0xFF, user_data=2)  # unknown flag bits
        got = by_ud(run(ring, 2))
        libc = _syscall.libc()
        assert libc.sync_file_range(fd, ctypes.c_int64(0), ctypes.c_int64(8192), 0xFF) == -1
        assert got[1].res == 0
        assert got[2].res == -ctypes.get_errno() == -errno.EINVAL


# ---------------------------------------------------------------------------
# fallocate, fadvise, madvise, ftruncate
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [0, FALLOC_FL_KEEP_SIZE,
                                  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                  FALLOC_FL_ZERO_RANGE])
def test_fallocate_matches_libc(ring: Ring, tmp_path: Any, mode: int) -> None:
    a = os.path.join(str(tmp_path), "ring")
    b = os.path.join(str(tmp_path), "os")
    data = os.urandom(64 * 1024)
    write_file(a, data)
    write_file(b, data)
    with opened(a, os.O_RDWR) as fa, opened(b, os.O_RDWR) as fb:
        ring.prep_fallocate(fa, mode, 16384, 1 << 20)
        assert one(ring).res == 0
        if mode == 0:
            os.posix_fallocate(fb, 16384, 1 << 20)
        else:
            _libc_fallocate(fb, mode, 16384, 1 << 20)
    sa, sb = os.stat(a), os.stat(b)
    assert sa.st_size == sb.st_size
    assert sa.st_blocks == sb.st_blocks
    assert read_file(a) == read_file(b)
    if mode & FALLOC_FL_KEEP_SIZE:
        assert sa.st_size == len(data)
    else:
        assert sa.st_size == 16384 + (1 << 20)


def test_fallocate_errors_match(ring: Ring, tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    write_file(path, b"x")
    with opened(path, os.O_RDONLY) as fd:
        ring.prep_fallocate(fd, 0, 0, 4096)
        assert one(ring).res == -os_errno(lambda: os.posix_fallocate(fd, 0, 4096))
    with opened(path, os.O_RDWR) as fd:
        ring.prep_fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096)  # PUNCH_HOLE needs KEEP_SIZE
        res = one(ring).res
        assert res == -os_errno(lambda: _libc_fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096))
        assert res == -errno.EOPNOTSUPP


def test_fadvise(ring: Ring, datafile: Tuple[str, bytes]) -> None:
    path, _ = datafile
    with opened(path, os.O_RDONLY) as fd:
        advices = [os.POSIX_FADV_NORMAL, os.POSIX_FADV_SEQUENTIAL, os.POSIX_FADV_RANDOM,
                   os.POSIX_FADV_WILLNEED, os.POSIX_FADV_DONTNEED, os.POSIX_FADV_NOREUSE, 99]
        for i, adv in enumerate(advices):
            ring.prep_fadvise(fd, 0, 4096, adv, user_data=i)
        got = by_ud(run(ring, len(advices)))
        for i, adv in enumerate(advices):
            assert got[i].res == -os_errno(partial(os.posix_fadvise, fd, 0, 4096, adv))
        assert got[len(advices) - 1].res == -errno.EINVAL
    with pipe() as (r, _w):
        ring.prep_fadvise(r, 0, 0, os.POSIX_FADV_NORMAL)
        assert one(ring).res == -os_errno(lambda: os.posix_fadvise(r, 0, 0, 0)) == -errno.ESPIPE


def test_madvise_dontneed_zeroes_anonymous_memory(ring: Ring) -> None:
    need("MADVISE")
    size = 4 * mmap.PAGESIZE
    mine = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    theirs = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    payload = os.urandom(size)
    mine[:] = payload
    theirs[:] = payload
    ring.prep_madvise(mine, size, mmap.MADV_DONTNEED, user_data=1)
    ring.prep_madvise(mine, size, mmap.MADV_WILLNEED, user_data=2)
    ring.prep_madvise(mine, size, 12345, user_data=3)
    got = by_ud(run(ring, 3))
    theirs.madvise(mmap.MADV_DONTNEED)
    assert got[1].res == 0 and got[2].res == 0
    assert mine[:] == theirs[:] == bytes(size)
    with pytest.raises(OSError) as ei:
        theirs.madvise(12345)
    assert got[3].res == -(ei.value.errno or 0) == -errno.EINVAL


def test_ftruncate(ring: Ring, tmp_path: Any) -> None:
    need("FTRUNCATE")
    a = os.path.join(str(tmp_path), "ring")
    b = os.path.join(str(tmp_path), "os")
    data = os.urandom(10000)
    write_file(a, data)
    write_file(b, data)
    with opened(a, os.O_RDWR) as fa, opened(b, os.O_RDWR) as fb:
        for size in (5000, 0, 123456, 7):
            ring.prep_ftruncate(fa, size)
            assert one(ring).res == 0
            os.ftruncate(fb, size)
            assert read_file(a) == read_file(b)
            assert os.fstat(fa).st_size == size
    with opened(a, os.O_RDONLY) as fa:
        ring.prep_ftruncate(fa, 0)
        assert one(ring).res == -os_errno(lambda: os.ftruncate(fa, 0))
        ring.prep_ftruncate(fa, -1)
        assert one(ring).res == -errno.EINVAL
    assert os.stat(a).st_size == 7


# ---------------------------------------------------------------------------
# splice, tee, pipe
# ---------------------------------------------------------------------------

def test_splice_file_pipe_file(ring: Ring, tmp_path: Any, datafile: Tuple[str, bytes]) -> None:
    path, data = datafile
    out = os.path.join(str(tmp_path), "out")
    with opened(path, os.O_RDONLY) as src, opened(out, os.O_RDWR | os.O_CREAT) as dst, \
            pipe() as (r, w):
        ring.prep_splice(src, 1000, w, -1, 5000, user_data=1, flags=A.IOSQE_IO_LINK)
        ring.prep_splice(r, -1, dst, 64, 5000, user_data=2)
        got = by_ud(run(ring, 2))
        assert got[1].res == 5000 and got[2].res == 5000
        # with offsets given, neither file position moved
        assert os.lseek(src, 0, os.SEEK_CUR) == 0 and os.lseek(dst, 0, os.SEEK_CUR) == 0
        # -1 on the file side uses the file position, as splice(2) with NULL
        os.lseek(src, 7, os.SEEK_SET)
        ring.prep_splice(src, -1, w, -1, 10)
        assert one(ring).res == 10
        assert os.lseek(src, 0, os.SEEK_CUR) == 17
        assert os.read(r, 100) == data[7:17]
    assert read_file(out) == bytes(64) + data[1000:6000]


@pytest.mark.skipif(not hasattr(os, "splice"), reason="os.splice needs Python 3.10")
def test_splice_errors_match_os(ring: Ring, datafile: Tuple[str, bytes]) -> None:
    path, _ = datafile
    with opened(path, os.O_RDONLY) as src, opened(path + "2", os.O_WRONLY | os.O_CREAT) as dst:
        # neither end is a pipe
        ring.prep_splice(src, 0, dst, 0, 10, user_data=1)
        # the output is not open for writing
        ring.prep_splice(src, 0, src, 0, 10, user_data=2)
        got = by_ud(run(ring, 2))
        assert got[1].res == -os_errno(lambda: os.splice(src, dst, 10, 0, 0)) == -errno.EINVAL
        assert got[2].res == -os_errno(lambda: os.splice(src, src, 10, 0, 0)) == -errno.EBADF


def test_splice_from_registered_file(ring: Ring, datafile: Tuple[str, bytes]) -> None:
    path, data = datafile
    with opened(path, os.O_RDONLY) as src, pipe() as (r, w):
        ring.register_files([src])
        ring.prep_splice(0, 0, w, -1, 100, A.SPLICE_F_FD_IN_FIXED)
        assert one(ring).res == 100
        assert os.read(r, 200) == data[:100]


def test_tee_duplicates_pipe_data(ring: Ring) -> None:
    with pipe() as (r1, w1), pipe() as (r2, w2):
        os.write(w1, b"teed data")
        ring.prep_tee(r1, w2, 100)
        assert one(ring).res == 9
        assert os.read(r2, 100) == b"teed data"
        assert os.read(r1, 100) == b"teed data"  # tee does not consume
        # tee from a non-pipe: EINVAL, as tee(2)
        ring.prep_tee(ring.fd, w2, 1)
        assert one(ring).res == -errno.EINVAL


def _cloexec(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)


@pytest.mark.parametrize("pipe_flags", [0, os.O_CLOEXEC, os.O_NONBLOCK | os.O_CLOEXEC])
def test_pipe_op(ring: Ring, pipe_flags: int) -> None:
    need("PIPE")
    fds = bytearray(8)
    ring.prep_pipe(fds, pipe_flags)
    assert one(ring).res == 0
    r, w = struct.unpack("=ii", fds)
    r2, w2 = os.pipe2(pipe_flags)
    try:
        assert stat.S_ISFIFO(os.fstat(r).st_mode) and stat.S_ISFIFO(os.fstat(w).st_mode)
        os.write(w, b"through the ring's pipe")
        assert os.read(r, 100) == b"through the ring's pipe"
        for mine, theirs in ((r, r2), (w, w2)):
            assert _cloexec(mine) == _cloexec(theirs)
            assert (fcntl.fcntl(mine, fcntl.F_GETFL) & os.O_NONBLOCK) == \
                (fcntl.fcntl(theirs, fcntl.F_GETFL) & os.O_NONBLOCK)
    finally:
        for fd in (r, w, r2, w2):
            os.close(fd)
    with pytest.raises(ValueError):
        ring.prep_pipe(bytearray(4))


def test_pipe_direct(ring: Ring) -> None:
    need("PIPE")
    ring.register_files_sparse(8)
    fds = bytearray(8)
    ring.prep_pipe_direct(fds, 0, 2)
    assert one(ring).res == 0
    r_slot, w_slot = struct.unpack("=ii", fds)
    assert (r_slot, w_slot) == (2, 3)
    buf = bytearray(16)
    ring.prep_write(w_slot, b"direct", None, -1, flags=A.IOSQE_FIXED_FILE | A.IOSQE_IO_LINK,
                    user_data=1)
    ring.prep_read(r_slot, buf, 16, -1, flags=A.IOSQE_FIXED_FILE, user_data=2)
    got = by_ud(run(ring, 2))
    assert got[1].res == 6 and got[2].res == 6 and buf[:6] == b"direct"


# ---------------------------------------------------------------------------
# openat, openat2, close
# ---------------------------------------------------------------------------

def test_openat_creates_like_os_open(ring: Ring, tmp_path: Any) -> None:
    a = os.path.join(str(tmp_path), "ring")
    b = os.path.join(str(tmp_path), "os")
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    ring.prep_openat(A.AT_FDCWD, a, flags, 0o751)
    fd = one(ring).check()
    fb = os.open(b, flags, 0o751)
    try:
        assert os.fstat(fd).st_ino == os.stat(a).st_ino
        assert os.stat(a).st_mode == os.stat(b).st_mode
        assert _cloexec(fd) and _cloexec(fb)
        assert fcntl.fcntl(fd, fcntl.F_GETFL) == fcntl.fcntl(fb, fcntl.F_GETFL)
        os.write(fd, b"written through the ring's fd")
    finally:
        os.close(fd)
        os.close(fb)
    assert read_file(a) == b"written through the ring's fd"


def test_openat_relative_to_dirfd(ring: Ring, tmp_path: Any) -> None:
    os.mkdir(os.path.join(str(tmp_path), "sub"))
    write_file(os.path.join(str(tmp_path), "sub", "f"), b"relative")
    with opened(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY) as dfd:
        for path in ("sub/f", b"sub/f", os.path.join(str(tmp_path), "sub", "f")):
            ring.prep_openat(dfd, path, os.O_RDONLY)
            fd = one(ring).check()
            try:
                assert os.read(fd, 100) == b"relative"
            finally:
                os.close(fd)


@pytest.mark.parametrize(("case", "exc"), [
    ("missing", FileNotFoundError),
    ("exists", FileExistsError),
    ("notdir", NotADirectoryError),
    ("isdir", IsADirectoryError),
])
def test_openat_errors_map_to_os_exceptions(ring: Ring, tmp_path: Any, case: str,
                                            exc: type) -> None:
    base = str(tmp_path)
    write_file(os.path.join(base, "file"), b"")
    args: Dict[str, Tuple[str, int]] = {
        "missing": (os.path.join(base, "nope"), os.O_RDONLY),
        "exists": (os.path.join(base, "file"), os.O_RDWR | os.O_CREAT | os.O_EXCL),
        "notdir": (os.path.join(base, "file", "x"), os.O_RDONLY),
        "isdir": (base, os.O_WRONLY),
    }
    path, flags = args[case]
    ring.prep_openat(A.AT_FDCWD, path, flags, 0o644, user_data=5)
    cqe = one(ring)
    with pytest.raises(OSError) as os_exc:
        os.open(path, flags, 0o644)
    assert cqe.res == -(os_exc.value.errno or 0)
    assert cqe.path == os.fsencode(path)
    with pytest.raises(exc) as ei:
        cqe.check()
    err = ei.value
    assert type(err) is type(os_exc.value)
    assert err.errno == os_exc.value.errno
    assert err.filename == path
    assert "OPENAT" in str(err)
    assert err.strerror is not None and os.strerror(err.errno or 0) in err.strerror


def test_permission_error_as_unprivileged_user(tmp_path: Any) -> None:
    """A non-root process gets PermissionError (with the path) for a 0600 root file."""
    if not IS_ROOT:
        pytest.skip("needs root to drop to another user")
    secret = os.path.join(str(tmp_path), "secret")
    write_file(secret, b"root only")
    os.chmod(secret, 0o600)
    os.chmod(str(tmp_path), 0o755)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            with Ring(4) as r:
                r.prep_openat(A.AT_FDCWD, secret, os.O_RDONLY)
                cqe = r.wait_cqe(timeout=5)
                try:
                    cqe.check()
                except PermissionError as exc:
                    if exc.filename == secret and exc.errno == errno.EACCES \
                            and "OPENAT" in str(exc) \
                            and os_errno(lambda: os.open(secret, os.O_RDONLY)) == errno.EACCES:
                        code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_openat2_resolve_flags(ring: Ring, tmp_path: Any) -> None:
    base = str(tmp_path)
    os.mkdir(os.path.join(base, "root"))
    write_file(os.path.join(base, "outside"), b"outside")
    write_file(os.path.join(base, "root", "inside"), b"inside")
    os.symlink("inside", os.path.join(base, "root", "link"))
    os.symlink("/outside", os.path.join(base, "root", "abslink"))
    R = os.O_RDONLY
    cases = [
        ("inside", A.RESOLVE_BENEATH),
        ("../outside", A.RESOLVE_BENEATH),
        (os.path.join(base, "outside"), A.RESOLVE_BENEATH),
        ("link", A.RESOLVE_NO_SYMLINKS),
        ("link", A.RESOLVE_BENEATH),
        ("abslink", A.RESOLVE_BENEATH),
        ("abslink", A.RESOLVE_IN_ROOT),  # "/outside" inside the root does not exist
        ("/inside", A.RESOLVE_IN_ROOT),
        ("inside", 1 << 40),  # unknown resolve bit
    ]
    with opened(os.path.join(base, "root"), os.O_RDONLY | os.O_DIRECTORY) as dfd:
        for i, (path, resolve) in enumerate(cases):
            ring.prep_openat2(dfd, path, R, 0, resolve, user_data=i)
        got = by_ud(run(ring, len(cases)))
        for i, (path, resolve) in enumerate(cases):
            try:
                expected_fd = _syscall.openat2(dfd, os.fsencode(path), R, 0, resolve)
                expected = 0
                os.close(expected_fd)
            except OSError as exc:
                expected = exc.errno or 0
            res = got[i].res
            if expected:
                assert res == -expected, (path, resolve)
            else:
                assert res >= 0, (path, resolve, res)
                assert os.read(res, 100) == b"inside"
                os.close(res)
    results = [got[i].res for i in range(len(cases))]
    assert results[1] == results[2] == results[5] == -errno.EXDEV
    assert results[3] == -errno.ELOOP
    assert results[6] == -errno.ENOENT
    assert results[8] == -errno.EINVAL


def test_openat2_mode_without_creat_is_einval(ring: Ring, tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    ring.prep_openat2(A.AT_FDCWD, path, os.O_RDONLY, 0o644, 0)
    assert one(ring).res == -errno.EINVAL
    ring.prep_openat2(A.AT_FDCWD, path, os.O_RDWR | os.O_CREAT, 0o600, 0)
    fd = one(ring).check()
    os.close(fd)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_close(ring: Ring, tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    write_file(path, b"")
    fd = os.open(path, os.O_RDONLY)
    ring.prep_close(fd)
    assert one(ring).res == 0
    with pytest.raises(OSError) as ei:
        os.fstat(fd)
    assert ei.value.errno == errno.EBADF
    ring.prep_close(fd)  # already closed
    assert one(ring).res == -os_errno(lambda: os.close(fd)) == -errno.EBADF


def test_open_read_close_chain(ring: Ring, datafile: Tuple[str, bytes]) -> None:
    """open -> read -> close linked through a direct descriptor: one submit."""
    path, data = datafile
    ring.register_files_sparse(4)
    buf = bytearray(200)
    L = A.IOSQE_IO_LINK
    ring.prep_openat_direct(A.AT_FDCWD, path, os.O_RDONLY, 0, 1, user_data=1, flags=L)
    ring.prep_read(1, buf, 200, 50, user_data=2, flags=L | A.IOSQE_FIXED_FILE)
    ring.prep_close_direct(1, user_data=3)
    got = by_ud(run(ring, 3))
    assert [got[i].res for i in (1, 2, 3)] == [0, 200, 0]
    assert bytes(buf) == data[50:250]


# ---------------------------------------------------------------------------
# statx
# ---------------------------------------------------------------------------

def _statx_fields(buf: Union[bytes, bytearray]) -> Dict[str, Any]:
    v = A.STATX.unpack(bytes(buf))
    names = ["mask", "blksize", "attributes", "nlink", "uid", "gid", "mode", "_spare0",
             "ino", "size", "blocks", "attributes_mask"]
    out: Dict[str, Any] = dict(zip(names, v[:12]))
    for i, ts in enumerate(("atime", "btime", "ctime", "mtime")):
        sec, nsec, _ = v[12 + 3 * i: 15 + 3 * i]
        out[ts] = sec * 1_000_000_000 + nsec
    (out["rdev_major"], out["rdev_minor"], out["dev_major"], out["dev_minor"],
     out["mnt_id"], out["dio_mem_align"], out["dio_offset_align"]) = v[24:31]
    return out


def _compare_with_stat(fields: Dict[str, Any], st: os.stat_result) -> None:
    assert fields["mask"] & A.STATX_BASIC_STATS == A.STATX_BASIC_STATS
    assert fields["mode"] == st.st_mode
    assert fields["ino"] == st.st_ino
    assert fields["nlink"] == st.st_nlink
    assert fields["uid"] == st.st_uid
    assert fields["gid"] == st.st_gid
    assert fields["size"] == st.st_size
    assert fields["blocks"] == st.st_blocks
    assert fields["blksize"] == st.st_blksize
    assert fields["atime"] == st.st_atime_ns
    assert fields["mtime"] == st.st_mtime_ns
    assert fields["ctime"] == st.st_ctime_ns
    assert os.makedev(fields["dev_major"], fields["dev_minor"]) == st.st_dev
    assert os.makedev(fields["rdev_major"], fields["rdev_minor"]) == st.st_rdev


def test_statx_every_field(ring: Ring, tmp_path: Any) -> None:
    base = str(tmp_path)
    f = os.path.join(base, "file")
    write_file(f, os.urandom(10000))
    os.utime(f, ns=(1_234_567_891_111_222_333 // 1000, 987_654_321_123_456_789 // 1000))
    os.symlink("file", os.path.join(base, "link"))
    # following the link reads it, which would update its atime (relatime)
    # between the ring's statx and os.lstat: an atime after ctime prevents that
    soon = time.time_ns() + 3600 * 10**9
    os.utime(os.path.join(base, "link"), ns=(soon, soon - 7200 * 10**9),
             follow_symlinks=False)
    os.mkfifo(os.path.join(base, "fifo"))
    os.link(f, os.path.join(base, "hard"))
    mask = A.STATX_BASIC_STATS | A.STATX_BTIME | A.STATX_MNT_ID
    targets = [
        ("file", 0, os.stat),
        ("link", 0, os.stat),
        ("link", A.AT_SYMLINK_NOFOLLOW, os.lstat),
        ("fifo", 0, os.stat),
        (".", 0, os.stat),
        ("/dev/null", 0, os.stat),
    ]
    with opened(base, os.O_RDONLY | os.O_DIRECTORY) as dfd:
        bufs = [bytearray(A.STATX.size) for _ in targets]
        for i, ((name, fl, _), b) in enumerate(zip(targets, bufs)):
            ring.prep_statx(dfd, name, fl, mask, b, user_data=i)
        got = by_ud(run(ring, len(targets)))
        for i, ((name, fl, fn), b) in enumerate(zip(targets, bufs)):
            assert got[i].res == 0, name
            path = name if name.startswith("/") else os.path.join(base, name)
            _compare_with_stat(_statx_fields(b), fn(path))
            # every byte equals what the statx(2) system call itself writes
            direct = ctypes.create_string_buffer(A.STATX.size)
            _syscall.statx(dfd, os.fsencode(name), fl, mask, direct)
            assert bytes(b) == direct.raw, name
    fields = _statx_fields(bufs[0])
    assert fields["size"] == 10000 and fields["nlink"] == 2
    assert fields["mtime"] == 987_654_321_123_456_789 // 1000
    assert fields["mask"] & A.STATX_BTIME and fields["btime"] > 0
    assert stat.S_ISLNK(_statx_fields(bufs[2])["mode"])
    assert stat.S_ISCHR(_statx_fields(bufs[5])["mode"])


def test_statx_empty_path_on_fd(ring: Ring, datafile: Tuple[str, bytes]) -> None:
    path, _ = datafile
    with opened(path, os.O_RDONLY) as fd:
        buf = bytearray(A.STATX.size)
        ring.prep_statx(fd, "", A.AT_EMPTY_PATH, A.STATX_BASIC_STATS, buf)
        assert one(ring).res == 0
        _compare_with_stat(_statx_fields(buf), os.fstat(fd))
        # without AT_EMPTY_PATH an empty name is ENOENT, as stat("")
        ring.prep_statx(fd, "", 0, A.STATX_BASIC_STATS, buf)
        assert one(ring).res == -os_errno(lambda: os.stat("")) == -errno.ENOENT


def test_statx_errors(ring: Ring, tmp_path: Any) -> None:
    missing = os.path.join(str(tmp_path), "missing")
    buf = bytearray(A.STATX.size)
    ring.prep_statx(A.AT_FDCWD, missing, 0, A.STATX_BASIC_STATS, buf)
    cqe = one(ring)
    assert cqe.res == -errno.ENOENT
    with pytest.raises(FileNotFoundError) as ei:
        cqe.check()
    assert ei.value.filename == missing and "STATX" in str(ei.value)
    with pytest.raises(ValueError):
        ring.prep_statx(A.AT_FDCWD, missing, 0, A.STATX_BASIC_STATS, bytearray(100))
    with pytest.raises(ValueError):
        ring.prep_statx(A.AT_FDCWD, "a\0b", 0, A.STATX_BASIC_STATS, buf)
    assert ring.pending() == 0


def test_raw_uring_cmd(ring: Ring) -> None:
    """prep_uring_cmd reaches the file's ->uring_cmd: /dev/null implements a
    no-op one, a pipe none at all."""
    with opened(os.devnull, os.O_RDONLY) as fd, pipe() as (r, _w):
        ring.prep_uring_cmd(fd, 0, user_data=1)
        ring.prep_uring_cmd(r, 0, user_data=2)
        got = by_ud(run(ring, 2))
        assert got[1].res == 0
        assert got[2].res == -errno.EOPNOTSUPP
