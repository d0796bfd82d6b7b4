"""Ring conformance: process and synchronisation opcodes (waitid, futex).

liburing tests whose behaviour is ported here: waitid, futex.  The ring's
futex operations must interoperate with plain futex(2) calls made by other
threads, and its waitid must reap children exactly as os.waitid does.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import struct
import threading
import time
from typing import Dict

import pytest

from pyuring import Ring, _syscall

from .conftest import URING
from .test_ring_support import by_ud, need, nothing_more, one, pipe, ring_fixture, run

pytestmark = pytest.mark.skipif(not URING, reason="io_uring is unavailable here")
ring = ring_fixture()

# <linux/futex.h>
FUTEX2_SIZE_U32 = 0x02
FUTEX2_PRIVATE = 128
FUTEX_BITSET_MATCH_ANY = 0xFFFFFFFF
FUTEX_WAIT_PRIVATE = 0 | 128
FUTEX_WAKE_PRIVATE = 1 | 128
SYS_FUTEX = {"x86_64": 202, "aarch64": 98}.get(_syscall.arch())
FLAGS = FUTEX2_SIZE_U32 | FUTEX2_PRIVATE

P_ALL, P_PID = 0, 1
CLD_EXITED, CLD_KILLED = 1, 2


def _addr(buf: bytearray) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


def _sys_futex(word: bytearray, op: int, val: int) -> int:
    """futex(2) through libc, as another thread of the process would call it."""
    if SYS_FUTEX is None:
        pytest.skip("futex syscall number unknown here")
    libc = _syscall.libc()
    res = int(libc.syscall(SYS_FUTEX, ctypes.c_void_p(_addr(word)), op, val, None, None, 0))
    return res if res >= 0 else -ctypes.get_errno()


# ---------------------------------------------------------------------------
# futex
# ---------------------------------------------------------------------------

def test_futex_wait_and_wake(ring: Ring) -> None:
    need("FUTEX_WAIT")
    word = bytearray(4)
    ring.prep_futex_wait(word, 0, FUTEX_BITSET_MATCH_ANY, FLAGS, user_data=1)
    ring.submit()
    nothing_more(ring)
    ring.prep_futex_wake(word, 1, FUTEX_BITSET_MATCH_ANY, FLAGS, user_data=2)
    got = by_ud(run(ring, 2))
    assert got[2].res == 1  # one waiter woken
    assert got[1].res == 0
    ring.prep_futex_wake(word, 1, FUTEX_BITSET_MATCH_ANY, FLAGS, user_data=3)
    assert one(ring).res == 0  # nobody left


def test_futex_wait_value_mismatch(ring: Ring) -> None:
    need("FUTEX_WAIT")
    word = bytearray(struct.pack("=I", 5))
    ring.prep_futex_wait(word, 0, FUTEX_BITSET_MATCH_ANY, FLAGS)
    res = one(ring).res
    assert res == _sys_futex(word, FUTEX_WAIT_PRIVATE, 0) == -errno.EAGAIN


def test_futex_interoperates_with_futex2_syscall_users(ring: Ring) -> None:
    """A ring waiter is woken by a thread calling futex(2); a thread blocked
    in futex(2) is woken by the ring."""
    need("FUTEX_WAIT")
    word = bytearray(4)
    ring.prep_futex_wait(word, 0, FUTEX_BITSET_MATCH_ANY, FLAGS, user_data=1)
    ring.submit()
    woken = []

    def waker() -> None:
        # (with SQPOLL the kernel thread may not have armed the wait yet: retry)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            n = _sys_futex(word, FUTEX_WAKE_PRIVATE, 1)
            if n:
                woken.append(n)
                return
            time.sleep(0.001)

    t = threading.Thread(target=waker)
    t.start()
    t.join()
    assert woken == [1]
    assert one(ring).res == 0

    result = []
    t = threading.Thread(target=lambda: result.append(_sys_futex(word, FUTEX_WAIT_PRIVATE, 0)))
    t.start()
    deadline = time.monotonic() + 5
    while t.is_alive() and time.monotonic() < deadline:
        ring.prep_futex_wake(word, 1, FUTEX_BITSET_MATCH_ANY, FLAGS)
        one(ring)
        t.join(0.01)
    assert not t.is_alive() and result == [0]


def test_futex_waitv(ring: Ring) -> None:
    need("FUTEX_WAITV")
    words = [bytearray(4), bytearray(4)]
    vec = bytearray()
    for w in words:  # struct futex_waitv {u64 val; u64 uaddr; u32 flags; u32 reserved}
        vec += struct.pack("=QQII", 0, _addr(w), FLAGS, 0)
    ring.prep_futex_waitv(vec, 2, user_data=1)
    ring.submit()
    nothing_more(ring)
    ring.prep_futex_wake(words[1], 1, FUTEX_BITSET_MATCH_ANY, FLAGS, user_data=2)
    got = by_ud(run(ring, 2))
    assert got[2].res == 1
    assert got[1].res == 1  # index of the futex that woke us


def test_futex_wait_can_be_cancelled(ring: Ring) -> None:
    need("FUTEX_WAIT")
    word = bytearray(4)
    ring.prep_futex_wait(word, 0, FUTEX_BITSET_MATCH_ANY, FLAGS, user_data=1)
    ring.submit()
    ring.prep_cancel(1, user_data=2)
    got = by_ud(run(ring, 2))
    # (the futex cancel path reports how many it cancelled; others report 0)
    assert got[1].res == -errno.ECANCELED and got[2].res in (0, 1)


# ---------------------------------------------------------------------------
# waitid
# ---------------------------------------------------------------------------

def _siginfo(buf: bytearray) -> Dict[str, int]:
    signo, _errno, code = struct.unpack_from("=iii", buf, 0)
    pid, uid, status = struct.unpack_from("=iIi", buf, 16)
    return {"si_signo": signo, "si_code": code, "si_pid": pid, "si_uid": uid,
            "si_status": status}


def _child(action: str) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(7)
    return pid


def _os_waitid(pid: int) -> Dict[str, int]:
    r = os.waitid(os.P_PID, pid, os.WEXITED)
    assert r is not None
    return {"si_signo": r.si_signo, "si_code": r.si_code, "si_pid": r.si_pid,
            "si_uid": r.si_uid, "si_status": r.si_status}


@pytest.mark.parametrize(("action", "code", "status"), [
    ("exit", CLD_EXITED, 7),
    ("kill", CLD_KILLED, signal.SIGKILL),
])
def test_waitid_matches_os_waitid(ring: Ring, action: str, code: int, status: int) -> None:
    need("WAITID")
    pid = _child(action)
    info = bytearray(128)
    ring.prep_waitid(P_PID, pid, info, os.WEXITED)
    assert one(ring).res == 0
    mine = _siginfo(info)
    twin = _child(action)
    theirs = _os_waitid(twin)
    assert mine["si_pid"] == pid and theirs["si_pid"] == twin
    for k in ("si_signo", "si_code", "si_uid", "si_status"):
        assert mine[k] == theirs[k], k
    assert (mine["si_signo"], mine["si_code"], mine["si_status"]) == \
        (signal.SIGCHLD, code, status)
    # the ring reaped the child: nothing left to wait for
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_waitid_waits_for_the_child(ring: Ring) -> None:
    need("WAITID")
    with pipe() as (r, w):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(w)
            os.read(r, 1)
            os._exit(3)
        info = bytearray(128)
        ring.prep_waitid(P_PID, pid, info, os.WEXITED, user_data=5)
        ring.submit()
        nothing_more(ring)
        os.write(w, b"x")
        cqe = one(ring)
    assert cqe.user_data == 5 and cqe.res == 0
    assert _siginfo(info)["si_status"] == 3 and _siginfo(info)["si_pid"] == pid


def test_waitid_errors(ring: Ring) -> None:
    need("WAITID")
    info = bytearray(128)
    ring.prep_waitid(P_ALL, 0, info, os.WEXITED)  # no children at all
    res = one(ring).res
    assert res == -errno.ECHILD
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED)
    except ChildProcessError as exc:
        assert exc.errno == errno.ECHILD
    with pytest.raises(ValueError):
        ring.prep_waitid(P_ALL, 0, bytearray(16), os.WEXITED)


def test_waitid_wnohang(ring: Ring) -> None:
    need("WAITID")
    with pipe() as (r, w):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(w)
            os.read(r, 1)
            os._exit(0)
        info = bytearray(128)
        ring.prep_waitid(P_PID, pid, info, os.WEXITED | os.WNOHANG)
        res = one(ring).res
        assert res == 0 and _siginfo(info)["si_pid"] == 0  # still running
        assert os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG) is None
        os.write(w, b"x")
    assert os.waitpid(pid, 0)[0] == pid
