"""The copy as a Python API, and rsync's rules for what SRC and DST mean.

The only path-string opens in a copy are here: each source's directory (or
its parent, when the source itself is the entry to copy) and the
destination directory.  Everything below them goes through the engine's
fd-relative opens.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import time

from .. import _abi as A
from .. import _syscall
from ..dirfd import DirEntry
from ..executor import COPY_OPS, Executor, make_executor
from ..metadata import Metadata
from .engine import O_NOATIME, DirTask, Engine, fd_budget
from .governor import WorkerGovernor
from .options import Options
from .stats import CopyStats
from .text import show

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Union
    PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

# The signal module makes enums of every signal number at import (~0.7 ms of
# each copy's start-up, and enum itself); CPython's C half is already loaded
# and is all the copy's SIGINT handling needs (here and in the CLI).  (Other
# interpreters may have only the module itself.)
try:
    _signal: Any = __import__("_signal")
except ImportError:  # pragma: no cover - not CPython
    import signal as _signal


class CopyError(Exception):
    """A copy that cannot start (bad arguments, DST inside SRC, ...).

    ``exit_code`` is the rsync exit code the CLI uses for it.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _q(path: PathArg) -> str:
    return f'"{show(os.fsencode(path))}"'


def _realpath(path: bytes) -> bytes:
    return os.path.realpath(path)


def io_worker_cap(opts: Options, paths: Sequence[bytes] = ()) -> int:
    """The cap on io-wq workers a copy with ``opts`` between ``paths`` asks for
    (0: none).

    A small file's STATX, O_TMPFILE open, WRITE and LINKAT run on io-wq
    workers.  In a copy from the page cache they only need CPU, and more
    workers than the CPUs left over by the ring's own thread preempt it and
    each other: on 2 CPUs one worker copied 5,000 small files ~15 % faster
    than the kernel's default (docs/benchmarks.md).  Where operations wait
    instead -- an fsync on the journal, anything on a network, cluster or FUSE
    file system -- many at once is what makes them fast: no cap there.
    """
    if opts.io_workers >= 0:
        return opts.io_workers
    if opts.fsync or any(_on_remote_fs(p) for p in paths):
        return 0
    return max(1, usable_cpus() - 1)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _on_remote_fs(path: bytes) -> bool:
    """Is ``path`` (or, when it does not exist yet, its directory) on NFS, SMB,
    FUSE, Ceph, 9p, Lustre and the like?  (A root the user named: looked up by
    path.)  When statfs fails otherwise (blocked, a stale NFS handle), no:
    the parent would most likely be some local file system."""
    for candidate in (path, os.path.dirname(path.rstrip(b"/")) or b"."):
        try:
            return _syscall.statfs_type(candidate) in A.REMOTE_FS_MAGICS
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                return False
    return False


def cap_io_workers(ex: Executor, cap: int) -> Tuple[int, Optional[Tuple[int, int]]]:
    """Cap the io-wq workers of this thread at ``cap`` of each kind (never above
    a limit the program set lower); returns the bounded cap now in force and
    the limits before, for ``restore_io_workers`` -- or (0, None) when nothing
    was changed: the sync backend, a cap of 0, or a kernel older than 5.15.
    (``capped_limits(cap, before)`` are the limits then in force.)

    The limits belong to the thread's io-wq, which every ring the thread uses
    shares and which outlives the ring: without the restore, a program that
    copies and then uses io_uring itself would keep the copy's cap.
    """
    ring = getattr(ex, "ring", None)
    if ring is None or cap <= 0:
        return 0, None
    try:
        before: Tuple[int, int] = ring.register_iowq_max_workers(0, 0)  # (0, 0: only ask)
        bounded, unbounded = capped_limits(cap, before)
        ring.register_iowq_max_workers(bounded, unbounded)
    except OSError:
        return 0, None
    return bounded, before


def capped_limits(cap: int, before: Tuple[int, int]) -> Tuple[int, int]:
    bounded, unbounded = (min(cap, b) if b > 0 else cap for b in before)
    return bounded, unbounded


#: the largest limit the kernel accepts; it lowers it to RLIMIT_NPROC itself
_NO_LIMIT = 0x7FFFFFFF


