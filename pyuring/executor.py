"""Executors: run filesystem operations through io_uring or through plain syscalls.

An executor takes operations grouped in *chains* and reports each result to
the chain's callback as ``callback(index, res, extra)``:

* ``index`` is the position the caller gave the operation in its chain,
* ``res`` is what the syscall returned (``-errno`` on failure),
* ``extra`` is the parsed :class:`~pyuring.metadata.Metadata` for statx,
  else None.

``statx_many`` is the one exception: the source and destination statx of a
batch of entries, whose results reach one callback together as raw ``struct
statx`` bytes (see :data:`ManyCallback`), so that a re-run can compare them
before paying for Metadata objects, or even for a callback per entry.

Chains have io_uring's link semantics on both backends.  ``flags`` of an
operation may hold ``LINK`` (the next operation of the chain runs only if this
one succeeds -- a short read or write counts as failure), ``HARDLINK`` (the
next runs regardless) and ``SKIP`` (no callback on success).  When a linked
operation fails, the rest of its chain completes with ``-ECANCELED`` -- or,
when the failing operation carries ``SKIP``, silently: the kernel then posts no
completion for the cancelled rest, and neither backend calls back for them.  The
first operation without LINK/HARDLINK ends the chain; it must not have SKIP.
Chain 0 is the *background* chain: independent fire-and-forget operations
(usually ``close`` with SKIP) whose failures go to ``on_background_error``.

``UringExecutor`` turns every operation into one SQE (the chain id and index
travel in user_data) and hands batches to the kernel; ``SyncExecutor``
performs each operation at once with the equivalent syscall and queues the
callback.  Because the engine above is written once against this interface,
both backends produce identical results.

Operations io_uring has no opcode for (futimens, fchmod, fchown, getdents64,
readlinkat, mknodat, flistxattr...) are plain methods shared by both, counted
in ``direct_syscalls``.
"""

from __future__ import annotations

import _thread
import collections
import errno
import os
import struct

from . import _abi as A
from . import _mem, _syscall
from ._mem import Buffer, path_address
from .errors import OpcodeUnsupported, UringError, UringUnavailable
from .metadata import STATX_WANTED, Metadata

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

_from_statx = Metadata.from_statx

LINK = A.IOSQE_IO_LINK
HARDLINK = A.IOSQE_IO_HARDLINK
SKIP = A.IOSQE_CQE_SKIP_SUCCESS
_LINKED = LINK | HARDLINK

#: Resolution flags for every open below a root: never leave the directory,
#: never follow a symlink (not even a "magic" /proc one).
RESOLVE_SAFE = A.RESOLVE_BENEATH | A.RESOLVE_NO_SYMLINKS | A.RESOLVE_NO_MAGICLINKS

if TYPE_CHECKING:
    Callback = Callable[[int, int, Any], None]
    #: ``callback(results, mems, offs)``: for request i (source 2k, destination
    #: 2k + 1 of pair k) its result and where its ``struct statx`` is, ``mems[i]``
    #: at ``offs[i]`` (valid only during the call)
    ManyCallback = Callable[[List[int], List[Any], List[int]], None]

# user_data of a ring operation:
#   chain id << 7 | STATX << 6 | SILENT_END << 5 | END << 4 | index.
# END marks a chain's last operation (no LINK/HARDLINK): its completion ends
# the chain.  SILENT_END marks a LINK|SKIP member: it completes only when it
# fails, and then the kernel posts nothing for the rest of the chain -- so its
# completion ends the chain too.  Decided once per flag combination, here.
# STATX marks a completion with a statx buffer to parse and give back.
# run() waits for 1/8 of the chains in flight to complete (at least one): every
# chain ends with a completion, so this never waits for more than will come;
# with the workers posting completions themselves (COOP_TASKRUN) one
# io_uring_enter then carries 130-150 SQEs of a copy of small files.
_WAIT_DIV = 8
# user_data of the completion wake() posts: its chain id (ud >> 7) is never
# handed out, and no flag bit is set, so run() finds no callback and goes on
_WAKE_UD = 1 << 63
_STATX_UD = 0x40
_END_MASK = LINK | HARDLINK | SKIP
_ENDS_CHAIN = 0x30
_ENDS = tuple(
    0x10 if not f & (LINK | HARDLINK) else 0x20 if f & SKIP and f & LINK else 0
    for f in range(_END_MASK + 1)
)
_O_TMPFILE = getattr(os, "O_TMPFILE", 0)


def _creates(oflags: int) -> bool:
    # O_TMPFILE includes the O_DIRECTORY bit, so test for all of its bits
    return bool(oflags & os.O_CREAT) or (_O_TMPFILE != 0 and oflags & _O_TMPFILE == _O_TMPFILE)

_STATX_SIZE = A.STATX_STRUCT_SIZE
_SQE_N_PACKS: Dict[int, Any] = {}


def _sqe_pack(n: int) -> Any:
    """pack_into of n SQE_COMMON layouts back to back (made once per n)."""
    pack = _SQE_N_PACKS.get(n)
    if pack is None:
        pack = _SQE_N_PACKS[n] = struct.Struct("=" + A.SQE_COMMON.format.lstrip("=") * n).pack_into
    return pack


#: three (two) SQE_COMMON layouts back to back: a whole small-file chain in one call
_SQE3_PACK = _sqe_pack(3)
_SQE2_PACK = _sqe_pack(2)


_EMPTY = b""
_DOT = b"."
_O_SRC = os.O_RDONLY | os.O_NOFOLLOW


def _chain_end_only(op: str, flags: int) -> None:
    """Refuse to link ``op`` to a following operation.

    The kernel (measured on 6.18; tests/test_executor_links.py) does not break a
    link when MKDIRAT, UNLINKAT, RENAMEAT, LINKAT, SYMLINKAT, STATX or FSYNC fails
    while running: the next operation runs anyway, and with CQE_SKIP_SUCCESS the
    failure is not even posted.  Only operations that fail their link (opens,
    reads, writes, closes) may lead a chain; these end one.
    """
    if flags & _LINKED:
        raise ValueError(f"{op} may only end a chain: a failing {op} does not break the "
                         f"link on every kernel")


def _xattr_flags_ok(flags: int) -> None:
    if flags & (LINK | SKIP):
        raise ValueError("FSETXATTR never breaks a link nor posts a skipped failure: "
                         "HARDLINK is the only link it may have, and no CQE_SKIP_SUCCESS")


