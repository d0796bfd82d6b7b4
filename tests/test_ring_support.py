"""Helpers shared by the ``test_ring_*`` conformance modules (no tests here).

Every ring test runs against a real kernel ring.  ``MODES`` names the ring
configurations worth exercising separately, because they take different code
paths in ``_core``:

* ``fast``   -- the default: SUBMIT_ALL, SINGLE_ISSUER, DEFER_TASKRUN, NO_SQARRAY
  (completions appear only when the ring enters the kernel with GETEVENTS);
* ``plain``  -- ``fast=False``: no setup flags, the SQ index array in use;
* ``sqpoll`` -- IORING_SETUP_SQPOLL: a kernel thread consumes the SQ, which
  the ring must wake when it sleeps.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
from typing import Any, Callable, Iterator, List, Tuple

import pytest

from pyuring import Completion, Ring, probe
from pyuring import _abi as A

from .conftest import URING

MODES = ("fast", "plain", "sqpoll")

def make_ring(mode: str = "fast", entries: int = 64, **kw: Any) -> Ring:
    if not URING:
        pytest.skip("io_uring is unavailable here")
    if mode == "fast":
        return Ring(entries, **kw)
    if mode == "plain":
        return Ring(entries, fast=False, **kw)
    if mode == "coop":
        return Ring(entries, fast=False, flags=A.IORING_SETUP_COOP_TASKRUN
                    | A.IORING_SETUP_SINGLE_ISSUER, **kw)
    if mode == "sqpoll":
        kw.setdefault("sq_thread_idle", 20)  # ms: let the thread fall asleep often
        return Ring(entries, flags=A.IORING_SETUP_SQPOLL | kw.pop("flags", 0), **kw)
    raise ValueError(mode)


def ring_fixture(modes: Tuple[str, ...] = MODES) -> Any:
    """A ``ring`` fixture parametrised over ``modes`` (assign it in a module)."""

    @pytest.fixture(params=modes, name="ring")
    def _ring(request: pytest.FixtureRequest) -> Iterator[Ring]:
        r = make_ring(request.param)
        try:
            yield r
        finally:
            r.close()

    return _ring


def need(op: str) -> None:
    """Skip unless the running kernel supports IORING_OP_<op>."""
    if not URING:
        pytest.skip("io_uring is unavailable here")
    if not probe().supports(op):
        pytest.skip(f"this kernel lacks IORING_OP_{op}")


def run(ring: Ring, n: int = 1, timeout: float = 10.0) -> List[Completion]:
    """Submit what is prepared and collect exactly ``n`` completions."""
    out: List[Completion] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"only {len(out)} of {n} completions arrived: {out}")
        try:
            out.extend(ring.wait_cqes(1, timeout=left, limit=n - len(out)))
        except TimeoutError:
            raise AssertionError(f"only {len(out)} of {n} completions arrived: {out}") from None
    return out


def one(ring: Ring, timeout: float = 10.0) -> Completion:
    """Submit and return the single completion."""
    return run(ring, 1, timeout)[0]


def by_ud(cqes: List[Completion]) -> dict[int, Completion]:
    out = {c.user_data: c for c in cqes}
    assert len(out) == len(cqes), f"duplicate user_data in {cqes}"
    return out


def nothing_more(ring: Ring, wait: float = 0.05) -> None:
    """Assert that no further completion arrives within ``wait`` seconds."""
    with pytest.raises(TimeoutError):
        extra = ring.wait_cqes(1, timeout=wait)
        raise AssertionError(f"unexpected completions: {extra}")


def os_errno(fn: Callable[[], object]) -> int:
    """The errno the equivalent os call fails with (0 if it succeeds)."""
    try:
        fn()
    except OSError as exc:
        return exc.errno or 0
    return 0


def write_file(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@contextlib.contextmanager
def opened(path: str, flags: int, mode: int = 0o644) -> Iterator[int]:
    fd = os.open(path, flags, mode)
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def pipe() -> Iterator[Tuple[int, int]]:
    r, w = os.pipe()
    try:
        yield r, w
    finally:
        for fd in (r, w):
            with contextlib.suppress(OSError):
                os.close(fd)


def sockaddr_in(host: str, port: int) -> bytes:
    """A packed struct sockaddr_in."""
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + \
        socket.inet_aton(host) + bytes(8)


def parse_sockaddr_in(raw: bytes) -> Tuple[str, int]:
    family, = struct.unpack_from("=H", raw)
    assert family == socket.AF_INET
    port, = struct.unpack_from("!H", raw, 2)
    return socket.inet_ntoa(raw[4:8]), port


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))