def restore_io_workers(ex: Executor, before: Optional[Tuple[int, int]]) -> None:
    """Give the thread's io-wq back the limits ``cap_io_workers`` found.

    A 0 read back is no limit of ours to restore, and passing 0 would keep the
    cap: an unbounded limit above INT_MAX (RLIMIT_NPROC unlimited, as for root
    in many containers) reads back as 0, and so do both when the thread had no
    io-wq yet -- which this ring then created with the kernel's defaults.
    """
    ring = getattr(ex, "ring", None)
    if ring is None or before is None:
        return
    bounded, unbounded = before
    if not bounded:
        bounded = min(ring.sq_entries, 4 * (os.cpu_count() or 1))
    try:
        ring.register_iowq_max_workers(bounded, unbounded or _NO_LIMIT)
    except OSError:
        pass  # (the ring is still open: it cannot have become unable to)


class _CannotOpen(Exception):
    """A source root, or the directory that holds one, cannot be opened: the
    root is reported and the next one is copied.  (Its own class: an OSError
    from deeper in a run is no root's failure.)"""

    def __init__(self, path: bytes, exc: OSError) -> None:
        super().__init__(path, exc.errno)
        self.path = path
        self.errno = exc.errno or errno.EIO

    def message(self, what: str = "") -> str:
        """The one-line report: ``cannot open <what> "<path>": <strerror> (<errno>)``."""
        return (f"cannot open {what}{_q(self.path)}: "
                f"{os.strerror(self.errno)} ({self.errno})")


def _open_dir(path: bytes, holder: bool = False, noatime: bool = False) -> int:
    """Open a root directory.  ``holder``: it only holds the entry to copy and
    is never listed, so a searchable but unreadable one (mode 0111, 0333)
    serves as well opened O_PATH -- rsync, working by path, copies from and
    into such directories.  ``noatime``: a destination, whose listing must not
    move the atime a copy gave it (its owner and root only)."""
    if noatime and not holder:
        try:
            return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | O_NOATIME)
        except PermissionError:
            pass  # (not ours)
        except OSError as exc:
            raise _CannotOpen(path, exc) from None
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except PermissionError as exc:
        if holder:
            try:
                return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                pass
        raise _CannotOpen(path, exc) from None
    except OSError as exc:
        raise _CannotOpen(path, exc) from None


def _lstat_is_dir(path: bytes) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False  # (the copy itself reports it)


def _remove_unused(path: bytes) -> None:
    """The destination directory this run made, when no source could be
    opened: nothing was copied, so nothing is left behind (an empty one only;
    rmdir refuses anything else)."""
    try:
        os.rmdir(path)
    except OSError:
        pass


class _Root:
    """One source to copy: a directory's contents, or one entry of a directory."""

    def __init__(self, src: bytes, contents: bool) -> None:
        self.src = src
        self.contents = contents


def plan(sources: Sequence[bytes], dest: bytes, opts: Options,
         report: Callable[[str], None], stats: CopyStats) -> List[_Root]:
    """Apply rsync's trailing-slash rule; report missing sources (exit 23)."""
    roots: List[_Root] = []
    # the name each SRC without a slash takes in DST.  Two directories with one
    # name are merged (as rsync does); otherwise a second SRC with a taken name
    # would overwrite the first's copy (rsync keeps the directory, else the
    # first, silently; cp refuses): the one kept is said, the other refused.
    # The same file named twice is copied once.
    taken: Dict[bytes, Tuple[_Root, Tuple[int, int], bool]] = {}
    seen: Set[Tuple[bytes, Tuple[int, int]]] = set()
    for src in sources:
        try:
            st = os.lstat(src)
        except OSError as exc:
            stats.errors += 1
            report(f"cannot stat {_q(src)}: {os.strerror(exc.errno or errno.EIO)} ({exc.errno})")
            continue
        base = os.path.basename(src.rstrip(b"/"))
        slash = src.endswith(b"/") or base in (b"", b".", b"..")
        if slash and stat.S_ISLNK(st.st_mode):
            try:
                st = os.stat(src)  # a trailing slash follows the symlink, as in rsync
            except OSError as exc:
                stats.errors += 1
                report(f"cannot stat {_q(src)}: {os.strerror(exc.errno or errno.EIO)} "
                       f"({exc.errno})")
                continue
        is_dir = stat.S_ISDIR(st.st_mode)
        if is_dir and not opts.recursive:
            # (rsync's rule: without -r no directory is copied, SRC/ included --
            # it would need -d, which copies one level)
            stats.skipped += 1
            report(f"skipping directory {_q(src)}")
            continue
        root = _Root(src, contents=slash and is_dir)
        if not slash:
            ident = (st.st_dev, st.st_ino)
            if (base, ident) in seen:
                continue  # (named before: copied, or refused and said so)
            seen.add((base, ident))
            first = taken.get(base)
            if first is not None and not (is_dir and first[2]):
                keep, drop = (root, first[0]) if is_dir else (first[0], root)
                stats.errors += 1
                report(f"not copying {_q(drop.src)}: {_q(keep.src)} is copied to the "
                       f"same name {_q(base)}")
                if drop is root:
                    continue
                roots.remove(drop)
            taken[base] = (root, ident, is_dir)
        roots.append(root)
    return roots


