"""Ring conformance: the public API used wrongly never hands the kernel memory
it may write into after the program let it go, nor an SQE half-written, and
an interrupted wait leaves the ring usable.  (Each case was found by a trial
of the API's misuse; each test fails on the code before its fix.)"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from typing import List

import pytest

from pyuring import Buffer, Ring
from pyuring import _abi as A

from .conftest import URING
from .test_copy_support import cli_env
from .test_ring_support import make_ring, pipe, ring_fixture

pytestmark = pytest.mark.skipif(not URING, reason="io_uring is unavailable here")
ring = ring_fixture(("fast", "plain"))

_INTERRUPTED_WAIT = r"""
import os, signal, sys, threading, time
from pyuring import Ring
r, w = os.pipe()
ring = Ring(8, fast=sys.argv[1] == "fast")
buf = bytearray(8)
ring.prep_read(r, buf, 8, -1, user_data=7)
threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
try:
    ring.wait_cqe()
except KeyboardInterrupt:
    print("interrupted", flush=True)
t = time.monotonic()
try:
    ring.wait_cqe(timeout=0.5)
except TimeoutError:
    print("timed out after", round(time.monotonic() - t, 1), flush=True)
print("pending", ring.pending(), flush=True)
os.write(w, b"data")
c = ring.wait_cqe(timeout=5)
print("read", c.user_data, c.res, bytes(buf[:c.res]).decode(), flush=True)
ring.close()
print("closed", flush=True)
"""


@pytest.mark.parametrize("mode", ["fast", "plain"])
def test_ctrl_c_in_a_wait_leaves_the_ring_usable(mode: str) -> None:
    """Ctrl-C while a wait also submitted: the kernel took the SQE, but the
    KeyboardInterrupt came before the ring counted it.  Every later enter
    then asked to submit an SQE the kernel already had, which makes
    io_uring_enter return at once without waiting: a busy loop (806,000
    enters in 3 s) and a close() that never returned.  The count now comes
    from the kernel's SQ head."""
    p = subprocess.run([sys.executable, "-c", _INTERRUPTED_WAIT, mode], env=cli_env(),
                       capture_output=True, text=True, timeout=60)
    assert p.stdout.splitlines() == ["interrupted", "timed out after 0.5", "pending 0",
                                     "read 7 4 data", "closed"], (p.stdout, p.stderr)


def test_an_argument_an_sqe_cannot_hold_queues_nothing(ring: Ring) -> None:
    """A user_data, length or fd that does not fit its field: the prep raises
    and the SQ is as before.  The Buffer fast path and prep_nop moved the
    tail first, and the next submit handed the kernel a half-written SQE
    that read into the Buffer's address after it was freed (a new Buffer at
    that address received the pipe's data)."""
    with pipe() as (r, w):
        b = Buffer(4096)
        for bad in ({"user_data": 2 ** 64}, {"nbytes": -5}, {"offset": 2 ** 64}):
            kw = {"nbytes": 64, "offset": 0, "user_data": 1, **bad}
            with pytest.raises(ValueError, match="does not fit"):
                ring.prep_read(r, b, **kw)
        with pytest.raises(ValueError, match="does not fit"):
            ring.prep_read(2 ** 31, b, 64, 0)
        with pytest.raises(ValueError, match="does not fit"):
            ring.prep_nop(user_data=-1)
        with pytest.raises(ValueError, match="does not fit"):
            ring.prep_read(r, bytearray(8), 8, 0, user_data=2 ** 64)  # (the general path)
        with pytest.raises(ValueError, match="does not fit"):
            ring.prep_read(r, bytearray(8), 8, 2 ** 64 + 5)  # (was read at offset 5)
        assert ring.pending() == 0
        assert ring.submit() == 0
        b.close()
        os.write(w, b"EVIL")
        ring.prep_nop(user_data=5)
        assert [c.user_data for c in ring.wait_cqes(1, timeout=2)] == [5]


