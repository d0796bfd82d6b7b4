"""``prep_*``: one method per io_uring opcode, named and ordered as in liburing.

Each method fills one SQE exactly as liburing's ``io_uring_prep_*`` does
(field for field; see the opcode's comment) and pins every Python object the
kernel will read or write until the request's completion is reaped.

Common keyword arguments: ``user_data`` (returned in the completion) and
``flags`` (IOSQE_* bits: IO_LINK, CQE_SKIP_SUCCESS, FIXED_FILE, ...).

Buffers are any buffer object (bytearray, memoryview, mmap, ``pyuring.Buffer``;
read-only ``bytes`` where the kernel only reads).  Paths are str, bytes or
PathLike.  Direct-descriptor variants take ``file_index`` (a slot in the
registered file table, or ``IORING_FILE_INDEX_ALLOC`` to let the kernel pick).
"""

from __future__ import annotations

import os
import struct

from . import _abi as A
from ._core import RingCore, _unfit
from ._mem import Buffer, buffer_address, bytes_address, path_address

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional, Sequence, Tuple, Union
    Timeout = Union[float, int, Tuple[int, int]]
_U64 = 0xFFFFFFFFFFFFFFFF
_MSGHDR = struct.Struct("=QI4xQQQQi4x")  # struct msghdr, 56 bytes on 64-bit
_SOCKLEN = struct.Struct("=I")
#: struct epoll_event: packed (12 bytes) on x86-64 only, naturally aligned
#: (16 bytes) everywhere else -- see EPOLL_PACKED in the kernel's eventpoll.h.
EPOLL_EVENT = struct.Struct(
    "=IQ" if hasattr(os, "uname") and os.uname().machine.lower() in ("x86_64", "amd64")
    else "=I4xQ"
)
#: sizeof(siginfo_t), what WAITID writes.
SIGINFO_SIZE = 128


def _target_slot(file_index: int) -> int:
    # sqe->file_index is "slot + 1" (0 means "not a direct descriptor"); the
    # allocate-for-me value is passed through unchanged.
    return file_index if file_index == A.IORING_FILE_INDEX_ALLOC else file_index + 1


def _timespec(ts: Timeout) -> bytearray:
    if isinstance(ts, tuple):
        sec, nsec = ts
    else:
        total = round(float(ts) * 1_000_000_000)
        sec, nsec = divmod(total, 1_000_000_000)
    return bytearray(A.TIMESPEC.pack(sec, nsec))


def _iovecs(buffers: Sequence[Any], writable: bool) -> Tuple[int, int, Any]:
    """Build a struct iovec array; returns (address, count, keepalive)."""
    keep = []
    arr = bytearray(A.IOVEC.size * max(len(buffers), 1))
    for i, b in enumerate(buffers):
        addr, k = buffer_address(b, writable)
        keep.append(k)
        A.IOVEC.pack_into(arr, i * 16, addr, _length(b, None))
    addr, anchor = buffer_address(arr, True)
    keep.append(anchor)
    return addr, len(buffers), keep


_NOP_PACK = A.SQE_NOP.pack_into
_COMMON_PACK = A.SQE_COMMON.pack_into


def _checked_length(buf: Any, nbytes: Optional[int]) -> int:
    """``nbytes``, refused when larger than the buffer (the kernel would overrun it)."""
    have = buf.size if type(buf) is Buffer else memoryview(buf).nbytes
    if nbytes is None:
        return int(have)
    if nbytes > have or nbytes < 0:
        raise ValueError(f"nbytes={nbytes} does not fit a buffer of {have} bytes")
    return nbytes


def _length(buf: Any, nbytes: Optional[int]) -> int:
    if nbytes is not None:
        return nbytes
    return buf.size if type(buf) is Buffer else memoryview(buf).nbytes


def _fits(buf: Any, nbytes: int, what: str) -> None:
    """Refuse a buffer smaller than what the kernel will write into it.

    Kept off the hot paths (read/write/recv trust ``nbytes``); used where a
    fixed-size kernel structure lands in a caller's buffer.
    """
    have = _length(buf, None)
    if have < nbytes:
        raise ValueError(f"{what} needs a buffer of at least {nbytes} bytes, not {have}")