def _identity(path: bytes, follow: bool = False) -> Optional[Tuple[int, int]]:
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _check_nesting(roots: List[_Root], dest: bytes, dest_is_dir: bool) -> None:
    """Refuse a copy onto itself or into itself.  Judged by (st_dev, st_ino),
    not by path strings: a bind mount of SRC below DST is the same directory
    under another name.  The walk goes up from where the copy would land to /;
    a resolved path has no symlink left, so lstat() sees what the copy will."""
    real_dst = _realpath(dest)
    for r in roots:
        name = os.path.basename(r.src.rstrip(b"/"))
        target = real_dst if (r.contents or not dest_is_dir) else os.path.join(real_dst, name)
        try:
            # (no trailing slash: a symlink is copied as the link it is)
            st = os.stat(r.src) if r.contents else os.lstat(r.src)
        except OSError:
            continue  # (gone since plan(): the copy reports it)
        src_id = (st.st_dev, st.st_ino)
        if not stat.S_ISDIR(st.st_mode):
            here_id = _identity(target)
            if here_id == src_id:
                raise CopyError(f"source and destination are the same file: {_q(r.src)}")
            if stat.S_ISLNK(st.st_mode) and here_id is not None and _identity(r.src, True) \
                    == here_id:
                # the link would replace the file it points to, whose data
                # would be lost (cp refuses too: "are the same file")
                raise CopyError(f"source {_q(r.src)} is a symlink to the destination "
                                "file, which the copy would replace")
            continue
        here = target
        while True:
            if _identity(here) == src_id:
                if here == target:
                    raise CopyError(f"source and destination are the same directory: "
                                    f"{_q(r.src)}")
                raise CopyError(f"destination {_q(dest)} is inside source {_q(r.src)}; "
                                "the copy would never end")
            up = os.path.dirname(here)
            if up == here:
                break
            here = up


