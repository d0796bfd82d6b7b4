"""Addresses of Python buffers, for SQE fields that point into user memory.

The kernel needs a raw address; Python hands us objects.  Every function here
returns ``(address, keepalive)``: the Ring stores ``keepalive`` with the
in-flight request, so the memory (and, for resizable objects such as
``bytearray``, the buffer export that forbids resizing) lives until the
completion is reaped.
"""

from __future__ import annotations

import mmap
import os
import sys

from . import _syscall

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional, Tuple

_bytes_data_offset: Optional[int] = None


def _find_bytes_offset() -> int:
    """Offset from ``id(b)`` to the data of a ``bytes`` object (CPython).

    It is measured, not assumed: if ``id()`` is not an address (PyPy) or the
    layout differs, the result is -1 and callers fall back to a ctypes copy.
    """
    ctypes = _syscall.ctypes
    sample = b"pyuring: where do bytes keep their data?"
    addr = ctypes.cast(ctypes.c_char_p(sample), ctypes.c_void_p).value
    offset = int(addr or 0) - id(sample)
    if 0 < offset <= 64 and ctypes.string_at(id(sample) + offset, len(sample)) == sample:
        return offset
    return -1


def bytes_data_offset() -> int:
    """Offset from ``id(b)`` to a bytes object's data, or -1 where ids are not addresses."""
    global _bytes_data_offset
    if _bytes_data_offset is None:
        _syscall.libc()
        _bytes_data_offset = _find_bytes_offset()
    return _bytes_data_offset


def bytes_address(data: bytes) -> Tuple[int, Any]:
    """Address of an immutable bytes object's (NUL-terminated) data."""
    global _bytes_data_offset
    off = _bytes_data_offset
    if off is None:
        _syscall.libc()
        off = _bytes_data_offset = _find_bytes_offset()
    if off >= 0:
        return id(data) + off, data
    copy = _syscall.ctypes.create_string_buffer(data, len(data) + 1)
    return _syscall.ctypes.addressof(copy), copy


class _CopiedPath(bytes):
    """A path whose NUL-terminated copy lives elsewhere (no usable ``id()``):
    pinning the path pins the copy the kernel reads."""

    copy: Any


def path_address(path: Any) -> Tuple[int, bytes]:
    """Address of a NUL-terminated path; accepts str, bytes and PathLike.

    The returned bytes object is what the ring pins (and shows in errors);
    it keeps alive whatever memory ``address`` points into.
    """
    raw = path if type(path) is bytes else os.fsencode(path)
    if b"\0" in raw:
        raise ValueError(f"embedded NUL byte in path {raw!r}")
    addr, keep = bytes_address(raw)
    if keep is not raw:
        # bytes_address had to copy (no CPython layout): pin the copy, not
        # just the original, or the kernel would read freed memory
        pinned = _CopiedPath(raw)
        pinned.copy = keep
        return addr, pinned
    return addr, raw


def buffer_address(obj: Any, writable: bool) -> Tuple[int, Any]:
    """Address of a buffer object the kernel will write into (or read from)."""
    if type(obj) is Buffer:
        # (the anchor, not the Buffer, is kept: Buffer.close sees it held)
        return obj.live_addr(), obj._anchor
    if type(obj) is bytes:
        if writable:
            raise TypeError("the kernel writes into this buffer; bytes is read-only")
        return bytes_address(obj)
    ctypes = _syscall.ctypes
    if ctypes is None:
        _syscall.libc()
    try:
        anchor = ctypes.c_char.from_buffer(obj)
    except ValueError:
        # zero-length buffers cannot be exported; the kernel will not touch them
        if len(memoryview(obj)) == 0:
            return 0, obj
        raise
    except TypeError:
        if writable:
            raise TypeError(
                f"a writable buffer is needed (bytearray, memoryview, mmap, Buffer), "
                f"not {type(obj).__name__}"
            ) from None
        return bytes_address(bytes(obj))
    return ctypes.addressof(anchor), anchor


class Buffer:
    """Page-aligned anonymous memory with a known address.

    Passing a ``Buffer`` to ``prep_read``/``prep_write`` costs nothing extra:
    its address is computed once.  It supports the buffer protocol through
    ``.view`` (a memoryview) and ``bytes(buf)``.
    """

    __slots__ = ("_anchor", "_refs", "addr", "mmap", "size", "view")

    def __init__(self, size: int) -> None:
        if size <= 0:
            raise ValueError("Buffer size must be positive")
        self.size = size
        self.mmap = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        ctypes = _syscall.ctypes
        _syscall.libc()
        self._anchor = ctypes.c_char.from_buffer(self.mmap)
        self.addr: int = ctypes.addressof(self._anchor)
        self.view = memoryview(self.mmap)
        # what sys.getrefcount says of the anchor when only this Buffer holds
        # it, asked as close() asks (the count a call sees differs between
        # Python versions: 3.14 borrows references)
        anchor = self._anchor
        self._refs = sys.getrefcount(anchor)
        del anchor

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        return bytes(self.view)

    def __getitem__(self, index: Any) -> Any:
        return self.view[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        self.view[index] = value

    def live_addr(self) -> int:
        """Its address; ValueError once it is closed (its memory unmapped: the
        kernel would write into whatever is mapped there next)."""
        if self.mmap.closed:
            raise ValueError("I/O on a closed Buffer")
        return self.addr

    def close(self) -> None:
        """Unmap the memory.  BufferError while a request in flight uses it
        (a ring holds its anchor until the completion is reaped): the kernel
        would write into whatever is mapped there next.  Closing twice is
        allowed."""
        if self.mmap.closed:
            return
        anchor = self._anchor
        # (a ring keeping the memory for a request holds the anchor once more;
        # so does a request with IOSQE_CQE_SKIP_SUCCESS until the ring closes:
        # no completion tells when it is done)
        if sys.getrefcount(anchor) > self._refs:
            raise BufferError("this Buffer is used by a request in flight: close it "
                              "after the completion is reaped")
        del anchor
        self.view.release()
        del self._anchor
        try:
            self.mmap.close()
        except BufferError:
            # exported elsewhere (a slice of its view is alive): as it was
            self._anchor = _syscall.ctypes.c_char.from_buffer(self.mmap)
            self.view = memoryview(self.mmap)
            raise
