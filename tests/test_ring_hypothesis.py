"""Property tests: random sequences of operations through the ring and
through os (or a model of the kernel's rules) must end in the same state.
"""

from __future__ import annotations

import ctypes
import errno
import os
import tempfile
from typing import Any, Dict, List, Optional, Tuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyuring import Completion, Ring, _syscall
from pyuring import _abi as A

from .conftest import URING
from .test_ring_support import make_ring, run

pytestmark = pytest.mark.skipif(not URING, reason="io_uring is unavailable here")

KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE = 0x01, 0x02, 0x10
MAX_OFF = 1 << 17

Op = Tuple[Any, ...]

offsets = st.integers(0, MAX_OFF)
payloads = st.binary(min_size=1, max_size=6000)
file_ops = st.one_of(
    st.tuples(st.just("write"), offsets, payloads),
    st.tuples(st.just("writev"), offsets, st.lists(st.binary(max_size=3000), min_size=1,
                                                   max_size=4)),
    st.tuples(st.just("read"), offsets, st.integers(0, 9000)),
    st.tuples(st.just("readv"), offsets, st.lists(st.integers(0, 3000), min_size=1, max_size=4)),
    st.tuples(st.just("truncate"), offsets),
    st.tuples(st.just("fallocate"), st.sampled_from([0, KEEP_SIZE, PUNCH_HOLE | KEEP_SIZE,
                                                     ZERO_RANGE, ZERO_RANGE | KEEP_SIZE]),
              offsets, st.integers(1, 1 << 16)),
    st.tuples(st.just("fsync"), st.booleans()),
)


def _fallocate(fd: int, mode: int, off: int, length: int) -> None:
    libc = _syscall.libc()
    if libc.fallocate(fd, mode, ctypes.c_int64(off), ctypes.c_int64(length)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _apply_os(fd: int, op: Op) -> Tuple[int, Optional[bytes]]:
    """Run ``op`` with os calls: (result or -errno, bytes read)."""
    kind = op[0]
    try:
        if kind == "write":
            return os.pwrite(fd, op[2], op[1]), None
        if kind == "writev":
            return os.pwritev(fd, op[2], op[1]), None
        if kind == "read":
            data = os.pread(fd, op[2], op[1])
            return len(data), data
        if kind == "readv":
            bufs = [bytearray(n) for n in op[2]]
            n = os.preadv(fd, bufs, op[1])
            return n, b"".join(bufs)[:n]
        if kind == "truncate":
            os.ftruncate(fd, op[1])
            return 0, None
        if kind == "fallocate":
            _fallocate(fd, op[1], op[2], op[3])
            return 0, None
        if kind == "fsync":
            (os.fdatasync if op[1] else os.fsync)(fd)
            return 0, None
    except OSError as exc:
        return -(exc.errno or 0), None
    raise AssertionError(op)


def _prep_ring(ring: Ring, fd: int, op: Op, flags: int, ud: int) -> Any:
    """Prepare ``op`` on the ring; returns what to read the data from."""
    kind = op[0]
    if kind == "write":
        ring.prep_write(fd, op[2], None, op[1], flags=flags, user_data=ud)
    elif kind == "writev":
        ring.prep_writev(fd, op[2], op[1], flags=flags, user_data=ud)
    elif kind == "read":
        buf = bytearray(op[2])
        ring.prep_read(fd, buf, op[2], op[1], flags=flags, user_data=ud)
        return buf
    elif kind == "readv":
        bufs = [bytearray(n) for n in op[2]]
        ring.prep_readv(fd, bufs, op[1], flags=flags, user_data=ud)
        return bufs
    elif kind == "truncate":
        ring.prep_ftruncate(fd, op[1], flags=flags, user_data=ud)
    elif kind == "fallocate":
        ring.prep_fallocate(fd, op[1], op[2], op[3], flags=flags, user_data=ud)
    elif kind == "fsync":
        ring.prep_fsync(fd, A.IORING_FSYNC_DATASYNC if op[1] else 0, flags=flags,
                        user_data=ud)
    return None


def _data(kept: Any, res: int) -> Optional[bytes]:
    if kept is None:
        return None
    if isinstance(kept, list):
        return b"".join(bytes(b) for b in kept)[:res]
    return bytes(kept[:res])


class _Twins:
    def __init__(self) -> None:
        self.dir = tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp"))
        self.a = os.open(os.path.join(self.dir.name, "ring"), os.O_RDWR | os.O_CREAT, 0o600)
        self.b = os.open(os.path.join(self.dir.name, "os"), os.O_RDWR | os.O_CREAT, 0o600)

    def close(self) -> None:
        os.close(self.a)
        os.close(self.b)
        self.dir.cleanup()

    def same(self) -> None:
        sa, sb = os.fstat(self.a), os.fstat(self.b)
        assert sa.st_size == sb.st_size
        assert os.pread(self.a, sa.st_size + 1, 0) == os.pread(self.b, sb.st_size + 1, 0)


@pytest.mark.parametrize("mode", ["fast", "plain"])
@given(ops=st.lists(file_ops, min_size=1, max_size=25))
def test_random_file_ops_one_at_a_time(mode: str, ops: List[Op]) -> None:
    twins = _Twins()
    try:
        with make_ring(mode, 8) as ring:
            for i, op in enumerate(ops):
                kept = _prep_ring(ring, twins.a, op, 0, i)
                cqe = run(ring, 1)[0]
                expected, data = _apply_os(twins.b, op)
                assert cqe.user_data == i
                assert cqe.res == expected, op
                assert _data(kept, cqe.res) == data, op
            twins.same()
    finally:
        twins.close()


@pytest.mark.parametrize("mode", ["fast", "plain"])
@given(ops=st.lists(file_ops, min_size=1, max_size=30))
def test_random_file_ops_as_one_hardlinked_chain(mode: str, ops: List[Op]) -> None:
    """All operations in one submission, ordered by IOSQE_IO_HARDLINK (which
    survives the short reads that would break a plain link)."""
    twins = _Twins()
    try:
        with make_ring(mode, 32) as ring:
            kept = [
                _prep_ring(ring, twins.a, op, A.IOSQE_IO_HARDLINK if i < len(ops) - 1 else 0, i)
                for i, op in enumerate(ops)
            ]
            got: Dict[int, Completion] = {c.user_data: c for c in run(ring, len(ops))}
            for i, op in enumerate(ops):
                expected, data = _apply_os(twins.b, op)
                assert got[i].res == expected, (i, op)
                assert _data(kept[i], got[i].res) == data, (i, op)
            twins.same()
            assert ring.inflight() == 0
    finally:
        twins.close()


# ---------------------------------------------------------------------------
# link-chain semantics against a model of the kernel's rules
# ---------------------------------------------------------------------------

Member = Tuple[bool, bool, bool]  # (fails, hardlink, skip_success)
chains = st.lists(st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans()),
                           min_size=1, max_size=8), min_size=1, max_size=12)


