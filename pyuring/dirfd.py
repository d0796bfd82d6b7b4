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
  fchmodat2 / fchownat / utimensat, so a name swapped for a symlink cannot
  redirect the change (a symlink's own times and owner change, its mode
  cannot: EOPNOTSUPP).  xattrs go through an fd opened with ``O_NOFOLLOW``
  for files and directories, else through the ``*xattrat`` syscalls with
  ``AT_SYMLINK_NOFOLLOW`` (see ``_xattr``).

Fallbacks for older kernels: ``openat`` + ``O_NOFOLLOW`` without openat2
(5.6), ``/proc/self/fd`` for chmod without fchmodat2 (6.6) and for xattrs
without ``*xattrat`` (6.13) -- each bound to an fd, so just as safe.

Operations with an io_uring opcode go through the ring when the handle's
executor is a ``UringExecutor`` and through plain syscalls with a
``SyncExecutor``; the results are identical.  ``statx_many`` shows the batch
side: the statx of many names leaves in one ``io_uring_enter`` per batch of
``_STATX_BATCH``.  Errors are the ``OSError`` subclass of their errno, with
the entry's path (the root's path joined with the names below it) as
``filename`` -- and the destination as ``filename2`` for link and rename.
"""

from __future__ import annotations

import errno
import os
import stat

from . import _abi as A
from . import _syscall
from .errors import request_error
from .executor import RESOLVE_SAFE, Executor, make_executor
from .metadata import Metadata

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import (
        Any,
        Callable,
        Iterable,
        Iterator,
        List,
        NamedTuple,
        Optional,
        Set,
        Tuple,
        Union,
    )

    Name = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
else:
    from ._records import NamedTuple

#: ``rename`` flags (renameat2): fail if the destination exists / swap the two names.
RENAME_NOREPLACE = A.RENAME_NOREPLACE
RENAME_EXCHANGE = A.RENAME_EXCHANGE
_HDR = A.DIRENT64_HEADER.unpack_from
_GETDENTS_BUF = 1 << 16
_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
#: statx requests statx_many keeps in flight at once (one submission each batch)
_STATX_BATCH = 128


class InvalidName(ValueError):
    """A name that is not one plain path component."""


class DirEntry(NamedTuple):
    """One directory entry as getdents64 reports it (names are bytes)."""

    name: bytes
    d_type: int
    ino: int

    def is_dir(self) -> bool:
        return self.d_type == A.DT_DIR


_tuple_new = tuple.__new__


def check_name(name: Name) -> bytes:
    """The name as bytes, if it is a single component; else ``InvalidName``."""
    raw = name if type(name) is bytes else os.fsencode(name)
    if not raw or raw == b"." or raw == b".." or b"/" in raw or b"\0" in raw:
        raise InvalidName(f"not a single path component: {raw!r}")
    return raw


def parse_dirents(buf: Any, n: int) -> List[DirEntry]:
    """Decode ``n`` bytes of ``struct linux_dirent64`` records, skipping . and ..

    A list, not a generator: a walk hands the entries on with ``yield from``,
    and one generator frame less to resume per entry is ~0.3 us each."""
    pos = 0
    data = bytes(buf[:n]) if not isinstance(buf, bytes) else buf
    out: List[DirEntry] = []
    add = out.append
    while pos < n:
        ino, _off, reclen, dtype = _HDR(data, pos)
        end = data.index(b"\0", pos + 19)
        name = data[pos + 19: end]
        pos += reclen
        if name == b"." or name == b"..":
            continue
        add(_tuple_new(DirEntry, (name, dtype, ino)))  # (NamedTuple's __new__ is Python)
    return out


def dirent_names(data: bytes, n: int) -> List[bytes]:
    """The names alone in ``n`` bytes of ``struct linux_dirent64`` records
    (. and .. included): for a listing that only answers "is this name there?"."""
    pos = 0
    out: List[bytes] = []
    add = out.append
    find = data.index
    while pos < n:
        end = find(b"\0", pos + 19)
        add(data[pos + 19: end])
        pos += _HDR(data, pos)[2]  # d_reclen
    return out


def unique_entries(answers: Iterable[Tuple[bytes, int]],
                   parse: Callable[[bytes, int], List[DirEntry]] = parse_dirents
                   ) -> Iterator[DirEntry]:
    """The entries of a directory's getdents64 answers (``(data, n)`` each),
    every name once.  One answer is read under the directory's lock; between
    two, an entry removed and made again, or renamed away and back, may come
    again at a later offset (tmpfs hands out new ones; ext4 orders by hash).
    A copy must not take such a name twice (rsync, sorting its list, never
    does).  The names are kept only from a second answer on: most
    directories fit in one; a directory of 100,000 names keeps ~8 MB."""
    it = iter(answers)
    first = next(it, None)
    if first is None:
        return
    yield from parse(*first)
    seen: Optional[Set[bytes]] = None
    for data, n in it:
        if seen is None:
            seen = set(dirent_names(*first))
        add = seen.add
        for entry in parse(data, n):
            if entry.name not in seen:
                add(entry.name)
                yield entry


class DirectoryFd:
    """An open directory; every operation is relative to it."""

    __slots__ = ("__weakref__", "_listed", "_listing", "_owner", "_owns_executor", "executor",
                 "fd", "path")

    def __init__(self, fd: int, path: bytes, executor: Executor, owns_executor: bool = False,
                 owner: Optional[DirectoryFd] = None):
        self.fd = fd
        self.path = path
        self.executor = executor
        self._owns_executor = owns_executor
        # the handle whose executor this one uses: kept alive with it (its
        # garbage collection would close the executor under this one)
        self._owner = owner
        self._listed = False  # the fd's offset has moved: rewind before listing
        self._listing = False  # an entries() iteration is under way on self.fd

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
        try:
            fd = os.open(raw, flags)
        except OSError as exc:
            err = exc.errno or errno.EIO
            if err == errno.ENOTDIR and not follow and _is_symlink_path(raw):
                err = errno.ELOOP  # as open_dir reports a symlink
            raise request_error(err, None, raw) from None
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

    def _call(self, submit: Any, name: Optional[bytes],
              dst: Optional[Tuple[DirectoryFd, bytes]] = None) -> Any:
        """Run a one-operation chain to completion; raise its error.

        The error names ``name`` in this directory and, for two-name
        operations (link, rename), ``dst`` as its ``filename2``.
        """
        box: List[Any] = []
        cid = self.executor.chain(lambda idx, res, extra: box.append((res, extra)))
        submit(cid)
        while not box:
            self.executor.run()
        res, extra = box[0]
        if res < 0:
            if dst is not None:
                raise _error2(-res, self._display(name), dst[0]._display(dst[1]))
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
            try:
                link = self.statx(raw).is_symlink()
            except OSError:
                link = False  # gone or changed meanwhile: keep the first answer
            if link:
                raise request_error(errno.ELOOP, None, self._display(raw)) from None
            raise
        return DirectoryFd(fd, self._display(raw), self.executor,
                           owner=self if self._owns_executor else self._owner)

    def open_file(self, name: Name, flags: int = os.O_RDONLY, mode: int = 0o666) -> int:
        """Open ``name`` and return a plain fd (close it yourself).

        ``O_NOFOLLOW`` is implied: a symlink fails with ELOOP.  The one
        exception is the kernel's: ``O_PATH`` (with the implied ``O_NOFOLLOW``)
        returns a handle on the symlink itself, which reaches nothing beyond it.
        The fd is ``O_CLOEXEC``; ``mode`` is used only when the call creates.
        """
        raw = check_name(name)
        oflags = flags | os.O_NOFOLLOW
        if not (oflags & os.O_CREAT or oflags & _O_TMPFILE == _O_TMPFILE != 0):
            # openat2 rejects a mode unless it creates (EINVAL).  O_TMPFILE
            # shares its bit with O_DIRECTORY, so test all of its bits.
            mode = 0
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
        """statx of many names, ``_STATX_BATCH`` per submission.

        The result has one entry per name, in order: its Metadata, or the
        OSError it failed with (returned, not raised).
        """
        raws = [check_name(n) for n in names]
        out: List[Union[Metadata, OSError]] = [OSError(errno.EIO, "no result")] * len(raws)
        left = [0]
        at = 0 if follow else A.AT_SYMLINK_NOFOLLOW
        ex = self.executor

        def done(i: int) -> Any:
            def cb(_idx: int, res: int, extra: Any) -> None:
                out[i] = extra if res >= 0 else request_error(-res, "STATX",
                                                              self._display(raws[i]))
                left[0] -= 1
            return cb

        # At most _STATX_BATCH requests in flight: one io_uring_enter carries a
        # whole batch, and memory stays bounded however many names there are.
        for start in range(0, len(raws), _STATX_BATCH):
            for i in range(start, min(start + _STATX_BATCH, len(raws))):
                left[0] += 1
                ex.statx(ex.chain(done(i)), 0, self.fd, raws[i], at)
            while left[0]:
                ex.run()
        return out

    def entries(self) -> Iterator[DirEntry]:
        """Stream the directory's entries (without . and ..), 64 KiB of getdents64 at a time.

        In bounded memory: so a name removed and made again while the listing
        is under way may come twice (unique_entries leaves such repeats out,
        keeping every name it has seen).

        Each call lists the directory from its start.  Iterations may overlap
        (``listdir()`` inside a loop over ``entries()``, say): while one is
        under way on this handle's fd, another reads through a fresh open of
        the same directory, so neither skips nor repeats entries.
        """
        ex = self.executor
        if self._listing:
            fd = int(self._call(lambda cid: ex.openat2(
                cid, 0, self.fd, b".", os.O_RDONLY | os.O_DIRECTORY, 0, RESOLVE_SAFE), None))
            own = True
        else:
            fd, own = self.fd, False
            self._listing = True
            if self._listed:
                ex.direct_syscalls["lseek"] += 1
                os.lseek(fd, 0, os.SEEK_SET)
            self._listed = True
        try:
            _syscall.libc()
            ctypes = _syscall.ctypes
            buf = ctypes.create_string_buffer(_GETDENTS_BUF)
            while True:
                if not own and self.fd != fd:
                    # closed while listed: the number may be another directory's now
                    raise ValueError(f"DirectoryFd {os.fsdecode(self.path)!r} was closed "
                                     "while its entries were listed")
                n = ex.getdents(fd, buf, _GETDENTS_BUF)
                if n <= 0:
                    return
                yield from parse_dirents(ctypes.string_at(buf, n), n)
        finally:
            if own:
                os.close(fd)
            else:
                self._listing = False

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
                   raw, (dst_dir, draw))

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
                                                      flags), raw, (dst_dir, draw))

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
    def _fail(self, exc: OSError, raw: Optional[bytes]) -> OSError:
        """``exc`` (from an fd or ctypes call) again, naming the entry."""
        return request_error(exc.errno or errno.EIO, None, self._display(raw))

    def _on_self(self, fd_call: Any) -> Any:
        """``fd_call(self.fd)``: the directory itself, by its fd."""
        try:
            return fd_call(self.fd)
        except OSError as exc:
            raise self._fail(exc, None) from None

    def _on_entry(self, name: Optional[Name], fd_call: Any, path_call: Any) -> Any:
        if name is None:
            return self._on_self(fd_call)
        raw = check_name(name)
        fd = self._open_path(raw)
        try:
            return path_call(fd)
        except OSError as exc:
            raise self._fail(exc, raw) from None
        finally:
            os.close(fd)

    def chmod(self, name: Optional[Name], mode: int) -> None:
        """Change permission bits of ``name`` (of the directory itself when None).

        A symlink's mode cannot be changed on Linux: EOPNOTSUPP, never its target.
        """
        ex = self.executor
        self._on_entry(name, lambda fd: ex.fchmod(fd, mode),
                       lambda fd: _chmod_o_path(ex, fd, mode))

    def chown(self, name: Optional[Name], uid: int, gid: int) -> None:
        """Change owner of ``name`` (a symlink itself, never its target); -1 keeps a field."""
        ex = self.executor
        self._on_entry(name, lambda fd: ex.fchown(fd, uid, gid),
                       lambda fd: ex.empty_path_chown(fd, uid, gid))

    def utime(self, name: Optional[Name], atime_ns: int, mtime_ns: int) -> None:
        """Set access and modification times (nanoseconds) of ``name`` or the directory.

        On a symlink the link's own times change, never its target's.
        """
        ex = self.executor
        self._on_entry(name, lambda fd: ex.futimens(fd, atime_ns, mtime_ns),
                       lambda fd: ex.empty_path_utime(fd, atime_ns, mtime_ns))

    # xattrs: the kernel takes no O_PATH fd for them, so regular files and
    # directories are opened for reading (O_NOFOLLOW | O_NONBLOCK) and handled
    # by fd.  Other types (symlinks, devices, FIFOs, sockets), and files this
    # process may not read, are handled by name with AT_SYMLINK_NOFOLLOW: the
    # *xattrat syscalls (Linux 6.13), or on older kernels the l*xattr calls on
    # "/proc/self/fd/<this directory's fd>/<name>" -- the directory is pinned
    # by its fd and the one name component is not followed, so both forms are
    # as safe as the fd.
    def _xattr(self, name: Optional[Name], fd_call: Any, at_call: Any) -> Any:
        if name is None:
            return self._on_self(fd_call)
        raw = check_name(name)
        if self.statx(raw).type in (0o100000, 0o040000):
            try:
                fd = self.open_file(raw, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
            except PermissionError:
                fd = -1  # not readable by us: by name below
            if fd >= 0:
                try:
                    return fd_call(fd)
                except OSError as exc:
                    raise self._fail(exc, raw) from None
                finally:
                    os.close(fd)
        try:
            return at_call(raw)
        except OSError as exc:
            raise self._fail(exc, raw) from None

    def getxattr(self, name: Optional[Name], attr: Union[str, bytes]) -> bytes:
        """The value of extended attribute ``attr`` of ``name`` (or of the directory)."""
        a = os.fsencode(attr)
        count = self.executor.direct_syscalls
        return bytes(self._xattr(
            name, lambda fd: _counted(count, "fgetxattr", os.getxattr, fd, a),
            lambda raw: _by_name(count, "getxattrat", self.fd, raw,
                                 lambda: _xattrat_get(self.fd, raw, a),
                                 lambda p: os.getxattr(p, a, follow_symlinks=False))))

    def setxattr(self, name: Optional[Name], attr: Union[str, bytes], value: bytes,
                 flags: int = 0) -> None:
        """Set ``attr``; ``flags`` may be ``os.XATTR_CREATE`` or ``os.XATTR_REPLACE``."""
        a = os.fsencode(attr)
        count = self.executor.direct_syscalls
        self._xattr(
            name, lambda fd: _counted(count, "fsetxattr", os.setxattr, fd, a, value, flags),
            lambda raw: _by_name(count, "setxattrat", self.fd, raw,
                                 lambda: _syscall.setxattrat(self.fd, raw,
                                                             A.AT_SYMLINK_NOFOLLOW, a,
                                                             value, flags),
                                 lambda p: os.setxattr(p, a, value, flags,
                                                       follow_symlinks=False)))

    def listxattr(self, name: Optional[Name] = None) -> List[bytes]:
        """Names of the extended attributes of ``name`` (or of the directory)."""
        count = self.executor.direct_syscalls
        return list(self._xattr(
            name, lambda fd: [os.fsencode(x)
                              for x in _counted(count, "flistxattr", os.listxattr, fd)],
            lambda raw: _by_name(count, "listxattrat", self.fd, raw,
                                 lambda: _xattrat_list(self.fd, raw),
                                 lambda p: [os.fsencode(x) for x in
                                            os.listxattr(p, follow_symlinks=False)])))

    def removexattr(self, name: Optional[Name], attr: Union[str, bytes]) -> None:
        a = os.fsencode(attr)
        count = self.executor.direct_syscalls
        self._xattr(
            name, lambda fd: _counted(count, "fremovexattr", os.removexattr, fd, a),
            lambda raw: _by_name(count, "removexattrat", self.fd, raw,
                                 lambda: _syscall.removexattrat(self.fd, raw,
                                                                A.AT_SYMLINK_NOFOLLOW, a),
                                 lambda p: os.removexattr(p, a, follow_symlinks=False)))

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


def _counted(count: Any, syscall: str, fn: Any, *args: Any) -> Any:
    count[syscall] += 1
    return fn(*args)


#: False once the kernel said ENOSYS to an *xattrat syscall (before Linux 6.13).
_have_xattrat = [True]


def _by_name(count: Any, syscall: str, dfd: int, name: bytes, at_call: Any,
             proc_call: Any) -> Any:
    """An xattr call on ``name`` in ``dfd``, never following a symlink.

    The *xattrat syscall where the kernel has it; else the l*xattr form on the
    name below ``/proc/self/fd/<dfd>`` (the directory is the one the fd holds,
    and only the last component, not followed, is looked up).
    """
    if _have_xattrat[0]:
        count[syscall] += 1
        try:
            return at_call()
        except OSError as exc:
            if exc.errno != errno.ENOSYS:
                raise
            _have_xattrat[0] = False
    count["l" + syscall[:-2]] += 1
    return proc_call(b"/proc/self/fd/%d/%s" % (dfd, name))


def _chmod_o_path(ex: Executor, fd: int, mode: int) -> None:
    """chmod what the O_PATH fd ``fd`` refers to: fchmodat2(fd, "", AT_EMPTY_PATH).

    Kernels before 6.6 lack fchmodat2: then, like glibc, refuse a symlink
    (EOPNOTSUPP) and chmod anything else through its /proc/self/fd magic link,
    which is bound to the inode the fd holds.
    """
    ex.direct_syscalls["fchmodat2"] += 1
    try:
        _syscall.raw("fchmodat2", fd, b"", mode, A.AT_EMPTY_PATH)
        return
    except OSError as exc:
        if exc.errno != errno.ENOSYS:
            raise
    if stat.S_ISLNK(os.fstat(fd).st_mode):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
    ex.direct_syscalls["chmod"] += 1
    os.chmod(f"/proc/self/fd/{fd}", mode)


def _reopen_widened(ex: Executor, opath: int, ident: Tuple[int, int], add: int,
                    reopen: Callable[[], int]) -> Tuple[int, int]:
    """Open again, with ``reopen()``, the inode an O_PATH fd holds, after adding
    the mode bits ``add`` to it -- a non-root user's own file or directory that
    lacks u+r or u+x, say.  Both the O_PATH fd and the new fd are checked to be
    ``ident`` (st_ino, st_dev): a name swapped for something else meanwhile is
    neither changed nor opened (ESTALE).  Returns (fd, the earlier mode bits),
    which the caller gives back when done; on failure they are given back here.
    """
    ex.direct_syscalls["fstat"] += 1
    st = os.fstat(opath)
    if (st.st_ino, st.st_dev) != ident:
        raise OSError(errno.ESTALE, "entry replaced during the copy")
    old = st.st_mode & 0o7777
    _chmod_o_path(ex, opath, old | add)
    try:
        fd = reopen()
        try:
            ex.direct_syscalls["fstat"] += 1
            st = os.fstat(fd)
            if (st.st_ino, st.st_dev) != ident:
                raise OSError(errno.ESTALE, "entry replaced during the copy")
        except BaseException:
            os.close(fd)
            raise
    except BaseException:
        try:
            _chmod_o_path(ex, opath, old)
        except OSError:
            pass  # (the first error is the one to report: this one would replace it)
        raise
    return fd, old


def _is_symlink_path(path: bytes) -> bool:
    try:
        return os.path.islink(path)
    except (OSError, ValueError):
        return False


def _error2(err: int, src: bytes, dst: bytes) -> OSError:
    """The OSError subclass for ``err`` naming both paths of a link or rename."""
    return OSError(err, os.strerror(err), os.fsdecode(src), None, os.fsdecode(dst))


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