class Copier:
    """Run a copy of ``sources`` into ``dest`` with rsync semantics."""

    def __init__(self, opts: Options, report: Callable[[str], None],
                 itemize: Optional[Callable[[str], None]] = None) -> None:
        if opts.acls and not opts.perms:
            # an ACL is a superset of the permission bits: -A implies -p (as rsync's)
            opts = Options(**{**opts.as_dict(), "perms": True})
        self.opts = opts
        self.report = report
        self.itemize = itemize
        self.stats = CopyStats()
        self.engine: Optional[Engine] = None
        self.interrupted = False
        self.on_progress: Optional[Callable[[CopyStats], None]] = None
        self.backend_reasons: List[str] = []
        self._new_dst = False

    def interrupt(self) -> None:
        self.interrupted = True
        if self.engine is not None:
            self.engine.interrupted = True
            self.engine.ex.stop()  # a wait the signal interrupted comes back
            # (a call from another thread is no signal: the ring's wait is
            # ended by a completion posted to it)
            self.engine.ex.wake()
            if self.engine.bulk is not None:
                self.engine.bulk.poke()  # (a call from another thread is no signal)

    def run(self, sources: Sequence[PathArg], dest: PathArg) -> CopyStats:
        """Copy ``sources`` to ``dest`` by rsync's rules; the stats of the copy.

        Ctrl-C (on the main thread of a program that left SIGINT to Python)
        stops the copy the clean way -- what is in flight finishes, every fd
        of the run is closed -- and then raises KeyboardInterrupt; a second
        Ctrl-C raises it at once.  A program's own SIGINT handler is left
        alone (the CLI's calls :meth:`interrupt`).
        """
        return _run_stopping_on_ctrl_c(self, sources, dest)

    def _run(self, sources: Sequence[PathArg], dest: PathArg) -> CopyStats:
        t0 = time.monotonic()
        stats = self.stats
        problem = self.opts.validate()
        if problem:
            raise CopyError(problem)
        if isinstance(sources, (str, bytes, os.PathLike)):
            sources = [sources]  # (one path, not a sequence of one-letter names)
        srcs = [os.fsencode(s) for s in sources]
        dst = os.fsencode(dest)
        if not srcs:
            raise CopyError("no source given")
        roots = plan(srcs, dst, self.opts, self.report, stats)
        try:
            dst_st: Optional[os.stat_result] = os.stat(dst)
        except FileNotFoundError:
            dst_st = None
        except OSError as exc:
            # (3 where a path component is a file, as rsync: "errors selecting
            # input/output files, dirs"; 11 for a failure to read it)
            raise CopyError(f"cannot stat destination {_q(dst)}: "
                            f"{os.strerror(exc.errno or errno.EIO)} ({exc.errno})",
                            3 if exc.errno == errno.ENOTDIR else 11) from None
        many = len(srcs) > 1
        # (a symlink SRC without a slash is copied as the link, as rsync and cp
        # do: judged by lstat, it may take DST as its new name)
        single_file = len(roots) == 1 and not roots[0].contents and not many and \
            not _lstat_is_dir(roots[0].src) and not dst.endswith(b"/")
        if dst_st is not None and not stat.S_ISDIR(dst_st.st_mode):
            if not single_file:
                raise CopyError(f"destination {_q(dst)} exists and is not a directory", 3)
        dest_is_dir = dst_st is not None and stat.S_ISDIR(dst_st.st_mode)
        if single_file and not dest_is_dir:
            _check_nesting(roots, dst, False)
        else:
            _check_nesting(roots, dst, True)
        if not roots:
            stats.elapsed = time.monotonic() - t0
            return stats
        # (at least 8 SQ entries: the longest fixed chain the engine links has 5,
        # a file's xattr chain is cut to fit (filecopy._meta_in_chain);
        # direct slots count against RLIMIT_NOFILE, like the files in flight)
        ex = make_executor(self.opts.backend, entries=max(8, self.opts.queue_depth),
                           direct_slots=min(fd_budget(self.opts.max_files_in_flight), 256),
                           reasons=self.backend_reasons, required_ops=COPY_OPS)
        workers: Optional[Tuple[int, int]] = None  # the thread's io-wq limits before
        governor: Optional[WorkerGovernor] = None
        try:
            stats.backend = ex.kind
            if self.backend_reasons:
                stats.backend_note = "io_uring unavailable: " + self.backend_reasons[0]
            if ex.kind == "uring":  # (the sync backend has no io-wq to cap)
                cap = io_worker_cap(self.opts, [r.src for r in roots] + [dst])
                stats.io_workers, workers = cap_io_workers(ex, cap)
                ring = getattr(ex, "ring", None)
                if workers is not None and ring is not None and self.opts.io_workers < 0:
                    # (auto: the cap may go up by one if the ring's thread keeps waiting)
                    governor = WorkerGovernor.start(ring, capped_limits(cap, workers),
                                                    workers, usable_cpus())
            self._run_engine(ex, roots, dst, single_file and not dest_is_dir,
                             dst_st is not None, governor)
        finally:
            try:
                try:
                    if governor is not None:
                        stats.io_workers_top = governor.top[0]
                        stats.io_workers_raised = governor.raised
                        governor.close()
                    self._collect(ex)
                finally:
                    restore_io_workers(ex, workers)  # (whatever failed before)
            finally:
                ex.close()
        stats.elapsed = time.monotonic() - t0
        return stats

    def _run_engine(self, ex: Executor, roots: List[_Root], dst: bytes, file_to_file: bool,
                    dst_exists: bool, governor: Optional[WorkerGovernor] = None) -> None:
        stats = self.stats
        old_umask = os.umask(0)  # modes are given exactly at creation
        eng: Optional[Engine] = None
        try:
            try:
                eng = Engine(ex, self.opts, stats, self.report, self.itemize)
            except (MemoryError, OSError) as exc:
                err = getattr(exc, "errno", None) or errno.ENOMEM
                if err != errno.ENOMEM:
                    raise
                raise CopyError(
                    f"cannot allocate the buffers for {self.opts.max_files_in_flight} files "
                    f"in flight of up to {self.opts.small_file_max} bytes: "
                    f"{os.strerror(err)} ({err})", 22) from None
            eng.umask = old_umask
            eng.governor = governor
            if self.on_progress is not None:
                cb = self.on_progress
                eng.on_progress = lambda: cb(stats)
            self.engine = eng
            eng.interrupted = self.interrupted
            if file_to_file:
                self._copy_file_root(eng, roots[0], dst, dst_exists)
            else:
                dst_fd, made = self._open_dest_dir(dst, dst_exists, roots[0].contents)
                fresh, copied = made, False
                self._new_dst = made  # (-v: "cd+++++++++ ./" with the first SRC/)
                try:
                    for root in roots:
                        if eng.interrupted or eng.fatal is not None:
                            break
                        try:
                            self._copy_root(eng, root, dst_fd, fresh)
                            copied = True
                        except _CannotOpen as exc:
                            stats.errors += 1
                            self.report(exc.message())
                            continue
                        fresh = False
                finally:
                    if dst_fd >= 0:
                        os.close(dst_fd)
                if made and not copied:
                    _remove_unused(dst)
            eng.close()
            if eng.fatal is not None:
                self.report(eng.fatal)
            stats.interrupted = eng.interrupted
        finally:
            os.umask(old_umask)
            if eng is not None and eng.bulk is not None:
                # (after eng.close() this does nothing; after an exception it
                # lets the data threads end without a pipe or fds to report to)
                eng.bulk.abandon()
                eng.bulk.close()

    def _collect(self, ex: Executor) -> None:
        st = self.stats
        ring = getattr(ex, "ring", None)
        if ring is not None:
            rs = ring.stats
            st.sqes, st.enters, st.completions = rs.sqes, rs.enters, rs.completions
            st.sqes_by_op = dict(rs.sqes_by_op)
        st.direct_syscalls = dict(ex.direct_syscalls)

    def _open_dest_dir(self, dst: bytes, exists: bool, gets_meta: bool) -> tuple[int, bool]:
        fresh = False
        if not exists:
            if self.opts.dry_run:
                return -1, True  # nothing will be created
            try:
                # as every directory the copy makes (the source's mode comes at
                # the end); or, when it is only the parent of the copies, 0755
                os.mkdir(dst, 0o700 if gets_meta else 0o755)
                fresh = True
            except FileExistsError:
                pass  # made meanwhile (another copy to it, as rsync goes on): opened below
            except OSError as exc:
                raise CopyError(f"cannot create destination directory {_q(dst)}: "
                                f"{os.strerror(exc.errno or errno.EIO)} ({exc.errno})",
                                11) from None
        try:
            # (the parent of the copies only: never listed, O_PATH will do)
            fd = _open_dir(dst, holder=not gets_meta, noatime=True)
        except _CannotOpen as exc:
            raise CopyError(exc.message("destination "), 11) from None
        return fd, fresh

    def _copy_root(self, eng: Engine, root: _Root, dst_fd: int, fresh: bool) -> None:
        if root.contents:
            src_fd = _open_dir(root.src)
            md = Metadata.from_stat(os.fstat(src_fd))
            task = DirTask(None, src_fd, dst_fd, b"", md)
            eng.judge_src(task, md)
            if dst_fd >= 0 and not fresh:  # (fresh: as a directory the copy made)
                task.dst_meta = Metadata.from_stat(os.fstat(dst_fd))
            if self._new_dst:
                self._new_dst = False
                task.itemized = True
                eng.item(b"cd+++++++++ ", b"./")  # (rsync -i's line of a new DST)
            if not fresh and dst_fd >= 0:  # (-1: a dry run into a new destination)
                eng._list_dst(task)
            task.entries = eng.list_src(task)
            task.owns_fds = False
            try:
                self._run_task(eng, task)
            finally:
                os.close(src_fd)
            return
        parent = os.path.dirname(root.src.rstrip(b"/")) or b"."
        name = os.path.basename(root.src.rstrip(b"/"))
        src_fd = _open_dir(parent, holder=True)
        try:
            task = DirTask(None, src_fd, dst_fd, b"", None)
            eng.judge_src(task, Metadata.from_stat(os.fstat(src_fd)))
            task.owns_fds = False
            task.probe_dst = not fresh
            task.entries = iter([DirEntry(name, A.DT_UNKNOWN, 0)])
            self._run_task(eng, task)
        finally:
            os.close(src_fd)

    def _copy_file_root(self, eng: Engine, root: _Root, dst: bytes, exists: bool) -> None:
        """One source file copied to a file path (new or replaced)."""
        parent = os.path.dirname(root.src.rstrip(b"/")) or b"."
        name = os.path.basename(root.src.rstrip(b"/"))
        dparent = os.path.dirname(dst) or b"."
        dname = os.path.basename(dst)
        try:
            src_fd = _open_dir(parent, holder=True)
        except _CannotOpen as exc:
            raise CopyError(exc.message(), 23) from None
        try:
            try:
                dst_fd = _open_dir(dparent, holder=True)
            except _CannotOpen as exc:
                # (3 where it is not there: rsync's change_dir failure, "errors
                # selecting input/output files"; 11 for a failure to open it)
                raise CopyError(exc.message("destination directory "),
                                3 if exc.errno in (errno.ENOENT, errno.ENOTDIR) else 11
                                ) from None
            try:
                task = DirTask(None, src_fd, dst_fd, b"", None)
                eng.judge_src(task, Metadata.from_stat(os.fstat(src_fd)))
                task.owns_fds = False
                task.probe_dst = exists
                task.rename = {name: dname}
                task.entries = iter([DirEntry(name, A.DT_UNKNOWN, 0)])
                self._run_task(eng, task)
            finally:
                os.close(dst_fd)
        finally:
            os.close(src_fd)

    def _run_task(self, eng: Engine, task: DirTask) -> None:
        # -H: another name's copy may already be there (filecopy.start_file)
        eng.defer_groups = eng.opts.hard_links and task.dst_fd >= 0 \
            and (task.dst_meta is not None or task.probe_dst or task.dst_names is not None)
        eng.init_root(task)
        eng.stack.append(task)
        eng.run()


