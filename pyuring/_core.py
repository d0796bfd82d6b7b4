"""The ring itself: setup, the mapped queues, submission, completion, pins.

Read this next to ``<linux/io_uring.h>`` and io_uring_setup(2).  The prep_*
methods live in ``ops.py`` and the io_uring_register(2) calls in
``register.py``; both build on ``RingCore``.

Hot path
    Preparing an SQE is one ``Struct.pack_into`` into the mapped SQE array
    (which also zeroes every field the op does not use).  Reaping is
    ``iter_unpack`` over the mapped CQE array.  Ring head/tail words are
    ``memoryview.cast('I')`` slots.  No ctypes objects are created per request.

Memory ordering
    Without SQPOLL the kernel reads the SQ tail only inside io_uring_enter,
    and a syscall orders everything before it, so plain stores are enough for
    submission on every architecture.  The CQ tail needs acquire semantics:
    on x86-64 (TSO) a plain load is one.  On weakly ordered CPUs (aarch64)
    pyuring reads only the CQEs that were visible when the last
    io_uring_enter(GETEVENTS) returned -- the syscall is the barrier -- and
    publishes the CQ head only right before entering the kernel.  With SQPOLL
    the wake-up check (store tail, then load flags) needs a full fence; on
    x86-64 that is a locked instruction reached through libc, elsewhere
    pyuring simply enters the kernel with IORING_ENTER_SQ_WAKEUP.

Lifetimes
    Every object an SQE points to (buffer, path, iovec array, statx buffer,
    timespec) is stored in ``_inflight`` under the request's user_data and
    dropped only when its completion is reaped.  Requests flagged
    IOSQE_CQE_SKIP_SUCCESS post no completion on success; their objects ride
    along with the next request of the same link chain that does post one, or,
    when the chain ends with such a request, stay pinned for the ring's whole
    life.  close() cancels what is in flight and reaps every tracked request
    before it drops their objects; what it cannot prove finished (those
    skip-success objects, requests that do not end in time) is leaked on
    purpose rather than freed.

Threads and fork
    A Ring belongs to the thread that created it (the kernel enforces this
    for rings set up with SINGLE_ISSUER / DEFER_TASKRUN).  After fork() the
    child's copy of every Ring is poisoned: any use raises RingForkedError.
"""

from __future__ import annotations

import errno
import mmap
import os
import struct
import time
from _weakref import ref as _weakref