class Ops(RingCore):
    """The prep_* methods; mixed into :class:`pyuring.Ring`."""

    # -- raw -----------------------------------------------------------------
    def prep_rw(
        self, op: int, fd: int, addr: int, length: int, offset: int, *,
        user_data: int = 0, flags: int = 0, op_flags: int = 0, keep: Any = None,
        buf_index: int = 0, ioprio: int = 0, file_index: int = 0, addr3: int = 0,
    ) -> None:
        """liburing's io_uring_prep_rw: any opcode with raw integer fields.

        ``addr`` is a raw address: pass the object that owns that memory as
        ``keep`` so the ring pins it until the completion is reaped.  The other
        SQE fields liburing callers set by hand after io_uring_prep_rw are
        keywords: ``buf_index`` (also ``buf_group`` with IOSQE_BUFFER_SELECT),
        ``ioprio``, ``file_index``, ``addr3``.
        """
        self._push(op, fd, offset, addr, length, op_flags, user_data, flags, ioprio,
                   buf_index, file_index, addr3, keep=keep)

    # -- misc ---------------------------------------------------------------
    def prep_nop(self, *, user_data: int = 0, flags: int = 0, nop_flags: int = 0,
                 result: int = 0) -> None:
        """NOP: completes with res 0 (or ``result`` with IORING_NOP_INJECT_RESULT)."""
        tail = self._sq_tail
        if tail == self._sq_limit:
            self._make_room()
        try:
            _NOP_PACK(self._sqes, (tail & self._sq_mask) << self._sqe_shift, flags, -1,
                      result & 0xFFFFFFFF, nop_flags, user_data, self._personality)
        except struct.error as exc:
            raise _unfit(exc) from None
        self._sq_tail = tail + 1
        self._op_counts[0] += 1
        if flags & A.IOSQE_CQE_SKIP_SUCCESS or self._chain:
            self._track(user_data, 0, flags, None, None)

    # -- file I/O -------------------------------------------------------------
    def prep_read(self, fd: int, buf: Any, nbytes: Optional[int] = None, offset: int = 0,
                  *, user_data: int = 0, flags: int = 0, rw_flags: int = 0) -> None:
        """READ: read(2)/pread(2) into ``buf``; offset -1 means the file position."""
        if type(buf) is Buffer and nbytes is not None and not flags and offset >= 0 \
                and nbytes <= buf.size:
            self._rw_fast(A.IORING_OP_READ, fd, buf, nbytes, offset, user_data, rw_flags)
            return
        addr, keep = buffer_address(buf, True)
        self._push(A.IORING_OP_READ, fd, offset, addr, _checked_length(buf, nbytes),
                   rw_flags, user_data, flags, keep=keep)

    def prep_write(self, fd: int, buf: Any, nbytes: Optional[int] = None, offset: int = 0,
                   *, user_data: int = 0, flags: int = 0, rw_flags: int = 0) -> None:
        """WRITE: write(2)/pwrite(2) from ``buf``; offset -1 means the file position."""
        if type(buf) is Buffer and nbytes is not None and not flags and offset >= 0 \
                and nbytes <= buf.size:
            self._rw_fast(A.IORING_OP_WRITE, fd, buf, nbytes, offset, user_data, rw_flags)
            return
        addr, keep = buffer_address(buf, False)
        self._push(A.IORING_OP_WRITE, fd, offset, addr, _checked_length(buf, nbytes),
                   rw_flags, user_data, flags, keep=keep)

    def _rw_fast(self, op: int, fd: int, buf: Buffer, nbytes: int, offset: int, ud: int,
                 rw_flags: int) -> None:
        # A Buffer knows its address and size: one pack_into and one dict store.
        tail = self._sq_tail
        if tail == self._sq_limit:
            self._make_room()
        # (packed before the tail moves: arguments pack_into refuses queue
        # nothing -- not a half-written SQE the next submit hands the kernel)
        addr = buf.live_addr()
        # (its anchor, not the Buffer, is kept: Buffer.close refuses while held)
        anchor = buf._anchor
        try:
            _COMMON_PACK(self._sqes, (tail & self._sq_mask) << self._sqe_shift, op, 0, fd,
                         offset, addr, nbytes, rw_flags, ud, self._personality, 0)
        except struct.error as exc:
            del anchor  # (not kept alive by the traceback: close() would refuse)
            raise _unfit(exc) from None
        self._sq_tail = tail + 1
        self._op_counts[op] += 1
        inflight = self._inflight
        if ud in inflight or self._chain:
            self._track(ud, op, 0, None, anchor)
        else:
            inflight[ud] = [1, op, None, anchor, None]

    def prep_readv(self, fd: int, iovecs: Sequence[Any], offset: int = 0, rw_flags: int = 0,
                   *, user_data: int = 0, flags: int = 0) -> None:
        """READV: preadv2(2) into a list of buffers."""
        addr, n, keep = _iovecs(iovecs, True)
        self._push(A.IORING_OP_READV, fd, offset, addr, n, rw_flags, user_data, flags, keep=keep)

    def prep_writev(self, fd: int, iovecs: Sequence[Any], offset: int = 0, rw_flags: int = 0,
                    *, user_data: int = 0, flags: int = 0) -> None:
        """WRITEV: pwritev2(2) from a list of buffers."""
        addr, n, keep = _iovecs(iovecs, False)
        self._push(A.IORING_OP_WRITEV, fd, offset, addr, n, rw_flags, user_data, flags, keep=keep)

    def prep_read_fixed(self, fd: int, buf: Any, nbytes: Optional[int], offset: int,
                        buf_index: int, *, user_data: int = 0, flags: int = 0) -> None:
        """READ_FIXED: read into (part of) registered buffer ``buf_index``."""
        addr, keep = buffer_address(buf, True)
        self._push(A.IORING_OP_READ_FIXED, fd, offset, addr, _length(buf, nbytes), 0,
                   user_data, flags, buf_index=buf_index, keep=keep)

    def prep_write_fixed(self, fd: int, buf: Any, nbytes: Optional[int], offset: int,
                         buf_index: int, *, user_data: int = 0, flags: int = 0) -> None:
        """WRITE_FIXED: write from (part of) registered buffer ``buf_index``."""
        addr, keep = buffer_address(buf, False)
        self._push(A.IORING_OP_WRITE_FIXED, fd, offset, addr, _length(buf, nbytes), 0,
                   user_data, flags, buf_index=buf_index, keep=keep)

    def prep_readv_fixed(self, fd: int, iovecs: Sequence[Any], offset: int, rw_flags: int,
                         buf_index: int, *, user_data: int = 0, flags: int = 0) -> None:
        """READV_FIXED (6.15): vectored read into registered buffer ``buf_index``
        (every iovec must lie inside it); liburing's argument order."""
        addr, n, keep = _iovecs(iovecs, True)
        self._push(A.IORING_OP_READV_FIXED, fd, offset, addr, n, rw_flags, user_data, flags,
                   buf_index=buf_index, keep=keep)

    def prep_writev_fixed(self, fd: int, iovecs: Sequence[Any], offset: int, rw_flags: int,
                          buf_index: int, *, user_data: int = 0, flags: int = 0) -> None:
        """WRITEV_FIXED (6.15): vectored write from registered buffer ``buf_index``
        (every iovec must lie inside it); liburing's argument order."""
        addr, n, keep = _iovecs(iovecs, False)
        self._push(A.IORING_OP_WRITEV_FIXED, fd, offset, addr, n, rw_flags, user_data, flags,
                   buf_index=buf_index, keep=keep)

    def prep_read_multishot(self, fd: int, nbytes: int, offset: int, buf_group: int, *,
                            user_data: int = 0, flags: int = 0) -> None:
        """READ_MULTISHOT (6.7): repeated reads into provided buffers of ``buf_group``."""
        self._push(A.IORING_OP_READ_MULTISHOT, fd, offset, 0, nbytes, 0, user_data,
                   flags | A.IOSQE_BUFFER_SELECT, buf_index=buf_group)

    def prep_fsync(self, fd: int, fsync_flags: int = 0, *, user_data: int = 0,
                   flags: int = 0) -> None:
        """FSYNC: fsync(2), or fdatasync(2) with IORING_FSYNC_DATASYNC."""
        self._push(A.IORING_OP_FSYNC, fd, 0, 0, 0, fsync_flags, user_data, flags)

    def prep_sync_file_range(self, fd: int, length: int, offset: int, sync_flags: int = 0, *,
                             user_data: int = 0, flags: int = 0) -> None:
        """SYNC_FILE_RANGE: sync_file_range(2)."""
        self._push(A.IORING_OP_SYNC_FILE_RANGE, fd, offset, 0, length, sync_flags, user_data,
                   flags)

    def prep_fallocate(self, fd: int, mode: int, offset: int, length: int, *,
                       user_data: int = 0, flags: int = 0) -> None:
        """FALLOCATE: fallocate(2); the length travels in sqe->addr."""
        self._push(A.IORING_OP_FALLOCATE, fd, offset, length, mode, 0, user_data, flags)

    def prep_fadvise(self, fd: int, offset: int, length: int, advice: int, *,
                     user_data: int = 0, flags: int = 0) -> None:
        """FADVISE: posix_fadvise(2)."""
        self._push(A.IORING_OP_FADVISE, fd, offset, 0, length, advice, user_data, flags)

    def prep_madvise(self, buf: Any, length: Optional[int], advice: int, *,
                     user_data: int = 0, flags: int = 0) -> None:
        """MADVISE: madvise(2) on the memory of ``buf`` (page-aligned, e.g. an mmap)."""
        addr, keep = buffer_address(buf, True)
        self._push(A.IORING_OP_MADVISE, -1, 0, addr, _length(buf, length), advice, user_data,
                   flags, keep=keep)

    def prep_ftruncate(self, fd: int, length: int, *, user_data: int = 0, flags: int = 0) -> None:
        """FTRUNCATE (6.9): ftruncate(2); the length travels in sqe->off."""
        self._push(A.IORING_OP_FTRUNCATE, fd, length, 0, 0, 0, user_data, flags)

    def prep_splice(self, fd_in: int, off_in: int, fd_out: int, off_out: int, nbytes: int,
                    splice_flags: int = 0, *, user_data: int = 0, flags: int = 0) -> None:
        """SPLICE: splice(2); an offset of -1 means "use the file position" (pipes)."""
        self._push(A.IORING_OP_SPLICE, fd_out, off_out, off_in & _U64, nbytes, splice_flags,
                   user_data, flags, file_index=fd_in & 0xFFFFFFFF)

    def prep_tee(self, fd_in: int, fd_out: int, nbytes: int, splice_flags: int = 0, *,
                 user_data: int = 0, flags: int = 0) -> None:
        """TEE: tee(2) between two pipes."""
        self._push(A.IORING_OP_TEE, fd_out, 0, 0, nbytes, splice_flags, user_data, flags,
                   file_index=fd_in & 0xFFFFFFFF)

    # -- open / close / stat ----------------------------------------------------
    def prep_openat(self, dfd: int, path: Any, open_flags: int, mode: int = 0, *,
                    user_data: int = 0, flags: int = 0) -> None:
        """OPENAT: openat(2); the completion's res is the new fd."""
        addr, raw = path_address(path)
        self._push(A.IORING_OP_OPENAT, dfd, 0, addr, mode, open_flags, user_data, flags,
                   path=raw, keep=raw)

    def prep_openat_direct(self, dfd: int, path: Any, open_flags: int, mode: int,
                           file_index: int, *, user_data: int = 0, flags: int = 0) -> None:
        """OPENAT into direct descriptor slot ``file_index`` (no fd is created)."""
        addr, raw = path_address(path)
        self._push(A.IORING_OP_OPENAT, dfd, 0, addr, mode, open_flags, user_data, flags,
                   file_index=_target_slot(file_index), path=raw, keep=raw)

    def prep_openat2(self, dfd: int, path: Any, open_flags: int, mode: int = 0,
                     resolve: int = 0, *, user_data: int = 0, flags: int = 0) -> None:
        """OPENAT2: openat2(2); struct open_how is built from the three fields.

        (liburing takes a ``struct open_how *``; a tuple of its three fields is
        the Python spelling.)
        """
        addr, raw = path_address(path)
        how = bytearray(A.OPEN_HOW.pack(open_flags, mode, resolve))
        how_addr, how_keep = buffer_address(how, True)
        self._push(A.IORING_OP_OPENAT2, dfd, how_addr, addr, A.OPEN_HOW.size, 0, user_data,
                   flags, path=raw, keep=(raw, how_keep))

    def prep_openat2_direct(self, dfd: int, path: Any, open_flags: int, mode: int,
                            resolve: int, file_index: int, *, user_data: int = 0,
                            flags: int = 0) -> None:
        """OPENAT2 into direct descriptor slot ``file_index``."""
        addr, raw = path_address(path)
        how = bytearray(A.OPEN_HOW.pack(open_flags, mode, resolve))
        how_addr, how_keep = buffer_address(how, True)
        self._push(A.IORING_OP_OPENAT2, dfd, how_addr, addr, A.OPEN_HOW.size, 0, user_data,
                   flags, file_index=_target_slot(file_index), path=raw, keep=(raw, how_keep))

    def prep_close(self, fd: int, *, user_data: int = 0, flags: int = 0) -> None:
        """CLOSE: close(2)."""
        self._push(A.IORING_OP_CLOSE, fd, 0, 0, 0, 0, user_data, flags)

    def prep_close_direct(self, file_index: int, *, user_data: int = 0, flags: int = 0) -> None:
        """CLOSE of direct descriptor slot ``file_index``."""
        self._push(A.IORING_OP_CLOSE, 0, 0, 0, 0, 0, user_data, flags,
                   file_index=file_index + 1)

    def prep_statx(self, dfd: int, path: Any, statx_flags: int, mask: int, statxbuf: Any, *,
                   user_data: int = 0, flags: int = 0) -> None:
        """STATX: statx(2) into a 256-byte writable buffer."""
        _fits(statxbuf, A.STATX.size, "statx")
        addr, raw = path_address(path)
        baddr, bkeep = buffer_address(statxbuf, True)
        self._push(A.IORING_OP_STATX, dfd, baddr, addr, mask, statx_flags, user_data, flags,
                   path=raw, keep=(raw, bkeep))

    def prep_files_update(self, fds: Sequence[int], offset: int, *, user_data: int = 0,
                          flags: int = 0) -> None:
        """FILES_UPDATE: replace registered files from slot ``offset`` on."""
        arr = bytearray(struct.pack(f"={len(fds)}i", *fds))
        addr, keep = buffer_address(arr, True)
        self._push(A.IORING_OP_FILES_UPDATE, -1, offset, addr, len(fds), 0, user_data, flags,
                   keep=keep)

    def prep_fixed_fd_install(self, file_index: int, install_flags: int = 0, *,
                              user_data: int = 0, flags: int = 0) -> None:
        """FIXED_FD_INSTALL (6.8): turn direct descriptor ``file_index`` into a real fd."""
        self._push(A.IORING_OP_FIXED_FD_INSTALL, file_index, 0, 0, 0, install_flags, user_data,
                   flags | A.IOSQE_FIXED_FILE)

    def prep_pipe(self, fds: Any, pipe_flags: int = 0, *, user_data: int = 0,
                  flags: int = 0) -> None:
        """PIPE (6.16): pipe2(2); the two fds land in ``fds`` (an 8-byte buffer, int[2])."""
        _fits(fds, 8, "pipe")
        addr, keep = buffer_address(fds, True)
        self._push(A.IORING_OP_PIPE, 0, 0, addr, 0, pipe_flags, user_data, flags, keep=keep)

    def prep_pipe_direct(self, fds: Any, pipe_flags: int, file_index: int, *,
                         user_data: int = 0, flags: int = 0) -> None:
        """PIPE into two direct descriptor slots starting at ``file_index``."""
        _fits(fds, 8, "pipe")
        addr, keep = buffer_address(fds, True)
        self._push(A.IORING_OP_PIPE, 0, 0, addr, 0, pipe_flags, user_data, flags,
                   file_index=_target_slot(file_index), keep=keep)

    # -- directory entries ----------------------------------------------------
    def prep_renameat(self, olddfd: int, oldpath: Any, newdfd: int, newpath: Any,
                      rename_flags: int = 0, *, user_data: int = 0, flags: int = 0) -> None:
        """RENAMEAT: renameat2(2) (RENAME_NOREPLACE / RENAME_EXCHANGE in rename_flags)."""
        old_addr, old = path_address(oldpath)
        new_addr, new = path_address(newpath)
        self._push(A.IORING_OP_RENAMEAT, olddfd, new_addr, old_addr, newdfd & 0xFFFFFFFF,
                   rename_flags, user_data, flags, path=old, keep=(old, new))

    def prep_rename(self, oldpath: Any, newpath: Any, *, user_data: int = 0,
                    flags: int = 0) -> None:
        self.prep_renameat(A.AT_FDCWD, oldpath, A.AT_FDCWD, newpath, 0,
                           user_data=user_data, flags=flags)

    def prep_unlinkat(self, dfd: int, path: Any, unlink_flags: int = 0, *, user_data: int = 0,
                      flags: int = 0) -> None:
        """UNLINKAT: unlinkat(2); AT_REMOVEDIR removes a directory."""
        addr, raw = path_address(path)
        self._push(A.IORING_OP_UNLINKAT, dfd, 0, addr, 0, unlink_flags, user_data, flags,
                   path=raw, keep=raw)

    def prep_unlink(self, path: Any, unlink_flags: int = 0, *, user_data: int = 0,
                    flags: int = 0) -> None:
        self.prep_unlinkat(A.AT_FDCWD, path, unlink_flags, user_data=user_data, flags=flags)

    def prep_mkdirat(self, dfd: int, path: Any, mode: int, *, user_data: int = 0,
                     flags: int = 0) -> None:
        """MKDIRAT: mkdirat(2)."""
        addr, raw = path_address(path)
        self._push(A.IORING_OP_MKDIRAT, dfd, 0, addr, mode, 0, user_data, flags,
                   path=raw, keep=raw)

    def prep_mkdir(self, path: Any, mode: int, *, user_data: int = 0, flags: int = 0) -> None:
        self.prep_mkdirat(A.AT_FDCWD, path, mode, user_data=user_data, flags=flags)

    def prep_symlinkat(self, target: Any, newdirfd: int, linkpath: Any, *, user_data: int = 0,
                       flags: int = 0) -> None:
        """SYMLINKAT: symlinkat(2): create ``linkpath`` pointing at ``target``."""
        taddr, traw = path_address(target)
        laddr, lraw = path_address(linkpath)
        self._push(A.IORING_OP_SYMLINKAT, newdirfd, laddr, taddr, 0, 0, user_data, flags,
                   path=lraw, keep=(traw, lraw))

    def prep_symlink(self, target: Any, linkpath: Any, *, user_data: int = 0,
                     flags: int = 0) -> None:
        self.prep_symlinkat(target, A.AT_FDCWD, linkpath, user_data=user_data, flags=flags)

    def prep_linkat(self, olddfd: int, oldpath: Any, newdfd: int, newpath: Any,
                    link_flags: int = 0, *, user_data: int = 0, flags: int = 0) -> None:
        """LINKAT: linkat(2) (AT_SYMLINK_FOLLOW, AT_EMPTY_PATH in link_flags)."""
        old_addr, old = path_address(oldpath)
        new_addr, new = path_address(newpath)
        self._push(A.IORING_OP_LINKAT, olddfd, new_addr, old_addr, newdfd & 0xFFFFFFFF,
                   link_flags, user_data, flags, path=new, keep=(old, new))

    def prep_link(self, oldpath: Any, newpath: Any, link_flags: int = 0, *,
                  user_data: int = 0, flags: int = 0) -> None:
        self.prep_linkat(A.AT_FDCWD, oldpath, A.AT_FDCWD, newpath, link_flags,
                         user_data=user_data, flags=flags)

    # -- extended attributes ------------------------------------------------------
    def prep_getxattr(self, name: Any, value: Any, path: Any, length: Optional[int] = None, *,
                      user_data: int = 0, flags: int = 0) -> None:
        """GETXATTR: getxattr(2) of ``path`` (follows symlinks) into ``value``."""
        if length is not None:
            _fits(value, length, "getxattr")
        naddr, nraw = path_address(name)
        vaddr, vkeep = buffer_address(value, True)
        paddr, praw = path_address(path)
        self._push(A.IORING_OP_GETXATTR, 0, vaddr, naddr, _length(value, length), 0,
                   user_data, flags, addr3=paddr, path=praw, keep=(nraw, vkeep, praw))

    def prep_fgetxattr(self, fd: int, name: Any, value: Any, length: Optional[int] = None, *,
                       user_data: int = 0, flags: int = 0) -> None:
        """FGETXATTR: fgetxattr(2) into ``value``; res is the value's length."""
        if length is not None:
            _fits(value, length, "fgetxattr")
        naddr, nraw = path_address(name)
        vaddr, vkeep = buffer_address(value, True)
        self._push(A.IORING_OP_FGETXATTR, fd, vaddr, naddr, _length(value, length), 0,
                   user_data, flags, keep=(nraw, vkeep))

    def prep_setxattr(self, name: Any, value: Any, path: Any, xattr_flags: int = 0,
                      length: Optional[int] = None, *, user_data: int = 0,
                      flags: int = 0) -> None:
        """SETXATTR: setxattr(2) on ``path`` (follows symlinks)."""
        naddr, nraw = path_address(name)
        vaddr, vkeep = buffer_address(value, False)
        paddr, praw = path_address(path)
        self._push(A.IORING_OP_SETXATTR, 0, vaddr, naddr, _length(value, length), xattr_flags,
                   user_data, flags, addr3=paddr, path=praw, keep=(nraw, vkeep, praw))

    def prep_fsetxattr(self, fd: int, name: Any, value: Any, xattr_flags: int = 0,
                       length: Optional[int] = None, *, user_data: int = 0,
                       flags: int = 0) -> None:
        """FSETXATTR: fsetxattr(2)."""
        naddr, nraw = path_address(name)
        vaddr, vkeep = buffer_address(value, False)
        self._push(A.IORING_OP_FSETXATTR, fd, vaddr, naddr, _length(value, length),
                   xattr_flags, user_data, flags, keep=(nraw, vkeep))

    # -- timeouts and cancellation -------------------------------------------------
    def prep_timeout(self, ts: Timeout, count: int = 0, timeout_flags: int = 0, *,
                     user_data: int = 0, flags: int = 0) -> None:
        """TIMEOUT: completes after ``ts`` seconds (or ``count`` other completions).

        ``ts`` is seconds (float) or ``(sec, nsec)``; res is -ETIME when the
        time ran out, 0 when ``count`` completions arrived first.
        """
        spec = _timespec(ts)
        addr, keep = buffer_address(spec, True)
        self._push(A.IORING_OP_TIMEOUT, -1, count, addr, 1, timeout_flags, user_data, flags,
                   keep=keep)

    def prep_timeout_remove(self, target_user_data: int, timeout_flags: int = 0, *,
                            user_data: int = 0, flags: int = 0) -> None:
        """TIMEOUT_REMOVE: cancel the timeout whose user_data is ``target_user_data``."""
        self._push(A.IORING_OP_TIMEOUT_REMOVE, -1, 0, target_user_data, 0, timeout_flags,
                   user_data, flags)

    def prep_timeout_update(self, ts: Timeout, target_user_data: int, timeout_flags: int = 0,
                            *, user_data: int = 0, flags: int = 0) -> None:
        """TIMEOUT_REMOVE with IORING_TIMEOUT_UPDATE: give a pending timeout a new time."""
        spec = _timespec(ts)
        addr, keep = buffer_address(spec, True)
        self._push(A.IORING_OP_TIMEOUT_REMOVE, -1, addr, target_user_data, 0,
                   timeout_flags | A.IORING_TIMEOUT_UPDATE, user_data, flags, keep=keep)

    def prep_link_timeout(self, ts: Timeout, timeout_flags: int = 0, *, user_data: int = 0,
                          flags: int = 0) -> None:
        """LINK_TIMEOUT: bound the request linked just before this one."""
        spec = _timespec(ts)
        addr, keep = buffer_address(spec, True)
        self._push(A.IORING_OP_LINK_TIMEOUT, -1, 0, addr, 1, timeout_flags, user_data, flags,
                   keep=keep)

    def prep_cancel(self, target_user_data: int, cancel_flags: int = 0, *, user_data: int = 0,
                    flags: int = 0) -> None:
        """ASYNC_CANCEL of the request(s) with ``target_user_data``."""
        self._push(A.IORING_OP_ASYNC_CANCEL, -1, 0, target_user_data, 0, cancel_flags,
                   user_data, flags)

    def prep_cancel_fd(self, fd: int, cancel_flags: int = 0, *, user_data: int = 0,
                       flags: int = 0) -> None:
        """ASYNC_CANCEL of requests on ``fd`` (IORING_ASYNC_CANCEL_FD)."""
        self._push(A.IORING_OP_ASYNC_CANCEL, fd, 0, 0, 0,
                   cancel_flags | A.IORING_ASYNC_CANCEL_FD, user_data, flags)

    # -- poll ---------------------------------------------------------------------
    def prep_poll_add(self, fd: int, poll_mask: int, *, user_data: int = 0,
                      flags: int = 0) -> None:
        """POLL_ADD: one-shot poll(2) for ``poll_mask`` (POLLIN, ...)."""
        self._push(A.IORING_OP_POLL_ADD, fd, 0, 0, 0, poll_mask, user_data, flags)

    def prep_poll_multishot(self, fd: int, poll_mask: int, *, user_data: int = 0,
                            flags: int = 0) -> None:
        """POLL_ADD with IORING_POLL_ADD_MULTI: a completion per readiness event."""
        self._push(A.IORING_OP_POLL_ADD, fd, 0, 0, A.IORING_POLL_ADD_MULTI, poll_mask,
                   user_data, flags)

    def prep_poll_remove(self, target_user_data: int, *, user_data: int = 0,
                         flags: int = 0) -> None:
        """POLL_REMOVE: cancel the poll request with ``target_user_data``."""
        self._push(A.IORING_OP_POLL_REMOVE, -1, 0, target_user_data, 0, 0, user_data, flags)

    def prep_poll_update(self, old_user_data: int, new_user_data: int, poll_mask: int,
                         poll_flags: int, *, user_data: int = 0, flags: int = 0) -> None:
        """POLL_REMOVE with IORING_POLL_UPDATE_*: change a pending poll's mask/user_data."""
        if poll_flags & A.IORING_POLL_UPDATE_USER_DATA:
            # the poll's completions will carry new_user_data: move its tracking
            # entry there, or it would never be released (nor the op be named)
            entry = self._inflight.pop(old_user_data, None)
            if entry is not None:
                self._inflight[new_user_data] = entry
        self._push(A.IORING_OP_POLL_REMOVE, -1, new_user_data, old_user_data, poll_flags,
                   poll_mask, user_data, flags)

    def prep_epoll_ctl(self, epfd: int, fd: int, op: int, events: int = 0, data: int = 0, *,
                       user_data: int = 0, flags: int = 0) -> None:
        """EPOLL_CTL: epoll_ctl(2); the struct epoll_event is built from events/data."""
        ev = bytearray(EPOLL_EVENT.pack(events, data))
        addr, keep = buffer_address(ev, True)
        self._push(A.IORING_OP_EPOLL_CTL, epfd, fd, addr, op, 0, user_data, flags, keep=keep)

    def prep_epoll_wait(self, epfd: int, events: Any, maxevents: int, wait_flags: int = 0, *,
                        user_data: int = 0, flags: int = 0) -> None:
        """EPOLL_WAIT (6.15): epoll_wait(2) into ``events``, room for ``maxevents``
        struct epoll_event (``EPOLL_EVENT.size`` bytes each: 12 on x86-64, else 16)."""
        _fits(events, maxevents * EPOLL_EVENT.size, "epoll_wait")
        addr, keep = buffer_address(events, True)
        self._push(A.IORING_OP_EPOLL_WAIT, epfd, 0, addr, maxevents, wait_flags, user_data,
                   flags, keep=keep)

    # -- networking ---------------------------------------------------------------
    def prep_socket(self, domain: int, sock_type: int, protocol: int = 0,
                    socket_flags: int = 0, *, user_data: int = 0, flags: int = 0) -> None:
        """SOCKET: socket(2); res is the new fd."""
        self._push(A.IORING_OP_SOCKET, domain, sock_type, 0, protocol, socket_flags, user_data,
                   flags)

    def prep_socket_direct(self, domain: int, sock_type: int, protocol: int,
                           socket_flags: int, file_index: int, *, user_data: int = 0,
                           flags: int = 0) -> None:
        """SOCKET into direct descriptor slot ``file_index``."""
        self._push(A.IORING_OP_SOCKET, domain, sock_type, 0, protocol, socket_flags, user_data,
                   flags, file_index=_target_slot(file_index))

    def prep_accept(self, fd: int, addr: Any = None, addrlen: Any = None,
                    accept_flags: int = 0, *, user_data: int = 0, flags: int = 0,
                    multishot: bool = False, file_index: Optional[int] = None) -> None:
        """ACCEPT: accept4(2).  ``addr`` / ``addrlen`` are writable buffers or None.

        ``addrlen`` is a 4-byte buffer holding the size of ``addr`` on entry.
        ``multishot`` and ``file_index`` select the multishot / direct forms.
        """
        if addr is not None:
            # the kernel writes up to *addrlen bytes into addr
            _fits(addrlen, _SOCKLEN.size, "accept addrlen")
            _fits(addr, _SOCKLEN.unpack_from(addrlen)[0], "accept addr (*addrlen)")
        a_addr, a_keep = buffer_address(addr, True) if addr is not None else (0, None)
        l_addr, l_keep = buffer_address(addrlen, True) if addrlen is not None else (0, None)
        self._push(A.IORING_OP_ACCEPT, fd, l_addr, a_addr, 0, accept_flags, user_data, flags,
                   ioprio=A.IORING_ACCEPT_MULTISHOT if multishot else 0,
                   file_index=0 if file_index is None else _target_slot(file_index),
                   keep=(a_keep, l_keep))

    def prep_multishot_accept(self, fd: int, accept_flags: int = 0, *, user_data: int = 0,
                              flags: int = 0) -> None:
        self.prep_accept(fd, None, None, accept_flags, user_data=user_data, flags=flags,
                         multishot=True)

    def prep_accept_direct(self, fd: int, addr: Any, addrlen: Any, accept_flags: int,
                           file_index: int, *, user_data: int = 0, flags: int = 0) -> None:
        self.prep_accept(fd, addr, addrlen, accept_flags, user_data=user_data, flags=flags,
                         file_index=file_index)

    def prep_connect(self, fd: int, sockaddr: bytes, *, user_data: int = 0,
                     flags: int = 0) -> None:
        """CONNECT: connect(2) to a packed sockaddr (see ``pyuring.net.sockaddr``)."""
        addr, keep = bytes_address(bytes(sockaddr))
        self._push(A.IORING_OP_CONNECT, fd, len(sockaddr), addr, 0, 0, user_data, flags,
                   keep=keep)

    def prep_bind(self, fd: int, sockaddr: bytes, *, user_data: int = 0, flags: int = 0) -> None:
        """BIND (6.11): bind(2) to a packed sockaddr."""
        addr, keep = bytes_address(bytes(sockaddr))
        self._push(A.IORING_OP_BIND, fd, len(sockaddr), addr, 0, 0, user_data, flags,
                   keep=keep)

    def prep_listen(self, fd: int, backlog: int, *, user_data: int = 0, flags: int = 0) -> None:
        """LISTEN (6.11): listen(2)."""
        self._push(A.IORING_OP_LISTEN, fd, 0, 0, backlog, 0, user_data, flags)

    def prep_shutdown(self, fd: int, how: int, *, user_data: int = 0, flags: int = 0) -> None:
        """SHUTDOWN: shutdown(2)."""
        self._push(A.IORING_OP_SHUTDOWN, fd, 0, 0, how, 0, user_data, flags)

    def prep_send(self, fd: int, buf: Any, msg_flags: int = 0, *, nbytes: Optional[int] = None,
                  user_data: int = 0, flags: int = 0) -> None:
        """SEND: send(2)."""
        addr, keep = buffer_address(buf, False)
        self._push(A.IORING_OP_SEND, fd, 0, addr, _length(buf, nbytes), msg_flags, user_data,
                   flags, keep=keep)

    def prep_send_zc(self, fd: int, buf: Any, msg_flags: int = 0, zc_flags: int = 0, *,
                     nbytes: Optional[int] = None, user_data: int = 0, flags: int = 0) -> None:
        """SEND_ZC: zero-copy send; posts a second completion (F_NOTIF) when done with buf."""
        addr, keep = buffer_address(buf, False)
        self._push(A.IORING_OP_SEND_ZC, fd, 0, addr, _length(buf, nbytes), msg_flags,
                   user_data, flags, ioprio=zc_flags, keep=keep)

    def prep_recv(self, fd: int, buf: Any, msg_flags: int = 0, *, nbytes: Optional[int] = None,
                  user_data: int = 0, flags: int = 0) -> None:
        """RECV: recv(2) into ``buf``."""
        addr, keep = buffer_address(buf, True)
        self._push(A.IORING_OP_RECV, fd, 0, addr, _length(buf, nbytes), msg_flags, user_data,
                   flags, keep=keep)

    def prep_recv_multishot(self, fd: int, buf_group: int, msg_flags: int = 0, *,
                            user_data: int = 0, flags: int = 0) -> None:
        """RECV with IORING_RECV_MULTISHOT into provided buffers of ``buf_group``."""
        self._push(A.IORING_OP_RECV, fd, 0, 0, 0, msg_flags, user_data,
                   flags | A.IOSQE_BUFFER_SELECT, ioprio=A.IORING_RECV_MULTISHOT,
                   buf_index=buf_group)

    def _msghdr(self, buffers: Sequence[Any], name: Any, control: Any,
                writable: bool) -> Tuple[int, Any]:
        iov_addr, n, iov_keep = _iovecs(buffers, writable)
        n_addr, n_keep = buffer_address(name, writable) if name is not None else (0, None)
        c_addr, c_keep = buffer_address(control, writable) if control is not None else (0, None)
        hdr = bytearray(_MSGHDR.pack(
            n_addr, _length(name, None) if name is not None else 0, iov_addr, n,
            c_addr, _length(control, None) if control is not None else 0, 0,
        ))
        h_addr, h_keep = buffer_address(hdr, True)
        return h_addr, (iov_keep, n_keep, c_keep, h_keep, hdr)

    def prep_sendmsg(self, fd: int, buffers: Sequence[Any], msg_flags: int = 0, *,
                     name: Any = None, control: Any = None, user_data: int = 0,
                     flags: int = 0) -> None:
        """SENDMSG: sendmsg(2); the struct msghdr is built from buffers/name/control."""
        addr, keep = self._msghdr(buffers, name, control, False)
        self._push(A.IORING_OP_SENDMSG, fd, 0, addr, 1, msg_flags, user_data, flags, keep=keep)

    def prep_sendmsg_zc(self, fd: int, buffers: Sequence[Any], msg_flags: int = 0, *,
                        name: Any = None, control: Any = None, user_data: int = 0,
                        flags: int = 0) -> None:
        """SENDMSG_ZC: zero-copy sendmsg."""
        addr, keep = self._msghdr(buffers, name, control, False)
        self._push(A.IORING_OP_SENDMSG_ZC, fd, 0, addr, 1, msg_flags, user_data, flags,
                   keep=keep)

    def prep_recvmsg(self, fd: int, buffers: Sequence[Any], msg_flags: int = 0, *,
                     name: Any = None, control: Any = None, user_data: int = 0,
                     flags: int = 0) -> None:
        """RECVMSG: recvmsg(2) into ``buffers`` (and ``name``/``control`` if given)."""
        addr, keep = self._msghdr(buffers, name, control, True)
        self._push(A.IORING_OP_RECVMSG, fd, 0, addr, 1, msg_flags, user_data, flags, keep=keep)

    def prep_recv_zc(self, fd: int, length: int, zcrx_ifq_idx: int, *, user_data: int = 0,
                     flags: int = 0) -> None:
        """RECV_ZC (6.15): zero-copy receive into a registered zcrx area (NIC support needed)."""
        self._push(A.IORING_OP_RECV_ZC, fd, 0, 0, length, 0, user_data, flags,
                   ioprio=A.IORING_RECV_MULTISHOT, file_index=zcrx_ifq_idx)

    def prep_uring_cmd(self, fd: int, cmd_op: int, *, addr: int = 0, length: int = 0,
                       cmd_flags: int = 0, user_data: int = 0, flags: int = 0,
                       keep: Any = None) -> None:
        """URING_CMD: a driver/subsystem command (``cmd_op`` in the low half of sqe->off)."""
        self._push(A.IORING_OP_URING_CMD, fd, cmd_op, addr, length, cmd_flags, user_data,
                   flags, keep=keep)

    def prep_cmd_sock(self, cmd_op: int, fd: int, level: int, optname: int, optval: Any = None,
                      optlen: Optional[int] = None, *, user_data: int = 0,
                      flags: int = 0) -> None:
        """URING_CMD on a socket (6.7): SIOCINQ / SIOCOUTQ / getsockopt / setsockopt."""
        if optval is not None and optlen is not None:
            _fits(optval, optlen, "socket option")
        v_addr, v_keep = buffer_address(optval, True) if optval is not None else (0, None)
        length = _length(optval, optlen) if optval is not None else (optlen or 0)
        self._push(A.IORING_OP_URING_CMD, fd, cmd_op, (optname << 32) | level, 0, 0, user_data,
                   flags, file_index=length, addr3=v_addr, keep=v_keep)

    # -- buffers, rings, processes ---------------------------------------------------
    def prep_provide_buffers(self, buf: Any, buf_len: int, nr: int, bgid: int, bid: int, *,
                             user_data: int = 0, flags: int = 0) -> None:
        """PROVIDE_BUFFERS: hand ``nr`` buffers of ``buf_len`` bytes (carved from ``buf``)
        to buffer group ``bgid``, ids from ``bid``.  ``buf`` stays pinned while the
        ring is open (the kernel may fill it at any later time)."""
        addr, keep = buffer_address(buf, True)
        self._orphans.append(keep)
        self._push(A.IORING_OP_PROVIDE_BUFFERS, nr, bid, addr, buf_len, 0, user_data, flags,
                   buf_index=bgid)

    def prep_remove_buffers(self, nr: int, bgid: int, *, user_data: int = 0,
                            flags: int = 0) -> None:
        """REMOVE_BUFFERS: take back up to ``nr`` buffers of group ``bgid``."""
        self._push(A.IORING_OP_REMOVE_BUFFERS, nr, 0, 0, 0, 0, user_data, flags, buf_index=bgid)

    def prep_msg_ring(self, ring_fd: int, res: int, data: int, msg_flags: int = 0, *,
                      user_data: int = 0, flags: int = 0) -> None:
        """MSG_RING: post a completion (user_data=data, res=res) on another ring."""
        self._push(A.IORING_OP_MSG_RING, ring_fd, data, A.IORING_MSG_DATA, res & 0xFFFFFFFF,
                   msg_flags, user_data, flags)

    def prep_msg_ring_cqe_flags(self, ring_fd: int, res: int, data: int, msg_flags: int,
                                cqe_flags: int, *, user_data: int = 0, flags: int = 0) -> None:
        """MSG_RING with IORING_MSG_RING_FLAGS_PASS: also set the target CQE's flags."""
        self._push(A.IORING_OP_MSG_RING, ring_fd, data, A.IORING_MSG_DATA, res & 0xFFFFFFFF,
                   msg_flags | A.IORING_MSG_RING_FLAGS_PASS, user_data, flags,
                   file_index=cqe_flags)

    def prep_msg_ring_fd(self, ring_fd: int, source_fd: int, target_fd: int, data: int,
                         msg_flags: int = 0, *, user_data: int = 0, flags: int = 0) -> None:
        """MSG_RING IORING_MSG_SEND_FD: install our direct descriptor in another ring."""
        self._push(A.IORING_OP_MSG_RING, ring_fd, data, A.IORING_MSG_SEND_FD, 0, msg_flags,
                   user_data, flags, file_index=_target_slot(target_fd), addr3=source_fd)

    def prep_waitid(self, idtype: int, ident: int, infop: Any, options: int,
                    waitid_flags: int = 0, *, user_data: int = 0, flags: int = 0) -> None:
        """WAITID (6.7): waitid(2); ``infop`` is a writable siginfo_t buffer (128 bytes)."""
        if infop is not None:
            _fits(infop, SIGINFO_SIZE, "waitid infop")
        addr, keep = buffer_address(infop, True) if infop is not None else (0, None)
        self._push(A.IORING_OP_WAITID, ident, addr, 0, idtype, waitid_flags, user_data, flags,
                   file_index=options, keep=keep)

    def prep_futex_wait(self, futex: Any, val: int, mask: int, futex_flags: int,
                        wait_flags: int = 0, *, user_data: int = 0, flags: int = 0) -> None:
        """FUTEX_WAIT (6.7): futex2 wait on the 4/8-byte word at the start of ``futex``."""
        addr, keep = buffer_address(futex, True)
        self._push(A.IORING_OP_FUTEX_WAIT, futex_flags, val, addr, 0, wait_flags, user_data,
                   flags, addr3=mask, keep=keep)

    def prep_futex_wake(self, futex: Any, val: int, mask: int, futex_flags: int,
                        wake_flags: int = 0, *, user_data: int = 0, flags: int = 0) -> None:
        """FUTEX_WAKE (6.7): wake up to ``val`` waiters of the word at ``futex``."""
        addr, keep = buffer_address(futex, True)
        self._push(A.IORING_OP_FUTEX_WAKE, futex_flags, val, addr, 0, wake_flags, user_data,
                   flags, addr3=mask, keep=keep)

    def prep_futex_waitv(self, futexv: Any, nr_futex: int, waitv_flags: int = 0, *,
                         user_data: int = 0, flags: int = 0) -> None:
        """FUTEX_WAITV (6.7): wait on an array of struct futex_waitv."""
        addr, keep = buffer_address(futexv, True)
        self._push(A.IORING_OP_FUTEX_WAITV, 0, 0, addr, nr_futex, waitv_flags, user_data,
                   flags, keep=keep)

