"""io_uring_register(2): fixed buffers and files, eventfd, personalities, ...

Registered resources trade a one-time setup cost for cheaper requests: a
registered file skips the per-request fd lookup (``IOSQE_FIXED_FILE``), a
registered buffer skips pinning pages per request (``prep_read_fixed``).
Everything registered is pinned by the Ring until unregistered or closed.
"""

from __future__ import annotations

import errno
import mmap
import os
import struct

from . import _abi as A
from . import _syscall
from ._core import RingCore
from ._mem import Buffer, buffer_address
from .errors import OpcodeUnsupported, RingForkedError, UringError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Tuple


def _int_array(values: Sequence[int]) -> bytearray:
    return bytearray(struct.pack(f"={len(values)}i", *values))


def _nbytes(buf: Any) -> int:
    return buf.size if type(buf) is Buffer else memoryview(buf).nbytes


def sync_msg_ring(ring_fd: int, data: int, res: int = 0) -> None:
    """Post a completion (user_data ``data``, result ``res``) on the ring whose
    fd is ``ring_fd``, without a ring of one's own: IORING_REGISTER_SEND_MSG_RING,
    a "blind" io_uring_register on fd -1 that runs one MSG_RING synchronously
    (Linux 6.13; liburing's ``io_uring_register_sync_msg``).  Nothing is
    submitted to the target ring, so any thread may call it -- a way to wake a
    thread waiting in ``submit_and_wait`` on that ring.  Raises
    :class:`OpcodeUnsupported` where the kernel lacks it."""
    sqe = bytearray(A.SQE_SIZE)
    A.SQE_COMMON.pack_into(sqe, 0, A.IORING_OP_MSG_RING, 0, ring_fd, data & (1 << 64) - 1,
                           A.IORING_MSG_DATA, res & 0xFFFFFFFF, 0, 0, 0, 0)
    addr, keep = buffer_address(sqe, True)
    try:
        _syscall.io_uring_register(-1, A.IORING_REGISTER_SEND_MSG_RING, addr, 1)
    except OSError as exc:
        err = exc.errno or 0
        if err == errno.EINVAL or (err == errno.EBADF and not _blind_register()):
            raise OpcodeUnsupported(err, "IORING_REGISTER_SEND_MSG_RING: not supported "
                                         "by this kernel") from None
        raise UringError(err, f"IORING_REGISTER_SEND_MSG_RING: {os.strerror(err)}") from None
    finally:
        del keep


_blind: List[bool] = []


def _blind_register() -> bool:
    """Does the kernel take io_uring_register on fd -1 (6.13)?  EBADF is then
    about the target ring's fd: asked once, with no SQE at all -- a kernel that
    has it fails to read the SQE (EFAULT), an older one finds no fd -1 (EBADF)."""
    if not _blind:
        try:
            _syscall.io_uring_register(-1, A.IORING_REGISTER_SEND_MSG_RING, 0, 1)
            _blind.append(True)
        except OSError as exc:
            _blind.append(exc.errno != errno.EBADF)
    return _blind[0]



def _registered(buf: Any, anchor: Any) -> Any:
    """What a registration keeps of ``buf``: a Buffer itself, not its anchor,
    so that it may still be closed (Buffer.close refuses while the anchor is
    held for a request in flight): the kernel pinned the pages it
    registered, and a fixed read or write goes to those, not to whatever is
    mapped at the address later."""
    return buf if type(buf) is Buffer else anchor