from . import _abi, _syscall
from ._abi import (
    IORING_ENTER_EXT_ARG,
    IORING_ENTER_GETEVENTS,
    IORING_ENTER_SQ_WAKEUP,
    IOSQE_CQE_SKIP_SUCCESS,
    IOSQE_IO_HARDLINK,
    IOSQE_IO_LINK,
)
from .errors import (
    RingForkedError,
    UringError,
    UringUnavailable,
    request_error,
    unavailable_reason,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple
else:
    from ._records import NamedTuple

_SQE_PACK = _abi.SQE.pack_into
_COMMON_PACK = _abi.SQE_COMMON.pack_into
_CQE_ITER = _abi.CQE.iter_unpack
_tuple_new = tuple.__new__
_SQE_UD = struct.Struct("=Q")
_SQE_UD_OFFSET = 32  # offsetof(struct io_uring_sqe, user_data)
_CQE = _abi.CQE
_LINKED = IOSQE_IO_LINK | IOSQE_IO_HARDLINK
_TSO = os.uname().machine.lower() in ("x86_64", "amd64", "i386", "i686") if hasattr(os, "uname") \
    else False

#: The flags a Ring asks for unless told otherwise, most valuable first to keep.
FAST_FLAGS = (
    _abi.IORING_SETUP_SUBMIT_ALL
    | _abi.IORING_SETUP_SINGLE_ISSUER
    | _abi.IORING_SETUP_DEFER_TASKRUN
    | _abi.IORING_SETUP_NO_SQARRAY
)
# On EINVAL these are given up one at a time, in this order.
_FALLBACK_ORDER = (
    _abi.IORING_SETUP_NO_SQARRAY,
    _abi.IORING_SETUP_DEFER_TASKRUN,
    _abi.IORING_SETUP_COOP_TASKRUN,
    _abi.IORING_SETUP_SINGLE_ISSUER,
    _abi.IORING_SETUP_SUBMIT_ALL,
)


class Completion(NamedTuple):
    """One CQE: ``user_data``, ``res`` and ``flags`` as the kernel wrote them.

    ``op`` is the opcode of the request when the ring tracked it (every
    request but NOP), else -1; ``path`` the path argument where there was one.
    """

    user_data: int
    res: int
    flags: int
    op: int = -1
    path: Any = None

    @property
    def op_name(self) -> str:
        return _abi.OP_NAMES.get(self.op, "request") if self.op >= 0 else "request"

    @property
    def more(self) -> bool:
        """True when the request will post further completions (multishot)."""
        return bool(self.flags & _abi.IORING_CQE_F_MORE)

    @property
    def buffer_id(self) -> Optional[int]:
        if self.flags & _abi.IORING_CQE_F_BUFFER:
            return self.flags >> _abi.IORING_CQE_BUFFER_SHIFT
        return None

    def error(self) -> Optional[OSError]:
        """The OSError for a failed request (``res < 0``), or None."""
        if self.res >= 0:
            return None
        return request_error(-self.res, self.op_name, self.path)

    def check(self) -> int:
        """Return ``res``; raise the matching OSError subclass if it is negative."""
        if self.res < 0:
            raise request_error(-self.res, self.op_name, self.path)
        return self.res


class RingStats(NamedTuple):
    """Exact counts kept by the ring itself (no strace or root needed)."""

    sqes: int
    enters: int
    completions: int
    sqes_by_op: Dict[str, int]

    @property
    def sqes_per_enter(self) -> float:
        return self.sqes / self.enters if self.enters else 0.0


class _Poisoned:
    """Stands in for the mapped queues in a forked child: any use raises."""

    def __getattr__(self, name: str) -> Any:
        raise RingForkedError()

    def __len__(self) -> int:
        raise RingForkedError()

    def __getitem__(self, index: Any) -> Any:
        raise RingForkedError()

    def __setitem__(self, index: Any, value: Any) -> None:
        raise RingForkedError()


#: user_data of the ring's own requests (close() barrier).  liburing reserves
#: the same value for its internal timeouts; pyuring never hands it out.
_INTERNAL_UD = _abi.USER_DATA_RESERVED

#: Objects still pinned by rings that were closed while the kernel might still
#: use them (close() could not prove every request finished): leaked on purpose,
#: a bounded cost next to a use-after-free.
_graveyard: List[Any] = []


# id -> weak reference (the `weakref` module's WeakSet would cost a millisecond
# of start-up in every process: its import pulls in more than this needs)
_live_rings: Dict[int, Any] = {}


def _forget_ring(key: int) -> Callable[[Any], None]:
    def forget(_ref: Any) -> None:
        _live_rings.pop(key, None)
    return forget


def _after_fork_in_child() -> None:
    for ref in list(_live_rings.values()):
        ring = ref()
        if ring is not None:
            ring._poison()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Personality:
    """The context manager of RingCore.personality (contextlib costs start-up)."""

    __slots__ = ("olds", "pid", "ring")

    def __init__(self, ring: RingCore, pid: int) -> None:
        self.ring, self.pid = ring, pid
        self.olds: List[int] = []  # (a stack: the same object may be entered again)

    def __enter__(self) -> None:
        self.olds.append(self.ring._personality)
        self.ring._personality = self.pid

    def __exit__(self, *exc: object) -> None:
        self.ring._personality = self.olds.pop()



def _unfit(exc: struct.error) -> ValueError:
    """A prep argument its SQE field cannot hold (a user_data past 2**64, a
    negative length, an fd past 2**31): nothing was queued."""
    return ValueError(f"an argument does not fit its SQE field ({exc}); nothing was queued")

class RingCore:
    """Setup, mapped queues, submit/wait/reap, request tracking and counters."""

    # set in __init__; annotated here for readers and type checkers
    _forked_maps: Tuple[memoryview, memoryview, mmap.mmap, mmap.mmap, mmap.mmap]
    fd: int
    features: int
    flags: int
    sq_entries: int
    cq_entries: int

    def __init__(
        self,
        entries: int = 256,
        *,
        flags: int = 0,
        cq_entries: Optional[int] = None,
        sq_thread_idle: Optional[int] = None,
        sq_thread_cpu: Optional[int] = None,
        wq_fd: Optional[int] = None,
        fast: bool = True,
        defer_taskrun: bool = True,
    ) -> None:
        """Create a ring with ``entries`` SQEs (rounded up to a power of two).

        ``flags`` are IORING_SETUP_* flags the caller requires; with
        ``fast=True`` (the default) the ring also asks for SUBMIT_ALL,
        SINGLE_ISSUER, DEFER_TASKRUN (or COOP_TASKRUN) and NO_SQARRAY and gives
        them up one by one if the kernel answers EINVAL.  ``.flags`` tells
        what was obtained.

        ``defer_taskrun=False`` asks for COOP_TASKRUN instead of DEFER_TASKRUN.
        DEFER_TASKRUN runs every completion's task work in the submitting
        thread, inside io_uring_enter -- the least overhead when that thread has
        nothing else to do.  Under COOP_TASKRUN an io-wq worker posts the
        completions of the work it ran itself, on its own CPU: better for a
        submitter that is the busy party, such as a Python loop driving many
        punted operations (the copy engine measured ~15 % faster this way).
        """
        self.fd = -1
        self._closed = True
        self._forked = False
        self._pid = os.getpid()
        if entries < 1:
            raise ValueError("entries must be at least 1")
        base = flags
        if cq_entries is not None:
            base |= _abi.IORING_SETUP_CQSIZE
        if sq_thread_cpu is not None:
            base |= _abi.IORING_SETUP_SQ_AFF
        if wq_fd is not None:
            base |= _abi.IORING_SETUP_ATTACH_WQ
        extra = 0
        if fast:
            extra = FAST_FLAGS & ~base
            if not defer_taskrun and not base & _abi.IORING_SETUP_DEFER_TASKRUN:
                extra = (extra & ~_abi.IORING_SETUP_DEFER_TASKRUN) | _abi.IORING_SETUP_COOP_TASKRUN
            if base & _abi.IORING_SETUP_SQPOLL:
                # task-run modes are meaningless with a kernel submission thread
                extra &= ~(_abi.IORING_SETUP_DEFER_TASKRUN | _abi.IORING_SETUP_COOP_TASKRUN)
        params = bytearray(_abi.PARAMS_SIZE)
        fd = self._setup(entries, base, extra, params, cq_entries, sq_thread_idle,
                         sq_thread_cpu, wq_fd)
        (self.sq_entries, self.cq_entries, self.flags, _cpu, _idle, self.features,
         _wq, _r0, _r1, _r2) = _abi.PARAMS.unpack_from(params)[:10]
        sq_off = _abi.SQRING_OFFSETS.unpack_from(params, _abi.PARAMS_SQ_OFF)
        cq_off = _abi.CQRING_OFFSETS.unpack_from(params, _abi.PARAMS_CQ_OFF)
        self.fd = fd
        try:
            self._map(sq_off, cq_off)
        except BaseException:
            os.close(fd)
            self.fd = -1
            raise
        self._closed = False
        self._enter = _syscall.enter_function()
        self._enter_fd = fd  # the registered ring index after register_ring_fd()
        self._enter_flags = 0
        self._nr_enter = _syscall.number("io_uring_enter")
        self._defer = bool(self.flags & _abi.IORING_SETUP_DEFER_TASKRUN)
        self._sqpoll = bool(self.flags & _abi.IORING_SETUP_SQPOLL)
        # submit_and_wait in one ctypes call: x86 (no fences needed), no SQPOLL
        self._plain_enter = _TSO and not self._sqpoll
        # requests
        self._inflight: Dict[int, List[Any]] = {}
        self._chain: List[Any] = []  # objects of skip-success requests in an open link chain
        self._orphans: List[Any] = []  # objects pinned until close (see module docstring)
        self._skip_used = False  # a CQE_SKIP_SUCCESS request was ever tracked
        self._next_user_data = 1
        self._stash: List[Completion] = []  # reaped while making room, not yet returned
        self._personality = 0
        # counters
        self._op_counts = [0] * 256
        self._enters = 0
        self._completions = 0
        # EXT_ARG wait argument: a getevents_arg pointing at a timespec, both
        # allocated once so waiting with a timeout allocates nothing.
        self._wait_mem = bytearray(_abi.GETEVENTS_ARG.size + _abi.TIMESPEC.size)
        self._wait_anchor = _syscall.ctypes.c_char.from_buffer(self._wait_mem)
        self._wait_addr = _syscall.ctypes.addressof(self._wait_anchor)
        self._wait_deadline = 0  # time.monotonic_ns() at which a timed wait ends
        #: Called when io_uring_enter returns EINTR: True makes the wait raise
        #: InterruptedError instead of retrying (the default is to retry).
        self.eintr_hook: Optional[Callable[[], bool]] = None
        self._fence: Any = None
        _live_rings[id(self)] = _weakref(self, _forget_ring(id(self)))

    # ------------------------------------------------------------------
    # setup and mapping
    # ------------------------------------------------------------------
    def _setup(
        self, entries: int, base: int, extra: int, params: bytearray,
        cq_entries: Optional[int], idle: Optional[int], cpu: Optional[int],
        wq_fd: Optional[int],
    ) -> int:
        try:
            _syscall.libc()
        except UringUnavailable:
            raise
        anchor = _syscall.ctypes.c_char.from_buffer(params)
        addr = _syscall.ctypes.addressof(anchor)
        try:
            while True:
                _abi.PARAMS.pack_into(
                    params, 0, 0, cq_entries or 0, base | extra, cpu or 0, idle or 0,
                    0, wq_fd or 0, 0, 0, 0, *([0] * 9), *([0] * 9),
                )
                try:
                    return _syscall.io_uring_setup(entries, addr)
                except OSError as exc:
                    err = exc.errno or 0
                    if err in (errno.ENOSYS, errno.EPERM, errno.EACCES, errno.ENOMEM):
                        raise UringUnavailable(err, unavailable_reason(err)) from None
                    if err != errno.EINVAL or not extra:
                        raise UringError(
                            err, f"io_uring_setup failed: {os.strerror(err)}"
                        ) from None
                    for flag in _FALLBACK_ORDER:
                        if extra & flag:
                            extra &= ~flag
                            if flag == _abi.IORING_SETUP_DEFER_TASKRUN and not (
                                base & _abi.IORING_SETUP_SQPOLL
                            ):
                                # the older, weaker form of the same saving
                                extra |= _abi.IORING_SETUP_COOP_TASKRUN
                            break
        finally:
            del anchor

    def _map(self, sq_off: Tuple[int, ...], cq_off: Tuple[int, ...]) -> None:
        (sq_head, sq_tail, sq_mask, _sq_n, sq_flags, sq_dropped, sq_array, _r1, _r2) = sq_off
        (cq_head, cq_tail, cq_mask, _cq_n, cq_overflow, cq_cqes, cq_flags, _r3, _r4) = cq_off
        self._sqe_shift = 7 if self.flags & _abi.IORING_SETUP_SQE128 else 6
        self._cqe_size = 32 if self.flags & _abi.IORING_SETUP_CQE32 else 16
        no_array = bool(self.flags & _abi.IORING_SETUP_NO_SQARRAY)
        cq_size = cq_cqes + self.cq_entries * self._cqe_size
        sq_size = cq_size if no_array else sq_array + self.sq_entries * 4
        prot = mmap.PROT_READ | mmap.PROT_WRITE
        share = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        if self.features & _abi.IORING_FEAT_SINGLE_MMAP:
            size = max(sq_size, cq_size)
            self._sq_map = mmap.mmap(self.fd, size, share, prot, offset=_abi.IORING_OFF_SQ_RING)
            self._cq_map = self._sq_map
        else:
            self._sq_map = mmap.mmap(self.fd, sq_size, share, prot, offset=_abi.IORING_OFF_SQ_RING)
            self._cq_map = mmap.mmap(self.fd, cq_size, share, prot, offset=_abi.IORING_OFF_CQ_RING)
        self._sqes = mmap.mmap(
            self.fd, self.sq_entries << self._sqe_shift, share, prot, offset=_abi.IORING_OFF_SQES
        )
        sq_words = memoryview(self._sq_map).cast("I")
        cq_words = memoryview(self._cq_map).cast("I")
        self._sq_words, self._cq_words = sq_words, cq_words
        self._cq_view = memoryview(self._cq_map)
        self._k_sq_head = sq_head >> 2
        self._k_sq_tail = sq_tail >> 2
        self._k_sq_flags = sq_flags >> 2
        self._k_sq_dropped = sq_dropped >> 2
        self._k_cq_head = cq_head >> 2
        self._k_cq_tail = cq_tail >> 2
        self._k_cq_overflow = cq_overflow >> 2
        self._k_cq_flags = cq_flags >> 2
        self._sq_mask = sq_words[sq_mask >> 2]
        self._cq_mask = cq_words[cq_mask >> 2]
        self._cq_cqes = cq_cqes
        if not no_array:
            # The indirection array is filled once: slot i always holds SQE i.
            base = sq_array >> 2
            for i in range(self.sq_entries):
                sq_words[base + i] = i
        # Local copies of the ring indexes; the kernel's are written back only
        # when submitting / after reaping.
        self._sq_tail = sq_words[self._k_sq_tail]
        self._sq_submitted = self._sq_tail
        self._sq_limit = self._head() + self.sq_entries
        self._cq_head = cq_words[self._k_cq_head]
        self._cq_visible = self._cq_head  # acquire-safe tail snapshot (weak CPUs)

    def close(self) -> None:
        """Close the ring: unmap the queues and close the ring fd.

        Completions not reaped yet are dropped.  If requests may still be in
        flight, they are cancelled and the ring waits until the kernel is done
        with them (see ``_quiesce``) before it lets go of their buffers.
        """
        if self._closed:
            return
        if not self._forked and (self._inflight or self._chain or self._orphans):
            self._quiesce()
        self._closed = True
        _live_rings.pop(id(self), None)
        if self._forked:
            sq_words, cq_words, *maps = self._forked_maps
        else:
            sq_words, cq_words = self._sq_words, self._cq_words
            maps = [self._sqes, self._sq_map, self._cq_map]
        sq_words.release()
        cq_words.release()
        self._cq_view.release()
        self._plain_enter = False
        for m in maps:
            if not m.closed:
                m.close()
        os.close(self.fd)
        self.fd = -1
        # the next prep_* finds the SQ "full" and lands in _make_room: raise there
        self._sq_limit = self._sq_tail
        self._make_room = self._closed_error  # type: ignore[method-assign]
        self._inflight.clear()
        self._chain.clear()
        self._orphans.clear()
        del self._wait_anchor

    def _quiesce(self, timeout: float = 5.0) -> None:
        """Wait until the kernel no longer touches memory this ring pinned.

        Closing the ring fd does not stop requests synchronously: the kernel
        tears the ring down in a worker, and an operation already running (a
        write copying from its buffer in an io-wq thread, say) goes on after
        close(2) returned.  So everything is cancelled (ASYNC_CANCEL ANY|ALL)
        and every tracked request's completion is reaped: then no request
        that pins memory is left.

        Requests flagged IOSQE_CQE_SKIP_SUCCESS post nothing on success, so
        nothing proves they are done (IOSQE_IO_DRAIN would, but the kernel
        refuses it, EOPNOTSUPP, on a ring that has used CQE_SKIP_SUCCESS).
        Their objects, and whatever cannot be shown finished in ``timeout``
        seconds (or at all: close() from a thread a SINGLE_ISSUER ring
        refuses), are leaked into ``_graveyard`` instead of freed.
        """
        try:
            self._forget_unsubmitted()
            self._personality = 0
            self._push(_abi.IORING_OP_ASYNC_CANCEL, -1, 0, 0, 0,
                       _abi.IORING_ASYNC_CANCEL_ANY | _abi.IORING_ASYNC_CANCEL_ALL,
                       _INTERNAL_UD, 0)
            deadline = time.monotonic() + timeout
            while self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(errno.ETIME, "requests still in flight")
                self.wait_cqes(1, timeout=left)
            if self._skip_used and (self._chain or self._orphans):
                raise LookupError("skip-success requests cannot be shown finished")
        except Exception:
            _graveyard.append((self._inflight, self._chain, self._orphans))
            self._inflight, self._chain, self._orphans = {}, [], []

    def _forget_unsubmitted(self, start: Optional[int] = None) -> None:
        """Drop the SQEs prepared but never handed to the kernel (it has not
        seen them; from ``start`` on) and their tracking entries: no
        completion will come."""
        inflight = self._inflight
        first = self._taken() if start is None else start
        for i in range(first, self._sq_tail):
            off = (i & self._sq_mask) << self._sqe_shift
            ud = _SQE_UD.unpack_from(self._sqes, off + _SQE_UD_OFFSET)[0]
            entry = inflight.get(ud)
            if entry is not None and not self._sqes[off + 1] & IOSQE_CQE_SKIP_SUCCESS:
                entry[0] -= 1
                if entry[0] <= 0:
                    del inflight[ud]
        self._sq_tail = first

    def __enter__(self) -> RingCore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    @property
    def closed(self) -> bool:
        return self._closed

    def _poison(self) -> None:
        # In a forked child the mappings are shared with the parent's ring:
        # writing an SQE or a ring index would corrupt it.  Make every entry
        # point raise RingForkedError.
        self._forked = True
        self._cq_view.release()
        self._plain_enter = False
        self._forked_maps = (self._sq_words, self._cq_words, self._sqes, self._sq_map,
                             self._cq_map)
        bad: Any = _Poisoned()
        self._sqes = self._sq_map = self._cq_map = bad
        self._sq_words = self._cq_words = bad
        self._enter = self._forked_enter
        self._slot = self._forked_enter  # type: ignore[method-assign]
        self._take = self._forked_enter  # type: ignore[method-assign,assignment]
        self._make_room = self._forked_enter  # type: ignore[method-assign,assignment]
        # Every prep_* compares the SQ tail with _sq_limit before it writes an
        # SQE (struct.pack_into cannot be poisoned): make that test true so the
        # next prep lands in _make_room, which now raises.
        self._sq_limit = self._sq_tail

    @staticmethod
    def _forked_enter(*args: Any) -> int:
        raise RingForkedError()

    @staticmethod
    def _closed_error(*args: Any) -> None:
        raise ValueError("operation on a closed Ring")

    # ------------------------------------------------------------------
    # SQE slots and request tracking
    # ------------------------------------------------------------------
    def get_user_data(self) -> int:
        """A fresh 64-bit token for a request (never 0, never 2**64-1)."""
        ud = self._next_user_data
        self._next_user_data = ud + 1 if ud < 0xFFFFFFFFFFFFFFFE else 1
        return ud

    def _slot(self) -> int:
        """Byte offset of the next free SQE; submits first when the SQ is full."""
        tail = self._sq_tail
        if tail == self._sq_limit:
            self._make_room()
        self._sq_tail = tail + 1
        return (tail & self._sq_mask) << self._sqe_shift

    def _reserve(self, n: int) -> int:
        """Byte offset of ``n`` consecutive free 64-byte SQEs at the tail, now taken
        by the caller, who writes all of them before anything else is prepared
        (or gives them back with ``_unreserve`` if that fails).  -1 when there is
        no room, when the SQE array wraps inside them or when SQEs are 128 bytes
        (SQE128): then write them one by one.  Lets a layer above write a whole
        chain with one ``pack_into`` of 64-byte layouts back to back."""
        tail = self._sq_tail
        if tail + n > self._sq_limit:
            # (the limit is refreshed only when the SQ looked full; look again)
            self._sq_limit = self._head() + self.sq_entries
            if tail + n > self._sq_limit:
                return -1
        if (tail & self._sq_mask) + n > self.sq_entries or self._sqe_shift != 6:
            return -1
        self._sq_tail = tail + n
        return (tail & self._sq_mask) << 6

    def _unreserve(self, n: int) -> None:
        """Give back the last ``_reserve(n)``: writing its SQEs failed."""
        self._sq_tail -= n

    def _make_room(self) -> None:
        """The SQ is full: hand prepared SQEs to the kernel until a slot frees up.

        A link chain that is still open (the last prepared SQE carries
        IOSQE_IO_LINK) is never split: the kernel ends every chain at the end
        of a submission batch, so submitting its first half would silently run
        the rest unlinked.  Only the SQEs before the chain's head are submitted.
        """
        self._taken()  # (our count as the kernel has it: _open_chain_head stops there)
        self._sq_limit = self._head() + self.sq_entries
        while self._sq_tail == self._sq_limit:
            head = self._open_chain_head()
            if self._sq_tail - head >= self.sq_entries:
                # the chain so far is withdrawn: a later submit must not run
                # its first part alone
                self._forget_unsubmitted(head)
                self._chain = []
                raise UringError(
                    errno.ENOBUFS,
                    f"a link chain longer than the submission queue ({self.sq_entries} "
                    f"entries): create the Ring with more entries",
                )
            if head != self._sq_submitted:
                # submit up to (not including) the open chain
                tail, self._sq_tail = self._sq_tail, head
                try:
                    self._submit(0, 0)
                finally:
                    self._sq_tail = tail
            else:
                # SQPOLL: everything is handed over, the thread has not consumed it yet
                self._enter_kernel(0, 0, _abi.IORING_ENTER_SQ_WAIT)
            self._sq_limit = self._head() + self.sq_entries

    def _open_chain_head(self) -> int:
        """Index of the first SQE of a link chain still open at the SQ tail
        (the tail itself when the last prepared SQE ends its chain)."""
        sqes, mask, shift = self._sqes, self._sq_mask, self._sqe_shift
        i = self._sq_tail
        while i > self._sq_submitted and sqes[(((i - 1) & mask) << shift) + 1] & _LINKED:
            i -= 1
        return i

    def _track(self, ud: int, op: int, flags: int, path: Any, keep: Any) -> None:
        """Pin ``keep`` (any object, or None) until ``ud``'s completion is reaped."""
        if flags & IOSQE_CQE_SKIP_SUCCESS:
            self._skip_used = True  # see _quiesce
            if keep is not None:
                self._chain.append(keep)
            if not flags & _LINKED and self._chain:
                self._orphans.extend(self._chain)
                self._chain = []
            return
        entry = self._inflight.get(ud)
        if entry is None:
            self._inflight[ud] = [1, op, path, keep, self._chain if self._chain else None]
        else:
            # the same user_data reused while in flight: keep everything until
            # the last of them completes
            entry[0] += 1
            entry.append(keep)
            if self._chain:
                entry.append(self._chain)
        if self._chain:
            self._chain = []

    def _push(
        self, op: int, fd: int, off: int, addr: int, length: int, op_flags: int,
        ud: int, flags: int, ioprio: int = 0, buf_index: int = 0, file_index: int = 0,
        addr3: int = 0, path: Any = None, keep: Any = None,
    ) -> None:
        """Write one SQE (every field; unused ones become 0) and track it."""
        tail = self._sq_tail
        if tail == self._sq_limit:
            self._make_room()
        # (packed before the tail moves: arguments pack_into refuses queue nothing)
        if not -(1 << 63) <= off < 1 << 64:  # (-1: the file position; 2**64 + k is no k)
            raise _unfit(struct.error(f"offset {off} is out of range"))
        try:
            _SQE_PACK(
                self._sqes, (tail & self._sq_mask) << self._sqe_shift, op, flags, ioprio, fd,
                off & 0xFFFFFFFFFFFFFFFF, addr, length, op_flags, ud, buf_index,
                self._personality, file_index, addr3, 0,
            )
        except struct.error as exc:
            raise _unfit(exc) from None
        self._sq_tail = tail + 1
        self._op_counts[op] += 1
        if op or keep is not None:
            self._track(ud, op, flags, path, keep)

    def _push_raw(self, op: int, fd: int, off: int, addr: int, length: int, op_flags: int,
                  ud: int, flags: int, file_index: int = 0) -> None:
        """Write one SQE with no tracking: the *caller* keeps every object it
        points to alive (paths until submitted, buffers until completed).

        For layers that own their memory, like the executors: no dict entry
        per request, one ``pack_into`` with 10 arguments.  ``off`` must be in
        0..2**64-1.
        """
        tail = self._sq_tail
        if tail == self._sq_limit:
            self._make_room()
        # (packed before the tail moves: arguments pack_into refuses queue nothing)
        _COMMON_PACK(self._sqes, (tail & self._sq_mask) << self._sqe_shift, op, flags, fd, off,
                     addr, length, op_flags, ud, self._personality, file_index)
        self._sq_tail = tail + 1
        self._op_counts[op] += 1

    def personality(self, personality_id: int) -> _Personality:
        """``with ring.personality(pid):`` SQEs prepared inside the block run
        with a registered personality."""
        return _Personality(self, personality_id)

    def pending(self) -> int:
        """SQEs prepared but not yet handed to the kernel."""
        return self._sq_tail - self._taken()

    def inflight(self) -> int:
        """Requests with a completion still to come (tracked requests only)."""
        return sum(entry[0] for entry in self._inflight.values())

    # ------------------------------------------------------------------
    # entering the kernel
    # ------------------------------------------------------------------
    def _enter_kernel(self, to_submit: int, min_complete: int, flags: int,
                      arg: int = 0, argsz: int = 0) -> int:
        if self._closed:
            raise ValueError("operation on a closed Ring")
        if not _TSO:
            # publish our CQ head now, just before the barrier a syscall is
            self._cq_words[self._k_cq_head] = self._cq_head & 0xFFFFFFFF
        while True:
            self._enters += 1
            if arg:
                res = self._enter(self._nr_enter, self._enter_fd, to_submit, min_complete,
                                  flags | self._enter_flags, _syscall.void_p(arg),
                                  _syscall.size_t(argsz))
            else:
                res = self._enter(self._nr_enter, self._enter_fd, to_submit, min_complete,
                                  flags | self._enter_flags, None, 0)
            if res >= 0:
                if not _TSO and flags & IORING_ENTER_GETEVENTS:
                    self._cq_visible = self._cq_words[self._k_cq_tail]
                return int(res)
            err = _syscall.get_errno()
            if err == errno.EINTR:
                if self.eintr_hook is not None and self.eintr_hook():
                    # the owner wants control back (a stop was requested while
                    # we waited): report the interruption instead of retrying
                    raise InterruptedError(err, "io_uring_enter interrupted")
                if arg:
                    # A timed wait (the only user of arg): retry with what is
                    # left of the timeout, not the whole of it again, or a
                    # steady stream of signals would make the wait endless.
                    left = max(0, self._wait_deadline - time.monotonic_ns())
                    _abi.TIMESPEC.pack_into(self._wait_mem, _abi.GETEVENTS_ARG.size,
                                            left // 1_000_000_000, left % 1_000_000_000)
                continue
            if err == errno.EEXIST:
                raise UringError(err, "io_uring_enter: this Ring belongs to another thread "
                                      "(SINGLE_ISSUER); create one Ring per thread")
            raise UringError(err, f"io_uring_enter: {os.strerror(err)}")

    def submit(self) -> int:
        """Hand every prepared SQE to the kernel; return how many it took."""
        return self._submit(0, 0)

    def submit_and_wait(self, wait_nr: int = 1) -> int:
        """Submit, then block until at least ``wait_nr`` completions are ready."""
        if self._plain_enter:
            # the common case in one syscall and no Python call in between;
            # anything unusual (EINTR, EBUSY, errors) takes the full path
            tail = self._sq_tail
            n = tail - self._taken()
            if n:
                self._sq_words[self._k_sq_tail] = tail & 0xFFFFFFFF
            self._enters += 1
            res = self._enter(self._nr_enter, self._enter_fd, n, wait_nr,
                              IORING_ENTER_GETEVENTS | self._enter_flags, None, 0)
            if res >= 0:
                self._sq_submitted += res
                return int(res)
            self._enters -= 1
        return self._submit(wait_nr, IORING_ENTER_GETEVENTS)

    def _taken(self) -> int:
        """How many SQEs the kernel has taken, from its SQ head (not SQPOLL).
        Our count can fall short: a signal whose handler raises (Ctrl-C)
        right after an enter that submitted, before the count is added.
        Asking to submit SQEs the kernel already has makes every later enter
        return at once without waiting -- a busy loop that never ends."""
        if self._sqpoll or self._closed:
            return self._sq_submitted  # (closed: its queues are unmapped)
        self._sq_submitted = done = self._head()
        return done

    def _head(self) -> int:
        """The kernel's SQ head (a 32-bit counter) in the units of our SQ tail,
        which is not cut to 32 bits."""
        tail = self._sq_tail
        return tail - ((tail - self._sq_words[self._k_sq_head]) & 0xFFFFFFFF)

    def _submit(self, wait_nr: int, flags: int) -> int:
        tail = self._sq_tail
        n = tail - self._taken()
        if n:
            self._sq_words[self._k_sq_tail] = tail & 0xFFFFFFFF
        if self._sqpoll:
            self._sq_submitted = tail
            if self._sq_needs_wakeup():
                flags |= IORING_ENTER_SQ_WAKEUP
            elif not wait_nr:
                return n
            self._enter_kernel(0, wait_nr, flags)
            return n
        if not n and not wait_nr:
            return 0
        if self._defer and n:
            flags |= IORING_ENTER_GETEVENTS  # run deferred task work while we are in
        while True:
            try:
                done = self._enter_kernel(n, wait_nr, flags)
                break
            except UringError as exc:
                if exc.errno not in (errno.EBUSY, errno.EAGAIN):
                    raise
                # CQ overflowed and the kernel wants room first: the completions
                # are parked (IORING_FEAT_NODROP) until we reap.
                self._stash_ready()
                if not (self._sq_words[self._k_sq_flags] & _abi.IORING_SQ_CQ_OVERFLOW):
                    raise
                self._enter_kernel(0, 0, IORING_ENTER_GETEVENTS)
        # Without SUBMIT_ALL a submission-time failure can stop the batch
        # early; what is left stays pending for the next submit.
        self._sq_submitted += done
        return done

    def _sq_needs_wakeup(self) -> bool:
        if not _TSO:
            return True  # no fence available: always wake (the syscall is one)
        if self._fence is None:
            libc = _syscall.libc()
            lock = _syscall.ctypes.c_int(0)
            self._fence = (libc.pthread_spin_trylock, libc.pthread_spin_unlock, lock)
        trylock, unlock, lock = self._fence
        trylock(_syscall.ctypes.byref(lock))  # xchg: a full barrier on x86
        unlock(_syscall.ctypes.byref(lock))
        return bool(self._sq_words[self._k_sq_flags] & _abi.IORING_SQ_NEED_WAKEUP)

    # ------------------------------------------------------------------
    # completions
    # ------------------------------------------------------------------
    def _ready_tail(self) -> int:
        if _TSO:
            return int(self._cq_words[self._k_cq_tail])
        return self._cq_visible

    def _stash_ready(self) -> None:
        # Used only on the EBUSY path: keep reaped completions for the caller.
        got = self._take(None)
        if got:
            self._stash.extend(got)

    def _take(self, limit: Optional[int]) -> List[Completion]:
        """Consume up to ``limit`` ready CQEs and return them as Completions."""
        head = self._cq_head
        avail = (self._ready_tail() - head) & 0xFFFFFFFF
        if not avail:
            return []
        if limit is not None and avail > limit:
            avail = limit
        raw = self._read_cqes(head, avail)
        inflight = self._inflight
        C = Completion
        if not inflight:
            # tuple.__new__ skips the NamedTuple's Python-level __new__
            return [_tuple_new(C, (ud, res, fl, -1, None)) for ud, res, fl in raw]
        out = []
        pop = inflight.pop
        for ud, res, fl in raw:
            entry = pop(ud, None)
            if entry is None:
                out.append(_tuple_new(C, (ud, res, fl, -1, None)))
                continue
            out.append(_tuple_new(C, (ud, res, fl, entry[1], entry[2])))
            if fl & _abi.IORING_CQE_F_MORE or entry[0] > 1:
                if not fl & _abi.IORING_CQE_F_MORE:
                    entry[0] -= 1
                inflight[ud] = entry
        return out

    def _read_cqes(self, head: int, avail: int) -> List[Tuple[int, int, int]]:
        """Copy ``avail`` CQEs from ``head`` on out of the ring and consume them."""
        start = head & self._cq_mask
        base = self._cq_cqes
        if self._cqe_size == 16:
            mv = self._cq_view
            first = min(avail, self.cq_entries - start)
            raw = list(_CQE_ITER(mv[base + start * 16: base + (start + first) * 16]))
            if first < avail:
                raw.extend(_CQE_ITER(mv[base: base + (avail - first) * 16]))
        else:
            size, mask = self._cqe_size, self._cq_mask
            raw = [_CQE.unpack_from(self._cq_map, base + ((head + i) & mask) * size)
                   for i in range(avail)]
        self._cq_head = head + avail
        if _TSO:
            # x86: stores are not reordered with the earlier loads of the CQEs
            self._cq_words[self._k_cq_head] = self._cq_head & 0xFFFFFFFF
        self._completions += avail
        return raw

    def reap_raw(self) -> List[Tuple[int, int, int]]:
        """The ready completions as plain ``(user_data, res, flags)`` tuples, consumed.

        The cheapest way to drain the CQ ring: no objects are built.  Meant to
        follow ``submit_and_wait`` (which has run any deferred task work);
        requests the ring tracks still have their objects released.
        """
        head = self._cq_head
        tail = self._cq_words[self._k_cq_tail] if _TSO else self._cq_visible
        avail = (tail - head) & 0xFFFFFFFF
        if not avail:
            return []
        raw = self._read_cqes(head, avail)
        if self._inflight or self._stash:
            self._release(raw)
        return raw

    def _release(self, raw: List[Tuple[int, int, int]]) -> None:
        # reap_raw on a ring that also tracks requests: drop their pins
        if self._stash:
            raw[:0] = [(c.user_data, c.res, c.flags) for c in self._drain_stash(None)]
        inflight = self._inflight
        for ud, _res, fl in raw:
            entry = inflight.pop(ud, None)
            if entry is not None and (fl & _abi.IORING_CQE_F_MORE or entry[0] > 1):
                if not fl & _abi.IORING_CQE_F_MORE:
                    entry[0] -= 1
                inflight[ud] = entry

    def _drain_stash(self, limit: Optional[int]) -> List[Completion]:
        stash = self._stash
        if limit is None or limit >= len(stash):
            self._stash = []
            return stash
        out, self._stash = stash[:limit], stash[limit:]
        return out

    def peek_cqe(self) -> Optional[Completion]:
        """The next ready completion (consumed), or None without blocking."""
        if self._stash:
            return self._drain_stash(1)[0]
        got = self._take(1)
        if got:
            return got[0]
        if self._needs_flush():
            self._enter_kernel(0, 0, IORING_ENTER_GETEVENTS)
            got = self._take(1)
            if got:
                return got[0]
        return None

    def _needs_flush(self) -> bool:
        # Completions that exist but are not in the CQ ring yet: deferred
        # task work (DEFER_TASKRUN), or the kernel's overflow list.
        if self._defer or not _TSO:
            return True
        return bool(self._sq_words[self._k_sq_flags]
                    & (_abi.IORING_SQ_CQ_OVERFLOW | _abi.IORING_SQ_TASKRUN))

    def wait_cqe(self, timeout: Optional[float] = None) -> Completion:
        """Block until a completion is ready and return it (consumed).

        Prepared SQEs are submitted first.  With ``timeout`` (seconds) raises
        ``TimeoutError`` (errno ETIME) when nothing completes in time.
        """
        got = self.wait_cqes(1, timeout, limit=1)
        return got[0]

    def wait_cqes(self, wait_nr: int = 1, timeout: Optional[float] = None,
                  limit: Optional[int] = None) -> List[Completion]:
        """Submit, wait for at least ``wait_nr`` completions, return every ready one.

        ``limit`` caps how many are consumed.  With ``timeout`` (seconds) the
        wait uses IORING_ENTER_EXT_ARG and ends after that long at most: the
        completions that arrived by then are returned (fewer than ``wait_nr``,
        possibly), and ``TimeoutError`` (errno ETIME) is raised if none did.
        """
        out = self._drain_stash(limit) if self._stash else []
        out.extend(self._take(None if limit is None else limit - len(out)))
        if len(out) >= wait_nr or (limit is not None and len(out) >= limit):
            self._flush_pending()
            return out
        if timeout is None:
            while len(out) < wait_nr:
                self._submit(wait_nr - len(out), IORING_ENTER_GETEVENTS)
                out.extend(self._take(None if limit is None else limit - len(out)))
            return out
        deadline = self._wait_deadline = time.monotonic_ns() + max(0, int(timeout * 1e9))
        _abi.GETEVENTS_ARG.pack_into(self._wait_mem, 0, 0, 0, 0,
                                     self._wait_addr + _abi.GETEVENTS_ARG.size)
        if self._sqpoll:
            # hand the SQEs to the SQ thread (waking it if it sleeps); the
            # enter below only waits
            self._submit(0, 0)
        while True:
            left = max(0, deadline - time.monotonic_ns())
            _abi.TIMESPEC.pack_into(self._wait_mem, _abi.GETEVENTS_ARG.size,
                                    left // 1_000_000_000, left % 1_000_000_000)
            tail = self._sq_tail
            n = tail - self._taken()
            if n:
                self._sq_words[self._k_sq_tail] = tail & 0xFFFFFFFF
            timed_out = False
            try:
                done = self._enter_kernel(n, wait_nr - len(out),
                                          IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
                                          self._wait_addr, _abi.GETEVENTS_ARG.size)
                self._sq_submitted += done
            except UringError as exc:
                if exc.errno != errno.ETIME:
                    raise
                self._sq_submitted = tail
                timed_out = True
            out.extend(self._take(None if limit is None else limit - len(out)))
            # io_uring_enter may return before min_complete completions are
            # there (task work ran, a SQPOLL ring just started...): only ETIME
            # means the time is up.
            if timed_out or len(out) >= wait_nr or (limit is not None and len(out) >= limit) \
                    or time.monotonic_ns() >= deadline:
                break
        if not out:
            raise TimeoutError(errno.ETIME, "timed out waiting for an io_uring completion")
        return out

    def submit_and_wait_timeout(self, wait_nr: int, timeout: float) -> bool:
        """Submit and wait up to ``timeout`` seconds for ``wait_nr`` completions,
        leaving them in the CQ ring; False when the time ran out first."""
        timeout = max(0.0, timeout)  # (a negative one is no wait, not its absolute value)
        self._wait_deadline = time.monotonic_ns() + int(timeout * 1e9)
        _abi.GETEVENTS_ARG.pack_into(self._wait_mem, 0, 0, 0, 0,
                                     self._wait_addr + _abi.GETEVENTS_ARG.size)
        _abi.TIMESPEC.pack_into(self._wait_mem, _abi.GETEVENTS_ARG.size,
                                int(timeout), int((timeout % 1) * 1e9))
        if self._sqpoll:
            self._submit(0, 0)
        tail = self._sq_tail
        n = tail - self._taken()
        if n:
            self._sq_words[self._k_sq_tail] = tail & 0xFFFFFFFF
        try:
            self._sq_submitted += self._enter_kernel(
                n, wait_nr, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
                self._wait_addr, _abi.GETEVENTS_ARG.size)
        except UringError as exc:
            if exc.errno != errno.ETIME:
                raise
            self._sq_submitted = tail
            return False
        return True

    def _flush_pending(self) -> None:
        if self._sq_tail != self._sq_submitted and self._sqpoll:
            self.submit()

    def reap(self, max_count: Optional[int] = None) -> List[Completion]:
        """Every completion ready now (at most ``max_count``), consumed, without blocking.

        This is the batch form: one call, one list.  On rings with deferred
        task work it enters the kernel once (GETEVENTS, no wait) if the CQ
        ring is empty.
        """
        out = self._drain_stash(max_count) if self._stash else []
        out.extend(self._take(None if max_count is None else max_count - len(out)))
        if not out and self._needs_flush() and (
                self._inflight or self._defer
                # (untracked requests' completions -- NOPs -- parked by a CQ overflow)
                or self._sq_words[self._k_sq_flags] & _abi.IORING_SQ_CQ_OVERFLOW):
            self._enter_kernel(0, 0, IORING_ENTER_GETEVENTS)
            out = self._take(max_count)
        return out

    def completions(self) -> Iterator[Completion]:
        """Iterate over (and consume) the completions that are ready now."""
        while True:
            got = self.reap()
            if not got:
                return
            yield from got

    def cq_ready(self) -> int:
        """How many completions sit in the CQ ring right now."""
        return ((self._ready_tail() - self._cq_head) & 0xFFFFFFFF) + len(self._stash)

    # ------------------------------------------------------------------
    # counters
    # ------------------------------------------------------------------
    @property
    def stats(self) -> RingStats:
        by_op = {
            _abi.OP_NAMES.get(op, str(op)): n for op, n in enumerate(self._op_counts) if n
        }
        return RingStats(sum(self._op_counts), self._enters, self._completions, by_op)

    def reset_stats(self) -> None:
        self._op_counts = [0] * 256
        self._enters = 0
        self._completions = 0

    @property
    def sq_dropped(self) -> int:
        """SQEs the kernel found invalid and dropped (kernel counter)."""
        return int(self._sq_words[self._k_sq_dropped])

    @property
    def cq_overflow(self) -> int:
        """Completions the kernel could not post (kernel counter; 0 with NODROP)."""
        return int(self._cq_words[self._k_cq_overflow])