def copytree(src: PathArg, dst: PathArg, *, options: Optional[Options] = None,
             report: Optional[Callable[[str], None]] = None, **kw: object) -> CopyStats:
    """Copy the directory ``src`` to ``dst`` (created if missing), like
    ``shutil.copytree`` -- and like ``rsync -a src/ dst``.

    ``options`` defaults to ``Options.archive()``; keyword arguments override
    single fields (``copytree(a, b, hard_links=True, xattrs=True)``).  Per-file
    problems are passed to ``report`` (default: stderr) and counted in the
    returned stats; ``CopyError`` is raised when the copy cannot start.
    Ctrl-C (where the program left SIGINT to Python) stops the copy the clean
    way, then raises KeyboardInterrupt; a second one raises it at once.
    """
    # (a copy: the caller's Options stay as they were)
    opts = Options(**options.as_dict()) if options is not None else Options.archive()
    for key, value in kw.items():
        if not hasattr(opts, key):
            raise TypeError(f"unknown option {key!r}")
        setattr(opts, key, value)

    def to_stderr(msg: str) -> None:
        print(f"pyuring-copy: {msg}", file=sys.stderr)

    src_b = os.fsencode(src)
    if not src_b.endswith(b"/"):
        src_b += b"/"
    return Copier(opts, report or to_stderr).run([src_b], dst)