class Registrations(RingCore):
    """The register_* methods; mixed into :class:`pyuring.Ring`."""

    _registered: Dict[str, Any]

    def _register(self, opcode: int, arg: Any, nr: int) -> int:
        """io_uring_register(ring, opcode, arg, nr); ``arg`` is a buffer or None."""
        if self._closed:
            raise ValueError("operation on a closed Ring")
        if self._forked:
            # the ring fd is shared with the parent: registering here would
            # change the parent's ring
            raise RingForkedError()
        addr, keep = (0, None) if arg is None else buffer_address(arg, True)
        fd, op = self.fd, opcode
        if self._ring_index is not None:
            fd, op = self._ring_index, opcode | A.IORING_REGISTER_USE_REGISTERED_RING
        try:
            return _syscall.io_uring_register(fd, op, addr, nr)
        except OSError as exc:
            err = exc.errno or 0
            name = next((n for n, v in vars(A).items()
                         if n.startswith(("IORING_REGISTER_", "IORING_UNREGISTER_"))
                         and v == opcode), str(opcode))
            if err == errno.EINVAL and opcode >= A.IORING_REGISTER_PBUF_STATUS and \
                    name.startswith("IORING_REGISTER_"):
                raise OpcodeUnsupported(err, f"{name}: not supported by this kernel") from None
            raise UringError(err, f"{name}: {os.strerror(err)}") from None
        finally:
            del keep

    def _reg_store(self) -> Dict[str, Any]:
        try:
            return self._registered
        except AttributeError:
            self._registered = {}
            return self._registered

    @property
    def _ring_index(self) -> Optional[int]:
        return getattr(self, "_enter_ring_index", None)

    def close(self) -> None:
        # A registered ring fd is a reference to the ring held by this thread's
        # io_uring context: unless it is dropped, the ring outlives close() until
        # the thread exits, and each thread may register only 16 of them.
        if not self._closed and not self._forked and self._ring_index is not None:
            try:
                self.unregister_ring_fd()
            except OSError:
                # e.g. close() from another thread, which holds no such slot:
                # at least enter through the plain fd from here on
                self.__dict__.pop("_enter_ring_index", None)
                self._enter_fd, self._enter_flags = self.fd, 0
        super().close()

    # -- buffers ----------------------------------------------------------------
    def register_buffers(self, buffers: Sequence[Any]) -> None:
        """Register writable buffers for READ_FIXED/WRITE_FIXED (index = position)."""
        iov = bytearray(A.IOVEC.size * len(buffers))
        keep: List[Any] = []
        for i, b in enumerate(buffers):
            addr, k = buffer_address(b, True)
            keep.append(_registered(b, k))
            A.IOVEC.pack_into(iov, i * 16, addr, _nbytes(b))
        self._register(A.IORING_REGISTER_BUFFERS, iov, len(buffers))
        self._reg_store()["buffers"] = keep

    def register_buffers_sparse(self, nr: int) -> None:
        """Reserve ``nr`` empty buffer slots, to be filled by register_buffers_update."""
        arg = bytearray(A.RSRC_REGISTER.pack(nr, A.IORING_RSRC_REGISTER_SPARSE, 0, 0, 0))
        self._register(A.IORING_REGISTER_BUFFERS2, arg, A.RSRC_REGISTER.size)
        self._reg_store()["buffers"] = [None] * nr

    def register_buffers_update(self, offset: int, buffers: Sequence[Any]) -> int:
        """Replace registered buffers from slot ``offset`` on; returns how many."""
        iov = bytearray(A.IOVEC.size * len(buffers))
        keep: List[Any] = []
        for i, b in enumerate(buffers):
            addr, k = buffer_address(b, True)
            keep.append(_registered(b, k))
            A.IOVEC.pack_into(iov, i * 16, addr, _nbytes(b))
        iov_addr, iov_keep = buffer_address(iov, True)
        arg = bytearray(A.RSRC_UPDATE2.pack(offset, 0, iov_addr, 0, len(buffers), 0))
        n = self._register(A.IORING_REGISTER_BUFFERS_UPDATE, arg, A.RSRC_UPDATE2.size)
        slots = self._reg_store().setdefault("buffers", [])
        if len(slots) < offset + len(buffers):
            slots.extend([None] * (offset + len(buffers) - len(slots)))
        slots[offset:offset + len(buffers)] = keep
        del iov_keep
        return n

    def unregister_buffers(self) -> None:
        self._register(A.IORING_UNREGISTER_BUFFERS, None, 0)
        self._reg_store().pop("buffers", None)

    # -- files --------------------------------------------------------------------
    def register_files(self, fds: Sequence[int]) -> None:
        """Register fds as direct descriptors 0..n-1 (-1 leaves a slot empty)."""
        self._register(A.IORING_REGISTER_FILES, _int_array(fds), len(fds))

    def register_files_sparse(self, nr: int) -> None:
        """Create an empty direct-descriptor table of ``nr`` slots."""
        arg = bytearray(A.RSRC_REGISTER.pack(nr, A.IORING_RSRC_REGISTER_SPARSE, 0, 0, 0))
        self._register(A.IORING_REGISTER_FILES2, arg, A.RSRC_REGISTER.size)

    def register_files_update(self, offset: int, fds: Sequence[int]) -> int:
        """Replace direct descriptors from ``offset`` (-1 clears, -2 skips a slot)."""
        arr = _int_array(fds)
        addr, keep = buffer_address(arr, True)
        arg = bytearray(A.RSRC_UPDATE.pack(offset, 0, addr))
        n = self._register(A.IORING_REGISTER_FILES_UPDATE, arg, len(fds))
        del keep
        return n

    def unregister_files(self) -> None:
        self._register(A.IORING_UNREGISTER_FILES, None, 0)

    def register_file_alloc_range(self, off: int, length: int) -> None:
        """Restrict IORING_FILE_INDEX_ALLOC to slots [off, off+length)."""
        arg = bytearray(A.FILE_INDEX_RANGE.pack(off, length, 0))
        self._register(A.IORING_REGISTER_FILE_ALLOC_RANGE, arg, 0)

    # -- eventfd ------------------------------------------------------------------
    def register_eventfd(self, efd: int, *, async_only: bool = False) -> None:
        """Signal ``efd`` on every completion (only async ones with ``async_only``)."""
        op = A.IORING_REGISTER_EVENTFD_ASYNC if async_only else A.IORING_REGISTER_EVENTFD
        self._register(op, _int_array([efd]), 1)

    def unregister_eventfd(self) -> None:
        self._register(A.IORING_UNREGISTER_EVENTFD, None, 0)

    # -- credentials, workers, ring fd -----------------------------------------------
    def register_personality(self) -> int:
        """Register the current credentials; returns an id for ``ring.personality(id)``."""
        return self._register(A.IORING_REGISTER_PERSONALITY, None, 0)

    def unregister_personality(self, personality_id: int) -> None:
        self._register(A.IORING_UNREGISTER_PERSONALITY, None, personality_id)

    def register_iowq_max_workers(self, bounded: int = 0, unbounded: int = 0) -> Tuple[int, int]:
        """Cap io-wq worker threads (0 = leave as is); returns the previous caps."""
        arr = bytearray(struct.pack("=II", bounded, unbounded))
        self._register(A.IORING_REGISTER_IOWQ_MAX_WORKERS, arr, 2)
        old = struct.unpack("=II", arr)
        return int(old[0]), int(old[1])

    def register_ring_fd(self) -> int:
        """Register the ring's own fd: io_uring_enter then skips the fd lookup.
        Registered already: its index again (a second registration would take
        another of the thread's 16 slots and keep the ring alive until the
        thread ends)."""
        if self._ring_index is not None:
            return self._ring_index
        arg = bytearray(A.RSRC_UPDATE.pack(0xFFFFFFFF, 0, self.fd))  # offset -1: any slot
        self._register(A.IORING_REGISTER_RING_FDS, arg, 1)
        index = int(A.RSRC_UPDATE.unpack(arg)[0])
        self._enter_ring_index = index
        self._enter_fd = index
        self._enter_flags = A.IORING_ENTER_REGISTERED_RING
        return index

    def unregister_ring_fd(self) -> None:
        index = self._ring_index
        if index is None:
            return
        arg = bytearray(A.RSRC_UPDATE.pack(index, 0, 0))
        self._register(A.IORING_UNREGISTER_RING_FDS, arg, 1)
        del self._enter_ring_index
        self._enter_fd = self.fd
        self._enter_flags = 0

    def register_restrictions(self, restrictions: Sequence[Tuple[int, int]]) -> None:
        """Restrict a ring created with IORING_SETUP_R_DISABLED.

        Each item is ``(IORING_RESTRICTION_*, value)``: an opcode, register op
        or SQE flag mask.  Call ``enable_rings()`` afterwards.
        """
        arr = bytearray(A.RESTRICTION.size * len(restrictions))
        for i, (kind, value) in enumerate(restrictions):
            A.RESTRICTION.pack_into(arr, i * A.RESTRICTION.size, kind, value, 0, 0, 0, 0)
        self._register(A.IORING_REGISTER_RESTRICTIONS, arr, len(restrictions))

    def enable_rings(self) -> None:
        self._register(A.IORING_REGISTER_ENABLE_RINGS, None, 0)

    # -- provided buffer rings ------------------------------------------------------
    def register_buf_ring(self, entries: int, bgid: int, buf_size: int) -> BufferRing:
        """Create a provided-buffer ring for group ``bgid`` with ``entries`` buffers
        of ``buf_size`` bytes each, all handed to the kernel at once."""
        return BufferRing(self, entries, bgid, buf_size)

    def unregister_buf_ring(self, bgid: int) -> None:
        arg = bytearray(A.BUF_REG.pack(0, 0, bgid, 0, 0, 0, 0))
        self._register(A.IORING_UNREGISTER_PBUF_RING, arg, 1)
        self._reg_store().pop(f"pbuf{bgid}", None)


