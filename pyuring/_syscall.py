"""Raw system calls through ctypes.

Only what the ``os`` module cannot do lives here: the three io_uring calls,
``openat2``, ``getdents64``, ``renameat2`` with flags, ``statx``, the
``*xattrat`` family, file handles and ``seccomp``.  libc is loaded lazily, on first use, so
``import pyuring`` works on any platform and in any Python (a missing
``_ctypes`` or a non-Linux kernel surfaces as ``UringUnavailable`` at use).

ctypes converts a Python int argument to a C ``int``.  The kernel's syscall
wrappers truncate each register to the declared parameter type, so that is
right for ints and flags; pointers and sizes are wrapped in ``c_void_p`` /
``c_size_t`` so all 64 bits are passed.  ``argtypes`` is deliberately not set:
it makes every call slower.
"""

from __future__ import annotations

import errno
import os
import sys

from . import _abi
from .errors import UringUnavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Optional

try:  # ctypes may be absent in stripped-down Pythons
    import ctypes as ctypes
except ImportError:  # pragma: no cover - exercised only in such Pythons
    ctypes = None  # type: ignore[assignment]

_libc: Any = None
_syscall: Any = None
_numbers: Optional[Dict[str, int]] = None


def arch() -> str:
    machine = os.uname().machine.lower() if hasattr(os, "uname") else ""
    return _abi.SYSCALL_ARCH_ALIASES.get(machine, machine)


def _load() -> Any:
    global _libc, _syscall, _numbers
    if _syscall is not None:
        return _syscall
    if not sys.platform.startswith("linux"):
        raise UringUnavailable(errno.ENOSYS, f"io_uring needs Linux (this is {sys.platform})")
    if ctypes is None:
        raise UringUnavailable(errno.ENOSYS, "io_uring needs the ctypes module")
    table = _abi.SYSCALLS.get(arch())
    if table is None:
        raise UringUnavailable(
            errno.ENOSYS,
            f"pyuring knows the syscall numbers of x86_64 and aarch64, not {arch()!r}",
        )
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.syscall
    fn.restype = ctypes.c_long
    _libc, _numbers, _syscall = libc, table, fn
    return fn


def libc() -> Any:
    _load()
    return _libc


def number(name: str) -> int:
    _load()
    assert _numbers is not None
    return _numbers[name]


#: When set and true, a syscall interrupted by a signal (EINTR) raises
#: InterruptedError instead of being retried (a copy that is stopping sets it).
eintr_hook: Optional[Callable[[], bool]] = None


def raw(name: str, *args: Any) -> int:
    """syscall(name, *args); returns the result or raises OSError(errno)."""
    fn = _load()
    assert _numbers is not None
    return _retrying(fn, _numbers[name], *args)


def _retrying(fn: Any, nr: int, *args: Any) -> int:
    while True:
        res = int(fn(nr, *args))
        if res != -1:
            return res
        err = ctypes.get_errno()
        if err != errno.EINTR:
            raise OSError(err, os.strerror(err))
        if eintr_hook is not None and eintr_hook():
            raise InterruptedError(err, os.strerror(err))


def void_p(addr: int) -> Any:
    return ctypes.c_void_p(addr)


def size_t(n: int) -> Any:
    return ctypes.c_size_t(n)


# --------------------------------------------------------------------------
# io_uring
# --------------------------------------------------------------------------

def io_uring_setup(entries: int, params_addr: int) -> int:
    return raw("io_uring_setup", entries, ctypes.c_void_p(params_addr))


def enter_function() -> Callable[..., int]:
    """The bare libc ``syscall`` for the ring's hot path, and its number.

    The Ring calls it directly (no Python wrapper in between) and reads errno
    with :func:`get_errno` only when it returns -1.
    """
    return _load()  # type: ignore[no-any-return]


def get_errno() -> int:
    return int(ctypes.get_errno())


def io_uring_register(fd: int, opcode: int, arg_addr: int, nr: int) -> int:
    return raw("io_uring_register", fd, opcode, ctypes.c_void_p(arg_addr), nr)


# --------------------------------------------------------------------------
# Filesystem calls the os module lacks
# --------------------------------------------------------------------------

def openat2(dirfd: int, path: bytes, flags: int, mode: int, resolve: int) -> int:
    how = ctypes.create_string_buffer(_abi.OPEN_HOW.pack(flags, mode, resolve), _abi.OPEN_HOW.size)
    return raw("openat2", dirfd, ctypes.c_char_p(path), how, ctypes.c_size_t(_abi.OPEN_HOW.size))


def name_to_handle(fd: int) -> bytes:
    """The file handle of what ``fd`` (O_PATH will do) refers to: a struct
    file_handle, ready for :func:`open_by_handle`.  OSError: EOPNOTSUPP where
    the file system has none."""
    size = _abi.FILE_HANDLE_HEAD.size + _abi.MAX_HANDLE_SZ
    buf = ctypes.create_string_buffer(_abi.FILE_HANDLE_HEAD.pack(_abi.MAX_HANDLE_SZ, 0), size)
    mount_id = ctypes.c_int(0)
    raw("name_to_handle_at", fd, ctypes.c_char_p(b""), buf, ctypes.byref(mount_id),
        _abi.AT_EMPTY_PATH)
    n = _abi.FILE_HANDLE_HEAD.unpack_from(buf)[0]
    return buf.raw[:_abi.FILE_HANDLE_HEAD.size + n]


def open_by_handle(mount_fd: int, handle: bytes, flags: int) -> int:
    """Open the file of a :func:`name_to_handle` handle on the file system of
    ``mount_fd`` (needs CAP_DAC_READ_SEARCH: EPERM without).  ESTALE: that
    file is gone."""
    buf = ctypes.create_string_buffer(handle, len(handle))
    return raw("open_by_handle_at", mount_fd, buf, flags)