def _run_stopping_on_ctrl_c(copier: Copier, sources: Sequence[PathArg],
                            dst: PathArg) -> CopyStats:
    """Ctrl-C in a program that left SIGINT to Python: a KeyboardInterrupt
    raised wherever the engine happens to be would skip its stop path (the
    run's fds stay open, directories keep their working modes).  Instead the
    first SIGINT asks the copy to stop the clean way (Copier.interrupt: what is
    in flight finishes) and KeyboardInterrupt is raised once it has; a second
    SIGINT raises it at once.  Only on the main thread, and only where the
    handler is Python's own: a program's own handler is left alone."""
    sig = _signal
    default = sig.default_int_handler
    hit: List[bool] = []

    def on_sigint(signum: int, frame: object) -> None:
        hit.append(True)
        sig.signal(sig.SIGINT, default)
        copier.interrupt()

    try:
        ours = sig.getsignal(sig.SIGINT) is default
        if ours:
            sig.signal(sig.SIGINT, on_sigint)
    except ValueError:  # (not the main thread)
        ours = False
    if not ours:
        return copier._run(sources, dst)
    try:
        stats = copier._run(sources, dst)
    finally:
        if sig.getsignal(sig.SIGINT) is on_sigint:
            sig.signal(sig.SIGINT, default)
    if hit:
        raise KeyboardInterrupt
    return stats