class _StatxPool:
    """256-byte statx buffers in chunks of 256; a slot number is chunk * 256 + index.

    The pool grows by whole chunks and never moves one: a request in flight
    keeps writing where its address points.
    """

    CHUNK = 256

    def __init__(self) -> None:
        self.chunks: List[Buffer] = []
        self.free: List[int] = []
        self.addrs: List[int] = []  # slot -> address (the hot path indexes, not computes)

    def take(self) -> int:
        if not self.free:
            base = len(self.chunks) * self.CHUNK
            chunk = Buffer(self.CHUNK * _STATX_SIZE)
            self.chunks.append(chunk)
            self.addrs.extend(range(chunk.addr, chunk.addr + self.CHUNK * _STATX_SIZE,
                                    _STATX_SIZE))
            self.free.extend(range(base + self.CHUNK - 1, base - 1, -1))
        return self.free.pop()


#: memory of operations given up in flight (UringExecutor.abandon): kept for the
#: life of the process, because the kernel may still write into it.
_abandoned: List[Any] = []


class Executor:
    """Common part of both backends: chain bookkeeping and the direct syscalls."""

    kind = "abstract"
    _src_async = 0

    def __init__(self) -> None:
        self._next_chain = 1
        self.direct_syscalls: Dict[str, int] = collections.defaultdict(int)
        self.background_errors: List[Tuple[int, Any]] = []

    # -- chain bookkeeping ---------------------------------------------------------
    def chain(self, callback: Callback) -> int:
        raise NotImplementedError

    def on_background_error(self, index: int, res: int, extra: Any) -> None:
        self.background_errors.append((res, extra))

    def run(self, wait: bool = True, timeout: Optional[float] = None) -> int:
        """Submit what is queued and dispatch completions; returns how many.

        With ``wait`` it blocks until at least one completion is available
        (when anything is in flight), for at most ``timeout`` seconds if given.
        """
        raise NotImplementedError

    def stop(self) -> None:
        """A stop was requested: a wait that a signal interrupts returns."""

    def offload(self, on: bool) -> None:
        """Where the caller's own thread is the busier one: run the source open
        and READ of ``open_read_tmpfile`` in the kernel's worker threads rather
        than on this thread inside io_uring_enter (io_uring only)."""

    def abandon(self) -> None:
        """Give up on operations still in flight (their memory is kept)."""

    def wake(self) -> bool:
        """From another thread: make a wait in ``run()`` return soon.  False
        where that cannot be done (the sync backend: its wait is a syscall of
        that thread's own)."""
        return False

    def busy(self) -> bool:
        """True while any chain awaits a completion."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- operations that have an io_uring opcode (backend-specific) ---------------------
    def statx(self, cid: int, idx: int, dfd: int, name: bytes, at_flags: int, flags: int = 0,
              mask: int = STATX_WANTED) -> None:
        raise NotImplementedError

    def statx_many(self, callback: ManyCallback, dfd_a: int, dfd_b: int,
                   names_a: List[bytes], names_b: List[bytes], at_flags: int) -> None:
        """STATX of ``names_a[k]`` in ``dfd_a`` and of ``names_b[k]`` in ``dfd_b``
        for every k -- entries' sources and destinations, which every entry of
        a re-run looks at -- as one chain whose callback gets all the raw
        results once the last has arrived."""
        raise NotImplementedError

    def openat2(self, cid: int, idx: int, dfd: int, name: bytes, oflags: int, mode: int,
                resolve: int, flags: int = 0, slot: int = -1) -> None:
        raise NotImplementedError

    def read(self, cid: int, idx: int, fd: int, buf: Buffer, boff: int, n: int, off: int,
             flags: int = 0, fixed: bool = False) -> None:
        raise NotImplementedError

    def open_read_tmpfile(self, callback: Callback, sdfd: int, name: bytes, slot: int,
                          buf: Buffer, boff: int, n: int, ddfd: int, mode: int) -> None:
        """A small file's chain, in a new chain of its own: OPENAT2 ``name`` (below
        ``sdfd``, read-only, RESOLVE_SAFE) into direct descriptor ``slot``
        (LINK|SKIP) -> READ up to ``n`` bytes of it into ``buf[boff:]``
        (HARDLINK) -> OPENAT2 an O_TMPFILE in ``ddfd`` with ``mode``.

        ``callback`` gets index 1 with the READ's result and index 2 with the new
        fd -- or only index 0 with the open's error: then nothing else ran.
        """
        cid = self.chain(callback)
        self.openat2(cid, 0, sdfd, name, _O_SRC, 0, RESOLVE_SAFE, LINK | SKIP | self._src_async,
                     slot=slot)
        self.read(cid, 1, slot, buf, boff, n, 0, HARDLINK, fixed=True)
        self.openat2(cid, 2, ddfd, _DOT, os.O_WRONLY | _O_TMPFILE, mode, RESOLVE_SAFE)

    def write_linkat(self, callback: Callback, widx: int, fd: int, buf: Buffer, boff: int,
                     n: int, lidx: int, dfd: int, name: bytes) -> None:
        """A small file's publication, in a new chain of its own: WRITE ``n`` bytes
        of ``buf[boff:]`` to ``fd`` at offset 0 (LINK|SKIP) -> LINKAT ``fd`` itself
        (AT_EMPTY_PATH) as ``name`` in ``dfd``.  ``callback`` gets index ``lidx``
        with the link's result, or ``widx`` when the write failed or was short
        (then nothing was linked).
        """
        cid = self.chain(callback)
        self.write(cid, widx, fd, buf, boff, n, 0, LINK | SKIP)
        self.linkat(cid, lidx, fd, _EMPTY, dfd, name, A.AT_EMPTY_PATH)

    def write(self, cid: int, idx: int, fd: int, buf: Buffer, boff: int, n: int, off: int,
              flags: int = 0, fixed: bool = False) -> None:
        raise NotImplementedError

    def close_fd(self, cid: int, idx: int, fd: int, flags: int = 0) -> None:
        raise NotImplementedError

    def close_slot(self, cid: int, idx: int, slot: int, flags: int = 0) -> None:
        raise NotImplementedError

    def mkdirat(self, cid: int, idx: int, dfd: int, name: bytes, mode: int,
                flags: int = 0) -> None:
        raise NotImplementedError

    def symlinkat(self, cid: int, idx: int, target: bytes, dfd: int, name: bytes,
                  flags: int = 0) -> None:
        raise NotImplementedError

    def linkat(self, cid: int, idx: int, odfd: int, oname: bytes, ndfd: int, nname: bytes,
               lflags: int = 0, flags: int = 0) -> None:
        raise NotImplementedError

    def renameat(self, cid: int, idx: int, odfd: int, oname: bytes, ndfd: int, nname: bytes,
                 rflags: int = 0, flags: int = 0) -> None:
        raise NotImplementedError

    def unlinkat(self, cid: int, idx: int, dfd: int, name: bytes, uflags: int = 0,
                 flags: int = 0) -> None:
        raise NotImplementedError

    def fsync(self, cid: int, idx: int, fd: int, flags: int = 0) -> None:
        raise NotImplementedError

    #: FSETXATTR is there (Linux 5.19): fsetxattr() may be put in a chain
    has_fsetxattr = True
    #: the longest chain that can be submitted whole (the SQ's entries)
    max_chain = 1 << 30

    def fsetxattr(self, cid: int, idx: int, fd: int, name: bytes, value: bytes,
                  flags: int = 0) -> None:
        """fsetxattr(fd, name, value).  Its completion comes whether it succeeds or
        not, and a failure does not break a link (the kernel never fails the
        link of an xattr operation, and with CQE_SKIP_SUCCESS would not even
        post the failure): so only HARDLINK may follow it, which says so."""
        raise NotImplementedError

    # -- operations without an opcode: direct syscalls, counted ------------------------
    def getdents(self, fd: int, buf: Any, size: int) -> int:
        self.direct_syscalls["getdents64"] += 1
        return _syscall.getdents64(fd, buf, size)

    def futimens(self, fd: int, atime_ns: int, mtime_ns: int) -> None:
        self.direct_syscalls["utimensat"] += 1
        os.utime(fd, ns=(atime_ns, mtime_ns))

    def fchmod(self, fd: int, mode: int) -> None:
        self.direct_syscalls["fchmod"] += 1
        os.fchmod(fd, mode)

    def fchown(self, fd: int, uid: int, gid: int) -> None:
        self.direct_syscalls["fchown"] += 1
        os.fchown(fd, uid, gid)

    def readlinkat(self, dfd: int, name: bytes) -> bytes:
        self.direct_syscalls["readlinkat"] += 1
        return os.readlink(name, dir_fd=dfd)

    def mknodat(self, dfd: int, name: bytes, mode: int, device: int) -> None:
        self.direct_syscalls["mknodat"] += 1
        os.mknod(name, mode, device, dir_fd=dfd)

    def utime_at(self, dfd: int, name: bytes, atime_ns: int, mtime_ns: int) -> None:
        """utimensat(dfd, name, AT_SYMLINK_NOFOLLOW): the entry itself, a symlink too."""
        self.direct_syscalls["utimensat"] += 1
        os.utime(name, ns=(atime_ns, mtime_ns), dir_fd=dfd, follow_symlinks=False)

    def chown_at(self, dfd: int, name: bytes, uid: int, gid: int) -> None:
        """fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW)."""
        self.direct_syscalls["fchownat"] += 1
        os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)

    def empty_path_utime(self, fd: int, atime_ns: int, mtime_ns: int) -> None:
        """utimensat(fd, "", AT_EMPTY_PATH): set times of what an O_PATH fd refers to
        (a symlink itself, for instance)."""
        self.direct_syscalls["utimensat"] += 1
        _empty_path_call("utimensat", fd, atime_ns, mtime_ns)

    def empty_path_chown(self, fd: int, uid: int, gid: int) -> None:
        """fchownat(fd, "", uid, gid, AT_EMPTY_PATH) on an O_PATH fd."""
        self.direct_syscalls["fchownat"] += 1
        _empty_path_call("fchownat", fd, uid, gid)


def _empty_path_call(name: str, fd: int, a: int, b: int) -> None:
    ctypes = _syscall.ctypes
    if name == "utimensat":
        ts = (ctypes.c_long * 4)(a // 1_000_000_000, a % 1_000_000_000,
                                 b // 1_000_000_000, b % 1_000_000_000)
        _syscall.raw("utimensat", fd, b"", ts, A.AT_EMPTY_PATH)
    else:
        _syscall.raw("fchownat", fd, b"", a, b, A.AT_EMPTY_PATH)


# ======================================================================================
# io_uring
# ======================================================================================

#: the opcodes without which the ring backend cannot copy (OPENAT2 and
#: FSETXATTR are used where the kernel has them: OPENAT and calls otherwise);
#: a copy asks for them (make_executor's ``required_ops``), a DirectoryFd not
COPY_OPS = (A.IORING_OP_OPENAT, A.IORING_OP_STATX, A.IORING_OP_READ,
                 A.IORING_OP_WRITE, A.IORING_OP_CLOSE, A.IORING_OP_FSYNC,
                 A.IORING_OP_RENAMEAT, A.IORING_OP_UNLINKAT, A.IORING_OP_MKDIRAT,
                 A.IORING_OP_SYMLINKAT, A.IORING_OP_LINKAT)


class UringExecutor(Executor):
    """Operations become SQEs; ``run()`` submits them in one io_uring_enter."""

    kind = "uring"

    def __init__(self, ring: Any = None, *, entries: int = 256, direct_slots: int = 0,
                 required_ops: Sequence[int] = ()) -> None:
        super().__init__()
        from .probe import probe_ring_fd
        from .register import Registrations

        # COOP_TASKRUN, not DEFER_TASKRUN: completions of punted work (STATX,
        # O_TMPFILE opens, LINKAT, buffered writes) are then posted by the io-wq
        # worker on its CPU instead of by this thread inside io_uring_enter.
        # Not a Ring: SQEs are written here, Ring's prep_* methods are not used.
        self.ring = ring if ring is not None else Registrations(entries, defer_taskrun=False)
        self._own_ring = ring is None
        # cid -> callback; when a chain ends is written into user_data (_ENDS)
        # (a statx_many's callback is a ManyCallback)
        self._chains: Dict[int, Any] = {0: self.on_background_error}
        self._statx = _StatxPool()
        # ud -> statx slot (-2 - slot: one of a statx_many)
        self._statx_by_ud: Dict[int, int] = {}
        # cid -> [first cid, results to come, results, slots] of a statx_many
        self._batch_of: Dict[int, List[Any]] = {}
        supported = probe_ring_fd(self.ring.fd)
        missing = [op for op in required_ops if op not in supported]
        if missing:
            # (5.1-5.14: a ring, but no MKDIRAT / SYMLINKAT / LINKAT yet) -- not
            # usable for a copy: auto falls back to plain syscalls before any
            # work, rather than failing on the first directory
            if self._own_ring:
                self.ring.close()
            known = {getattr(A, n): n[len("IORING_OP_"):] for n in dir(A)
                     if n.startswith("IORING_OP_")}
            names = ", ".join(known.get(op, str(op)) for op in missing)
            raise OpcodeUnsupported(errno.EOPNOTSUPP,
                                    f"io_uring here lacks {names} (Linux 5.15 has them all)")
        self.has_openat2 = A.IORING_OP_OPENAT2 in supported
        self.has_fsetxattr = A.IORING_OP_FSETXATTR in supported
        self.max_chain = self.ring.sq_entries
        self.direct_slots = direct_slots
        if direct_slots:
            try:
                self.ring.register_files_sparse(direct_slots)
            except UringError:
                # the table counts against RLIMIT_NOFILE (EMFILE under a low
                # ulimit -n): work with plain fds instead
                self.direct_slots = 0
        # SQEs are written untracked (ring._push_raw): this executor keeps the
        # memory alive itself.  Paths and open_how structs are copied by the
        # kernel when it takes the SQE, so they are pinned until the next
        # submit; statx buffers (the pool) and data buffers (owned by the
        # caller for the chain's life) until completion.
        self._push_sqe = self.ring._push_raw
        if required_ops and self._own_ring:  # (a caller's ring may have work in flight)
            self._check_workers()
        self._wait_nr = 1  # completions the current (or last) wait asks for
        self._src_async = 0  # IOSQE_ASYNC on open_read_tmpfile's source open (offload())
        self._woken = False  # wake() was called: waits ask for one completion
        self._wake_lock = _thread.allocate_lock()  # wake() against close()
        self._pins: List[Any] = []
        self._boff = _mem.bytes_data_offset()
        self._hows: Dict[Tuple[int, int, int], bytes] = {}
        # open_how addresses of the packed small-file chain (only used where
        # _boff >= 0: then a kept bytes object's address is stable)
        self._src_how = self._how(_O_SRC, 0, RESOLVE_SAFE) if self._boff >= 0 else 0
        self._tmp_hows: Dict[int, int] = {}

    def stop(self) -> None:
        """A stop was requested: waits that a signal interrupts return."""
        self.ring.eintr_hook = lambda: True

    def offload(self, on: bool) -> None:
        # IOSQE_ASYNC: the kernel skips the inline attempt, and the open (with
        # the READ linked to it) runs on an io-wq worker from the start
        self._src_async = A.IOSQE_ASYNC if on else 0

    def wake(self) -> bool:
        """A completion nobody owns (user_data _WAKE_UD, which run() skips) is
        posted on the ring from this thread: a wait for completions returns.
        MSG_RING without a ring of our own where the kernel has that (6.13),
        else from a throwaway ring (5.18)."""
        # A wait for k completions needs k of them: _woken makes the next wait
        # ask for one, and k are posted for a wait already in the kernel.  (The
        # ring thread writes _wait_nr then reads _woken; this one writes _woken
        # then reads _wait_nr: one of the two sees the other's write.)
        self._woken = True
        n = self._wait_nr
        # Not blocking: a signal handler on the ring's own thread (the CLI's
        # SIGINT) may run while that thread holds the lock, in close() or in
        # an earlier wake(); a signal needs no wake, and a closing ring neither.
        if not self._wake_lock.acquire(False):
            return False
        try:
            ring = self.ring
            if ring.closed:
                return False
            from .register import sync_msg_ring

            try:
                for _ in range(n):
                    sync_msg_ring(ring.fd, _WAKE_UD)
                return True
            except OpcodeUnsupported:
                pass
            except UringError:
                return False
            try:
                from .ring import Ring

                with Ring(2) as tmp:
                    for _ in range(n):
                        tmp.prep_msg_ring(ring.fd, 0, _WAKE_UD, user_data=1)
                        tmp.submit_and_wait(1)
                        if any(c.res < 0 for c in tmp.reap()):
                            return False
                return True
            except (OSError, ValueError):
                return False
        finally:
            self._wake_lock.release()

    def abandon(self) -> None:
        """Give up on operations still in flight (after stop(), on a deadline).

        Their memory (statx pool; the caller's buffers must be kept by the
        caller) is never freed: the kernel may still write into it.
        """
        _abandoned.append((self._statx, self._pins, self._chains))
        self._chains = {0: self.on_background_error}
        self._statx = _StatxPool()  # (the old one stays with the kernel)
        self._statx_by_ud = {}
        self._batch_of = {}

    def close(self) -> None:
        if self._own_ring:
            with self._wake_lock:  # (no wake() between the check and the fd's reuse)
                self.ring.close()

    def chain(self, callback: Callback) -> int:
        cid = self._next_chain
        self._next_chain = cid + 1
        self._chains[cid] = callback
        return cid

    def _check_workers(self) -> None:
        """Most of a copy's operations run on io-wq's worker threads; where
        none can start (a process limit, ``ulimit -u``, reached by the user's
        other processes) the kernel cancels each of them.  One NOP sent to
        io-wq tells, before any work, so that ``auto`` can fall back."""
        self._push_sqe(A.IORING_OP_NOP, 0, 0, 0, 0, 0, 0, A.IOSQE_ASYNC)
        self.ring.submit_and_wait(1)
        if any(res == -errno.ECANCELED for _ud, res, _fl in self.ring.reap_raw()):
            if self._own_ring:
                self.ring.close()
            raise UringUnavailable(errno.EAGAIN, "io_uring cannot start a worker thread "
                                   "here (the process limit, ulimit -u, is reached)")

    def busy(self) -> bool:
        return len(self._chains) > 1 or self.ring.pending() > 0

    def run(self, wait: bool = True, timeout: Optional[float] = None) -> int:
        ring = self.ring
        try:
            if wait and len(self._chains) > 1:
                if timeout is None:
                    # (_wait_nr first, _woken second: see wake())
                    k = self._wait_nr = max(1, (len(self._chains) - 1) // _WAIT_DIV)
                    ring.submit_and_wait(1 if self._woken else k)
                else:
                    ring.submit_and_wait_timeout(1, timeout)
            else:
                ring.submit()
        except InterruptedError:
            pass  # a stop was requested (see stop()): dispatch what is there
        if self._pins and not ring.pending():
            self._pins.clear()  # the kernel has copied every path it was given
        got = ring.reap_raw()
        chains = self._chains
        statx = self._statx_by_ud
        pool = self._statx  # (abandon() replaces both; these are the ones in flight)
        batch_of = self._batch_of
        for ud, res, _fl in got:
            cid = ud >> 7
            extra: Any = None
            if ud & _STATX_UD:
                slot = statx.pop(ud, -1)
                if slot >= 0:
                    if res >= 0:
                        extra = _from_statx(pool.chunks[slot >> 8].mmap,
                                            (slot & 0xFF) * _STATX_SIZE)
                    pool.free.append(slot)
                elif slot < -1:  # one of a statx_many
                    rec = batch_of.pop(cid)
                    rec[2][cid - rec[0]] = res
                    rec[1] -= 1
                    if rec[1]:
                        continue
                    many = chains.pop(rec[0], None)
                    slots = rec[3]
                    try:
                        if many is not None:
                            chunks = pool.chunks
                            many(rec[2], [chunks[x >> 8].mmap for x in slots],
                                 [(x & 0xFF) * _STATX_SIZE for x in slots])
                    finally:
                        pool.free.extend(slots)
                    continue
            callback = chains.pop(cid, None) if ud & _ENDS_CHAIN and cid else chains.get(cid)
            if callback is not None:  # (None: an operation given up by abandon())
                callback(ud & 15, res, extra)
        return len(got)

    def _name(self, name: bytes) -> int:
        """Address of a NUL-terminated name, pinned until the next submit."""
        self._pins.append(name)
        if self._boff >= 0 and type(name) is bytes:
            return id(name) + self._boff
        addr, raw = path_address(name)
        self._pins.append(raw)
        return addr

    def _data(self, data: bytes) -> int:
        """Address of ``data`` (any bytes, NULs too), pinned until the next submit."""
        self._pins.append(data)
        if self._boff >= 0 and type(data) is bytes:
            return id(data) + self._boff
        addr, raw = _mem.bytes_address(bytes(data))
        self._pins.append(raw)
        return addr

    def _how(self, oflags: int, mode: int, resolve: int) -> int:
        """Address of a struct open_how; the few distinct ones are kept for the run."""
        key = (oflags, mode, resolve)
        how = self._hows.get(key)
        if how is None:
            how = self._hows[key] = A.OPEN_HOW.pack(oflags, mode, resolve)
        if self._boff >= 0:
            return id(how) + self._boff
        addr, raw = _mem.bytes_address(how)
        self._pins.append(raw)
        return addr

    # -- the operations ------------------------------------------------------------
    def statx(self, cid: int, idx: int, dfd: int, name: bytes, at_flags: int, flags: int = 0,
              mask: int = STATX_WANTED) -> None:
        # (every file has one or two: the helpers' work is inlined)
        if flags & _LINKED:
            _chain_end_only("STATX", flags)
        pool = self._statx
        slot = pool.free.pop() if pool.free else pool.take()
        ud = (cid << 7) | _STATX_UD | idx | _ENDS[flags & _END_MASK]
        self._statx_by_ud[ud] = slot
        if self._boff >= 0 and type(name) is bytes:
            self._pins.append(name)
            addr = id(name) + self._boff
        else:
            addr = self._name(name)
        self._push_sqe(A.IORING_OP_STATX, dfd, pool.addrs[slot], addr, mask, at_flags, ud,
                       flags & ~SKIP)

    def statx_many(self, callback: ManyCallback, dfd_a: int, dfd_b: int,
                   names_a: List[bytes], names_b: List[bytes], at_flags: int) -> None:
        # One chain id per SQE (cid0 + i: the index travels in user_data), all
        # SQEs with one pack_into where they fit.  Each slot is filed in
        # _statx_by_ud as -2 - slot (run() tells it from a plain statx's by the
        # sign) and each cid in _batch_of, whose record gathers the results.
        n = 2 * len(names_b)
        if len(names_a) * 2 != n or not n:
            raise ValueError("statx_many needs as many names on each side, at least one")
        pool = self._statx
        free = pool.free
        slots = [free.pop() if free else pool.take() for _ in range(n)]
        cid0 = self._next_chain
        self._next_chain = cid0 + n  # (used up whatever happens: see below)
        by_ud = self._statx_by_ud
        ring = self.ring
        bo = self._boff
        addrs = pool.addrs
        at = -1
        if bo >= 0 and all(type(x) is bytes for x in names_a) \
                and all(type(x) is bytes for x in names_b):
            at = ring._reserve(n)
        if at >= 0:
            args: List[int] = []
            pers = ring._personality
            ud = (cid0 << 7) | _STATX_UD
            for k in range(n >> 1):
                args += (A.IORING_OP_STATX, 0, dfd_a, addrs[slots[2 * k]], id(names_a[k]) + bo,
                         STATX_WANTED, at_flags, ud, pers, 0,
                         A.IORING_OP_STATX, 0, dfd_b, addrs[slots[2 * k + 1]],
                         id(names_b[k]) + bo, STATX_WANTED, at_flags, ud + 128, pers, 0)
                ud += 256
            try:
                _sqe_pack(n)(ring._sqes, at, *args)
            except BaseException:
                ring._unreserve(n)  # (and nothing registered: no chain waits)
                free.extend(slots)
                raise
            pins = self._pins
            pins += names_a
            pins += names_b
            ring._op_counts[A.IORING_OP_STATX] += n
        else:  # (a name that is not bytes, or the SQ wraps: one by one)
            for i in range(n):
                ud = ((cid0 + i) << 7) | _STATX_UD
                name = names_b[i >> 1] if i & 1 else names_a[i >> 1]
                try:
                    self._push_sqe(A.IORING_OP_STATX, dfd_b if i & 1 else dfd_a,
                                   addrs[slots[i]], self._name(name), STATX_WANTED, at_flags,
                                   ud, 0)
                except BaseException:
                    # those queued are filed as plain statx: their completions
                    # give their slots back and find no chain (the ids are used up)
                    free.extend(slots[i:])
                    raise
                by_ud[ud] = slots[i]
        self._chains[cid0] = callback
        rec = [cid0, n, [0] * n, slots]
        batch_of = self._batch_of
        ud = (cid0 << 7) | _STATX_UD
        for i in range(n):
            by_ud[ud] = -2 - slots[i]
            batch_of[cid0 + i] = rec
            ud += 128

    def openat2(self, cid: int, idx: int, dfd: int, name: bytes, oflags: int, mode: int,
                resolve: int, flags: int = 0, slot: int = -1) -> None:
        if not _creates(oflags):
            mode = 0  # openat2 refuses a mode without O_CREAT / O_TMPFILE
        if slot < 0:
            oflags |= os.O_CLOEXEC  # (a direct descriptor has no fd flags: EINVAL)
        file_index = slot + 1 if slot >= 0 else 0
        if self.has_openat2:
            ud = (cid << 7) | idx | _ENDS[flags & _END_MASK]
            self._push_sqe(A.IORING_OP_OPENAT2, dfd, self._how(oflags, mode, resolve),
                           self._name(name), A.OPEN_HOW.size, 0, ud, flags,
                           file_index)
        else:
            ud = (cid << 7) | idx | _ENDS[flags & _END_MASK]
            self._push_sqe(A.IORING_OP_OPENAT, dfd, 0, self._name(name), mode,
                           oflags | os.O_NOFOLLOW, ud, flags, file_index)

    def _packed_chain(self, callback: Callback, name: bytes) -> None:
        """Register the chain whose SQEs the caller has just written, with user_data
        based on ``self._next_chain << 7``; ``name`` is pinned until submitted
        (b"" and b"." are constants)."""
        cid = self._next_chain
        self._next_chain = cid + 1
        self._chains[cid] = callback
        self._pins.append(name)

    def open_read_tmpfile(self, callback: Callback, sdfd: int, name: bytes, slot: int,
                          buf: Buffer, boff: int, n: int, ddfd: int, mode: int) -> None:
        # The copy's most frequent chain, so its three SQEs are written with one
        # pack_into (~0.8 us less per file than three calls through openat2/read).
        ring = self.ring
        bo = self._boff
        tmp_how = self._tmp_hows.get(mode)  # (the few modes of a tree, by address)
        if tmp_how is None and bo >= 0:
            # (before the SQEs are taken: a bad mode raises here, with nothing to undo)
            tmp_how = self._tmp_hows[mode] = self._how(
                os.O_WRONLY | _O_TMPFILE | os.O_CLOEXEC, mode, RESOLVE_SAFE)
        at = ring._reserve(3) if bo >= 0 and type(name) is bytes and self.has_openat2 else -1
        if at < 0:
            super().open_read_tmpfile(callback, sdfd, name, slot, buf, boff, n, ddfd, mode)
            return
        ud = self._next_chain << 7
        pers = ring._personality
        how_size = A.OPEN_HOW.size
        try:
            _SQE3_PACK(
                ring._sqes, at,
                A.IORING_OP_OPENAT2, LINK | SKIP | self._src_async, sdfd, self._src_how,
                id(name) + bo, how_size, 0, ud | _ENDS[LINK | SKIP], pers, slot + 1,
                A.IORING_OP_READ, HARDLINK | A.IOSQE_FIXED_FILE, slot, 0, buf.addr + boff, n,
                0, ud | 1 | _ENDS[HARDLINK], pers, 0,
                A.IORING_OP_OPENAT2, 0, ddfd, tmp_how,
                id(_DOT) + bo, how_size, 0, ud | 2 | _ENDS[0], pers, 0,
            )
        except BaseException:
            ring._unreserve(3)  # (or old SQEs in those slots would be submitted)
            raise
        self._packed_chain(callback, name)
        counts = ring._op_counts
        counts[A.IORING_OP_OPENAT2] += 2
        counts[A.IORING_OP_READ] += 1

    def write_linkat(self, callback: Callback, widx: int, fd: int, buf: Buffer, boff: int,
                     n: int, lidx: int, dfd: int, name: bytes) -> None:
        # the other chain every small file has: one pack_into for both SQEs
        ring = self.ring
        bo = self._boff
        at = ring._reserve(2) if bo >= 0 and type(name) is bytes else -1
        if at < 0:
            super().write_linkat(callback, widx, fd, buf, boff, n, lidx, dfd, name)
            return
        ud = self._next_chain << 7
        pers = ring._personality
        try:
            _SQE2_PACK(
                ring._sqes, at,
                A.IORING_OP_WRITE, LINK | SKIP, fd, 0, buf.addr + boff, n, 0,
                ud | widx | _ENDS[LINK | SKIP], pers, 0,
                A.IORING_OP_LINKAT, 0, fd, id(name) + bo, id(_EMPTY) + bo, dfd & 0xFFFFFFFF,
                A.AT_EMPTY_PATH, ud | lidx | _ENDS[0], pers, 0,
            )
        except BaseException:
            ring._unreserve(2)
            raise
        self._packed_chain(callback, name)
        counts = ring._op_counts
        counts[A.IORING_OP_WRITE] += 1
        counts[A.IORING_OP_LINKAT] += 1

    def read(self, cid: int, idx: int, fd: int, buf: Buffer, boff: int, n: int, off: int,
             flags: int = 0, fixed: bool = False) -> None:
        ud = (cid << 7) | idx | _ENDS[flags & _END_MASK]
        self._push_sqe(A.IORING_OP_READ, fd, off, buf.addr + boff, n, 0, ud,
                       flags | A.IOSQE_FIXED_FILE if fixed else flags)

    def write(self, cid: int, idx: int, fd: int, buf: Buffer, boff: int, n: int, off: int,
              flags: int = 0, fixed: bool = False) -> None:
        ud = (cid << 7) | idx | _ENDS[flags & _END_MASK]
        self._push_sqe(A.IORING_OP_WRITE, fd, off, buf.addr + boff, n, 0, ud,
                       flags | A.IOSQE_FIXED_FILE if fixed else flags)

    def close_fd(self, cid: int, idx: int, fd: int, flags: int = 0) -> None:
        ud = (cid << 7) | idx | _ENDS[flags & _END_MASK]
        self._push_sqe(A.IORING_OP_CLOSE, fd, 0, 0, 0, 0, ud, flags)

    def close_slot(self, cid: int, idx: int, slot: int, flags: int = 0) -> None:
        ud = (cid << 7) | idx | _ENDS[flags & _END_MASK]
        self._push_sqe(A.IORING_OP_CLOSE, 0, 0, 0, 0, 0, ud, flags, slot + 1)

    def mkdirat(self, cid: int, idx: int, dfd: int, name: bytes, mode: int,
                flags: int = 0) -> None:
        _chain_end_only("MKDIRAT", flags)
        ud = (cid << 7) | idx | _ENDS[flags & _END_MASK]
        self._push_sqe(A.IORING_OP_MKDIRAT, dfd, 0, self._name(name), mode, 0,
                       ud, flags)

    def symlinkat(self, cid: int, idx: int, target: bytes, dfd: int, name: bytes,
                  flags: int = 0) -> None:
        _chain_end_only("SYMLINKAT", flags)
        ud = (cid << 7) | idx | _ENDS[flags & _END_MASK]
        self._push_sqe(A.IORING_OP_SYMLINKAT, dfd, self._name(name), self._name(target), 0, 0,
                       ud, flags)

    def linkat(self, cid: int, idx: int, odfd: int, oname: bytes, ndfd: int, nname: bytes,
               lflags: int = 0, flags: int = 0) -> None:
        _chain_end_only("LINKAT", flags)
        ud = (cid << 7) | idx | _ENDS[flags & _END_MASK]
        self._push_sqe(A.IORING_OP_LINKAT, odfd, self._name(nname), self._name(oname),
                       ndfd & 0xFFFFFFFF, lflags, ud, flags)

    def renameat(self, cid: int, idx: int, odfd: int, oname: bytes, ndfd: int, nname: bytes,
                 rflags: int = 0, flags: int = 0) -> None:
        _chain_end_only("RENAMEAT", flags)
        ud = (cid << 7) | idx | _ENDS[flags & _END_MASK]
        self._push_sqe(A.IORING_OP_RENAMEAT, odfd, self._name(nname), self._name(oname),
                       ndfd & 0xFFFFFFFF, rflags, ud, flags)

    def unlinkat(self, cid: int, idx: int, dfd: int, name: bytes, uflags: int = 0,
                 flags: int = 0) -> None:
        _chain_end_only("UNLINKAT", flags)
        ud = (cid << 7) | idx | _ENDS[flags & _END_MASK]
        self._push_sqe(A.IORING_OP_UNLINKAT, dfd, 0, self._name(name), 0, uflags,
                       ud, flags)

    def fsync(self, cid: int, idx: int, fd: int, flags: int = 0) -> None:
        _chain_end_only("FSYNC", flags)
        ud = (cid << 7) | idx | _ENDS[flags & _END_MASK]
        self._push_sqe(A.IORING_OP_FSYNC, fd, 0, 0, 0, 0, ud, flags)

    def fsetxattr(self, cid: int, idx: int, fd: int, name: bytes, value: bytes,
                  flags: int = 0) -> None:
        _xattr_flags_ok(flags)
        if not self.has_fsetxattr:
            raise OpcodeUnsupported(errno.EOPNOTSUPP,
                                    "IORING_OP_FSETXATTR: not supported by this kernel")
        ud = (cid << 7) | idx | _ENDS[flags & _END_MASK]
        # (the kernel copies name and value when it takes the SQE: pinned until then)
        self._push_sqe(A.IORING_OP_FSETXATTR, fd, self._data(value), self._name(name),
                       len(value), 0, ud, flags)


# ======================================================================================
# plain syscalls
# ======================================================================================

class SyncExecutor(Executor):
    """Each operation runs at once as the equivalent syscall; callbacks are queued
    so that they run from ``run()``, in order, with a flat stack."""

    kind = "sync"

    def __init__(self, *, direct_slots: int = 0) -> None:
        super().__init__()
        # cid -> [callback, state]: state 0 running, 1 cancelled (the rest of the
        # chain completes with -ECANCELED), 2 cancelled silently (a LINK|SKIP
        # member failed: io_uring posts nothing for the rest)
        self._chains: Dict[int, List[Any]] = {0: [self.on_background_error, 0]}
        self._queue: Deque[Tuple[Callback, int, int, Any]] = collections.deque()
        self._slots: List[int] = [-1] * direct_slots
        self._statx_buf: Any = None
        self.has_openat2 = True
        self.ops: Dict[str, int] = collections.defaultdict(int)
        self._stopped = False

    def chain(self, callback: Callback) -> int:
        cid = self._next_chain
        self._next_chain = cid + 1
        self._chains[cid] = [callback, 0]
        return cid

    def busy(self) -> bool:
        return bool(self._queue) or len(self._chains) > 1

    def run(self, wait: bool = True, timeout: Optional[float] = None) -> int:
        queue = self._queue
        n = 0
        while queue:
            cb, idx, res, extra = queue.popleft()
            cb(idx, res, extra)
            n += 1
        return n

    def stop(self) -> None:
        # an open blocked on a FIFO (say) returns EINTR on the next signal, and
        # the opens of existing files queued after it are not made at all
        # (each could block the same way: one signal would end only one)
        _syscall.eintr_hook = lambda: True
        self._stopped = True

    def close(self) -> None:
        _syscall.eintr_hook = None
        for fd in self._slots:
            if fd >= 0:
                os.close(fd)
        self._slots = [-1] * len(self._slots)

    # -- link semantics ---------------------------------------------------------------
    def _cancelled(self, cid: int, idx: int, flags: int) -> bool:
        entry = self._chains[cid]
        if not entry[1]:
            return False
        if entry[1] == 1:
            self._queue.append((entry[0], idx, -errno.ECANCELED, None))
        if not flags & _LINKED and cid:
            del self._chains[cid]
        return True

    def _complete(self, cid: int, idx: int, flags: int, res: int, extra: Any = None,
                  short: bool = False) -> None:
        entry = self._chains[cid]
        failed = res < 0 or (short and bool(flags & LINK))
        if failed or not flags & SKIP:
            self._queue.append((entry[0], idx, res, extra))
        if failed and flags & LINK:
            entry[1] = 2 if flags & SKIP else 1
        if not flags & _LINKED and cid:
            del self._chains[cid]

    def _fd(self, fd: int, fixed: bool) -> int:
        if not fixed:
            return fd
        real = self._slots[fd] if 0 <= fd < len(self._slots) else -1
        if real < 0:
            raise OSError(errno.EBADF, "empty direct descriptor slot")
        return real

    # -- the operations ------------------------------------------------------------
    def statx(self, cid: int, idx: int, dfd: int, name: bytes, at_flags: int, flags: int = 0,
              mask: int = STATX_WANTED) -> None:
        _chain_end_only("STATX", flags)
        if self._cancelled(cid, idx, flags):
            return
        res, raw = self._statx_raw(dfd, name, at_flags, mask)
        if res < 0:
            self._complete(cid, idx, flags, res)
            return
        self._complete(cid, idx, flags & ~SKIP, 0, Metadata.from_statx(raw))

    def statx_many(self, callback: ManyCallback, dfd_a: int, dfd_b: int,
                   names_a: List[bytes], names_b: List[bytes], at_flags: int) -> None:
        if len(names_a) != len(names_b) or not names_a:
            raise ValueError("statx_many needs as many names on each side, at least one")
        results: List[int] = []
        mems: List[Any] = []
        for name_a, name_b in zip(names_a, names_b):
            for dfd, name in ((dfd_a, name_a), (dfd_b, name_b)):
                res, raw = self._statx_raw(dfd, name, at_flags)
                results.append(res)
                mems.append(raw)
        offs = [0] * len(results)
        cid = self.chain(lambda idx, res, extra: callback(results, mems, offs))
        self._complete(cid, 0, 0, 0)

    def _statx_raw(self, dfd: int, name: bytes, at_flags: int,
                   mask: int = STATX_WANTED) -> Tuple[int, bytes]:
        """(0, a copy of the struct statx) or (-errno, b"")."""
        self.ops["statx"] += 1
        buf = self._statx_buf
        if buf is None:
            _syscall.libc()
            buf = self._statx_buf = _syscall.ctypes.create_string_buffer(_STATX_SIZE)
        try:
            _syscall.statx(dfd, name, at_flags, mask, buf)
        except OSError as exc:
            return -(exc.errno or errno.EIO), b""
        return 0, buf.raw

    def openat2(self, cid: int, idx: int, dfd: int, name: bytes, oflags: int, mode: int,
                resolve: int, flags: int = 0, slot: int = -1) -> None:
        if self._cancelled(cid, idx, flags):
            return
        if self._stopped and not _creates(oflags) and not oflags & os.O_DIRECTORY:
            # (a directory's open cannot wait on a FIFO: O_DIRECTORY refuses
            # one at once; made, the copy's new directory gets its attributes)
            self._complete(cid, idx, flags, -errno.EINTR)
            return
        self.ops["openat2"] += 1
        if not _creates(oflags):
            mode = 0
        try:
            fd = self._open(dfd, name, oflags | os.O_CLOEXEC, mode, resolve)
        except OSError as exc:
            self._complete(cid, idx, flags, -(exc.errno or errno.EIO))
            return
        if slot >= 0:
            old = self._slots[slot]
            if old >= 0:
                os.close(old)
            self._slots[slot] = fd
            fd = 0
        self._complete(cid, idx, flags, fd)

    def _open(self, dfd: int, name: bytes, oflags: int, mode: int, resolve: int) -> int:
        if self.has_openat2:
            try:
                return _syscall.openat2(dfd, name, oflags, mode, resolve)
            except OSError as exc:
                if exc.errno not in (errno.ENOSYS, errno.EPERM):
                    raise
                # a kernel before 5.6, or a sandbox that filters openat2: names
                # are single components, so O_NOFOLLOW gives the same guarantee
                self.has_openat2 = False
            except UringUnavailable:
                self.has_openat2 = False
        return os.open(name, oflags | os.O_NOFOLLOW, mode, dir_fd=dfd)

    def read(self, cid: int, idx: int, fd: int, buf: Buffer, boff: int, n: int, off: int,
             flags: int = 0, fixed: bool = False) -> None:
        if self._cancelled(cid, idx, flags):
            return
        self.ops["read"] += 1
        try:
            view = buf.view[boff: boff + n]
            real = self._fd(fd, fixed)
            res = os.preadv(real, [view], off) if off >= 0 else os.readv(real, [view])
        except OSError as exc:
            self._complete(cid, idx, flags, -(exc.errno or errno.EIO))
            return
        self._complete(cid, idx, flags, res, short=res < n)

    def write(self, cid: int, idx: int, fd: int, buf: Buffer, boff: int, n: int, off: int,
              flags: int = 0, fixed: bool = False) -> None:
        if self._cancelled(cid, idx, flags):
            return
        self.ops["write"] += 1
        try:
            view = buf.view[boff: boff + n]
            real = self._fd(fd, fixed)
            res = os.pwrite(real, view, off) if off >= 0 else os.write(real, view)
        except OSError as exc:
            self._complete(cid, idx, flags, -(exc.errno or errno.EIO))
            return
        self._complete(cid, idx, flags, res, short=res < n)

    def close_fd(self, cid: int, idx: int, fd: int, flags: int = 0) -> None:
        if self._cancelled(cid, idx, flags):
            return
        self.ops["close"] += 1
        self._simple(cid, idx, flags, os.close, fd)

    def close_slot(self, cid: int, idx: int, slot: int, flags: int = 0) -> None:
        if self._cancelled(cid, idx, flags):
            return
        fd = self._slots[slot] if 0 <= slot < len(self._slots) else -1
        if fd < 0:
            self._complete(cid, idx, flags, -errno.EBADF)
            return
        self._slots[slot] = -1
        self.ops["close"] += 1
        self._simple(cid, idx, flags, os.close, fd)

    def _simple(self, cid: int, idx: int, flags: int, fn: Callable[..., Any], *args: Any,
                **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except OSError as exc:
            self._complete(cid, idx, flags, -(exc.errno or errno.EIO))
            return
        self._complete(cid, idx, flags, 0)

    def mkdirat(self, cid: int, idx: int, dfd: int, name: bytes, mode: int,
                flags: int = 0) -> None:
        _chain_end_only("MKDIRAT", flags)
        if self._cancelled(cid, idx, flags):
            return
        self.ops["mkdirat"] += 1
        self._simple(cid, idx, flags, os.mkdir, name, mode, dir_fd=dfd)

    def symlinkat(self, cid: int, idx: int, target: bytes, dfd: int, name: bytes,
                  flags: int = 0) -> None:
        _chain_end_only("SYMLINKAT", flags)
        if self._cancelled(cid, idx, flags):
            return
        self.ops["symlinkat"] += 1
        self._simple(cid, idx, flags, os.symlink, target, name, dir_fd=dfd)

    def linkat(self, cid: int, idx: int, odfd: int, oname: bytes, ndfd: int, nname: bytes,
               lflags: int = 0, flags: int = 0) -> None:
        _chain_end_only("LINKAT", flags)
        if self._cancelled(cid, idx, flags):
            return
        self.ops["linkat"] += 1
        self._simple(cid, idx, flags, _linkat, odfd, oname, ndfd, nname, lflags)

    def renameat(self, cid: int, idx: int, odfd: int, oname: bytes, ndfd: int, nname: bytes,
                 rflags: int = 0, flags: int = 0) -> None:
        _chain_end_only("RENAMEAT", flags)
        if self._cancelled(cid, idx, flags):
            return
        self.ops["renameat"] += 1
        if rflags:
            self._simple(cid, idx, flags, _syscall.renameat2, odfd, oname, ndfd, nname, rflags)
        else:
            self._simple(cid, idx, flags, os.rename, oname, nname, src_dir_fd=odfd,
                         dst_dir_fd=ndfd)

    def unlinkat(self, cid: int, idx: int, dfd: int, name: bytes, uflags: int = 0,
                 flags: int = 0) -> None:
        _chain_end_only("UNLINKAT", flags)
        if self._cancelled(cid, idx, flags):
            return
        self.ops["unlinkat"] += 1
        fn = os.rmdir if uflags & A.AT_REMOVEDIR else os.unlink
        self._simple(cid, idx, flags, fn, name, dir_fd=dfd)

    def fsync(self, cid: int, idx: int, fd: int, flags: int = 0) -> None:
        _chain_end_only("FSYNC", flags)
        if self._cancelled(cid, idx, flags):
            return
        self.ops["fsync"] += 1
        self._simple(cid, idx, flags, os.fsync, fd)

    def fsetxattr(self, cid: int, idx: int, fd: int, name: bytes, value: bytes,
                  flags: int = 0) -> None:
        _xattr_flags_ok(flags)
        if self._cancelled(cid, idx, flags):
            return
        self.ops["fsetxattr"] += 1
        self._simple(cid, idx, flags, os.setxattr, fd, name, value)


def _linkat(odfd: int, oname: bytes, ndfd: int, nname: bytes, lflags: int) -> None:
    """linkat(2) with any flags (os.link cannot pass AT_EMPTY_PATH)."""
    libc = _syscall.libc()
    if libc.linkat(odfd, oname, ndfd, nname, lflags) != 0:
        err = _syscall.get_errno()
        raise OSError(err, os.strerror(err))


def make_executor(backend: str = "auto", *, entries: int = 256, direct_slots: int = 0,
                  reasons: Optional[List[str]] = None,
                  required_ops: Sequence[int] = ()) -> Executor:
    """``auto``: io_uring when it works here (and has ``required_ops``), else
    plain syscalls.

    ``uring`` raises ``UringUnavailable`` when it does not; ``sync`` never
    touches io_uring.  The environment variable ``PYURING_BACKEND`` overrides
    ``auto``.  Why ``auto`` fell back is appended to ``reasons``.
    """
    if backend == "auto":
        backend = os.environ.get("PYURING_BACKEND", "auto") or "auto"
    if backend == "sync":
        return SyncExecutor(direct_slots=direct_slots)
    if backend not in ("auto", "uring"):
        raise ValueError(f"unknown backend {backend!r} (auto, uring or sync)")
    try:
        return UringExecutor(entries=entries, direct_slots=direct_slots,
                             required_ops=required_ops)
    except UringUnavailable as exc:
        if backend == "uring":
            raise
        if reasons is not None:
            reasons.append(exc.strerror or str(exc))
        return SyncExecutor(direct_slots=direct_slots)