def _model(chain_list: List[List[Member]]) -> Dict[int, int]:
    """The CQEs the kernel posts: user_data -> res.

    * a member that fails under a plain link cancels every later member of
      its chain with -ECANCELED; under a hard link it does not;
    * IOSQE_CQE_SKIP_SUCCESS suppresses the CQE of a success;
    * if the failing member had CQE_SKIP_SUCCESS, the cancelled ones post
      nothing at all (REQ_F_SKIP_LINK_CQES); otherwise each posts a CQE, even
      one flagged CQE_SKIP_SUCCESS.
    """
    out: Dict[int, int] = {}
    ud = 0
    for chain in chain_list:
        cancelled, silent = False, False
        for i, (fails, hard, skip) in enumerate(chain):
            ud += 1
            last = i == len(chain) - 1
            if cancelled:
                if not silent:
                    out[ud] = -errno.ECANCELED
                continue
            res = -errno.EIO if fails else 0
            if res < 0 or not skip:
                out[ud] = res
            if res < 0 and not last and not hard:
                cancelled, silent = True, skip
    return out


@given(chain_list=chains)
def test_link_chain_semantics_match_the_model(chain_list: List[List[Member]]) -> None:
    with Ring(8) as ring:  # chains of up to 8 on an 8-entry SQ: fill it, never split
        ud = 0
        for chain in chain_list:
            for i, (fails, hard, skip) in enumerate(chain):
                ud += 1
                flags = 0
                if i < len(chain) - 1:
                    flags |= A.IOSQE_IO_HARDLINK if hard else A.IOSQE_IO_LINK
                if skip:
                    flags |= A.IOSQE_CQE_SKIP_SUCCESS
                if fails:
                    ring.prep_nop(user_data=ud, flags=flags,
                                  nop_flags=A.IORING_NOP_INJECT_RESULT, result=-errno.EIO)
                else:
                    ring.prep_nop(user_data=ud, flags=flags)
        expected = _model(chain_list)
        got = {c.user_data: c.res for c in run(ring, len(expected))} if expected else {}
        ring.submit()
        assert ring.reap() == []
        assert got == expected
