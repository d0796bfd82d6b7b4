"""``DirectoryFd``: a directory handle on which nothing is resolved by path string.

Only :meth:`DirectoryFd.open` takes a path (the root the user names).  Every
other method takes a single *name* component and works relative to the open
directory fd:

* opens use ``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
  RESOLVE_NO_MAGICLINKS)`` with ``O_NOFOLLOW | O_CLOEXEC`` (``openat`` +
  ``O_NOFOLLOW`` where openat2 is missing -- equivalent for one component);
* a name that is empty, ``.``, ``..`` or contains ``/`` or NUL is refused with
  ``InvalidName`` before any syscall;
* metadata is read with statx (``AT_SYMLINK_NOFOLLOW``) and changed through
  fds: an ``O_PATH | O_NOFOLLOW`` fd and the ``AT_EMPTY_PATH`` forms of
  fchmodat2 / fchownat / utimensat / *xattrat, so a name swapped for a symlink
  or a hard link to a file elsewhere cannot redirect the change.

Operations with an io_uring opcode go through the ring when the handle's
executor is a ``UringExecutor`` and through plain syscalls with a
``SyncExecutor``; the results are identical.  ``statx_many`` shows the batch
side: the statx of many names leaves in one ``io_uring_enter``.
"""

from __future__ import annotations

import errno
import os
from typing import Any, Iterator, List, NamedTuple, Optional, Union

from . import _abi as A
from . import _syscall
from .errors import request_error
from .executor import RESOLVE_SAFE, Executor, make_executor
from .metadata import Metadata

Name = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
_HDR = A.DIRENT64_HEADER.unpack_from
_GETDENTS_BUF = 1 << 16


class InvalidName(ValueError):
    """A name that is not one plain path component."""


class DirEntry(NamedTuple):
    """One directory entry as getdents64 reports it (names are bytes)."""

    name: bytes
    d_type: int
    ino: int

    def is_dir(self) -> bool:
        return self.d_type == A.DT_DIR


def check_name(name: Name) -> bytes:
    """The name as bytes, if it is a single component; else ``InvalidName``."""
    raw = name if type(name) is bytes else os.fsencode(name)
    if not raw or raw == b"." or raw == b".." or b"/" in raw or b"\0" in raw:
        raise InvalidName(f"not a single path component: {raw!r}")
    return raw


def parse_dirents(buf: Any, n: int) -> Iterator[DirEntry]:
    """Decode ``n`` bytes of ``struct linux_dirent64`` records, skipping . and .."""
    pos = 0
    data = bytes(buf[:n]) if not isinstance(buf, bytes) else buf
    while pos < n:
        ino, _off, reclen, dtype = _HDR(data, pos)
        end = data.index(b"\0", pos + 19)
        name = data[pos + 19: end]
        pos += reclen
        if name == b"." or name == b"..":
            continue
        yield DirEntry(name, dtype, ino)


