"""Ring conformance: how failed requests become exceptions.

A completion with a negative ``res`` raises, from ``check()``, the same
OSError subclass the equivalent ``os`` call raises, carrying the errno, the
opcode's name in the message and the path (where the request had one) as
``filename``.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any, Callable, List, Tuple

import pytest

from pyuring import Completion, Ring
from pyuring import _abi as A

from .conftest import URING
from .test_ring_support import by_ud, opened, os_errno, ring_fixture, run, sockaddr_in

pytestmark = pytest.mark.skipif(not URING, reason="io_uring is unavailable here")
ring = ring_fixture(("fast", "plain"))

ERRNOS = [
    (errno.ENOENT, FileNotFoundError),
    (errno.EEXIST, FileExistsError),
    (errno.EACCES, PermissionError),
    (errno.EPERM, PermissionError),
    (errno.EISDIR, IsADirectoryError),
    (errno.ENOTDIR, NotADirectoryError),
    (errno.EINTR, InterruptedError),
    (errno.EAGAIN, BlockingIOError),
    (errno.ECHILD, ChildProcessError),
    (errno.EPIPE, BrokenPipeError),
    (errno.ECONNREFUSED, ConnectionRefusedError),
    (errno.ECONNRESET, ConnectionResetError),
    (errno.ETIMEDOUT, TimeoutError),
    (errno.ESRCH, ProcessLookupError),
    (errno.EIO, OSError),
    (errno.ECANCELED, OSError),
]


@pytest.mark.parametrize(("err", "exc"), ERRNOS)
def test_errno_maps_to_the_os_exception(err: int, exc: type) -> None:
    c = Completion(1, -err, 0, A.IORING_OP_OPENAT, b"/some/path")
    os_exc = OSError(err, os.strerror(err))
    assert type(os_exc) is exc
    with pytest.raises(exc) as ei:
        c.check()
    raised = ei.value
    assert type(raised) is exc
    assert raised.errno == err
    assert raised.filename == "/some/path"
    assert "OPENAT" in str(raised) and os.strerror(err) in str(raised)
    e = c.error()
    assert type(e) is exc and e.errno == err


def test_success_does_not_raise() -> None:
    c = Completion(1, 7, 0, A.IORING_OP_READ)
    assert c.check() == 7 and c.error() is None
    assert Completion(1, 0, 0).check() == 0


def test_undecodable_path_and_no_path() -> None:
    c = Completion(1, -errno.ENOENT, 0, A.IORING_OP_STATX, b"/tmp/\xff\xfe")
    with pytest.raises(FileNotFoundError) as ei:
        c.check()
    assert ei.value.filename == os.fsdecode(b"/tmp/\xff\xfe")
    c = Completion(1, -errno.EBADF, 0, A.IORING_OP_READ)
    with pytest.raises(OSError) as ei2:
        c.check()
    assert ei2.value.filename is None and "READ" in str(ei2.value)


def test_completion_fields() -> None:
    c = Completion(5, 3, A.IORING_CQE_F_MORE | A.IORING_CQE_F_BUFFER | (7 << 16),
                   A.IORING_OP_RECV)
    assert c.more and c.buffer_id == 7 and c.op_name == "RECV"
    assert Completion(5, 3, 0).buffer_id is None and not Completion(5, 3, 0).more
    assert Completion(5, 3, 0).op_name == "request"
    assert c == Completion(5, 3, c.flags, A.IORING_OP_RECV) and hash(c) == hash(tuple(c))


def _failing_requests(base: str) -> List[Tuple[str, Any, Callable[[Ring, int], None], Any]]:
    """(op name, expected filename, prep, equivalent os call) for failing requests."""
    missing = os.path.join(base, "missing")
    exists = os.path.join(base, "exists")
    return [
        ("OPENAT", missing, lambda r, ud: r.prep_openat(A.AT_FDCWD, missing, os.O_RDONLY,
                                                         user_data=ud),
         lambda: os.open(missing, os.O_RDONLY)),
        ("OPENAT2", missing, lambda r, ud: r.prep_openat2(A.AT_FDCWD, missing, os.O_RDONLY,
                                                           user_data=ud),
         lambda: os.open(missing, os.O_RDONLY)),
        ("STATX", missing, lambda r, ud: r.prep_statx(A.AT_FDCWD, missing, 0, 0x7FF,
                                                       bytearray(256), user_data=ud),
         lambda: os.stat(missing)),
        ("UNLINKAT", missing, lambda r, ud: r.prep_unlink(missing, user_data=ud),
         lambda: os.unlink(missing)),
        ("MKDIRAT", exists, lambda r, ud: r.prep_mkdir(exists, 0o755, user_data=ud),
         lambda: os.mkdir(exists)),
        ("RENAMEAT", missing, lambda r, ud: r.prep_rename(missing, exists, user_data=ud),
         lambda: os.rename(missing, exists)),
        ("SYMLINKAT", exists, lambda r, ud: r.prep_symlink("x", exists, user_data=ud),
         lambda: os.symlink("x", exists)),
        ("LINKAT", exists, lambda r, ud: r.prep_link(exists, exists, user_data=ud),
         lambda: os.link(exists, exists)),
        ("GETXATTR", missing, lambda r, ud: r.prep_getxattr("user.x", bytearray(8), missing,
                                                             user_data=ud),
         lambda: os.getxattr(missing, "user.x")),
        ("READ", None, lambda r, ud: r.prep_read(999, bytearray(8), 8, 0, user_data=ud),
         lambda: os.read(999, 8)),
        ("WRITE", None, lambda r, ud: r.prep_write(999, b"x", None, 0, user_data=ud),
         lambda: os.write(999, b"x")),
        ("FSYNC", None, lambda r, ud: r.prep_fsync(999, user_data=ud), lambda: os.fsync(999)),
        ("CLOSE", None, lambda r, ud: r.prep_close(999, user_data=ud), lambda: os.close(999)),
    ]


def test_failed_requests_raise_like_os(ring: Ring, tmp_path: Any) -> None:
    base = str(tmp_path)
    os.mkdir(os.path.join(base, "exists"))
    cases = _failing_requests(base)
    for i, (_, _, prep, _) in enumerate(cases):
        prep(ring, i)
    got = by_ud(run(ring, len(cases)))
    for i, (name, filename, _, os_call) in enumerate(cases):
        cqe = got[i]
        assert cqe.op_name == name
        with pytest.raises(OSError) as ei:
            cqe.check()
        with pytest.raises(OSError) as os_ei:
            os_call()
        err, os_err = ei.value, os_ei.value
        assert type(err) is type(os_err), name
        assert err.errno == os_err.errno, name
        assert err.filename == filename, name
        assert f"[io_uring {name}]" in str(err)


def test_connect_error_names_the_op(ring: Ring) -> None:
    s = socket.socket()
    tmp = socket.socket()
    tmp.bind(("127.0.0.1", 0))
    port = tmp.getsockname()[1]
    tmp.close()
    try:
        ring.prep_connect(s.fileno(), sockaddr_in("127.0.0.1", port))
        cqe = run(ring, 1)[0]
        with pytest.raises(ConnectionRefusedError) as ei:
            cqe.check()
        assert "CONNECT" in str(ei.value)
    finally:
        s.close()


def test_untracked_nop_failure_is_a_plain_request_error(ring: Ring) -> None:
    """NOPs are not tracked (their hot path stays free): errors say 'request'."""
    ring.prep_nop(nop_flags=A.IORING_NOP_INJECT_RESULT, result=-errno.ENOENT)
    cqe = run(ring, 1)[0]
    assert cqe.op == -1
    with pytest.raises(FileNotFoundError) as ei:
        cqe.check()
    assert "[io_uring request]" in str(ei.value)


def test_errno_of_fd_ops_on_a_directory(ring: Ring, tmp_path: Any) -> None:
    with opened(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY) as dfd:
        ring.prep_read(dfd, bytearray(4), 4, 0)
        cqe = run(ring, 1)[0]
        with pytest.raises(IsADirectoryError):
            cqe.check()
        assert cqe.res == -os_errno(lambda: os.read(dfd, 4))