def getdents64(fd: int, buf: Any, size: int) -> int:
    return raw("getdents64", fd, buf, ctypes.c_size_t(size))


def statfs_type(path: bytes) -> int:
    """The magic number of the file system ``path`` is on (statfs f_type)."""
    buf = ctypes.create_string_buffer(_abi.STATFS_SIZE)
    raw("statfs", ctypes.c_char_p(path), buf)
    return int(_abi.STATFS_HEAD.unpack_from(buf)[0]) & 0xFFFFFFFF


def fstatfs_type(fd: int) -> int:
    """statfs_type of the file system ``fd`` is on."""
    buf = ctypes.create_string_buffer(_abi.STATFS_SIZE)
    raw("fstatfs", fd, buf)
    return int(_abi.STATFS_HEAD.unpack_from(buf)[0]) & 0xFFFFFFFF


def renameat2(olddirfd: int, old: bytes, newdirfd: int, new: bytes, flags: int) -> None:
    raw("renameat2", olddirfd, ctypes.c_char_p(old), newdirfd, ctypes.c_char_p(new), flags)


def statx(dirfd: int, path: bytes, flags: int, mask: int, buf: Any) -> None:
    raw("statx", dirfd, ctypes.c_char_p(path), flags, mask, buf)


def _xattr_args(value_addr: int, size: int) -> Any:
    # struct xattr_args { __aligned_u64 value; __u32 size; __u32 flags; }
    return ctypes.create_string_buffer(
        int(value_addr).to_bytes(8, sys.byteorder) + size.to_bytes(4, sys.byteorder) + bytes(4), 16
    )


def getxattrat(dirfd: int, path: bytes, at_flags: int, name: bytes, size: int) -> bytes:
    """getxattrat(2) (Linux 6.13): read an xattr of ``path`` relative to ``dirfd``."""
    buf = ctypes.create_string_buffer(max(size, 1))
    args = _xattr_args(ctypes.addressof(buf), size)
    n = raw(
        "getxattrat", dirfd, ctypes.c_char_p(path), at_flags, ctypes.c_char_p(name),
        args, ctypes.c_size_t(16),
    )
    return buf.raw[:n]


def setxattrat(
    dirfd: int, path: bytes, at_flags: int, name: bytes, value: bytes, flags: int
) -> None:
    buf = ctypes.create_string_buffer(value, max(len(value), 1))
    args = _xattr_args(ctypes.addressof(buf), len(value))
    # the xattr flags (XATTR_CREATE/REPLACE) live in xattr_args.flags
    ctypes.memmove(ctypes.addressof(args) + 12, flags.to_bytes(4, sys.byteorder), 4)
    raw(
        "setxattrat", dirfd, ctypes.c_char_p(path), at_flags, ctypes.c_char_p(name),
        args, ctypes.c_size_t(16),
    )


def listxattrat(dirfd: int, path: bytes, at_flags: int, size: int) -> bytes:
    buf = ctypes.create_string_buffer(max(size, 1))
    n = raw("listxattrat", dirfd, ctypes.c_char_p(path), at_flags, buf, ctypes.c_size_t(size))
    return buf.raw[:n]


class XattrReader:
    """listxattrat / getxattrat (Linux 6.13) of entries named relative to a
    directory fd, without following a symlink, into buffers made once: the
    names of up to 4 KiB (more: ERANGE, as from the kernel) and values up to
    XATTR_SIZE_MAX (64 KiB: no value is longer).  For -X / -A on every small
    file: each call is made directly, without raw()'s lookups."""

    NAMES_MAX = 4096
    VALUE_MAX = 65536
    #: the size first asked for: getxattrat allocates (and zeroes) as much in
    #: the kernel as it is offered, 2 us a call for 64 KiB (Linux 6.18), and
    #: nearly every value fits here; a longer one (ERANGE) is asked again
    VALUE_FIRST = 256

    def __init__(self) -> None:
        fn = _load()
        self._fn = fn
        self._list_nr = number("listxattrat")
        self._get_nr = number("getxattrat")
        self._names = ctypes.create_string_buffer(self.NAMES_MAX)
        self._value = ctypes.create_string_buffer(self.VALUE_MAX)
        self._args = _xattr_args(ctypes.addressof(self._value), self.VALUE_MAX)
        self._args_first = _xattr_args(ctypes.addressof(self._value), self.VALUE_FIRST)
        self._names_size = ctypes.c_size_t(self.NAMES_MAX)
        self._args_size = ctypes.c_size_t(16)
        self._nofollow = _abi.AT_SYMLINK_NOFOLLOW
        self._names_at = ctypes.addressof(self._names)
        self._value_at = ctypes.addressof(self._value)
        self._string_at = ctypes.string_at

    def names(self, dirfd: int, path: bytes) -> bytes:
        """The NUL-terminated names, back to back (b"": none)."""
        n = _retrying(self._fn, self._list_nr, dirfd, path, self._nofollow, self._names,
                        self._names_size)
        return self._string_at(self._names_at, n) if n else b""

    def value(self, dirfd: int, path: bytes, name: bytes) -> bytes:
        try:
            n = _retrying(self._fn, self._get_nr, dirfd, path, self._nofollow, name,
                          self._args_first, self._args_size)
        except OSError as exc:
            if exc.errno != errno.ERANGE:
                raise
            n = _retrying(self._fn, self._get_nr, dirfd, path, self._nofollow, name,
                          self._args, self._args_size)
        return self._string_at(self._value_at, n)


def removexattrat(dirfd: int, path: bytes, at_flags: int, name: bytes) -> None:
    raw("removexattrat", dirfd, ctypes.c_char_p(path), at_flags, ctypes.c_char_p(name))