def test_a_buffer_in_flight_cannot_be_closed(ring: Ring) -> None:
    """Buffer.close() while a read into it is in flight unmapped memory the
    kernel then wrote into (a new Buffer at that address got the data); a
    closed Buffer was accepted by prep_read; a second close raised
    AttributeError."""
    with pipe() as (r, w):
        b = Buffer(4096)
        ring.prep_read(r, b, 64, -1, user_data=3)
        ring.submit()
        with pytest.raises(BufferError):
            b.close()
        os.write(w, b"late")
        c = ring.wait_cqe(timeout=5)
        assert (c.user_data, c.res, bytes(b[:4])) == (3, 4, b"late")
        del c
        gc.collect()
        b.close()
        b.close()  # (twice is allowed)
        with pytest.raises(ValueError):
            ring.prep_read(r, b, 8, 0)
        with pytest.raises(ValueError):
            ring.prep_write(w, b, 8, 0)
        assert ring.pending() == 0


def test_a_buffer_id_outside_the_buffer_ring_is_refused() -> None:
    """recycle(65) on an 8-entry buffer ring was accepted: the next
    buffer-select read wrote past the buffers (into the ring's own page)."""
    with make_ring("fast", 8) as r:
        br = r.register_buf_ring(8, 1, 64)
        for bad in (8, 65, -1):
            with pytest.raises(ValueError):
                br.recycle(bad)
            with pytest.raises(ValueError):
                br.buffer(bad)
        br.recycle(0)  # (a real one: given back)


def test_a_chain_longer_than_the_sq_is_withdrawn_whole() -> None:
    """ENOBUFS for a link chain longer than the SQ left the SQEs prepared so
    far queued: the next unrelated submit ran the chain's first part."""
    small = make_ring("fast", 8)
    with small:
        with pytest.raises(OSError):
            for i in range(12):
                small.prep_nop(user_data=100 + i, flags=A.IOSQE_IO_LINK)
        assert small.pending() == 0
        small.prep_nop(user_data=999)
        assert [c.user_data for c in small.wait_cqes(1, timeout=2)] == [999]
        with pytest.raises(TimeoutError):
            small.wait_cqes(1, timeout=0.2)


def test_reap_returns_the_completions_a_cq_overflow_parked() -> None:
    """1,000 NOPs on an 8-entry ring (16 CQEs): the kernel parks the rest
    (IORING_FEAT_NODROP) until an enter flushes them.  reap() entered only
    for tracked requests, so after 16 it returned [] for the 984 NOPs."""
    with make_ring("plain", 8) as r:
        for i in range(1000):
            r.prep_nop(user_data=i)
        r.submit()
        got: List[int] = []
        for _ in range(1000):
            batch = r.reap()
            if not batch:
                break
            got.extend(c.user_data for c in batch)
        assert sorted(got) == list(range(1000)), len(got)


def test_registering_the_ring_fd_twice_keeps_one_slot() -> None:
    """A second register_ring_fd() took another of the thread's 16 slots and
    lost the first registration (the ring stayed registered until the thread
    ended: the 16th ring failed with EBUSY); now it returns the same index."""
    with make_ring("fast", 8) as r:
        first = r.register_ring_fd()
        assert r.register_ring_fd() == first
        r.unregister_ring_fd()
    rings = [make_ring("fast", 8) for _ in range(20)]
    try:
        for one in rings:  # (a slot each, twice asked; freed as each closes)
            one.register_ring_fd()
            one.register_ring_fd()
            one.close()
    finally:
        for one in rings:
            one.close()


def test_a_buffer_close_refused_leaves_it_whole(ring: Ring) -> None:
    """close() of a Buffer whose view has a live slice (an export of its
    memory) fails; it used to fail half-way -- view released, anchor gone
    -- after which a prep moved the SQ tail and then raised AttributeError,
    leaving an untracked SQE.  Now it is as before the call.  And a Buffer
    whose prep was refused can be closed while the exception is kept."""
    with pipe() as (r, w):
        b = Buffer(4096)
        piece = b[0:512]
        with pytest.raises(BufferError):
            b.close()
        ring.prep_read(r, b, 8, -1, user_data=4)
        os.write(w, b"whole")
        c = ring.wait_cqe(timeout=5)
        assert (c.user_data, c.res, bytes(piece[:5])) == (4, 5, b"whole")
        del c, piece
        gc.collect()
        b.close()
        b2 = Buffer(64)
        with pytest.raises(ValueError) as kept:
            ring.prep_read(r, b2, 8, 0, user_data=-1)
        b2.close()  # (the kept traceback does not hold the memory)
        assert kept.value is not None and ring.pending() == 0
    ring.close()
    assert ring.pending() == 0  # (not "released memoryview")
