"""Ring conformance: setup, NOP, probe, waiting, queue limits, counters, fork,
threads and the "io_uring unavailable" paths.

liburing tests whose behaviour is ported here: nop, probe, cq-overflow,
cq-full, sq-full, submit-reuse, eintr / wait timeouts, fork safety.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any, Callable, Iterator, List

import pytest

import pyuring
from pyuring import (
    Completion,
    OpcodeUnsupported,
    Ring,
    RingForkedError,
    UringError,
    UringUnavailable,
    _syscall,
    probe,
)
from pyuring import _abi as A
from pyuring._core import FAST_FLAGS

from .conftest import URING
from .test_ring_support import (
    MODES,
    by_ud,
    make_ring,
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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------

def test_default_ring_gets_the_fast_flags() -> None:
    with Ring() as r:
        assert r.sq_entries == 256
        assert r.cq_entries == 512  # the kernel's default: twice the SQ
        # Linux 6.6+ accepts all four; .flags reports what setup obtained
        assert r.flags & FAST_FLAGS == FAST_FLAGS
        assert r.features & A.IORING_FEAT_NODROP
        assert r.features & A.IORING_FEAT_EXT_ARG
        assert r.fd >= 0
        os.fstat(r.fd)
        assert not r.closed
        assert f"fd={r.fd}" in repr(r)


def test_plain_ring_has_no_flags() -> None:
    with Ring(8, fast=False) as r:
        assert r.flags == 0


@pytest.mark.parametrize(("asked", "sq"), [(1, 1), (5, 8), (8, 8), (100, 128)])
def test_entries_are_rounded_to_a_power_of_two(asked: int, sq: int) -> None:
    with Ring(asked) as r:
        assert r.sq_entries == sq
        assert r.cq_entries == 2 * sq


def test_cq_entries_and_clamp() -> None:
    with Ring(8, cq_entries=100) as r:
        assert r.cq_entries == 128
        assert r.flags & A.IORING_SETUP_CQSIZE
    with pytest.raises(UringError) as ei:
        Ring(1 << 20)
    assert ei.value.errno == errno.EINVAL
    assert not isinstance(ei.value, UringUnavailable)
    with Ring(1 << 20, flags=A.IORING_SETUP_CLAMP) as r:
        assert r.sq_entries == 32768
    with pytest.raises(ValueError):
        Ring(0)


def test_unknown_required_flag_is_an_error() -> None:
    with pytest.raises(UringError) as ei:
        Ring(4, flags=1 << 30)
    assert ei.value.errno == errno.EINVAL


def _fake_setup(monkeypatch: pytest.MonkeyPatch, reject: int) -> List[int]:
    """Make io_uring_setup fail with EINVAL whenever a flag in ``reject`` is asked."""
    real = _syscall.io_uring_setup
    attempts: List[int] = []

    def fake(entries: int, params_addr: int) -> int:
        flags = A.PARAMS.unpack(ctypes.string_at(params_addr, A.PARAMS_SIZE))[2]
        attempts.append(flags)
        if flags & reject:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return real(entries, params_addr)

    monkeypatch.setattr(_syscall, "io_uring_setup", fake)
    return attempts


def test_setup_falls_back_flag_by_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = _fake_setup(monkeypatch, A.IORING_SETUP_NO_SQARRAY | A.IORING_SETUP_DEFER_TASKRUN)
    with Ring(8) as r:
        expected = (A.IORING_SETUP_SUBMIT_ALL | A.IORING_SETUP_SINGLE_ISSUER
                    | A.IORING_SETUP_COOP_TASKRUN)
        assert r.flags == expected
        # the ring works in the mode it ended up with (SQ index array in use)
        r.prep_nop(user_data=3)
        assert one(r).user_data == 3
    assert attempts == [
        FAST_FLAGS,
        FAST_FLAGS & ~A.IORING_SETUP_NO_SQARRAY,
        expected,
    ]


def test_coop_taskrun_instead_of_defer(monkeypatch: pytest.MonkeyPatch) -> None:
    """defer_taskrun=False: COOP_TASKRUN in DEFER_TASKRUN's place, completions
    from io-wq posted without an enter of ours (GETEVENTS only collects them)."""
    attempts = _fake_setup(monkeypatch, 0)
    expected = (FAST_FLAGS & ~A.IORING_SETUP_DEFER_TASKRUN) | A.IORING_SETUP_COOP_TASKRUN
    with Ring(8, defer_taskrun=False) as r:
        assert r.flags == expected
        with pipe() as (rd, wr):
            buf = bytearray(1)
            r.prep_read(rd, buf, 1, -1, user_data=7, flags=A.IOSQE_ASYNC)
            r.submit()
            os.write(wr, b"!")
            enters = r.stats.enters
            deadline = time.monotonic() + 10
            # the io-wq worker posts the CQE itself: it shows up in the CQ ring
            # while this thread stays out of the kernel
            c = r.peek_cqe()
            while c is None and time.monotonic() < deadline:
                time.sleep(0.001)
                c = r.peek_cqe()
            assert c is not None and c.user_data == 7 and c.res == 1 and buf == b"!"
            assert r.stats.enters == enters
    assert attempts == [expected]
    # a required DEFER_TASKRUN wins over the keyword
    with Ring(8, flags=A.IORING_SETUP_DEFER_TASKRUN, defer_taskrun=False) as r:
        assert r.flags & A.IORING_SETUP_DEFER_TASKRUN
        assert not r.flags & A.IORING_SETUP_COOP_TASKRUN


def test_setup_never_drops_a_required_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = _fake_setup(monkeypatch, A.IORING_SETUP_SQE128)
    with pytest.raises(UringError) as ei:
        Ring(8, flags=A.IORING_SETUP_SQE128)
    assert ei.value.errno == errno.EINVAL
    assert all(f & A.IORING_SETUP_SQE128 for f in attempts)
    assert attempts[-1] == A.IORING_SETUP_SQE128  # every optional flag given up


def test_setup_fallback_down_to_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_setup(monkeypatch, FAST_FLAGS | A.IORING_SETUP_COOP_TASKRUN)
    with Ring(8) as r:
        assert r.flags == 0
        r.prep_nop(user_data=1)
        assert one(r).res == 0


def test_sqpoll_setup_options() -> None:
    with Ring(8, flags=A.IORING_SETUP_SQPOLL, sq_thread_cpu=0, sq_thread_idle=10) as r:
        assert r.flags & A.IORING_SETUP_SQPOLL and r.flags & A.IORING_SETUP_SQ_AFF
        # no task-run flags with a kernel submission thread
        assert not r.flags & (A.IORING_SETUP_DEFER_TASKRUN | A.IORING_SETUP_COOP_TASKRUN)
        for i in range(20):
            r.prep_nop(user_data=i)
        assert sorted(c.user_data for c in run(r, 20)) == list(range(20))


def test_attach_wq() -> None:
    with Ring(8) as first, Ring(8, wq_fd=first.fd) as second:
        assert second.flags & A.IORING_SETUP_ATTACH_WQ
        with pipe() as (r, w):
            second.prep_read(r, bytearray(1), 1, -1, flags=A.IOSQE_ASYNC)
            second.submit()
            os.write(w, b"!")
            assert one(second).res == 1
    with pytest.raises(UringError) as ei:
        Ring(8, wq_fd=0)  # not a ring
    assert ei.value.errno in (errno.EINVAL, errno.EBADF)


def test_sqe128_and_cqe32_rings_work() -> None:
    with Ring(8, flags=A.IORING_SETUP_SQE128 | A.IORING_SETUP_CQE32) as r:
        for i in range(40):  # wraps both rings several times
            r.prep_nop(user_data=i + 1)
        assert sorted(c.user_data for c in run(r, 40)) == list(range(1, 41))


# ---------------------------------------------------------------------------
# close, context manager
# ---------------------------------------------------------------------------

def test_close_is_idempotent_and_releases_the_fd() -> None:
    r = Ring(4)
    fd = r.fd
    with r as same:
        assert same is r
    assert r.closed and r.fd == -1
    with pytest.raises(OSError) as ei:
        os.fstat(fd)
    assert ei.value.errno == errno.EBADF
    r.close()
    assert "closed" in repr(r)
    with pytest.raises(ValueError):
        r.prep_nop()
    with pytest.raises(ValueError):
        r.submit_and_wait(1)


# ---------------------------------------------------------------------------
# NOP, user_data, probe
# ---------------------------------------------------------------------------

def test_nop_echoes_user_data(ring: Ring) -> None:
    values = [0, 1, 0xDEADBEEF, 2**63, 2**64 - 2]
    for v in values:
        ring.prep_nop(user_data=v)
    cqes = run(ring, len(values))
    assert sorted(c.user_data for c in cqes) == sorted(values)
    assert all(c.res == 0 and c.flags == 0 for c in cqes)
    nothing_more(ring)


def test_nop_inject_result(ring: Ring) -> None:
    ring.prep_nop(user_data=1, nop_flags=A.IORING_NOP_INJECT_RESULT, result=1234)
    ring.prep_nop(user_data=2, nop_flags=A.IORING_NOP_INJECT_RESULT, result=-errno.ENOENT)
    got = by_ud(run(ring, 2))
    assert got[1].res == 1234 and got[1].check() == 1234
    assert got[2].res == -errno.ENOENT
    with pytest.raises(FileNotFoundError):
        got[2].check()
    assert isinstance(got[2].error(), FileNotFoundError)
    assert got[1].error() is None


def test_get_user_data_never_hands_out_zero_or_reserved() -> None:
    with Ring(4) as r:
        first = r.get_user_data()
        assert first != 0 and r.get_user_data() == first + 1
        r._next_user_data = A.USER_DATA_RESERVED - 1
        assert r.get_user_data() == A.USER_DATA_RESERVED - 1
        assert r.get_user_data() == 1  # wrapped, skipping 2**64-1 and 0


def test_unknown_opcode_completes_with_einval(ring: Ring) -> None:
    last = ring.probe().last_op
    ring.prep_rw(last + 1, -1, 0, 0, 0, user_data=9)
    cqe = one(ring)
    assert (cqe.user_data, cqe.res) == (9, -errno.EINVAL)


def test_invalid_sqe_flag_completes_with_einval(ring: Ring) -> None:
    ring.prep_nop(user_data=5, flags=1 << 7)  # no such IOSQE_ bit
    cqe = one(ring)
    assert (cqe.user_data, cqe.res) == (5, -errno.EINVAL)


def test_probe() -> None:
    p = probe()
    assert p is probe()  # cached
    assert probe(refresh=True) == p
    with Ring(4) as r:
        assert r.probe() == p
    # this kernel (6.18) implements every opcode pyuring names
    assert p.last_op >= A.IORING_OP_PIPE
    for num, name in A.OP_NAMES.items():
        assert num in p, name
        assert p.supports(name) and p.supports(f"IORING_OP_{name}")
        assert p.supports(name.lower()) and p.supports(num)
        assert p.__contains__(name)  # the `in` operator takes names too
    assert not p.supports("BOGUS")
    assert p.last_op + 1 not in p
    assert "OPENAT2" in p.names
    p.require("READ")
    p.require(A.IORING_OP_READ)
    with pytest.raises(OpcodeUnsupported) as ei:
        p.require("BOGUS")
    assert isinstance(ei.value, UringUnavailable)
    assert "BOGUS" in str(ei.value)


def test_probe_says_what_works(ring: Ring) -> None:
    """An opcode the probe lists is accepted; a number past last_op is not."""
    p = ring.probe()
    ring.prep_rw(A.IORING_OP_NOP, -1, 0, 0, 0, user_data=1)
    ring.prep_rw(p.last_op + 1, -1, 0, 0, 0, user_data=2)
    got = by_ud(run(ring, 2))
    assert got[1].res == 0
    assert got[2].res == -errno.EINVAL


# ---------------------------------------------------------------------------
# counters
# ---------------------------------------------------------------------------

def test_counters_are_exact(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    write_file(path, b"x" * 100)
    with Ring(16) as r, opened(path, os.O_RDONLY) as fd:
        for i in range(10):
            r.prep_nop(user_data=i)
        buf = bytearray(10)
        for _ in range(3):
            r.prep_read(fd, buf, 10, 0)
        r.submit()
        assert r.stats.enters == 1
        run(r, 13)
        st = r.stats
        assert st.sqes == 13
        assert st.sqes_by_op == {"NOP": 10, "READ": 3}
        assert st.completions == 13
        assert st.sqes_per_enter == 13 / st.enters
        r.reset_stats()
        assert r.stats.sqes == 0 and r.stats.enters == 0 and r.stats.completions == 0
        assert r.stats.sqes_by_op == {}
        assert r.stats.sqes_per_enter == 0.0


# ---------------------------------------------------------------------------
# waiting and reaping
# ---------------------------------------------------------------------------

def test_peek_reap_and_completions(ring: Ring) -> None:
    assert ring.peek_cqe() is None
    assert ring.reap() == []
    assert list(ring.completions()) == []
    for i in range(6):
        ring.prep_nop(user_data=i)
    assert ring.pending() == 6
    ring.submit_and_wait(6)
    assert ring.pending() == 0
    deadline = time.monotonic() + 5
    while ring.cq_ready() < 6 and time.monotonic() < deadline:
        time.sleep(0.001)  # SQPOLL posts from its own thread
    first = ring.peek_cqe()
    assert first is not None and first.user_data == 0
    two = ring.reap(2)
    assert [c.user_data for c in two] == [1, 2]
    rest = list(ring.completions())
    assert [c.user_data for c in rest] == [3, 4, 5]
    assert ring.peek_cqe() is None


def test_wait_cqes_limit(ring: Ring) -> None:
    for i in range(10):
        ring.prep_nop(user_data=i)
    got = ring.wait_cqes(3, limit=3)
    assert len(got) == 3
    got += run(ring, 7)
    assert sorted(c.user_data for c in got) == list(range(10))
    nothing_more(ring)


def test_wait_timeout_raises_timeout_error(ring: Ring) -> None:
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as ei:
        ring.wait_cqe(timeout=0.05)
    elapsed = time.monotonic() - t0
    assert ei.value.errno == errno.ETIME
    assert 0.04 <= elapsed < 2.0
    with pytest.raises(TimeoutError):
        ring.wait_cqe(timeout=0)
    # the ring is fine afterwards
    ring.prep_nop(user_data=8)
    assert ring.wait_cqe(timeout=5).user_data == 8


def test_wait_timeout_returns_a_completion_that_arrives_in_time(ring: Ring) -> None:
    ring.prep_timeout(0.03, user_data=4)
    t0 = time.monotonic()
    cqe = ring.wait_cqe(timeout=5)
    assert (cqe.user_data, cqe.res) == (4, -errno.ETIME)
    assert 0.025 <= time.monotonic() - t0 < 4


def test_timed_wait_wakes_a_sleeping_sqpoll_thread() -> None:
    """Regression: the timed wait entered the kernel without SQ_WAKEUP, so an
    idle SQPOLL thread never saw the new SQE and the wait timed out."""
    with make_ring("sqpoll", 8, sq_thread_idle=5) as r:
        r.prep_nop(user_data=1)
        assert r.wait_cqe(timeout=5).user_data == 1
        deadline = time.monotonic() + 5
        while not r._sq_words[r._k_sq_flags] & A.IORING_SQ_NEED_WAKEUP:
            assert time.monotonic() < deadline, "SQ thread never went to sleep"
            time.sleep(0.01)
        r.prep_nop(user_data=2)
        assert r.wait_cqe(timeout=5).user_data == 2


def test_timed_wait_survives_early_returns() -> None:
    """Regression: io_uring_enter may return before any completion arrived
    (a freshly started SQPOLL ring does so often); the timed wait took that
    for a timeout and raised TimeoutError long before the time was up."""
    for _ in range(60):
        with make_ring("sqpoll", 8) as r:
            r.prep_timeout(0.002, user_data=1)
            t0 = time.monotonic()
            cqe = r.wait_cqe(timeout=5)
            assert (cqe.user_data, cqe.res) == (1, -errno.ETIME)
            assert time.monotonic() - t0 < 4


def test_timed_wait_for_several(ring: Ring) -> None:
    ring.prep_timeout(0.01, user_data=1)
    ring.prep_timeout(0.03, user_data=2)
    got = ring.wait_cqes(2, timeout=5)
    assert sorted(c.user_data for c in got) == [1, 2]
    # fewer than asked by the deadline: what arrived is returned
    ring.prep_nop(user_data=3)
    ring.prep_timeout(10, user_data=4)
    t0 = time.monotonic()
    got = ring.wait_cqes(2, timeout=0.05)
    assert [c.user_data for c in got] == [3]
    assert 0.04 <= time.monotonic() - t0 < 2
    ring.prep_timeout_remove(4, user_data=5)
    assert sorted(c.user_data for c in run(ring, 2)) == [4, 5]


@pytest.fixture
def alarm() -> Iterator[List[int]]:
    """SIGALRM every 5 ms while the test runs; yields the signal count."""
    hits = [0]

    def handler(signum: int, frame: Any) -> None:
        hits[0] += 1

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.005, 0.005)
    try:
        yield hits
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("mode", MODES)
def test_eintr_is_retried(mode: str, alarm: List[int]) -> None:
    with make_ring(mode, 8) as r:
        r.prep_timeout(0.2, user_data=3)
        t0 = time.monotonic()
        cqe = r.wait_cqe()
        assert (cqe.user_data, cqe.res) == (3, -errno.ETIME)
        assert time.monotonic() - t0 >= 0.19
        assert alarm[0] >= 5  # the wait really was interrupted, several times


@pytest.mark.parametrize("mode", MODES)
def test_eintr_does_not_restart_the_timeout(mode: str, alarm: List[int]) -> None:
    """Regression: each EINTR restarted the full timeout, so with a signal
    arriving more often than the timeout, a timed wait never ended."""
    with make_ring(mode, 8) as r:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            r.wait_cqe(timeout=0.1)
        elapsed = time.monotonic() - t0
        assert alarm[0] >= 5
        assert 0.09 <= elapsed < 1.0


# ---------------------------------------------------------------------------
# queue limits: sq-full, cq-overflow, cq-full
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_sq_full_submits_by_itself(mode: str) -> None:
    with make_ring(mode, 4) as r:
        assert r.sq_entries == 4
        for i in range(100):
            r.prep_nop(user_data=i)
        assert r.pending() <= 4
        assert sorted(c.user_data for c in run(r, 100)) == list(range(100))
        assert r.sq_dropped == 0


@pytest.mark.parametrize("mode", MODES)
def test_sq_full_never_splits_a_link_chain(mode: str) -> None:
    """Regression: when the SQ filled up in the middle of a link chain, the
    ring submitted the first half, the kernel ended the chain at the batch
    boundary and the rest ran unlinked."""
    L = A.IOSQE_IO_LINK
    with make_ring(mode, 4) as r:
        r.prep_nop(user_data=1)
        r.prep_nop(user_data=2)
        # head fails: every later member of the chain must be cancelled
        r.prep_nop(user_data=10, flags=L, nop_flags=A.IORING_NOP_INJECT_RESULT,
                   result=-errno.EIO)
        r.prep_nop(user_data=11, flags=L)
        r.prep_nop(user_data=12, flags=L)  # SQ full here
        r.prep_nop(user_data=13)
        got = {c.user_data: c.res for c in run(r, 6)}
        assert got == {1: 0, 2: 0, 10: -errno.EIO, 11: -errno.ECANCELED,
                       12: -errno.ECANCELED, 13: -errno.ECANCELED}


def test_link_chain_longer_than_the_sq_is_refused() -> None:
    with Ring(4) as r:
        for i in range(4):
            r.prep_nop(user_data=i, flags=A.IOSQE_IO_LINK)
        with pytest.raises(UringError) as ei:
            r.prep_nop(user_data=99)
        assert ei.value.errno == errno.ENOBUFS
        assert "link chain" in str(ei.value)


@pytest.mark.parametrize("mode", MODES)
def test_cq_overflow_loses_nothing(mode: str, tmp_path: Any) -> None:
    """More completions than CQ entries, none reaped meanwhile: with
    IORING_FEAT_NODROP every one of them must still arrive, exactly once."""
    path = os.path.join(str(tmp_path), "f")
    data = os.urandom(64 * 100)
    write_file(path, data)
    with make_ring(mode, 8) as r, opened(path, os.O_RDONLY) as fd:
        assert r.features & A.IORING_FEAT_NODROP
        assert r.cq_entries == 16
        bufs = [bytearray(64) for _ in range(100)]
        for i in range(300):
            r.prep_nop(user_data=1000 + i)
        for i, b in enumerate(bufs):
            r.prep_read(fd, b, 64, i * 64, user_data=i)
        r.submit()
        time.sleep(0.02)
        assert r.cq_ready() <= r.cq_entries  # the CQ ring itself holds only 16
        cqes = run(r, 400)
        assert len({c.user_data for c in cqes}) == 400
        for c in cqes:
            assert c.res == (64 if c.user_data < 1000 else 0)
        assert all(bytes(b) == data[i * 64:(i + 1) * 64] for i, b in enumerate(bufs))
        assert r.cq_overflow == 0
        assert r.inflight() == 0
        nothing_more(r)


def test_cq_full_limits_and_order() -> None:
    with Ring(4, cq_entries=8, fast=False) as r:
        for i in range(40):
            r.prep_nop(user_data=i)
        r.submit()
        assert r.cq_ready() == 8  # full; the rest wait in the overflow list
        got: List[Completion] = []
        while len(got) < 40:
            batch = r.wait_cqes(1, limit=3)
            assert 1 <= len(batch) <= 3
            got += batch
        # NOPs complete inline, in submission order; overflow keeps that order
        assert [c.user_data for c in got] == list(range(40))
        assert r.cq_ready() == 0 and r.cq_overflow == 0


# ---------------------------------------------------------------------------
# submit-reuse: same buffer, same user_data
# ---------------------------------------------------------------------------

def test_reuse_buffer_and_user_data_in_flight(ring: Ring) -> None:
    buf = bytearray(1)
    with pipe() as (rfd, wfd):
        for _ in range(8):
            ring.prep_read(rfd, buf, 1, -1, user_data=42)
        ring.submit()
        nothing_more(ring)
        assert ring.inflight() == 8
        os.write(wfd, b"abcdefgh")
        cqes = run(ring, 8)
    assert all((c.user_data, c.res, c.op_name) == (42, 1, "READ") for c in cqes)
    assert ring.inflight() == 0
    assert bytes(buf) in [bytes([x]) for x in b"abcdefgh"]


def test_reuse_buffer_sequentially(ring: Ring, tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "f")
    data = os.urandom(1 << 16)
    write_file(path, data)
    buf = bytearray(512)
    with opened(path, os.O_RDWR) as fd:
        for i in range(300):
            off = (i * 7919) % (len(data) - 512)
            ring.prep_read(fd, buf, 512, off, user_data=7)
            assert one(ring).res == 512
            assert bytes(buf) == os.pread(fd, 512, off)
            buf[:4] = struct.pack("=I", i)
            ring.prep_write(fd, buf, 4, off, user_data=7)
            assert one(ring).res == 4
            assert os.pread(fd, 4, off) == struct.pack("=I", i)


# ---------------------------------------------------------------------------
# threads and fork
# ---------------------------------------------------------------------------

def test_single_issuer_ring_refuses_other_threads() -> None:
    with Ring(8) as r:
        assert r.flags & A.IORING_SETUP_SINGLE_ISSUER
        errors: List[BaseException] = []

        def other() -> None:
            try:
                r.prep_nop(user_data=1)
                r.submit()
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert len(errors) == 1
        exc = errors[0]
        assert isinstance(exc, UringError) and exc.errno == errno.EEXIST
        assert "thread" in str(exc)
        # the owner thread still drives the ring, including the SQE prepared there
        assert one(r).user_data == 1


def test_plain_ring_works_from_another_thread() -> None:
    with Ring(8, fast=False) as r:
        out: List[int] = []

        def other() -> None:
            r.prep_nop(user_data=77)
            out.append(r.wait_cqe(timeout=5).user_data)

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert out == [77]


@pytest.mark.parametrize("mode", MODES)
def test_forked_child_cannot_use_the_ring(mode: str) -> None:
    r = make_ring(mode, 8)
    try:
        r.prep_nop(user_data=1)  # prepared, not submitted, when the child is born
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 0
            checks: List[Callable[[], object]] = [
                lambda: r.prep_nop(user_data=2),
                lambda: r.prep_read(0, bytearray(8), 8, 0),
                r.submit,
                lambda: r.wait_cqe(timeout=0.1),
                r.reap,
                lambda: r.register_files([0]),
                r.register_personality,
            ]
            try:
                for bit, check in enumerate(checks):
                    try:
                        check()
                        code |= 1 << bit
                    except RingForkedError:
                        pass
                    except BaseException:
                        code |= 1 << bit
                try:
                    r.close()
                except BaseException:
                    code |= 1 << 7
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status)
        assert os.WEXITSTATUS(status) == 0, f"failed child checks: {os.WEXITSTATUS(status):#b}"
        # the child neither submitted our SQE nor broke the parent's ring
        assert r.reap() == []
        assert r.pending() == 1
        cqe = one(r)
        assert (cqe.user_data, cqe.res) == (1, 0)
        r.prep_nop(user_data=3)
        assert one(r).user_data == 3
    finally:
        r.close()


def test_ring_forked_error_is_a_uring_error() -> None:
    exc = RingForkedError()
    assert isinstance(exc, UringError) and exc.errno == errno.EBADFD
    assert "fork" in str(exc)


# ---------------------------------------------------------------------------
# io_uring unavailable: seccomp sandbox (EPERM) and a kernel without it (ENOSYS)
# ---------------------------------------------------------------------------

_SANDBOX = textwrap.dedent("""
    import ctypes, json, struct, sys
    from pyuring import _abi
    err, arch = int(sys.argv[1]), sys.argv[2]
    AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}[arch]
    NR = _abi.SYSCALLS[arch]
    def ins(code, jt, jf, k):
        return struct.pack("=HBBI", code, jt, jf, k)
    LD_ABS, JEQ, RET = 0x20, 0x15, 0x06
    prog = b"".join([
        ins(LD_ABS, 0, 0, 4),                      # seccomp_data.arch
        ins(JEQ, 1, 0, AUDIT_ARCH),
        ins(RET, 0, 0, _abi.SECCOMP_RET_ALLOW),
        ins(LD_ABS, 0, 0, 0),                      # seccomp_data.nr
        ins(JEQ, 0, 1, NR["io_uring_setup"]),
        ins(RET, 0, 0, _abi.SECCOMP_RET_ERRNO | err),
        ins(RET, 0, 0, _abi.SECCOMP_RET_ALLOW),
    ])
    filt = ctypes.create_string_buffer(prog, len(prog))
    fprog = struct.pack("=H6xQ", len(prog) // 8, ctypes.addressof(filt))
    fprog_buf = ctypes.create_string_buffer(fprog, len(fprog))
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(_abi.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    assert libc.syscall(NR["seccomp"], _abi.SECCOMP_SET_MODE_FILTER, 0, fprog_buf) == 0
    from pyuring import Ring, UringUnavailable, UringError, probe
    out = {}
    for what, fn in (("ring", lambda: Ring()), ("plain", lambda: Ring(4, fast=False)),
                     ("probe", lambda: probe())):
        try:
            fn()
            out[what] = None
        except Exception as exc:
            out[what] = [type(exc).__name__, exc.errno, str(exc),
                         isinstance(exc, UringUnavailable), isinstance(exc, UringError)]
    print(json.dumps(out))
""")


@pytest.mark.skipif(_syscall.arch() not in ("x86_64", "aarch64"), reason="seccomp test arch")
@pytest.mark.parametrize(("err", "words"), [
    (errno.EPERM, ("seccomp", "io_uring_disabled")),
    (errno.ENOSYS, ("no io_uring",)),
])
def test_blocked_io_uring_raises_uring_unavailable(err: int, words: tuple[str, ...]) -> None:
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run(
        [sys.executable, "-c", _SANDBOX, str(err), _syscall.arch()],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for what in ("ring", "plain", "probe"):
        name, got_errno, message, unavailable, uring_error = out[what]
        assert name == "UringUnavailable"
        assert unavailable and uring_error
        assert got_errno == err
        for w in words:
            assert w in message, message


def test_unavailable_is_importable_everywhere() -> None:
    assert issubclass(UringUnavailable, UringError)
    assert issubclass(UringError, OSError)
    assert issubclass(OpcodeUnsupported, UringUnavailable)
    assert pyuring.__version__
    assert platform.system() == "Linux"