class DirectoryFd:
    """An open directory; every operation is relative to it."""

    __slots__ = ("__weakref__", "_listed", "_owns_executor", "executor", "fd", "path")

    def __init__(self, fd: int, path: bytes, executor: Executor, owns_executor: bool = False):
        self.fd = fd
        self.path = path
        self.executor = executor
        self._owns_executor = owns_executor
        self._listed = False

    # -- opening ----------------------------------------------------------------------
    @classmethod
    def open(cls, path: Name, *, backend: str = "auto", executor: Optional[Executor] = None,
             follow: bool = True) -> DirectoryFd:
        """Open the root directory ``path`` -- the one call that takes a path.

        ``backend`` is ``auto`` (io_uring when it works here), ``uring`` or
        ``sync``; or pass an ``executor`` to share one among several roots.
        ``follow=False`` refuses a symlink as the root itself.
        """
        raw = os.fsencode(path)
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
        fd = os.open(raw, flags)
        try:
            owns = executor is None
            ex = executor if executor is not None else make_executor(backend)
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, raw, ex, owns)

    @property
    def backend(self) -> str:
        return self.executor.kind

    def _display(self, name: Optional[bytes]) -> bytes:
        if name is None:
            return self.path
        return name if not self.path else self.path.rstrip(b"/") + b"/" + name

    def _call(self, submit: Any, name: Optional[bytes]) -> Any:
        """Run a one-operation chain to completion; raise its error."""
        box: List[Any] = []
        cid = self.executor.chain(lambda idx, res, extra: box.append((res, extra)))
        submit(cid)
        while not box:
            self.executor.run()
        res, extra = box[0]
        if res < 0:
            raise request_error(-res, None, self._display(name))
        return extra if extra is not None else res

    def open_dir(self, name: Name) -> DirectoryFd:
        """Open subdirectory ``name`` (never through a symlink)."""
        raw = check_name(name)
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
        try:
            fd = self._call(lambda cid: self.executor.openat2(cid, 0, self.fd, raw, flags, 0,
                                                             RESOLVE_SAFE), raw)
        except NotADirectoryError:
            # O_DIRECTORY wins over O_NOFOLLOW in the kernel; report a symlink
            # as the loop it would be (ELOOP), like open_file does
            if self.statx(raw).is_symlink():
                raise request_error(errno.ELOOP, None, self._display(raw)) from None
            raise
        return DirectoryFd(fd, self._display(raw), self.executor)

    def open_file(self, name: Name, flags: int = os.O_RDONLY, mode: int = 0o666) -> int:
        """Open ``name`` and return a plain fd (close it yourself).  O_NOFOLLOW is implied."""
        raw = check_name(name)
        oflags = flags | os.O_NOFOLLOW
        return int(self._call(lambda cid: self.executor.openat2(
            cid, 0, self.fd, raw, oflags, mode, RESOLVE_SAFE), raw))

    def _open_path(self, raw: bytes) -> int:
        # O_PATH | O_NOFOLLOW: a handle on the entry itself, symlink or not,
        # that cannot be redirected once open.
        return int(self._call(lambda cid: self.executor.openat2(
            cid, 0, self.fd, raw, os.O_PATH | os.O_NOFOLLOW, 0, RESOLVE_SAFE), raw))

    # -- reading ------------------------------------------------------------------------
    def statx(self, name: Optional[Name] = None, *, follow: bool = False) -> Metadata:
        """statx of ``name`` (of the directory itself when None); symlinks not followed."""
        if name is None:
            raw, at = b"", A.AT_EMPTY_PATH
        else:
            raw, at = check_name(name), (0 if follow else A.AT_SYMLINK_NOFOLLOW)
        md: Metadata = self._call(
            lambda cid: self.executor.statx(cid, 0, self.fd, raw, at), raw or None)
        return md

    def statx_many(self, names: List[Name], *, follow: bool = False
                   ) -> List[Union[Metadata, OSError]]:
        """statx of many names in one submission; errors are returned, not raised."""
        raws = [check_name(n) for n in names]
        out: List[Union[Metadata, OSError]] = [OSError(errno.EIO, "no result")] * len(raws)
        left = [len(raws)]
        at = 0 if follow else A.AT_SYMLINK_NOFOLLOW
        ex = self.executor

        def done(i: int) -> Any:
            def cb(_idx: int, res: int, extra: Any) -> None:
                out[i] = extra if res >= 0 else request_error(-res, "STATX",
                                                              self._display(raws[i]))
                left[0] -= 1
            return cb

        for i, raw in enumerate(raws):
            ex.statx(ex.chain(done(i)), 0, self.fd, raw, at)
        while left[0]:
            ex.run()
        return out

    def entries(self) -> Iterator[DirEntry]:
        """Stream the directory's entries (without . and ..), 64 KiB of getdents64 at a time."""
        if self._listed:
            os.lseek(self.fd, 0, os.SEEK_SET)
        self._listed = True
        _syscall.libc()
        buf = _syscall.ctypes.create_string_buffer(_GETDENTS_BUF)
        while True:
            n = self.executor.getdents(self.fd, buf, _GETDENTS_BUF)
            if n <= 0:
                return
            yield from parse_dirents(buf.raw, n)

    def listdir(self) -> List[bytes]:
        return [e.name for e in self.entries()]

    def readlink(self, name: Name) -> bytes:
        raw = check_name(name)
        try:
            return self.executor.readlinkat(self.fd, raw)
        except OSError as exc:
            raise request_error(exc.errno or errno.EIO, None, self._display(raw)) from None

    # -- creating and removing ---------------------------------------------------------------
    def mkdir(self, name: Name, mode: int = 0o777) -> None:
        raw = check_name(name)
        self._call(lambda cid: self.executor.mkdirat(cid, 0, self.fd, raw, mode), raw)

    def symlink(self, target: Union[str, bytes], name: Name) -> None:
        """Create symlink ``name`` pointing at ``target`` (any string; not resolved)."""
        raw = check_name(name)
        traw = os.fsencode(target)
        self._call(lambda cid: self.executor.symlinkat(cid, 0, traw, self.fd, raw), raw)

    def link(self, name: Name, dst_dir: DirectoryFd, dst_name: Name) -> None:
        """Hard link ``name`` as ``dst_name`` in ``dst_dir`` (a symlink is linked itself)."""
        raw, draw = check_name(name), check_name(dst_name)
        self._call(lambda cid: self.executor.linkat(cid, 0, self.fd, raw, dst_dir.fd, draw, 0),
                   draw)

    def unlink(self, name: Name) -> None:
        raw = check_name(name)
        self._call(lambda cid: self.executor.unlinkat(cid, 0, self.fd, raw, 0), raw)

    def rmdir(self, name: Name) -> None:
        raw = check_name(name)
        self._call(lambda cid: self.executor.unlinkat(cid, 0, self.fd, raw, A.AT_REMOVEDIR),
                   raw)

    def rename(self, name: Name, dst_dir: DirectoryFd, dst_name: Name, flags: int = 0) -> None:
        """renameat2: ``flags`` may be RENAME_NOREPLACE or RENAME_EXCHANGE."""
        raw, draw = check_name(name), check_name(dst_name)
        self._call(lambda cid: self.executor.renameat(cid, 0, self.fd, raw, dst_dir.fd, draw,
                                                      flags), raw)

    def mknod(self, name: Name, mode: int, device: int = 0) -> None:
        """mknodat: device nodes (root), FIFOs and sockets by ``mode``'s type bits."""
        raw = check_name(name)
        try:
            self.executor.mknodat(self.fd, raw, mode, device)
        except OSError as exc:
            raise request_error(exc.errno or errno.EIO, None, self._display(raw)) from None

    def mkfifo(self, name: Name, mode: int = 0o666) -> None:
        self.mknod(name, 0o010000 | (mode & 0o7777))

    # -- metadata, always through an fd --------------------------------------------------
    def _on_entry(self, name: Optional[Name], fd_call: Any, path_call: Any) -> Any:
        if name is None:
            return fd_call(self.fd)
        raw = check_name(name)
        fd = self._open_path(raw)
        try:
            return path_call(fd)
        except OSError as exc:
            raise request_error(exc.errno or errno.EIO, None, self._display(raw)) from None
        finally:
            os.close(fd)

    def chmod(self, name: Optional[Name], mode: int) -> None:
        """Change permission bits of ``name`` (of the directory itself when None)."""
        ex = self.executor
        self._on_entry(name, lambda fd: ex.fchmod(fd, mode),
                       lambda fd: _syscall.raw("fchmodat2", fd, b"", mode, A.AT_EMPTY_PATH))

    def chown(self, name: Optional[Name], uid: int, gid: int) -> None:
        """Change owner of ``name`` (a symlink itself, never its target); -1 keeps a field."""
        ex = self.executor
        self._on_entry(name, lambda fd: ex.fchown(fd, uid, gid),
                       lambda fd: ex.empty_path_chown(fd, uid, gid))

    def utime(self, name: Optional[Name], atime_ns: int, mtime_ns: int) -> None:
        """Set access and modification times (nanoseconds) of ``name`` or the directory."""
        ex = self.executor
        self._on_entry(name, lambda fd: ex.futimens(fd, atime_ns, mtime_ns),
                       lambda fd: ex.empty_path_utime(fd, atime_ns, mtime_ns))

    # xattrs: the kernel takes no O_PATH fd for them, so regular files and
    # directories are opened for reading (O_NOFOLLOW | O_NONBLOCK) and handled
    # by fd; other types (symlinks, devices, FIFOs, sockets) by name with the
    # *xattrat syscalls (Linux 6.13) and AT_SYMLINK_NOFOLLOW.
    def _xattr(self, name: Optional[Name], fd_call: Any, at_call: Any) -> Any:
        if name is None:
            return fd_call(self.fd)
        raw = check_name(name)
        try:
            if self.statx(raw).type in (0o100000, 0o040000):
                fd = self.open_file(raw, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
                try:
                    return fd_call(fd)
                finally:
                    os.close(fd)
            return at_call(raw)
        except OSError as exc:
            if exc.filename is not None:
                raise
            raise request_error(exc.errno or errno.EIO, None, self._display(raw)) from None

    def getxattr(self, name: Optional[Name], attr: Union[str, bytes]) -> bytes:
        a = os.fsencode(attr)
        return bytes(self._xattr(name, lambda fd: os.getxattr(fd, a),
                                 lambda raw: _xattrat_get(self.fd, raw, a)))

    def setxattr(self, name: Optional[Name], attr: Union[str, bytes], value: bytes,
                 flags: int = 0) -> None:
        a = os.fsencode(attr)
        self._xattr(name, lambda fd: os.setxattr(fd, a, value, flags),
                    lambda raw: _syscall.setxattrat(self.fd, raw, A.AT_SYMLINK_NOFOLLOW, a,
                                                    value, flags))

    def listxattr(self, name: Optional[Name] = None) -> List[bytes]:
        return list(self._xattr(
            name, lambda fd: [os.fsencode(x) for x in os.listxattr(fd)],
            lambda raw: _xattrat_list(self.fd, raw)))

    def removexattr(self, name: Optional[Name], attr: Union[str, bytes]) -> None:
        a = os.fsencode(attr)
        self._xattr(name, lambda fd: os.removexattr(fd, a),
                    lambda raw: _syscall.removexattrat(self.fd, raw, A.AT_SYMLINK_NOFOLLOW, a))

    # -- lifetime ----------------------------------------------------------------------------
    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)
        if self._owns_executor:
            self._owns_executor = False
            self.executor.close()

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def __enter__(self) -> DirectoryFd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<DirectoryFd {os.fsdecode(self.path)!r} fd={self.fd} {self.executor.kind}>"


def _xattrat_get(dfd: int, name: bytes, attr: bytes) -> bytes:
    size = 256
    while True:
        try:
            return _syscall.getxattrat(dfd, name, A.AT_SYMLINK_NOFOLLOW, attr, size)
        except OSError as exc:
            if exc.errno != errno.ERANGE or size >= 1 << 20:
                raise
            size *= 16


def _xattrat_list(dfd: int, name: bytes) -> List[bytes]:
    size = 4096
    while True:
        try:
            raw = _syscall.listxattrat(dfd, name, A.AT_SYMLINK_NOFOLLOW, size)
            return [x for x in raw.split(b"\0") if x]
        except OSError as exc:
            if exc.errno != errno.ERANGE or size >= 1 << 20:
                raise
            size *= 16
