"""Ring conformance: link chains, drain, skip-cqe, timeouts and cancellation.

liburing tests whose behaviour is ported here: link, link_drain,
link-timeout, skip-cqe, timeout, timeout-new, io-cancel, async-cancel.
"""

from __future__ import annotations

import errno
import os
import time
from typing import Any, Tuple

import pytest

from pyuring import Ring
from pyuring import _abi as A

from .conftest import URING
from .test_ring_support import (
    by_ud,
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

L = A.IOSQE_IO_LINK
HL = A.IOSQE_IO_HARDLINK
SKIP = A.IOSQE_CQE_SKIP_SUCCESS
ECANCELED = -errno.ECANCELED


@pytest.fixture
def small_file(tmp_path: Any) -> Tuple[str, bytes]:
    path = os.path.join(str(tmp_path), "f")
    data = os.urandom(100)
    write_file(path, data)
    return path, data


# ---------------------------------------------------------------------------
# links
# ---------------------------------------------------------------------------

def test_link_chain_runs_in_order(ring: Ring, tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    buf = bytearray(11)
    with opened(path, os.O_RDWR | os.O_CREAT) as fd:
        ring.prep_write(fd, b"hello", None, 0, user_data=1, flags=L)
        ring.prep_write(fd, b" world", None, 5, user_data=2, flags=L)
        ring.prep_read(fd, buf, 11, 0, user_data=3)
        got = by_ud(run(ring, 3))
    assert [got[i].res for i in (1, 2, 3)] == [5, 6, 11]
    assert bytes(buf) == b"hello world"


def test_failing_head_cancels_the_rest(ring: Ring, tmp_path: Any) -> None:
    missing = os.path.join(str(tmp_path), "missing")
    ring.register_files_sparse(2)
    ring.prep_openat_direct(A.AT_FDCWD, missing, os.O_RDONLY, 0, 0, user_data=1, flags=L)
    ring.prep_read(0, bytearray(8), 8, 0, user_data=2, flags=L | A.IOSQE_FIXED_FILE)
    ring.prep_close_direct(0, user_data=3, flags=L)
    ring.prep_nop(user_data=4)
    ring.prep_nop(user_data=5)  # not part of the chain
    got = by_ud(run(ring, 5))
    assert got[1].res == -errno.ENOENT
    assert [got[i].res for i in (2, 3, 4)] == [ECANCELED] * 3
    assert got[5].res == 0
    with pytest.raises(OSError) as ei:
        got[2].check()
    assert ei.value.errno == errno.ECANCELED and "READ" in str(ei.value)


def test_short_read_breaks_a_link_but_not_a_hardlink(ring: Ring,
                                                     small_file: Tuple[str, bytes]) -> None:
    path, data = small_file
    with opened(path, os.O_RDONLY) as fd:
        buf = bytearray(4096)
        ring.prep_read(fd, buf, 4096, 0, user_data=1, flags=L)
        ring.prep_nop(user_data=2)
        got = by_ud(run(ring, 2))
        assert got[1].res == 100 and got[2].res == ECANCELED
        ring.prep_read(fd, buf, 4096, 0, user_data=3, flags=HL)
        ring.prep_nop(user_data=4)
        got = by_ud(run(ring, 2))
        assert got[3].res == 100 and got[4].res == 0
        # a failing hardlinked head does not cancel either
        ring.prep_nop(user_data=5, flags=HL, nop_flags=A.IORING_NOP_INJECT_RESULT,
                      result=-errno.EIO)
        ring.prep_nop(user_data=6)
        got = by_ud(run(ring, 2))
        assert got[5].res == -errno.EIO and got[6].res == 0
    assert bytes(buf[:100]) == data


def test_links_are_independent_chains(ring: Ring) -> None:
    fail = dict(nop_flags=A.IORING_NOP_INJECT_RESULT, result=-errno.EPERM)
    ring.prep_nop(user_data=1, flags=L, **fail)
    ring.prep_nop(user_data=2)
    ring.prep_nop(user_data=3, flags=L)
    ring.prep_nop(user_data=4, flags=L)
    ring.prep_nop(user_data=5, **fail)
    ring.prep_nop(user_data=6)
    got = {c.user_data: c.res for c in run(ring, 6)}
    assert got == {1: -errno.EPERM, 2: ECANCELED, 3: 0, 4: 0, 5: -errno.EPERM, 6: 0}


def test_drain_waits_for_everything_before_it(ring: Ring) -> None:
    ring.prep_timeout(0.05, user_data=1)
    ring.prep_nop(user_data=2)
    ring.prep_nop(user_data=3, flags=A.IOSQE_IO_DRAIN)
    ring.prep_nop(user_data=4)
    order = [c.user_data for c in run(ring, 4)]
    # NOP 2 completes at once; the drained NOP only after the timeout, and
    # NOP 4 (submitted after the drain) only after the drained one
    assert order == [2, 1, 3, 4]


def test_without_drain_nothing_waits(ring: Ring) -> None:
    ring.prep_timeout(0.05, user_data=1)
    ring.prep_nop(user_data=3)
    order = [c.user_data for c in run(ring, 2)]
    assert order == [3, 1]


def test_drain_after_links(ring: Ring, small_file: Tuple[str, bytes]) -> None:
    path, data = small_file
    buf = bytearray(100)
    with opened(path, os.O_RDONLY) as fd, pipe() as (r, w):
        pbuf = bytearray(4)
        ring.prep_read(r, pbuf, 4, -1, user_data=1, flags=L)
        ring.prep_read(fd, buf, 100, 0, user_data=2)
        ring.prep_nop(user_data=3, flags=A.IOSQE_IO_DRAIN)
        ring.submit()
        nothing_more(ring, 0.05)  # everything waits behind the pipe read
        os.write(w, b"go!!")
        order = [c.user_data for c in run(ring, 3)]
    assert order == [1, 2, 3]
    assert bytes(buf) == data and bytes(pbuf) == b"go!!"


# ---------------------------------------------------------------------------
# skip-cqe
# ---------------------------------------------------------------------------

def test_skip_success_posts_nothing_on_success(ring: Ring) -> None:
    assert ring.features & A.IORING_FEAT_CQE_SKIP
    for i in range(5):
        ring.prep_nop(user_data=i, flags=SKIP)
    ring.prep_nop(user_data=99)
    assert [c.user_data for c in run(ring, 1)] == [99]
    nothing_more(ring)
    assert ring.stats.sqes == 6


def test_skip_success_posts_failures(ring: Ring, tmp_path: Any) -> None:
    missing = os.path.join(str(tmp_path), "missing")
    ring.prep_openat(A.AT_FDCWD, missing, os.O_RDONLY, user_data=7, flags=SKIP)
    cqe = one(ring)
    assert (cqe.user_data, cqe.res) == (7, -errno.ENOENT)
    with pytest.raises(FileNotFoundError):
        cqe.check()
    nothing_more(ring)


def test_skip_success_in_a_chain(ring: Ring, tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    buf = bytearray(3)
    with opened(path, os.O_RDWR | os.O_CREAT) as fd:
        ring.prep_write(fd, b"abc", None, 0, user_data=1, flags=L | SKIP)
        ring.prep_fsync(fd, user_data=2, flags=L | SKIP)
        ring.prep_read(fd, buf, 3, 0, user_data=3)
        cqes = run(ring, 1)
        assert [(c.user_data, c.res) for c in cqes] == [(3, 3)]
        assert bytes(buf) == b"abc"
        nothing_more(ring)
        # a failure in the middle: its CQE is posted, the rest are cancelled
        ring.prep_nop(user_data=4, flags=L | SKIP)
        ring.prep_nop(user_data=5, flags=L | SKIP, nop_flags=A.IORING_NOP_INJECT_RESULT,
                      result=-errno.EIO)
        ring.prep_nop(user_data=6, flags=L | SKIP)
        ring.prep_nop(user_data=7)
        # The kernel fails the rest of the chain silently when the failing
        # request was itself CQE_SKIP_SUCCESS (REQ_F_SKIP_LINK_CQES): no CQE
        # for 6, nor even for 7, which did not ask to be skipped.
        cqes = run(ring, 1)
        assert [(c.user_data, c.res) for c in cqes] == [(5, -errno.EIO)]
        nothing_more(ring)
        # ... whereas a failing request without the flag lets them post
        ring.prep_nop(user_data=8, flags=L, nop_flags=A.IORING_NOP_INJECT_RESULT,
                      result=-errno.EIO)
        ring.prep_nop(user_data=9, flags=L | SKIP)
        ring.prep_nop(user_data=10)
        got = {c.user_data: c.res for c in run(ring, 3)}
        assert got == {8: -errno.EIO, 9: ECANCELED, 10: ECANCELED}
        nothing_more(ring)


# ---------------------------------------------------------------------------
# timeouts
# ---------------------------------------------------------------------------

def test_relative_timeout(ring: Ring) -> None:
    t0 = time.monotonic()
    ring.prep_timeout(0.05, user_data=1)
    cqe = one(ring)
    elapsed = time.monotonic() - t0
    assert (cqe.user_data, cqe.res) == (1, -errno.ETIME)
    assert 0.045 <= elapsed < 2
    with pytest.raises(OSError) as ei:
        cqe.check()
    assert ei.value.errno == errno.ETIME and "TIMEOUT" in str(ei.value)
    # (sec, nsec) spelling
    t0 = time.monotonic()
    ring.prep_timeout((0, 30_000_000), user_data=2)
    assert one(ring).res == -errno.ETIME
    assert time.monotonic() - t0 >= 0.025


def test_count_timeout_completes_after_n_completions(ring: Ring) -> None:
    ring.prep_timeout(10, 2, user_data=1)
    ring.prep_nop(user_data=2)
    ring.prep_nop(user_data=3)
    t0 = time.monotonic()
    got = by_ud(run(ring, 3))
    assert got[1].res == 0  # satisfied by the count, not the clock
    assert time.monotonic() - t0 < 5


def test_count_timeout_expires_without_enough_completions(ring: Ring) -> None:
    ring.prep_timeout(0.03, 5, user_data=1)
    ring.prep_nop(user_data=2)
    got = by_ud(run(ring, 2))
    assert got[1].res == -errno.ETIME


def test_absolute_timeouts(ring: Ring) -> None:
    t0 = time.monotonic()
    ring.prep_timeout(time.monotonic() + 0.05, 0, A.IORING_TIMEOUT_ABS, user_data=1)
    ring.prep_timeout(time.time() + 0.05, 0,
                      A.IORING_TIMEOUT_ABS | A.IORING_TIMEOUT_REALTIME, user_data=2)
    ring.prep_timeout(time.clock_gettime(time.CLOCK_BOOTTIME) + 0.05, 0,
                      A.IORING_TIMEOUT_ABS | A.IORING_TIMEOUT_BOOTTIME, user_data=3)
    # an absolute time in the past fires at once
    ring.prep_timeout(time.monotonic() - 10, 0, A.IORING_TIMEOUT_ABS, user_data=4)
    got = run(ring, 4)
    assert got[0].user_data == 4
    assert all(c.res == -errno.ETIME for c in got)
    assert 0.04 <= time.monotonic() - t0 < 3
    # two clocks at once: EINVAL
    ring.prep_timeout(1, 0, A.IORING_TIMEOUT_REALTIME | A.IORING_TIMEOUT_BOOTTIME)
    assert one(ring).res == -errno.EINVAL


def test_timeout_remove(ring: Ring) -> None:
    ring.prep_timeout(10, user_data=1)
    ring.submit()
    ring.prep_timeout_remove(1, user_data=2)
    ring.prep_timeout_remove(12345, user_data=3)
    got = by_ud(run(ring, 3))
    assert got[1].res == ECANCELED
    assert got[2].res == 0
    assert got[3].res == -errno.ENOENT


def test_timeout_update(ring: Ring) -> None:
    ring.prep_timeout(10, user_data=1)
    ring.submit()
    t0 = time.monotonic()
    ring.prep_timeout_update(0.02, 1, user_data=2)
    ring.prep_timeout_update(0.02, 999, user_data=3)
    got = by_ud(run(ring, 3))
    assert got[2].res == 0
    assert got[3].res == -errno.ENOENT
    assert got[1].res == -errno.ETIME
    assert time.monotonic() - t0 < 5


def test_timeout_etime_success_keeps_the_link(ring: Ring) -> None:
    ring.prep_timeout(0.01, 0, A.IORING_TIMEOUT_ETIME_SUCCESS, user_data=1, flags=L)
    ring.prep_nop(user_data=2)
    got = by_ud(run(ring, 2))
    assert got[1].res == -errno.ETIME and got[2].res == 0
    ring.prep_timeout(0.01, user_data=3, flags=L)
    ring.prep_nop(user_data=4)
    got = by_ud(run(ring, 2))
    assert got[3].res == -errno.ETIME and got[4].res == ECANCELED


def test_multishot_timeout(ring: Ring) -> None:
    ring.prep_timeout(0.01, 3, A.IORING_TIMEOUT_MULTISHOT, user_data=1)
    cqes = run(ring, 3)
    assert all(c.user_data == 1 and c.res == -errno.ETIME for c in cqes)
    assert [c.more for c in cqes] == [True, True, False]
    assert ring.inflight() == 0
    nothing_more(ring, 0.03)


# ---------------------------------------------------------------------------
# link timeouts
# ---------------------------------------------------------------------------

def test_link_timeout_cancels_a_slow_request(ring: Ring) -> None:
    with pipe() as (r, w):
        buf = bytearray(8)
        t0 = time.monotonic()
        ring.prep_read(r, buf, 8, -1, user_data=1, flags=L)
        ring.prep_link_timeout(0.03, user_data=2)
        got = by_ud(run(ring, 2))
        assert got[1].res == ECANCELED
        assert got[2].res == -errno.ETIME
        assert time.monotonic() - t0 >= 0.025
        os.write(w, b"late")
        assert os.read(r, 8) == b"late"  # the cancelled read consumed nothing


def test_link_timeout_not_reached(ring: Ring) -> None:
    with pipe() as (r, w):
        os.write(w, b"ready")
        buf = bytearray(8)
        ring.prep_read(r, buf, 8, -1, user_data=1, flags=L)
        ring.prep_link_timeout(5, user_data=2)
        got = by_ud(run(ring, 2))
        assert got[1].res == 5 and bytes(buf[:5]) == b"ready"
        assert got[2].res == ECANCELED


def test_link_timeout_then_more_links(ring: Ring) -> None:
    with pipe() as (r, _w):
        ring.prep_read(r, bytearray(8), 8, -1, user_data=1, flags=L)
        ring.prep_link_timeout(0.02, user_data=2, flags=L)
        ring.prep_nop(user_data=3)
        got = by_ud(run(ring, 3))
        assert got[1].res == ECANCELED and got[2].res == -errno.ETIME
        assert got[3].res == ECANCELED


def test_link_timeout_update(ring: Ring) -> None:
    with pipe() as (r, _w):
        ring.prep_read(r, bytearray(8), 8, -1, user_data=1, flags=L)
        ring.prep_link_timeout(10, user_data=2)
        ring.submit()
        t0 = time.monotonic()
        ring.prep_timeout_update(0.02, 2, A.IORING_LINK_TIMEOUT_UPDATE, user_data=3)
        got = by_ud(run(ring, 3))
        assert got[3].res == 0
        assert got[1].res == ECANCELED and got[2].res == -errno.ETIME
        assert time.monotonic() - t0 < 5


def test_lone_link_timeout_is_einval(ring: Ring) -> None:
    ring.prep_link_timeout(1, user_data=1)
    assert one(ring).res == -errno.EINVAL


# ---------------------------------------------------------------------------
# cancellation
# ---------------------------------------------------------------------------

def test_cancel_pending_read(ring: Ring) -> None:
    with pipe() as (r, w):
        ring.prep_read(r, bytearray(8), 8, -1, user_data=1)
        ring.submit()
        ring.prep_cancel(1, user_data=2)
        ring.prep_cancel(424242, user_data=3)
        got = by_ud(run(ring, 3))
        assert got[1].res == ECANCELED
        assert got[2].res == 0
        assert got[3].res == -errno.ENOENT
        assert ring.inflight() == 0
        os.write(w, b"x")
        assert os.read(r, 1) == b"x"


def test_cancel_async_read_in_io_wq(ring: Ring) -> None:
    with pipe() as (r, _w):
        ring.prep_read(r, bytearray(8), 8, -1, user_data=1, flags=A.IOSQE_ASYNC)
        ring.submit()
        time.sleep(0.02)  # let an io-wq worker block in pipe_read
        ring.prep_cancel(1, user_data=2)
        got = by_ud(run(ring, 2))
        # a running blocking read is interrupted rather than dequeued
        assert got[1].res in (ECANCELED, -errno.EINTR)
        assert got[2].res in (0, -errno.EALREADY)


def test_cancel_fd(ring: Ring) -> None:
    with pipe() as (r1, _w1), pipe() as (r2, _w2):
        ring.prep_read(r1, bytearray(1), 1, -1, user_data=1)
        ring.prep_read(r1, bytearray(1), 1, -1, user_data=2)
        ring.prep_read(r2, bytearray(1), 1, -1, user_data=3)
        ring.submit()
        ring.prep_cancel_fd(r1, A.IORING_ASYNC_CANCEL_ALL, user_data=10)
        got = by_ud(run(ring, 3))
        assert got[10].res == 2
        assert got[1].res == ECANCELED and got[2].res == ECANCELED
        assert 3 not in got
        ring.prep_cancel_fd(r2, user_data=11)  # one match without ALL
        got = by_ud(run(ring, 2))
        assert got[11].res == 0 and got[3].res == ECANCELED


def test_cancel_fixed_fd(ring: Ring) -> None:
    with pipe() as (r, _w):
        ring.register_files([r])
        ring.prep_read(0, bytearray(1), 1, -1, user_data=1, flags=A.IOSQE_FIXED_FILE)
        ring.submit()
        ring.prep_cancel_fd(0, A.IORING_ASYNC_CANCEL_FD_FIXED, user_data=2)
        got = by_ud(run(ring, 2))
        assert got[2].res == 0 and got[1].res == ECANCELED


def test_cancel_all_with_same_user_data(ring: Ring) -> None:
    with pipe() as (r, _w):
        for _ in range(3):
            ring.prep_read(r, bytearray(1), 1, -1, user_data=5)
        ring.submit()
        ring.prep_cancel(5, A.IORING_ASYNC_CANCEL_ALL, user_data=6)
        cqes = run(ring, 4)
        assert [c.res for c in cqes if c.user_data == 6] == [3]
        assert [c.res for c in cqes if c.user_data == 5] == [ECANCELED] * 3
        assert ring.inflight() == 0


def test_cancel_any(ring: Ring) -> None:
    with pipe() as (r, _w):
        ring.prep_read(r, bytearray(1), 1, -1, user_data=1)
        ring.prep_timeout(10, user_data=2)
        ring.prep_poll_add(r, 1, user_data=3)
        ring.submit()
        ring.prep_cancel(0, A.IORING_ASYNC_CANCEL_ANY | A.IORING_ASYNC_CANCEL_ALL,
                         user_data=4)
        got = by_ud(run(ring, 4))
        assert got[4].res == 3
        assert [got[i].res for i in (1, 2, 3)] == [ECANCELED] * 3
        nothing_more(ring)


def test_cancel_by_opcode(ring: Ring) -> None:
    with pipe() as (r, _w):
        ring.prep_read(r, bytearray(1), 1, -1, user_data=1)
        ring.prep_timeout(10, user_data=2)
        ring.submit()
        # IORING_ASYNC_CANCEL_OP matches sqe->len's opcode (no prep helper: raw)
        ring.prep_rw(A.IORING_OP_ASYNC_CANCEL, -1, 0, A.IORING_OP_TIMEOUT, 0,
                     op_flags=A.IORING_ASYNC_CANCEL_OP | A.IORING_ASYNC_CANCEL_ALL,
                     user_data=3)
        got = by_ud(run(ring, 2))
        assert got[3].res == 1 and got[2].res == ECANCELED
        ring.prep_cancel(1, user_data=4)
        got = by_ud(run(ring, 2))
        assert got[4].res == 0 and got[1].res == ECANCELED
