"""Exceptions raised by pyuring.

The hierarchy is small on purpose:

* ``UringError(OSError)`` -- io_uring itself failed (setup, enter, register),
  carrying ``errno``.
* ``UringUnavailable(UringError)`` -- io_uring cannot be used in this process
  at all: the kernel has no io_uring (ENOSYS), a sandbox blocks it (EPERM from
  seccomp or ``kernel.io_uring_disabled``), the ring's memory is over the
  locked-memory limit (ENOMEM), the platform is not Linux or the CPU
  architecture is unknown.  Catch it to fall back to synchronous calls.
* ``OpcodeUnsupported(UringUnavailable)`` -- the ring works but the kernel
  lacks the opcode a call needs (found by ``probe()``).  Being a subclass of
  ``UringUnavailable`` means one ``except`` clause covers both fallbacks.

A failed *request* (a completion with negative ``res``) is not a UringError:
it becomes the plain ``OSError`` subclass for its errno (``FileNotFoundError``,
``PermissionError``, ...) so callers handle it exactly as they would handle
the result of the equivalent ``os`` call.  See :func:`request_error`.
"""

from __future__ import annotations

import errno as _errno
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Union
    PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


class UringError(OSError):
    """io_uring_setup / io_uring_enter / io_uring_register failed."""


class UringUnavailable(UringError):
    """io_uring cannot be used here; callers may fall back to plain syscalls."""


class OpcodeUnsupported(UringUnavailable):
    """The running kernel does not implement the requested io_uring opcode."""


class RingForkedError(UringError):
    """A Ring was used in a child process created by fork()."""

    def __init__(self) -> None:
        super().__init__(
            _errno.EBADFD,
            "this Ring belongs to the parent process; create a new Ring after fork()",
        )


def _display(path: object) -> Optional[str]:
    if path is None:
        return None
    if isinstance(path, bytes):
        return os.fsdecode(path)
    return str(path)


def request_error(err: int, op_name: Optional[str] = None, path: object = None) -> OSError:
    """Build the OSError subclass for errno ``err`` (a positive number).

    ``OSError(errno, ...)`` picks the matching subclass by itself, so a failed
    IORING_OP_OPENAT2 with -ENOENT becomes ``FileNotFoundError``.
    """
    message = os.strerror(err)
    if op_name:
        message = f"{message} [io_uring {op_name}]"
    shown = _display(path)
    if shown is None:
        return OSError(err, message)
    return OSError(err, message, shown)


def unavailable_reason(err: int) -> str:
    """Explain why io_uring_setup failed with ``err`` in words a user can act on."""
    if err == _errno.ENOSYS:
        return "the kernel has no io_uring (io_uring_setup returned ENOSYS)"
    if err == _errno.EPERM:
        return (
            "io_uring is blocked here (EPERM: a seccomp filter or the sysctl "
            "kernel.io_uring_disabled)"
        )
    if err == _errno.EACCES:
        return "io_uring is restricted to a group this process is not in (EACCES)"
    if err == _errno.ENOMEM:
        # (the rings count against RLIMIT_MEMLOCK without CAP_IPC_LOCK)
        return ("no memory for the ring (ENOMEM: its pages count against the locked-memory "
                "limit, ulimit -l, for processes without CAP_IPC_LOCK)")
    return os.strerror(err)