class BufferRing:
    """A provided-buffer ring (IORING_REGISTER_PBUF_RING, 5.19).

    The kernel picks a buffer for each IOSQE_BUFFER_SELECT request and reports
    its id in the completion (``Completion.buffer_id``); ``recycle(bid)`` hands
    it back after the data has been consumed.
    """

    def __init__(self, ring: Registrations, entries: int, bgid: int, buf_size: int) -> None:
        if entries & (entries - 1) or not 0 < entries <= 32768:
            raise ValueError("entries must be a power of two up to 32768")
        self.ring, self.bgid, self.entries, self.buf_size = ring, bgid, entries, buf_size
        self._mask = entries - 1
        size = max(entries * A.BUF.size, mmap.PAGESIZE)
        self._ring_mem = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self._bufs = mmap.mmap(-1, entries * buf_size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self._ring_addr, self._ring_keep = buffer_address(self._ring_mem, True)
        self._bufs_addr, self._bufs_keep = buffer_address(self._bufs, True)
        arg = bytearray(A.BUF_REG.pack(self._ring_addr, entries, bgid, 0, 0, 0, 0))
        ring._register(A.IORING_REGISTER_PBUF_RING, arg, 1)
        ring._reg_store()[f"pbuf{bgid}"] = self
        self._tail = 0
        for bid in range(entries):
            self._add(bid)
        self._publish()

    def _add(self, bid: int) -> None:
        A.BUF.pack_into(self._ring_mem, (self._tail & self._mask) * A.BUF.size,
                        self._bufs_addr + bid * self.buf_size, self.buf_size, bid, 0)
        self._tail += 1

    def _publish(self) -> None:
        # The tail overlays bufs[0].resv.  A plain 16-bit store after the
        # entries is ordered on x86-64; the kernel reads it with acquire.
        struct.pack_into("=H", self._ring_mem, A.BUF_RING_TAIL_OFFSET, self._tail & 0xFFFF)

    def _check(self, bid: int) -> None:
        if not 0 <= bid < self.entries:
            raise ValueError(f"buffer id {bid} is not one of this ring's 0..{self.entries - 1}")

    def buffer(self, bid: int, length: Optional[int] = None) -> memoryview:
        """The memory of buffer ``bid`` (first ``length`` bytes)."""
        self._check(bid)
        start = bid * self.buf_size
        return memoryview(self._bufs)[start:start + (self.buf_size if length is None else length)]

    def recycle(self, bid: int) -> None:
        """Give buffer ``bid`` back to the kernel.  (Checked first: an entry
        beyond the buffers would have the kernel write past them.)"""
        self._check(bid)
        self._add(bid)
        self._publish()
