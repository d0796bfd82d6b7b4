"""The copy engine: a streaming walk with many entries in flight.

Shape of a run
    A stack of open directories (``DirTask``) is walked depth first.  Entries
    stream out of getdents64 and each becomes a ``Job``; up to
    ``max_files_in_flight`` jobs are in flight at once, and every operation a
    job issues goes to the executor, which on io_uring batches all of them into
    shared ``io_uring_enter`` calls.  Memory is bounded: one getdents buffer per
    open directory, one data slot per small file in flight, and the hard-link
    table (files with nlink > 1 only, with -H).

Per regular file (ring backend, new destination)
    STATX -> [OPENAT2 src into a direct slot, READ fixed, CLOSE slot] and
    [OPENAT2 dst dir "." O_TMPFILE] -> WRITE -> fchown/fchmod/futimens (direct
    syscalls: io_uring has no opcode for them) -> LINKAT(fd, "", AT_EMPTY_PATH)
    publishes the complete file under its name -> CLOSE.  Nothing is ever
    visible half-written; an interrupted copy leaves only anonymous O_TMPFILEs,
    which vanish with the process.  See docs/syscalls.md.

Safety
    Every open below the roots is one name relative to an open directory fd,
    with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS; metadata
    is set through fds (O_PATH ones for symlinks and specials, checked to still
    be what was created).  See docs/security.md.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from functools import partial

from .. import _abi as A
from .. import _syscall
from .._mem import Buffer
from ..dirfd import (
    DirEntry,
    _chmod_o_path,
    _reopen_widened,
    dirent_names,
    parse_dirents,
    unique_entries,
)
from ..executor import RESOLVE_SAFE, SKIP, Executor
from ..metadata import QUICK_FIELDS, QUICK_MASK, Metadata
from .bulk import BulkPool, DataCopy
from .options import SECOND_NS, Options
from .stats import CopyStats
from .text import show

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

    from .governor import WorkerGovernor

O_TMPFILE = getattr(os, "O_TMPFILE", 0)
_DIRENT_BUF = 32 * 1024
_QUICK = QUICK_FIELDS.unpack_from
#: Names that are not the file's own data, left out as coreutils' libattr
#: leaves them out (its /etc/xattr.conf "skip" list): XFS shows root its ACLs
#: and capabilities a second time as trusted.SGI_* -- copied, or removed as
#: extras on a re-run, they would change or delete the ACL itself --, EVM's
#: value only the kernel may write, AFS's metadata.
_XATTR_SKIP = frozenset(("trusted.SGI_ACL_DEFAULT", "trusted.SGI_ACL_FILE",
                         "trusted.SGI_CAP_FILE", "trusted.SGI_MAC_FILE", "security.evm"))
_XATTR_SKIP_PREFIXES = ("trusted.SGI_DMI_", "xfsroot.", "afs.")
#: entries probed with one Executor.statx_many (two SQEs each)
_PROBE_BATCH = 32
_from_statx = Metadata.from_statx
_TMP_MARK = b".pyuring-tmp-"
# The N of this process's temporary names: one count for every copy it runs,
# from a number its start time makes (microseconds).  A process that gets a
# PID an ended one had -- PID 1 in each new container -- neither meets that
# one's leftovers under its own names nor takes them for its own.
_TMP_FIRST = time.time_ns() // 1000
_tmp_next = [_TMP_FIRST]


def is_tmp_name(name: bytes) -> bool:
    """Is ``name`` what tmp_name() makes: "." NAME ".pyuring-tmp-" PID "-" N?
    (Not a regular expression: importing re is 3.6 ms of every start-up.)"""
    at = name.rfind(_TMP_MARK)  # (the digits after it cannot hold another)
    if at < 1 or name[:1] != b".":
        return False
    pid, dash, n = name[at + len(_TMP_MARK):].partition(b"-")
    return bool(dash) and pid.isdigit() and n.isdigit()


def tmp_owner_gone(name: bytes) -> bool:
    """Has the process whose PID a temporary name (is_tmp_name) carries ended?
    A copy running now into the same directory (this one, or another) still
    needs its names.  (A process of another PID namespace or host -- a
    container, an NFS client -- looks gone, or like another process.)"""
    pid_text, _dash, n = name[name.rfind(_TMP_MARK) + len(_TMP_MARK):].partition(b"-")
    pid = int(pid_text)
    if pid == os.getpid():
        return int(n) < _TMP_FIRST  # (made before this process started)
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return True  # (OverflowError: no PID is that large)
    except OSError:
        return False  # (EPERM: there, another user's)
    return pid <= 0  # (0 would be our process group)

_IO_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS}
_FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
#: (errno, step) of a source entry that is no longer what its statx saw under
#: that name: gone, or another type now (a symlink's readlink finds a file, a
#: file's O_NOFOLLOW open a symlink, its READ a directory) -- rsync's "vanished"
_VANISHED = {(errno.ENOENT, "stat"), (errno.ENOENT, "open"), (errno.ENOENT, "readlink"),
             (errno.EINVAL, "readlink"), (errno.ELOOP, "open"), (errno.EISDIR, "read")}
_PIPE_POS = (1 << 64) - 1  # offset -1: a pipe has no position
_DIR_UNLINK, _DIR_MKDIR, _DIR_OPEN = 0, 1, 2  # steps to a destination directory
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
O_NOATIME = getattr(os, "O_NOATIME", 0o1000000)

if TYPE_CHECKING:
    Reporter = Callable[[str], None]
#: seconds a stopping copy waits for the operations in flight before giving up on them
STOP_GRACE = 5.0


def _errtext(err: int) -> str:
    return f"{os.strerror(err)} ({err})"


def _soft_nofile() -> int:
    """The soft RLIMIT_NOFILE (-1: none)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, ValueError, OSError):
        return -1
    return -1 if soft == resource.RLIM_INFINITY else int(soft)


def group_fd_budget() -> int:
    """Hard-link groups (-H) that may keep their first copy's fd open at once."""
    soft = _soft_nofile()
    return 1 << 20 if soft < 0 else max(16, soft // 8)


def fd_budget(wanted: int) -> int:
    """Files in flight that RLIMIT_NOFILE allows (each may hold two fds and a
    direct-descriptor slot, which the kernel counts against the same limit)."""
    soft = _soft_nofile()
    if soft < 0:
        return wanted
    # keep room for the ring, stdio, directory fds of a moderately deep walk,
    # and the fds of hard-link groups
    room = soft - 40 - group_fd_budget()
    if room < 3 * wanted + 256:
        # a tight limit: the fds the program has open already count too (a
        # library's caller may hold many); counted only then (a listing of
        # /proc/self/fd costs a few syscalls)
        try:
            room -= len(os.listdir("/proc/self/fd"))
        except OSError:
            pass
    return max(1, min(wanted, room // 3))


#: (PATH_MAX) a directory's path from the root is kept while no longer than this
_REL_KEPT = 4096


class DirTask:
    """One source directory being copied into one destination directory."""

    __slots__ = (
        "_rel",
        "acl_inherit",
        "apply_meta",
        "dst_dev",
        "dst_fd",
        "dst_gid_new",
        "dst_meta",
        "dst_mode_back",
        "dst_mode_now",
        "dst_names",
        "dst_private",
        "dst_sgid",
        "entries",
        "itemized",
        "listing_done",
        "meta",
        "name",
        "owns_fds",
        "parent",
        "pending",
        "probe_dst",
        "rename",
        "shared",
        "src_dev",
        "src_fd",
        "src_remote",
        "stale",
        "touched",
    )

    def __init__(self, parent: Optional[DirTask], src_fd: int, dst_fd: int, rel: bytes,
                 meta: Optional[Metadata], name: bytes = b"") -> None:
        """``rel``: its path from the root; or, with ``name`` (its name in
        ``parent``), made from the parent's."""
        self.parent = parent
        self.src_fd = src_fd
        self.dst_fd = dst_fd
        self.name = name
        self._rel: Optional[bytes] = rel
        if name and parent is not None:
            # (None: past PATH_MAX, made when asked -- every level of a chain
            # thousands deep keeping its whole path would cost memory in the
            # square of the depth: 1 GB at 2,000 levels of 255-byte names)
            up = parent._rel
            self._rel = parent.path(name) if up is not None \
                and len(up) + len(name) <= _REL_KEPT else None
        self.meta = meta  # source metadata to apply at the end (None: leave as is)
        self.apply_meta = meta is not None
        self.entries: Iterator[DirEntry] = iter(())
        self.pending = 0  # entries started and not finished (subdirectories included)
        self.listing_done = False
        self.itemized = False  # -v: its line is out already (a new DST's "./")
        self.dst_names: Optional[Set[bytes]] = None  # None: destination was empty
        self.probe_dst = False  # stat every destination name (root entries)
        self.dst_gid_new = -1  # gid a file created here gets (setgid dirs)
        self.dst_sgid = False  # the destination directory has the setgid bit now
        self.owns_fds = True
        self.rename: Optional[Dict[bytes, bytes]] = None  # source name -> destination name
        self.stale: Optional[Set[bytes]] = None  # temporary names of an interrupted run
        # what the destination directory was before the copy (None: we created it)
        self.dst_meta: Optional[Metadata] = None
        self.dst_mode_now = -1  # >= 0: the mode was opened up to this until the end
        self.dst_mode_back = -1  # ... from this one
        self.touched = False  # this run created, replaced or removed an entry in it
        # -A: the destination has a default ACL, which every file created in it
        # inherits as an access ACL the source may not have (attrs.apply_file_meta)
        self.acl_inherit = False
        # someone else may rename entries of the source directory: each file's
        # open is checked to be the inode its statx saw (Engine.others_may_write)
        self.shared = True
        self.src_dev = -1  # st_dev of the source directory
        # ... on a network or FUSE file system (Engine.judge_src)
        self.src_remote = False
        # only this copy's user and root may rename or remove entries of the
        # destination directory, nor swap it for another (it was made by the
        # copy, or found so, in a parent directory that is so too): a name made
        # here stays what the copy made, and symlinks get their owner and times
        # by name (Engine._symlink_meta_by_name)
        self.dst_private = False
        self.dst_dev = -1  # st_dev of the destination directory, where dst_private asks

    @property
    def rel(self) -> bytes:
        """Its path from the root (b"" for the root)."""
        rel = self._rel
        if rel is not None:
            return rel
        names = []
        d: Optional[DirTask] = self
        while d is not None and d._rel is None:
            names.append(d.name)
            d = d.parent
        if d is not None and d._rel:
            names.append(d._rel)
        return b"/".join(reversed(names))

    def path(self, name: bytes) -> bytes:
        rel = self._rel
        if rel is None:  # (the property only past PATH_MAX: a call less per entry)
            rel = self.rel
        return rel + b"/" + name if rel else name


def _fsetid_in_initial_userns() -> bool:
    """A write clears setuid unless the writer has CAP_FSETID in the *initial*
    user namespace (the kernel's capable(), not ns_capable()): root in a
    container's user namespace does not, whatever its uid_map says.  The
    initial namespace is the one whose /proc inode is PROC_USER_INIT_INO.
    Where /proc cannot say: no."""
    try:
        if os.stat("/proc/self/ns/user").st_ino != _PROC_USER_INIT_INO:
            return False
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_FSETID & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


_CAP_FSETID = 4


def _on_remote_fs(fd: int) -> bool:
    """Is the directory ``fd`` on a network or FUSE file system?  (When fstatfs
    cannot say: yes.)"""
    try:
        return _syscall.fstatfs_type(fd) in A.REMOTE_FS_MAGICS
    except OSError:
        return True


def _others_may(euid: int, uid: int, mode: int) -> bool:
    """Engine.others_may_write of a directory owned by ``uid`` with ``mode``."""
    return (uid != euid and uid != 0) or bool(mode & 0o022)
_PROC_USER_INIT_INO = 0xEFFFFFFD  # (include/linux/proc_ns.h)


class Job:
    """One source entry on its way to the destination."""

    __slots__ = ("dmeta", "dst_err", "dst_fd", "dst_name", "dtype", "eng", "fresh",
                 "item_xattrs", "meta", "name", "nread", "parent", "rechecked", "slot",
                 "src_err", "src_fd", "tmpname", "waiting", "xattr_pairs", "xattrs")

    def __init__(self, eng: Engine, parent: DirTask, name: bytes, dtype: int,
                 dst_name: Optional[bytes] = None) -> None:
        self.eng = eng
        self.parent = parent
        self.name = name
        self.dst_name = name if dst_name is None else dst_name
        self.dtype = dtype
        self.meta: Optional[Metadata] = None
        self.dmeta: Optional[Metadata] = None
        self.waiting = 0
        self.slot = -1
        self.src_fd = -1
        self.dst_fd = -1
        self.dst_err = 0  # a failed destination open, while the source side was in flight
        self.src_err = 0  # a directory's failed statx, while its destination's was in flight
        self.nread = 0
        # the source compared with its statx again, after a read of another
        # size than it said, or ESPIPE (filecopy._reopen_checked, _compare_fd)
        self.rechecked = False
        self.tmpname = b""
        self.fresh = False  # a directory we created (so it starts empty)
        # -X / -A: xattrs to copy (False once the source is known to have none)
        self.xattrs = eng.copies_xattrs
        # ... read by name before a packed chain (filecopy._xattrs_by_name)
        self.xattr_pairs: Optional[List[Tuple[bytes, bytes]]] = None
        # -v -X/-A: the xattr names a replaced file's itemized line shows
        # (asked before the old file is gone: attrs.item_sent)
        self.item_xattrs: Optional[List[str]] = None

    @property
    def path(self) -> bytes:
        return self.parent.path(self.name)

    # -- stat phase -------------------------------------------------------------------
    def on_statx(self, idx: int, res: int, md: Any) -> None:
        if res < 0:
            self.eng.src_failed(self, -res, "stat")
            return
        self.meta = md
        self.eng.dispatch(self)

    def on_both(self, res: int, mem: Any, off: int, dres: int, dmem: Any, doff: int) -> None:
        """The source's and the destination's statx (raw, see Executor.statx_many),
        of an entry Engine._on_probed did not find unchanged at once."""
        eng = self.eng
        if res < 0:
            eng.src_failed(self, -res, "stat")
            return
        self.meta = _from_statx(mem, off)
        self.dmeta = _from_statx(dmem, doff) if dres >= 0 else None
        eng.dispatch(self)


def _unchanged(eng: Engine, mem: Any, off: int, dmem: Any, doff: int) -> int:
    """The common case of a re-run, decided before any Metadata exists: a
    regular file whose destination has its size, mtime, mode and ids (with -H:
    not one of several names).  Its size; -1 for anything else, which the
    general way (dispatch) decides -- reaching the same verdict on these."""
    a = _QUICK(mem, off)
    b = _QUICK(dmem, doff)
    if (a[2:] == b[2:] or (a[2:5] == b[2:5] and eng.opts.same_mtime(
            a[5] * SECOND_NS + a[6], b[5] * SECOND_NS + b[6]))) and a[3] & 0o170000 == 0o100000 \
            and a[0] & QUICK_MASK == QUICK_MASK and b[0] & QUICK_MASK == QUICK_MASK \
            and (a[1] == 1 or not eng.opts.hard_links):
        return int(a[4])
    return -1


class HardlinkGroup:
    __slots__ = ("deferred", "dst_dev", "dst_ino", "dst_mtime", "failed", "fd", "first",
                 "handle", "home", "linking", "ready", "remaining", "waiters")

    def __init__(self, remaining: int, first: bytes) -> None:
        self.remaining = remaining  # names of this inode not seen yet
        self.first = first  # the first name's path (-v: "hf+++++++++ later => first")
        self.linking = 0  # LINKATs using fd still in flight
        self.ready = False  # the first name is in place (fd set; or a dry run)
        self.fd = -1  # an fd of the published first copy, kept for linkat(AT_EMPTY_PATH)
        self.dst_ino = -1
        self.dst_mtime = -1  # of the first copy when its fd was let go
        self.dst_dev = -1  # ... and its st_dev
        # ... and its file handle (root: Engine.find_group_fd opens it by that)
        self.handle: Optional[bytes] = None
        self.failed = False
        # the names waiting for the first copy (the first name too while deferred)
        self.waiters: List[Job] = []
        # the first name's data waits for a later name with an up-to-date copy
        # (filecopy.start_file)
        self.deferred = False
        # where the first copy is (destination directory, name) while fd is
        # held: found again by name if the fd is let go (Engine.hold_group_fd)
        self.home: Optional[Tuple[bytes, bytes]] = None


class Engine:
    """Runs one copy with one executor.  Use :func:`pyuring.copy.copytree`."""

    def __init__(self, ex: Executor, opts: Options, stats: CopyStats,
                 report: Reporter, itemize: Optional[Reporter] = None) -> None:
        self.ex = ex
        self.opts = opts
        self.stats = stats
        self.report = report
        self.itemize = itemize
        self.stack: List[DirTask] = []
        self.active = 0
        self.interrupted = False
        self.abandoned = False  # operations were given up in flight (after STOP_GRACE)
        self.fatal: Optional[str] = None
        self.fatal_errno = 0  # (of the stop above)
        self.is_root = os.geteuid() == 0
        self.euid = os.geteuid()
        # does a WRITE leave a setuid/setgid bit set before it in place?
        self.write_keeps_suid = self.is_root and _fsetid_in_initial_userns()
        self.egid = os.getegid()
        self.groups: Set[int] = set(os.getgroups()) | {self.egid}
        self.umask = 0o022
        self.max_active = fd_budget(opts.max_files_in_flight)
        self.small_max = opts.small_file_max
        slot_size = self.small_max + 4096  # room for one byte more: growth detection
        self.slot_size = slot_size
        self.nslots = min(self.max_active, 256)
        self.pool = Buffer(self.nslots * slot_size)
        self.free_slots = list(range(self.nslots - 1, -1, -1))
        self.direct = getattr(ex, "direct_slots", 0) >= self.nslots
        self.hardlinks: Dict[Tuple[int, int], HardlinkGroup] = {}
        # groups holding their first copy's fd, oldest first (by id: a dict
        # keeps the order and removes in O(1))
        self.held: Dict[int, HardlinkGroup] = {}
        self.held_max = group_fd_budget()
        # -H, root: devices whose let-go first copies are found again by file
        # handle (True), or by name (False: no handles there, or FUSE/network,
        # where a handle may stop working once the inode leaves the cache);
        # None for all once opening one is refused (no CAP_DAC_READ_SEARCH)
        self.handle_devs: Optional[Dict[int, bool]] = {} if self.is_root else None
        self.dst_root_fd = -1  # the destination root: where a group's home is from
        # -H into a destination that existed: groups whose first name's data
        # waits for a later name that may have an up-to-date copy (by id,
        # oldest first); each holds its names' directories open, hence a cap
        self.deferred: Dict[int, HardlinkGroup] = {}
        self.defer_groups = False  # (set by the caller when a root existed)
        self.defer_max = self.max_active // 4
        self.opened: Dict[int, DirTask] = {}  # directories opened up (_open_up), by id
        self.tmpfile_ok = bool(O_TMPFILE)
        self.noatime = True  # (until an O_NOATIME open is refused: _on_dst_dir)
        # directory jobs whose MKDIRAT found one there (_on_dst_dir): their
        # "cd+++++++++" line is out, and no other comes for them
        self.late_dirs: Set[int] = set()
        # jobs that made a temporary name, until they finish: a stop that gives
        # up on operations in flight removes the names they leave (_abandon_stack)
        self.tmp_jobs: Dict[int, Job] = {}
        self.xattr_warned = False
        self.on_progress: Optional[Callable[[], None]] = None
        #: raises the io-wq cap if the loop keeps waiting (api sets it; see governor.py)
        self.governor: Optional[WorkerGovernor] = None
        self._xattr_names = self._xattr_filter()
        self.copies_xattrs = opts.xattrs or opts.acls
        # -X / -A: the xattrs are listed and read on this thread (1-3 direct
        # syscalls per file), which makes it the copy's bottleneck while the
        # io-wq worker has time to spare: the small files' source open and READ
        # go to the worker (shape (e) 0.95x; without -X/-A both threads are
        # busy and this costs 1.13x: docs/benchmarks.md)
        ex.offload(self.copies_xattrs)
        # a destination file with the source's size and mtime needs nothing more
        # when its mode and ids are the source's too (Engine._on_probed; with -X/-A
        # its xattrs are still compared: filecopy.start_file)
        self.quick_skip = not (opts.ignore_times or self.copies_xattrs)
        # a directory entry is opened before its statx (Engine._start_dir_entry)
        self.open_dirs = opts.recursive
        self.xattrat_ok = True  # listxattrat (Linux 6.13) answers: filecopy._xattrs_by_name
        self.xattr_reader: Optional[_syscall.XattrReader] = None
        # listxattrat's answers seen -> the names of them the copy keeps, ACLs last
        self.xattr_name_sets: Dict[bytes, List[bytes]] = {}
        self.xattrat_asked = self.xattrat_found = 0  # ... how often, and with xattrs
        # large files' data: inline on the sync backend, else worker threads
        # (bulk.py), started when the first large file turns up
        self.data = DataCopy(opts.data_path != "ring",
                             lambda: self.interrupted or self.fatal is not None)
        self.bulk: Optional[BulkPool] = None
        self.bulk_threads = opts.copy_threads if ex.kind == "uring" else 0
        # bound now, so that no module is imported (no stat of .py files) mid-walk
        from .attrs import (
            _ids_change,
            apply_dir_meta,
            copy_xattrs_by_name,
            final_mode,
            item_attrs,
            item_dir,
            item_made,
        )
        from .filecopy import link_to_group, release_waiters, send_deferred, start_file

        self._start_file = start_file
        self._link_to_group = link_to_group
        self._release_waiters = release_waiters
        self._send_deferred = send_deferred
        self._apply_dir_meta = apply_dir_meta
        self._item_attrs = item_attrs
        self._item_dir = item_dir
        self._item_made = item_made
        self._ids_change = _ids_change
        self._copy_xattrs_by_name = copy_xattrs_by_name
        self._final_mode = final_mode
        self._chunk_pool: List[Buffer] = []

    def _xattr_filter(self) -> Callable[[str], bool]:
        x, acl = self.opts.xattrs, self.opts.acls
        # As rsync: root copies every namespace but system.* (ACLs are -A's);
        # anyone else only user.* (security.* of theirs is not theirs to set)
        user_only = not self.is_root

        def keep(name: str) -> bool:
            if name.startswith("user."):
                return x
            if name.startswith("system.posix_acl_"):
                return acl
            if name.startswith("system.") or user_only or name in _XATTR_SKIP \
                    or name.startswith(_XATTR_SKIP_PREFIXES):
                return False
            return x

        return keep

    # ======================================================================
    # the loop
    # ======================================================================
    def run(self) -> None:
        ex = self.ex
        last_progress = time.monotonic()
        walked = False
        give_up = 0.0
        governor = self.governor
        while True:
            stopping = self.interrupted or self.fatal is not None
            if not stopping:
                self._feed()
            elif ex.busy():
                # Stopping: let what is in flight finish (no file is left
                # half-published), but not forever -- an open can wait on a
                # FIFO that was swapped in for a file.
                now = time.monotonic()
                if not give_up:
                    give_up = now + STOP_GRACE
                    ex.stop()
                    if self.bulk is not None:
                        self.bulk.stopping = True
                elif now > give_up:
                    ex.abandon()
                    self.abandoned = True
                    if self.bulk is not None:
                        self.bulk.abandon()
                    self.pool_keep()
                    break
                ex.run(wait=True, timeout=0.25)
                continue
            if not ex.busy():
                if self.deferred:
                    # the walk has nothing more in flight: the names still to
                    # come (if any) wait for these, or are outside the tree
                    self._end_deferred(stopping)
                    continue
                if stopping or not self.stack:
                    break
                if self.active >= self.max_active:
                    # every job waits and nothing is in flight: cannot happen
                    # unless a pipeline lost a callback; do not spin forever
                    self.stats.errors += 1
                    self.report(f"internal error: {self.active} entries stalled")
                    break
                continue
            ex.run(wait=True)
            if governor is not None:
                governor.tick()
            if self.on_progress is not None:
                now = time.monotonic()
                if now - last_progress > 0.25:
                    last_progress = now
                    # every directory listed, at two updates in a row (a
                    # subdirectory being opened is on no stack yet, for a moment)
                    self.stats.walk_done = not self.stack and walked
                    walked = not self.stack
                    self.on_progress()
        if self.interrupted or self.fatal is not None:
            self._abandon_stack()

    def _feed(self) -> None:
        stack = self.stack
        # entries whose destination name exists: probed in batches (_probe)
        # (all of the top directory's: it changes only when popped, after a flush)
        names: List[bytes] = []
        dtypes: List[int] = []
        dir_type = A.DT_DIR if self.open_dirs else -1  # (directories: _start_dir_entry)
        while self.active < self.max_active and stack:
            d = stack[-1]
            entry = next(d.entries, None)
            if entry is None:
                if names:
                    self._probe(d, names, names, dtypes)
                    names, dtypes = [], []
                stack.pop()
                d.listing_done = True
                self.maybe_finish_dir(d)
                continue
            name = entry.name
            if d.stale and name in d.stale:
                # a source entry with such a name: the destination's is its
                # copy, not our leftover -- compare it like any other
                d.stale.discard(name)
                if d.dst_names is not None:
                    d.dst_names.add(name)
            if d.rename is None and d.dst_names is not None and name in d.dst_names \
                    and entry.d_type != dir_type:
                d.pending += 1
                self.active += 1
                self.stats.files += 1
                names.append(name)
                dtypes.append(entry.d_type)
                if len(names) >= _PROBE_BATCH:
                    self._probe(d, names, names, dtypes)
                    names, dtypes = [], []
                continue
            if names:  # (submitted first: entries keep their order, as -H's first names)
                self._probe(d, names, names, dtypes)
                names, dtypes = [], []
            self.start_entry(d, name, entry.d_type,
                             d.rename.get(name) if d.rename is not None else None)
        if names:
            self._probe(stack[-1], names, names, dtypes)

    def start_entry(self, d: DirTask, name: bytes, dtype: int,
                    dst_name: Optional[bytes] = None) -> None:
        d.pending += 1
        self.active += 1
        self.stats.files += 1
        dname = name if dst_name is None else dst_name
        probe = d.probe_dst or (d.dst_names is not None and dname in d.dst_names)
        if dtype == A.DT_DIR and self.open_dirs:
            self._start_dir_entry(d, name, dst_name, probe)
            return
        if probe:
            self._probe(d, [name], [dname], [dtype])
            return
        job = Job(self, d, name, dtype, dst_name)
        ex = self.ex
        ex.statx(ex.chain(job.on_statx), 0, d.src_fd, name, A.AT_SYMLINK_NOFOLLOW)

    def _start_dir_entry(self, d: DirTask, name: bytes, dst_name: Optional[bytes],
                         probe: bool) -> None:
        """A directory (by its d_type) is opened first and judged by the opened
        one's statx, not by a statx of its name: another directory can be
        there by the time of an open -- swapped in by a writer of the parent,
        or uncovered by a mount going away, which needs no rename at all.
        Still one STATX per entry; the destination's, where it may exist, by name
        meanwhile."""
        job = Job(self, d, name, A.DT_DIR, dst_name)
        ex = self.ex
        job.waiting = 1
        if probe:
            job.waiting = 2
            ex.statx(ex.chain(lambda idx, res, md: self._on_dir_entry_dst(job, res, md)), 0,
                     d.dst_fd, job.dst_name, A.AT_SYMLINK_NOFOLLOW)
        ex.openat2(ex.chain(lambda idx, res, extra: self._on_dir_entry_open(job, res)), 0,
                   d.src_fd, name, _DIR_FLAGS, 0, RESOLVE_SAFE)

    def _on_dir_entry_open(self, job: Job, res: int) -> None:
        ex = self.ex
        cid = ex.chain(lambda idx, r, md: self._on_dir_entry_src(job, r, md))
        if res >= 0:
            job.src_fd = res
            ex.statx(cid, 0, res, b"", A.AT_EMPTY_PATH | A.AT_SYMLINK_NOFOLLOW)
        else:
            # no longer a directory, gone, or not ours to open: its statx by
            # name decides, the general way (start_dir opens a directory again
            # and reports why it cannot)
            ex.statx(cid, 0, job.parent.src_fd, job.name, A.AT_SYMLINK_NOFOLLOW)

    def _on_dir_entry_src(self, job: Job, res: int, md: Optional[Metadata]) -> None:
        if res >= 0:
            job.meta = md
        else:
            job.src_err = -res
        self._dir_entry_waited(job)

    def _on_dir_entry_dst(self, job: Job, res: int, md: Optional[Metadata]) -> None:
        job.dmeta = md if res >= 0 else None
        self._dir_entry_waited(job)

    def _dir_entry_waited(self, job: Job) -> None:
        job.waiting -= 1
        if job.waiting:
            return
        if job.src_err or job.meta is None:
            self.src_failed(job, job.src_err or errno.EIO,
                            "stat directory" if job.src_fd >= 0 else "stat")
        else:
            self.dispatch(job)

    def _probe(self, d: DirTask, names: List[bytes], dnames: List[bytes],
               dtypes: List[int]) -> None:
        """Source and destination statx of entries counted as started, one
        callback for all of them (an entry's two statx in a re-run are most of
        its cost: no Job, no callback of its own for an unchanged file)."""
        self.ex.statx_many(partial(self._on_probed, d, names, dnames, dtypes), d.src_fd,
                           d.dst_fd, names, dnames, A.AT_SYMLINK_NOFOLLOW)

    def _on_probed(self, d: DirTask, names: List[bytes], dnames: List[bytes],
                   dtypes: List[int], results: List[int], mems: List[Any],
                   offs: List[int]) -> None:
        same = 0
        size = 0
        quick = self.quick_skip
        for k, name in enumerate(names):
            i = 2 * k
            res, dres = results[i], results[i + 1]
            if quick and res >= 0 and dres >= 0:
                n = _unchanged(self, mems[i], offs[i], mems[i + 1], offs[i + 1])
                if n >= 0:
                    same += 1
                    size += n
                    continue
            dname = dnames[k]
            job = Job(self, d, name, dtypes[k], None if dname is name else dname)
            job.on_both(res, mems[i], offs[i], dres, mems[i + 1], offs[i + 1])
        if same:
            st = self.stats
            st.regular_files += same
            st.bytes_total += size
            st.unchanged += same
            # (what finish() does for each: the jobs above could not end d,
            # these were still counted in it)
            d.pending -= same
            self.active -= same
            if d.pending == 0 and d.listing_done:
                self.maybe_finish_dir(d)

    def finish(self, job: Job) -> None:
        """A job is over (done, failed or skipped)."""
        if job.slot >= 0:
            self.free_slots.append(job.slot)
            job.slot = -1
        d = job.parent
        d.pending -= 1
        self.active -= 1
        if self.tmp_jobs:
            self.tmp_jobs.pop(id(job), None)
        if d.pending == 0 and d.listing_done:
            self.maybe_finish_dir(d)

    # ======================================================================
    # errors
    # ======================================================================
    def src_failed(self, job: Job, err: int, what: str) -> None:
        if err == errno.EINTR and self.interrupted:
            pass  # the stop ended a wait (an open of a FIFO): not an error of its own
        elif (err, what) in _VANISHED:
            self.stats.vanished += 1
            self.report(f'file has vanished: "{show(job.path)}"')
        else:
            self.stats.errors += 1
            self.report(f'cannot {what} "{show(job.path)}": {_errtext(err)}')
        self.drop_job(job)

    def dst_failed(self, job: Job, err: int, what: str) -> None:
        self.dst_error(job, err, what)
        self.drop_job(job)

    def drop_job(self, job: Job) -> None:
        """End a job that failed (and has reported): its fds go, and when it was
        the first name of a hard-link group still waiting for it, the names
        parked on the group are served (each copied on its own) -- or, when the
        copy is stopping, ended with it."""
        self.close_job_fds(job)
        group = self._group_of(job) if self.opts.hard_links else None
        if group is not None and not group.ready and not group.failed \
                and job not in group.waiters:
            group.failed = True
            if self.interrupted or self.fatal is not None:
                waiters, group.waiters = group.waiters, []
                for w in waiters:
                    self.finish(w)
            else:
                self._release_waiters(self, group)
        self.finish(job)

    def dst_error(self, job: Job, err: int, what: str) -> None:
        """Count and report a failure to change the destination.  The first of
        ENOSPC / EDQUOT / EROFS stops the copy; the entries still in flight then
        fail the same way and are not reported one by one."""
        job.parent.touched = True  # a failed change may still have changed it
        self.stats.errors += 1
        if err in _FATAL_ERRNOS:
            if self.fatal is not None:
                self.stats.io_errors += 1
                return
            if self._stops(err):
                self.stats.io_errors += 1
                self._stop_for(err)
        elif err in _IO_ERRNOS and what in ("write", "fsync"):
            # (exit 11 is rsync's for data it could not write; a mknod or an
            # open that fails with EIO -- a FUSE file system without FIFOs --
            # is an entry not copied, 23)
            self.stats.io_errors += 1
        self.report(f'cannot {what} "{show(job.path)}": {_errtext(err)}')

    def attr_error(self, message: str, exc: OSError) -> None:
        """Count and report a failure to set attributes (``message`` says of
        what; the error is added).  EROFS -- a file system remounted read-only
        after an error -- stops the copy as in dst_error.  (Not ENOSPC: ext4
        says it of an xattr too big for the inode, not only of a full disk.)
        Once the copy has stopped for one of dst_error's reasons, later
        failures of those kinds are counted, not listed one by one."""
        err = exc.errno or errno.EIO
        self.stats.errors += 1
        if err in _FATAL_ERRNOS and self.fatal is not None:
            self.stats.io_errors += 1
            return  # (the stop's own cause, said once)
        if err == errno.EROFS and self._stops(err):
            self.stats.io_errors += 1
            self._stop_for(err)
        self.report(f"{message}: {_errtext(err)}")

    def _stops(self, err: int) -> bool:
        """Does this ENOSPC / EDQUOT / EROFS end the copy?  A full disk or
        quota does.  EROFS only where the destination root's own file system
        refuses writes too (a remount after an error): a read-only bind mount
        or snapshot somewhere below DST refuses only what goes there, and the
        rest is copied (rsync: one line per entry, exit 23) -- stopping would
        leave every later run stopping at the same place.  Asked by opening
        an O_TMPFILE in the root (nothing is left behind; nothing else tells:
        ext4's errors=remount-ro no longer sets the read-only flag statvfs
        shows, since Linux 6.10)."""
        if err != errno.EROFS or self.dst_root_fd < 0:
            return True
        self.ex.direct_syscalls["openat"] += 1
        try:
            fd = os.open(".", O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600,
                         dir_fd=self.dst_root_fd)
        except OSError as exc:
            if exc.errno == errno.EROFS:
                return True
            # no O_TMPFILE there (NFS, CIFS, FUSE): the mount's own flag
            self.ex.direct_syscalls["fstatvfs"] += 1
            try:
                return bool(os.fstatvfs(self.dst_root_fd).f_flag & os.ST_RDONLY)
            except OSError:
                return True
        self.ex.direct_syscalls["close"] += 1
        os.close(fd)
        return False

    def _stop_for(self, err: int) -> None:
        self.fatal_errno = err
        self.fatal = (f"stopping: the destination is unusable ({_errtext(err)}); "
                      f"no file in place is partly written, a re-run completes the copy")

    def close_job_fds(self, job: Job) -> None:
        if job.src_fd >= 0:
            self.ex.close_fd(0, 0, job.src_fd, SKIP)
            job.src_fd = -1
        if job.dst_fd >= 0:
            if job.tmpname:
                # closed before its name goes: FUSE (libfuse) keeps an open
                # file's unlinked name under another (.fuse_hidden*), which a
                # full disk refuses -- exfat-fuse then answers the unlink ENOSPC
                self.ex.direct_syscalls["close"] += 1
                try:
                    os.close(job.dst_fd)
                except OSError:
                    pass  # (NFS, FUSE: a late write error; the fd is gone all the same)
            else:
                self.ex.close_fd(0, 0, job.dst_fd, SKIP)
            job.dst_fd = -1
        if job.tmpname:
            self.unlink_tmp(job.parent, job.tmpname)
            job.tmpname = b""

    def unlink_tmp(self, d: DirTask, name: bytes) -> None:
        """Remove a temporary name at once.  (Not as a background UNLINKAT:
        io-wq resolves the directory fd only when it runs it, and by then the
        directory -- its job done -- or the copy may have closed it.)"""
        if d.dst_fd < 0:
            return
        self.ex.direct_syscalls["unlinkat"] += 1
        try:
            os.unlink(name, dir_fd=d.dst_fd)
        except OSError:
            pass  # (gone already; or left for the next run, which removes it)

    # ======================================================================
    # dispatch by type
    # ======================================================================
    def first_name(self, job: Job) -> bytes:
        """A hard-link group's first name, kept for -v's "=> first" only (the
        table lives as long as the copy)."""
        return job.path if self.itemize is not None else b""

    def _check_empty_dir(self, job: Job) -> None:
        """-n: would rmdir of the destination directory ``job`` names succeed?
        Raises ENOTEMPTY as it would.  (Opened as one name below the directory
        fd, no symlink followed, and only read.)"""
        d, dm = job.parent, job.dmeta
        if dm is not None and dm.nlink > 2:  # (a subdirectory's ".." counts)
            raise OSError(errno.ENOTEMPTY, os.strerror(errno.ENOTEMPTY))
        if d.dst_fd < 0:
            return
        self.ex.direct_syscalls["openat"] += 1
        try:
            fd = os.open(job.dst_name,
                         os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=d.dst_fd)
        except (PermissionError, NotADirectoryError):
            return  # (unreadable: rmdir needs none of that; the real run will tell)
        try:
            self.ex.direct_syscalls["getdents64"] += 1
            if os.listdir(fd):
                raise OSError(errno.ENOTEMPTY, os.strerror(errno.ENOTEMPTY))
        finally:
            os.close(fd)

    def dispatch(self, job: Job) -> None:
        md = job.meta
        assert md is not None
        t = md.mode & 0o170000
        opts = self.opts
        dm = job.dmeta
        if dm is not None and dm.mode & 0o170000 == stat.S_IFDIR and t != stat.S_IFDIR \
                and not self._skipped(t):
            # a directory where the source has something else: rsync removes
            # it when it is empty, and reports it otherwise (a dry run too: it
            # must say what the real run will do)
            try:
                if opts.dry_run:
                    self._check_empty_dir(job)
                else:
                    job.parent.touched = True
                    self.ex.direct_syscalls["unlinkat"] += 1
                    os.rmdir(job.dst_name, dir_fd=job.parent.dst_fd)
            except OSError as exc:
                self.stats.errors += 1
                self.report(f'cannot replace directory "{show(job.path)}": '
                            f"{_errtext(exc.errno or errno.EIO)}")
                self.finish(job)
                return
            job.dmeta = None
        if t == stat.S_IFREG:
            self.stats.regular_files += 1
            self.stats.bytes_total += md.size
            self._start_file(self, job)
        elif t == stat.S_IFDIR:
            if not opts.recursive:
                self.stats.skipped += 1
                self.report(f'skipping directory "{show(job.path)}"')
                self.finish(job)
                return
            self.stats.dirs += 1
            self.start_dir(job)
        else:
            if t == stat.S_IFLNK:
                self.stats.symlinks += 1
            else:
                self.stats.specials += 1
            if self._skipped(t):
                self.stats.skipped += 1
                self.report(f'skipping non-regular file "{show(job.path)}"')
                self.finish(job)
            elif t == stat.S_IFLNK:
                self.start_symlink(job)
            else:
                self.start_special(job)

    def _skipped(self, t: int) -> bool:
        """Does -l / --devices / --specials leave out a non-directory of type
        ``t``?  (Devices also without root, which alone may make them: rsync
        skips them then too, and exits 0.)"""
        o = self.opts
        if t == stat.S_IFLNK:
            return not o.links
        if t in (stat.S_IFCHR, stat.S_IFBLK):
            return not (o.devices and self.is_root)
        return t != stat.S_IFREG and not o.specials

    # ======================================================================
    # directories
    # ======================================================================
    def start_dir(self, job: Job) -> None:
        d, ex = job.parent, self.ex
        dm = job.dmeta
        exists = dm is not None and dm.is_dir()
        job.fresh = not exists
        if not exists:
            self.item(b"cd+++++++++ ", job.path + b"/")
        job.waiting = 1
        if exists or not self.opts.dry_run:
            job.waiting = 2
            # (in turn, not linked: a failing UNLINKAT or MKDIRAT does not break
            # a link -- see executor._chain_end_only)
            if exists:
                self._dst_dir_step(job, _DIR_OPEN)
            elif dm is not None:
                self._dst_dir_step(job, _DIR_UNLINK)  # a non-directory is in the way
            else:
                self._dst_dir_step(job, _DIR_MKDIR)
        if job.src_fd >= 0:  # opened, and judged by that, in _start_dir_entry
            self._dir_waited(job)
            return
        cid = ex.chain(lambda idx, res, extra: self._on_src_dir(job, res))
        ex.openat2(cid, 0, d.src_fd, job.name, _DIR_FLAGS, 0, RESOLVE_SAFE)

    def _dst_dir_step(self, job: Job, step: int) -> None:
        """Replace what is in the way (rsync does), make the directory, open it."""
        d, ex = job.parent, self.ex
        noat = self._dst_noatime(job) if step == _DIR_OPEN else 0
        cid = ex.chain(lambda idx, res, extra: self._on_dst_dir(job, step, res, noat))
        if step == _DIR_UNLINK:
            ex.unlinkat(cid, 0, d.dst_fd, job.dst_name, 0)
        elif step == _DIR_MKDIR:
            ex.mkdirat(cid, 0, d.dst_fd, job.dst_name, 0o700)
        else:
            ex.openat2(cid, 0, d.dst_fd, job.dst_name, _DIR_FLAGS | noat, 0,
                       RESOLVE_SAFE)

    def _dst_noatime(self, job: Job) -> int:
        """O_NOATIME for an existing destination directory the copy lists: a
        re-run must not move the atime the copy gave it (relatime would, on
        the first read a day later).  For its owner and root only."""
        dm = job.dmeta
        if self.noatime and dm is not None and (self.is_root or dm.uid == self.euid):
            return O_NOATIME
        return 0

    def _on_dst_dir(self, job: Job, idx: int, res: int, noat: int = 0) -> None:
        if res >= 0 and idx != _DIR_OPEN:
            self._dst_dir_step(job, idx + 1)
            return
        if res == -errno.EPERM and idx == _DIR_OPEN and noat:
            self.noatime = False  # (root of a user namespace that does not map the owner)
            self._dst_dir_step(job, _DIR_OPEN)
            return
        if res == -errno.EEXIST and idx == _DIR_MKDIR:
            # A directory of that name came after the listing -- another
            # copy's mkdir -- or the listing had it under another case (a
            # case-insensitive destination: exFAT, NTFS, ext4 casefold): it
            # is gone into as one that was there, as rsync and cp do.  (A
            # non-directory there fails the open: ENOTDIR.)  What the
            # listing saw there, if anything, was removed (_DIR_UNLINK): its
            # statx says nothing of this one, the opened one's fstat does.
            job.fresh = False
            job.dmeta = None
            self.late_dirs.add(id(job))
            self._dst_dir_step(job, _DIR_OPEN)
            return
        if res == -errno.EACCES and idx == _DIR_OPEN:
            res = self._open_unreadable_dir(job)
        if res >= 0 and job.dmeta is None and not job.fresh:
            # (the one above: its owner, mode and setgid bit, as a listed one's)
            self.ex.direct_syscalls["fstat"] += 1
            job.dmeta = Metadata.from_stat(os.fstat(res))
        if res < 0:
            what = {_DIR_UNLINK: "replace directory", _DIR_MKDIR: "mkdir directory",
                    _DIR_OPEN: "open destination directory"}[idx]
            self.dst_error(job, -res, what)
            job.dst_fd = -2  # failed
        else:
            job.dst_fd = res
        self._dir_waited(job)

    def _open_unreadable_dir(self, job: Job) -> int:
        """An existing destination directory of ours without u+r cannot be
        opened for reading (non-root): give it u+rwx first, through an O_PATH
        fd checked to be that directory (_open_up registers it, to be given its
        mode back at the end).  The fd, or -errno (-ESTALE: swapped meanwhile)."""
        dm = job.dmeta
        if self.is_root or dm is None or dm.uid != self.euid or self.opts.dry_run:
            return -errno.EACCES
        d = job.parent
        try:
            fd = self._open_in(d.dst_fd, job.dst_name,
                               os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return -errno.EACCES
        try:
            return _reopen_widened(
                self.ex, fd, (dm.ino, dm.dev), 0o700,
                lambda: self._open_in(d.dst_fd, job.dst_name, _DIR_FLAGS | O_NOATIME))[0]
        except OSError as exc:
            return -(exc.errno or errno.EACCES)
        finally:
            self.ex.direct_syscalls["close"] += 1
            os.close(fd)

    def _on_src_dir(self, job: Job, res: int) -> None:
        if res < 0:
            job.src_fd = -2
            self._dir_failed(job.path, -res, "open directory", True)
        else:
            job.src_fd = res
            # (reached for a directory that was statx'd by name: no d_type, a
            # root entry, a fallback of _on_dir_entry_open) Another directory
            # may be there since that statx, swapped in or uncovered by a mount
            # going away: the opened one's own statx decides its attributes and
            # how far its entries are trusted (DirTask.shared).
            cid = self.ex.chain(lambda idx, r, md: self._on_src_dir_statx(job, r, md))
            self.ex.statx(cid, 0, res, b"", A.AT_EMPTY_PATH | A.AT_SYMLINK_NOFOLLOW)
            return
        self._dir_waited(job)

    def _on_src_dir_statx(self, job: Job, res: int, md: Optional[Metadata]) -> None:
        if res >= 0 and md is not None:
            job.meta = md
        else:
            self.stats.errors += 1
            self.report(f'cannot stat directory "{show(job.path)}": {_errtext(-res)}')
            self.ex.close_fd(0, 0, job.src_fd, SKIP)
            job.src_fd = -2
        self._dir_waited(job)

    def _dir_waited(self, job: Job) -> None:
        """One of a directory job's two sides (source, destination) is done."""
        job.waiting -= 1
        if not job.waiting:
            self._dir_ready(job)

    def _dir_ready(self, job: Job) -> None:
        dry = self.opts.dry_run
        late = bool(self.late_dirs) and id(job) in self.late_dirs
        if late:
            self.late_dirs.discard(id(job))
        if job.src_fd < 0 or (job.dst_fd < 0 and not dry):
            if job.src_fd >= 0:
                self.ex.close_fd(0, 0, job.src_fd, SKIP)
            if job.dst_fd >= 0:
                dm = job.dmeta
                if dm is not None and not dm.mode & 0o400 and not self.is_root:
                    # opened only through _open_unreadable_dir's u+rwx: give it back
                    try:
                        self.ex.fchmod(job.dst_fd, dm.mode & 0o7777)
                    except OSError:
                        pass
                elif job.src_fd == -2 and job.meta is not None and job.fresh:
                    self._unlisted_dir_meta(job, job.meta)
                self.ex.close_fd(0, 0, job.dst_fd, SKIP)
            job.src_fd = job.dst_fd = -1
            self.finish(job)
            return
        child = DirTask(job.parent, job.src_fd, max(job.dst_fd, -1), b"", job.meta,
                        job.dst_name)
        if job.meta is not None:  # (the opened directory's own statx)
            self.judge_src(child, job.meta, job.parent)
        if job.fresh:  # (made 0700 by the copy, in its parent)
            child.dst_private = job.parent.dst_private
            child.dst_dev = job.parent.dst_dev
        elif job.parent.dst_private and child.dst_fd >= 0:
            # the opened directory's own owner and mode, not its statx by name:
            # a mount that came or went in between needs no rename in the parent
            self.ex.direct_syscalls["fstat"] += 1
            st = os.fstat(child.dst_fd)
            child.dst_dev = st.st_dev
            child.dst_private = st.st_dev == job.parent.dst_dev \
                and not _others_may(self.euid, st.st_uid, st.st_mode)
        job.src_fd = job.dst_fd = -1
        parent = job.parent
        if job.fresh:
            parent.touched = True  # it has a new subdirectory
            # mkdir in a setgid directory inherits the bit and the group
            child.dst_sgid = parent.dst_sgid
            child.dst_gid_new = parent.dst_gid_new if parent.dst_sgid else self.egid
        elif job.dmeta is not None:
            child.dst_meta = job.dmeta
            child.dst_sgid = bool(job.dmeta.mode & stat.S_ISGID)
            child.dst_gid_new = job.dmeta.gid if child.dst_sgid else self.egid
        else:
            child.dst_gid_new = self.egid
        if not job.fresh and child.dst_fd >= 0:
            self._list_dst(child)
            if job.dmeta is not None:
                self._open_up(child, job.dmeta.mode, job.dmeta.uid)
            child.acl_inherit = self.default_acl(child.dst_fd)
        else:
            # (mkdir in a directory with a default ACL inherits it)
            child.acl_inherit = parent.acl_inherit
        child.itemized = late  # (its line is out: start_dir)
        self._item_dir_first(child)
        child.entries = self.list_src(child)
        # the job is over as an entry; the directory stays pending in its parent
        job.parent.pending += 1
        self.finish(job)
        self.stack.append(child)

    def _unlisted_dir_meta(self, job: Job, md: Metadata) -> None:
        """A source directory its statx showed but that could not be opened
        (a non-root copy of mode 0311, say: reported): the copy made is empty,
        and gets the source's mode and times, as cp and rsync give it."""
        try:
            self.ex.fchmod(job.dst_fd, self._final_mode(self, md, None))
            if self.opts.times:
                self.ex.futimens(job.dst_fd, md.atime_ns, md.mtime_ns)
        except OSError as exc:
            self.attr_error(f'cannot set attributes of directory "{show(job.path)}"', exc)

    def _open_up(self, d: DirTask, mode: int, uid: int) -> None:
        """Without root's override nothing can be added to a directory that
        lacks u+wx (nor listed without u+r): a non-root copy into an existing
        one it owns (``mode``, ``uid``: what it has now) adds u+rwx for the time
        it works in there, as rsync does.  At the end the directory gets the
        source's mode (-p) or its own back (_give_back)."""
        if self.is_root or mode & 0o700 == 0o700 or uid != self.euid or d.dst_fd < 0 \
                or self.opts.dry_run:
            return
        now = (mode & 0o7777) | 0o700
        try:
            self.ex.fchmod(d.dst_fd, now)
        except OSError:
            return  # (the entries that cannot be made will say why)
        d.dst_mode_now, d.dst_mode_back = now, mode & 0o7777
        self.opened[id(d)] = d

    def _give_back(self, d: DirTask) -> None:
        """The mode an opened-up directory had, unless apply_dir_meta gave it
        its final one (no -p, no source metadata, a failure, a stop)."""
        self.opened.pop(id(d), None)
        if d.dst_mode_now < 0 or d.dst_fd < 0:
            return
        d.dst_mode_now = -1
        try:
            self.ex.fchmod(d.dst_fd, d.dst_mode_back)
        except OSError as exc:
            self.attr_error(f'cannot set attributes of directory "{show(d.rel or b".")}"', exc)

    def _list_dst(self, d: DirTask) -> None:
        names: Set[bytes] = set()
        for data, n in self._read_dirents(d, False):
            got = dirent_names(data, n)
            if _TMP_MARK in data:
                for name in got:
                    if _TMP_MARK in name and is_tmp_name(name) and tmp_owner_gone(name):
                        # a temporary name left by an interrupted run: removed when
                        # the directory is done, unless the source has an entry so named
                        if d.stale is None:
                            d.stale = set()
                        d.stale.add(name)
                got = [name for name in got if not (d.stale and name in d.stale)]
            names.update(got)
        names.discard(b".")
        names.discard(b"..")
        d.dst_names = names

    def list_src(self, d: DirTask) -> Iterator[DirEntry]:
        return unique_entries(self._read_dirents(d, True), parse_dirents)

    def _read_dirents(self, d: DirTask, source: bool) -> Iterator[Tuple[bytes, int]]:
        """The getdents64 answers of d's source or destination directory, one
        buffer's worth at a time; a failure is reported and ends the listing."""
        fd = d.src_fd if source else d.dst_fd
        buf = bytearray(_DIRENT_BUF)
        anchor = _syscall.ctypes.c_char.from_buffer(buf)
        addr = _syscall.ctypes.addressof(anchor)
        ex = self.ex
        while True:
            try:
                n = ex.getdents(fd, _syscall.void_p(addr), _DIRENT_BUF)
            except OSError as exc:
                self._dir_failed(d.rel or b".", exc.errno or errno.EIO,
                                 "read directory" if source else "read destination directory",
                                 source)
                return
            if n <= 0:
                return
            yield bytes(buf[:n]), n

    def _dir_failed(self, path: bytes, err: int, what: str, source: bool) -> None:
        """A source directory gone (ENOENT: removed since it was listed, or
        since it was opened; or another type at its name when opened) has
        vanished, as rsync counts it (exit 24); anything else is an error."""
        if err == errno.EINTR and self.interrupted:
            return  # the stop ended a wait: not an error of its own
        if source and (err == errno.ENOENT or (err in (errno.ENOTDIR, errno.ELOOP)
                                               and what == "open directory")):
            # (ENOTDIR, ELOOP: another type under the name now, a file or a symlink)
            self.stats.vanished += 1
            self.report(f'directory has vanished: "{show(path)}"')
        else:
            self.stats.errors += 1
            self.report(f'cannot {what} "{show(path)}": {_errtext(err)}')

    def maybe_finish_dir(self, d: DirTask) -> None:
        while d.pending == 0 and d.listing_done:
            parent = d.parent
            self._finish_dir(d)
            if parent is None:
                return
            parent.pending -= 1
            d = parent

    def _finish_dir(self, d: DirTask) -> None:
        if d.stale and d.dst_fd >= 0:
            # (-v lists them as rsync lists what it deletes: a name of that
            # shape that is not a leftover of ours is at least not lost unsaid)
            for name in sorted(d.stale):
                if self.opts.dry_run:
                    self.item(b"*deleting   ", d.path(name))
                    continue
                d.touched = True
                try:
                    self.ex.direct_syscalls["unlinkat"] += 1
                    os.unlink(name, dir_fd=d.dst_fd)
                except OSError:
                    continue
                self.item(b"*deleting   ", d.path(name))
        md = d.meta
        # (also after a stop -- Ctrl-C or a full disk, once the entries in
        # flight have all ended: a directory the copy made keeps 0700 only
        # while it works there.  Not after a read-only remount: each
        # directory would only fail again; nor once requests were given up:
        # a late one might still change it.)
        if d.apply_meta and md is not None and not self.opts.dry_run and d.dst_fd >= 0 \
                and self.fatal_errno != errno.EROFS and not self.abandoned:
            self._apply_dir_meta(self, d, md)
        self._give_back(d)
        if d.owns_fds:
            if d.src_fd >= 0:
                self.ex.close_fd(0, 0, d.src_fd, SKIP)
            if d.dst_fd >= 0:
                self.ex.close_fd(0, 0, d.dst_fd, SKIP)
        d.src_fd = d.dst_fd = -1

    def _abandon_stack(self) -> None:
        """The copy stopped early: stop listing the open directories, and close
        them once nothing of theirs is in flight (deepest first, so that a
        parent's count of pending entries has dropped when its turn comes).
        After operations were given up in flight (abandoned) they stay open: a
        request still queued may name them."""
        stack, self.stack = self.stack, []
        for d in reversed(stack):
            d.listing_done = True
            if not self.abandoned:
                self.maybe_finish_dir(d)
        if self.abandoned:  # (the directories stay open: their modes can be given back)
            # the temporary names of files whose source open still waited (on
            # a FIFO): nothing will rename them now
            for job in self.tmp_jobs.values():
                if job.tmpname:
                    self.unlink_tmp(job.parent, job.tmpname)
                    job.tmpname = b""
            for d in list(self.opened.values()):
                self._give_back(d)

    # ======================================================================
    # symlinks and special files
    # ======================================================================
    def dispatch_unlinked(self, job: Job) -> None:
        """A symlink or special file whose hard-link group failed: copy it alone."""
        md = job.meta
        assert md is not None
        # (the group is marked failed: _hardlink_member makes this one a new first)
        if md.type == stat.S_IFLNK:
            self.start_symlink(job)
        else:
            self.start_special(job)

    def _hardlink_member(self, job: Job) -> bool:
        """-H for a symlink or special file: link it to an earlier name when there
        is one (True: handled); otherwise it becomes the group's first."""
        md = job.meta
        assert md is not None
        key = (md.dev, md.ino)
        group = self.hardlinks.get(key)
        if group is not None and not group.failed:
            self._link_to_group(self, job, group)
            return True
        self.hardlinks[key] = HardlinkGroup(md.nlink - 1, self.first_name(job))
        return False

    def may_defer(self) -> bool:
        return self.defer_groups and len(self.deferred) < self.defer_max \
            and not self.opts.ignore_times

    def defer(self, group: HardlinkGroup) -> None:
        group.deferred = True
        self.deferred[id(group)] = group

    def undefer(self, group: HardlinkGroup) -> None:
        group.deferred = False
        del self.deferred[id(group)]

    def _end_deferred(self, stopping: bool) -> None:
        """Send the deferred groups' data (their names waiting are linked to
        it); after a stop, only end their jobs."""
        for group in list(self.deferred.values()):
            if stopping:
                self.undefer(group)
                waiters, group.waiters = group.waiters, []
                group.failed = True
                for job in waiters:
                    self.finish(job)
            else:
                self._send_deferred(self, group)

    def _group_of(self, job: Job) -> Optional[HardlinkGroup]:
        md = job.meta
        if md is None or not self.opts.hard_links or md.nlink < 2 or md.is_dir():
            return None
        return self.hardlinks.get((md.dev, md.ino))

    def hold_group_fd(self, group: HardlinkGroup, fd: int, rel: bytes, name: bytes) -> None:
        """Keep ``fd`` of a group's first copy (``name`` in the destination
        directory ``rel``) for the LINKATs of its other names.  nlink counts
        names outside the tree too (snapshots), so a group may never complete:
        past ``held_max`` such fds the oldest idle one is closed, and its first
        copy found again by name when another name turns up."""
        group.fd = fd
        group.home = (rel, name)
        held = self.held
        held[id(group)] = group
        if len(held) <= self.held_max:
            return
        for old in held.values():
            if old.linking == 0 and old is not group:
                break
        else:
            return  # (every one is in use by a LINKAT in flight)
        del held[id(old)]
        ex = self.ex
        try:
            # to know it again: an inode number alone may have been reused
            ex.direct_syscalls["fstat"] += 1
            st = os.fstat(old.fd)
            old.dst_ino, old.dst_mtime, old.dst_dev = st.st_ino, st.st_mtime_ns, st.st_dev
        except OSError:
            old.failed = True
        else:
            if old.handle is None:
                self._keep_handle(old, st.st_dev)
        ex.close_fd(0, 0, old.fd, SKIP)
        old.fd = -1

    def _keep_handle(self, group: HardlinkGroup, dev: int) -> None:
        """Record the file handle of the first copy whose fd is let go, where
        find_group_fd can open it by that (see handle_devs)."""
        devs = self.handle_devs
        if devs is None:
            return
        usable = devs.get(dev)
        if usable is None:
            self.ex.direct_syscalls["fstatfs"] += 1
            usable = devs[dev] = not _on_remote_fs(group.fd)
        if not usable:
            return
        self.ex.direct_syscalls["name_to_handle_at"] += 1
        try:
            group.handle = _syscall.name_to_handle(group.fd)
        except OSError:
            devs[dev] = False  # (EOPNOTSUPP, EOVERFLOW: by name there)

    def let_go_group(self, group: HardlinkGroup) -> None:
        """The group is complete (or failed): no fd of it is kept."""
        self.held.pop(id(group), None)
        group.home = None

    def find_group_fd(self, group: HardlinkGroup, mount_fd: int) -> bool:
        """Open the first copy of a group whose fd was let go: by its file
        handle (root; ``mount_fd``: the directory its next name goes to), which
        no other file has, not even one given its inode number again; else by
        name, one name at a time from the destination root (each component
        with RESOLVE_SAFE, as every open below the roots).  Only if it is
        still that inode, with the mtime it had."""
        home = group.home
        if home is None:
            return False
        rel, name = home
        count = self.ex.direct_syscalls
        if group.handle is not None and mount_fd >= 0 and self.handle_devs is not None:
            found = self._open_group_handle(group, mount_fd)
            if found is not None:
                if found < 0:
                    return False
                self.hold_group_fd(group, found, rel, name)
                return True
        fd = self.dst_root_fd
        opened: List[int] = []
        try:
            for part in rel.split(b"/") if rel else ():
                fd = self._open_in(fd, part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
                opened.append(fd)
            fd = self._open_in(fd, name, os.O_PATH | os.O_NOFOLLOW)
            opened.append(fd)
            count["fstat"] += 1
            st = os.fstat(fd)
            if (st.st_ino, st.st_mtime_ns) != (group.dst_ino, group.dst_mtime):
                return False
            opened.pop()  # (kept)
        except OSError:
            return False
        finally:
            for f in opened:
                count["close"] += 1
                os.close(f)
        self.hold_group_fd(group, fd, rel, name)
        return True

    def _open_group_handle(self, group: HardlinkGroup, mount_fd: int) -> Optional[int]:
        """find_group_fd by handle: an O_PATH fd of the first copy, -1 where it
        is gone or changed, None where handles cannot be opened here (no
        CAP_DAC_READ_SEARCH in a user namespace, say: then by name)."""
        assert group.handle is not None
        count = self.ex.direct_syscalls
        count["open_by_handle_at"] += 1
        try:
            fd = _syscall.open_by_handle(mount_fd, group.handle, os.O_PATH | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP):
                self.handle_devs = None  # (by name from now on)
                return None
            return -1  # (ESTALE: it is gone)
        try:
            count["fstat"] += 1
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino, st.st_mtime_ns) == \
                    (group.dst_dev, group.dst_ino, group.dst_mtime) and st.st_nlink:
                return fd
        except OSError:
            pass
        count["close"] += 1
        os.close(fd)
        return -1

    def _open_in(self, dfd: int, name: bytes, flags: int) -> int:
        """openat2 of one name (synchronous).  A directory of the copy's that was
        given back a mode without u+x (no -p) is searched with u+x added for
        the moment, as the copy itself did while it worked in there."""
        count = self.ex.direct_syscalls
        count["openat2"] += 1
        try:
            return _syscall.openat2(dfd, name, flags | os.O_CLOEXEC, 0, RESOLVE_SAFE)
        except PermissionError:
            if self.is_root:
                raise
            count["fstat"] += 1
            st = os.fstat(dfd)
            if st.st_uid != self.euid or st.st_mode & 0o100:
                raise
            _chmod_o_path(self.ex, dfd, (st.st_mode & 0o7777) | 0o100)
            try:
                count["openat2"] += 1
                return _syscall.openat2(dfd, name, flags | os.O_CLOEXEC, 0, RESOLVE_SAFE)
            finally:
                _chmod_o_path(self.ex, dfd, st.st_mode & 0o7777)

    def _group_first_done(self, job: Job, fd: int) -> bool:
        """The first name of a group is in place: keep ``fd`` (O_PATH) for the
        others' LINKATs.  Returns True when the fd was taken."""
        group = self._group_of(job)
        if group is None or group.ready or group.failed:
            return False
        md = job.meta
        assert md is not None
        if fd >= 0:
            # the inode now in place: a re-created entry is not the old one, and
            # names still linked to that must be linked anew
            try:
                self.ex.direct_syscalls["fstat"] += 1
                group.dst_ino = os.fstat(fd).st_ino
            except OSError:
                pass
        elif job.dmeta is not None:
            group.dst_ino = job.dmeta.ino
        group.ready = True
        if fd < 0 or self.opts.dry_run:
            group.failed = fd < 0 and not self.opts.dry_run
            self._release_waiters(self, group)
            return False
        self.hold_group_fd(group, fd, job.parent.rel, job.dst_name)
        self._release_waiters(self, group)
        return True
    def start_symlink(self, job: Job) -> None:
        md = job.meta
        assert md is not None
        if self.opts.hard_links and md.nlink > 1 and self._hardlink_member(job):
            return
        d, ex = job.parent, self.ex
        try:
            target = ex.readlinkat(d.src_fd, job.name)
        except OSError as exc:
            self.src_failed(job, exc.errno or errno.EIO, "readlink")
            return
        dm = job.dmeta
        # (-I is about regular files' data, as rsync's: a link with the same
        # target is kept)
        if dm is not None and dm.is_symlink():
            # (every target is read and compared, as rsync does: a link made
            # in the same clock tick as another, with a target as long, has
            # its mtime; under relatime this read may move the atime)
            try:
                same = ex.readlinkat(d.dst_fd, job.dst_name) == target
            except OSError:
                same = False
            if same:
                self.stats.unchanged += 1
                changed: List[str] = []  # (xattr names, for the itemized line)
                if self.opts.xattrs or self.opts.acls:
                    self._copy_xattrs_by_name(self, job, True, changed, self.opts.dry_run)
                if self.itemize is not None:
                    self._item_attrs(self, b"L", job.path + b" -> " + target, md, dm,
                                     self.opts.times_differ(md.mtime_ns, dm.mtime_ns), False,
                                     changed)
                if self.opts.dry_run:  # (nothing is changed in a dry run, not even times)
                    self._group_first_done(job, -1)
                    self.finish(job)
                    return
                if self._link_meta_differs(job) or self._group_of(job) is not None:
                    self._open_for_meta(job, target, xattrs=False, existing=True)
                else:
                    self.finish(job)
                return
        if self.itemize is not None:
            self._item_made(self, b"L", job.path + b" -> " + target, md, dm)
        if self.opts.dry_run:
            self._group_first_done(job, -1)
            self.finish(job)
            return
        cid = ex.chain(lambda idx, res, extra: self._on_symlinked(job, target, idx, res))
        if dm is None:
            ex.symlinkat(cid, 0, target, d.dst_fd, job.dst_name)
        else:
            # to a temporary name, then renamed over the old entry once it exists
            # (not linked: a failing SYMLINKAT does not break a link, and the
            # rename would then move whatever has that name)
            tmp = self.tmp_name(job)
            job.tmpname = tmp
            ex.symlinkat(cid, 0, target, d.dst_fd, tmp)

    def _link_meta_differs(self, job: Job) -> bool:
        md, dm = job.meta, job.dmeta
        assert md is not None and dm is not None
        o = self.opts
        if o.times_differ(md.mtime_ns, dm.mtime_ns):
            return True
        uid, gid = self.owner_target(md)
        return (uid >= 0 and uid != dm.uid) or (gid >= 0 and gid != dm.gid)

    def _on_symlinked(self, job: Job, target: bytes, idx: int, res: int) -> None:
        if res == -errno.EEXIST and idx == 0 and not job.tmpname:
            # the name appeared since the destination was listed (another copy
            # into it): replaced atomically, as a file's publication does
            ex, d = self.ex, job.parent
            job.tmpname = self.tmp_name(job)
            cid = ex.chain(lambda i, r, extra: self._on_symlinked(job, target, i, r))
            ex.symlinkat(cid, 0, target, d.dst_fd, job.tmpname)
            return
        if res >= 0 and idx == 0 and job.tmpname:
            ex, d = self.ex, job.parent
            cid = ex.chain(lambda i, r, extra: self._on_symlinked(job, target, 1, r))
            ex.renameat(cid, 0, d.dst_fd, job.tmpname, d.dst_fd, job.dst_name, 0)
            return
        if res < 0:
            if job.tmpname and idx == 1:
                self.unlink_tmp(job.parent, job.tmpname)
            job.tmpname = b""
            self.dst_failed(job, -res, "create symlink")
            return
        job.tmpname = b""
        job.parent.touched = True
        md = job.meta
        assert md is not None
        if self.opts.times or self._ids_differ(job, md, False) \
                or self.opts.xattrs or self.opts.acls or self._group_of(job) is not None:
            self._open_for_meta(job, target)
        else:
            self.finish(job)

    def _ids_differ(self, job: Job, md: Metadata, existing: bool) -> bool:
        """Must the entry be chowned?  Its owner now: an ``existing`` one's is
        what the destination's statx said; a new one's is ours, with the
        directory's group where the directory is setgid."""
        dm = job.dmeta
        if existing and dm is not None:
            have_uid, have_gid = dm.uid, dm.gid
        else:
            new_gid = job.parent.dst_gid_new
            have_uid, have_gid = self.euid, new_gid if new_gid >= 0 else self.egid
        return self._ids_change(self, md, have_uid, have_gid)

    def _open_for_meta(self, job: Job, target: Optional[bytes], xattrs: bool = True,
                       existing: bool = False) -> None:
        """Open the entry (created, or ``existing`` and unchanged) O_PATH|O_NOFOLLOW
        and set owner and times through it (and the xattrs by name, unless
        ``xattrs`` is False: done already).  A symlink in a destination directory
        nobody else may change has them set by name instead
        (_symlink_meta_by_name)."""
        if target is not None and job.parent.dst_private and self._group_of(job) is None:
            self._symlink_meta_by_name(job, xattrs, existing)
            return
        ex = self.ex
        cid = ex.chain(lambda idx, res, extra: self._on_meta_fd(job, target, res, xattrs,
                                                               existing))
        ex.openat2(cid, 0, job.parent.dst_fd, job.dst_name, os.O_PATH | os.O_NOFOLLOW, 0,
                   RESOLVE_SAFE)

    def _symlink_meta_by_name(self, job: Job, xattrs: bool, existing: bool) -> None:
        """Owner and times of a symlink just made (or found unchanged) in a
        destination directory where only this copy's user and root may rename
        or remove entries (DirTask.dst_private): the name is still our symlink,
        so fchownat and utimensat name it (AT_SYMLINK_NOFOLLOW) without the
        O_PATH open, readlink check and close of _on_meta_fd."""
        d, ex, md = job.parent, self.ex, job.meta
        assert md is not None
        try:
            if self._ids_differ(job, md, existing):
                uid, gid = self.owner_target(md)
                ex.chown_at(d.dst_fd, job.dst_name, uid, gid)
            if self.opts.times:
                ex.utime_at(d.dst_fd, job.dst_name, md.atime_ns, md.mtime_ns)
        except OSError as exc:
            self.attr_error(f'cannot set attributes of "{show(job.path)}"', exc)
        if xattrs and (self.opts.xattrs or self.opts.acls):
            self._copy_xattrs_by_name(self, job, False)
        self.finish(job)

    def _on_meta_fd(self, job: Job, target: Optional[bytes], res: int, xattrs: bool,
                    existing: bool) -> None:
        if res < 0:
            group = self._group_of(job)
            if group is not None and not group.ready:
                group.failed = True
                self._release_waiters(self, group)
            self.dst_failed(job, -res, "set attributes of")
            return
        fd = res
        ex = self.ex
        md = job.meta
        assert md is not None
        try:
            # The name could have been swapped since we created it: make sure the
            # fd is still our symlink (readlink works on an O_PATH fd of a symlink
            # and fails on anything else) or our special file, before changing it.
            mode_off = False  # (symlinks have no mode of their own)
            if target is not None:
                if ex.readlinkat(fd, b"") != target:
                    raise OSError(errno.ESTALE, "entry replaced during the copy")
            else:
                ex.direct_syscalls["fstat"] += 1
                st = os.fstat(fd)
                if st.st_mode & 0o170000 != md.mode & 0o170000 or st.st_rdev != md.rdev:
                    raise OSError(errno.ESTALE, "entry replaced during the copy")
                # (an existing node's mode may be out of date)
                mode_off = self.opts.perms and st.st_mode & 0o7777 != md.mode & 0o7777
            if self._ids_differ(job, md, existing):
                uid, gid = self.owner_target(md)
                ex.empty_path_chown(fd, uid, gid)
                # chown cleared setuid/setgid (as it does for anyone)
                mode_off = mode_off or (target is None and self.opts.perms
                                        and bool(md.mode & 0o6000))
            if mode_off:
                _chmod_o_path(ex, fd, md.mode & 0o7777)
            dm = job.dmeta
            # (an existing one is opened for its hard-link group, or its mode
            # or ids: its times may well be current)
            if self.opts.times and (not existing or dm is None
                                    or not self.opts.same_mtime(md.mtime_ns, dm.mtime_ns)):
                ex.empty_path_utime(fd, md.atime_ns, md.mtime_ns)
        except OSError as exc:
            self.attr_error(f'cannot set attributes of "{show(job.path)}"', exc)
        if xattrs and (self.opts.xattrs or self.opts.acls):
            # (replace: a FIFO or device made in a directory with a default ACL
            # has an access ACL of its own, which the source may lack)
            self._copy_xattrs_by_name(self, job, target is None and job.parent.acl_inherit)
        if not self._group_first_done(job, fd):
            ex.close_fd(0, 0, fd, SKIP)
        self.finish(job)

    @staticmethod
    def item_kind(md: Metadata) -> bytes:
        """rsync -i's letter of a non-directory: f for a regular file, L for a
        symlink, D for a device, S for a FIFO or socket."""
        t = md.type
        if t == stat.S_IFREG:
            return b"f"
        if t == stat.S_IFLNK:
            return b"L"
        return b"D" if t in (stat.S_IFCHR, stat.S_IFBLK) else b"S"

    def start_special(self, job: Job) -> None:
        md = job.meta
        assert md is not None
        if self.opts.hard_links and md.nlink > 1 and self._hardlink_member(job):
            return
        d, ex = job.parent, self.ex
        dm = job.dmeta
        if dm is not None and dm.type == md.type and dm.rdev == md.rdev:  # (-I: kept, too)
            self.stats.unchanged += 1
            mode_differs = self.opts.perms and dm.mode & 0o7777 != md.mode & 0o7777
            changed: List[str] = []  # (xattr names, for the itemized line)
            if self.opts.xattrs or self.opts.acls:
                self._copy_xattrs_by_name(self, job, True, changed, self.opts.dry_run)
            if self.itemize is not None:
                self._item_attrs(self, self.item_kind(md), job.path, md, dm,
                                 self.opts.times_differ(md.mtime_ns, dm.mtime_ns),
                                 mode_differs, changed)
            if not self.opts.dry_run and (self._group_of(job) is not None or mode_differs
                                          or self._link_meta_differs(job)):
                self._open_for_meta(job, None, xattrs=False, existing=True)
            else:
                self._group_first_done(job, -1)
                self.finish(job)
            return
        if self.itemize is not None:
            self._item_made(self, self.item_kind(md), job.path, md, dm)
        if self.opts.dry_run:
            self._group_first_done(job, -1)
            self.finish(job)
            return
        mode = md.mode & 0o170000 | self._final_mode(self, md, dm, d.dst_gid_new)
        d.touched = True
        try:
            made = False
            if dm is None:
                try:
                    ex.mknodat(d.dst_fd, job.dst_name, mode, md.rdev)
                    made = True
                except FileExistsError:
                    pass  # (appeared since the listing: replaced, as below)
            if not made:
                # under a temporary name, renamed over the old entry once it
                # exists: a node that cannot be made (a device, as non-root)
                # leaves the old entry in place
                tmp = self.tmp_name(job)
                ex.mknodat(d.dst_fd, tmp, mode, md.rdev)
                try:
                    ex.direct_syscalls["renameat"] += 1
                    os.rename(tmp, job.dst_name, src_dir_fd=d.dst_fd, dst_dir_fd=d.dst_fd)
                except OSError:
                    self.unlink_tmp(d, tmp)
                    raise
        except OSError as exc:
            self.dst_failed(job, exc.errno or errno.EIO, "create")
            return
        self._open_for_meta(job, None)

    # ======================================================================
    # helpers shared with filecopy / attrs
    # ======================================================================
    def pool_keep(self) -> None:
        """Operations were abandoned in flight: never free buffers they may use."""
        from ..executor import _abandoned

        _abandoned.append((self.pool, self._chunk_pool))

    def init_root(self, d: DirTask) -> None:
        """Which gid files created directly in a root destination get."""
        self.dst_root_fd = d.dst_fd
        if d.dst_fd < 0:
            d.dst_gid_new = self.egid
            return
        st = os.fstat(d.dst_fd)
        d.acl_inherit = self.default_acl(d.dst_fd)
        d.dst_sgid = bool(st.st_mode & stat.S_ISGID)
        d.dst_gid_new = st.st_gid if d.dst_sgid else self.egid
        d.dst_dev = st.st_dev
        # (the mode bits do not say who may rename on NFS, SMB, FUSE and the like:
        # other clients, the server's own ACLs, the daemon)
        d.dst_private = not _others_may(self.euid, st.st_uid, st.st_mode) \
            and not _on_remote_fs(d.dst_fd)
        # (every root: a later SRC argument writes into it again)
        self._open_up(d, st.st_mode, st.st_uid)
        self._item_dir_first(d)

    def _item_dir_first(self, d: DirTask) -> None:
        """-v: an existing directory's line comes before its contents' (rsync's
        order), saying what its attributes will be given at the end."""
        if self.itemize is not None and d.apply_meta and d.meta is not None \
                and d.dst_meta is not None and not d.itemized:
            self._item_dir(self, d, d.meta, d.dst_meta)

    def default_acl(self, fd: int) -> bool:
        """-A: does the destination directory ``fd`` have a default ACL (so that
        the files created in it get an access ACL of their own)?"""
        if not self.opts.acls or self.opts.dry_run:
            return False
        self.ex.direct_syscalls["fgetxattr"] += 1
        try:
            try:
                os.getxattr(fd, "system.posix_acl_default")
            except OSError as exc:
                if exc.errno != errno.EBADF:
                    raise
                # an O_PATH root (api._open_dir): the same inode, through /proc
                self.ex.direct_syscalls["getxattr"] += 1
                os.getxattr(f"/proc/self/fd/{fd}", "system.posix_acl_default")
        except OSError:
            return False  # (ENODATA: none; EOPNOTSUPP: no ACLs here at all)
        return True

    def others_may_write(self, md: Metadata) -> bool:
        """May anyone but this copy's user and root rename entries of the source
        directory ``md`` describes?  Its owner can (any owner can chmod), its
        group and others with w (an ACL's named entries are bounded by the mask
        in the group bits; a sticky bit is not relied on).  Where only we or
        root can, a name cannot be swapped between a file's statx and its open,
        and files take the packed chain; elsewhere the opened file is checked
        to be the statx'd one (filecopy._replaced).  The same question of a
        destination directory decides DirTask.dst_private."""
        return _others_may(self.euid, md.uid, md.mode)

    def judge_src(self, d: DirTask, md: Metadata, parent: Optional[DirTask] = None) -> None:
        """DirTask.shared of the source directory ``d`` (``md``: its opened fd's
        statx), as others_may_write says -- except on a network or FUSE file
        system, whose mode bits do not say who may rename there (other
        clients, the server's own ACLs, the daemon): asked of a root and where
        a subdirectory is on another device than its parent (fstatfs)."""
        d.src_dev = md.dev
        if parent is not None and md.dev == parent.src_dev:
            d.src_remote = parent.src_remote
        else:
            if parent is not None:  # (a root's is the set-up's, as its fstat)
                self.ex.direct_syscalls["fstatfs"] += 1
            d.src_remote = _on_remote_fs(d.src_fd)
        d.shared = d.src_remote or self.others_may_write(md)

    def owner_target(self, md: Metadata) -> Tuple[int, int]:
        """(uid, gid) to give the copy; -1 leaves that id as created."""
        uid = md.uid if self.opts.owner and self.is_root else -1
        gid = -1
        if self.opts.group and (self.is_root or md.gid in self.groups):
            gid = md.gid
        return uid, gid

    def bulk_pool(self) -> Optional[BulkPool]:
        """The worker threads for large files' data (None: copy inline)."""
        if self.bulk is None and self.bulk_threads > 0 and self.opts.data_path != "ring":
            try:
                self.bulk = BulkPool(self.bulk_threads, self._arm_wake)
            except OSError:
                # no fds for its pipe (a low ulimit -n): this thread copies
                # large files itself, as the sync backend does
                self.bulk_threads = 0
        return self.bulk

    def _arm_wake(self, fd: int, buf: Buffer, cb: Callable[[int], None]) -> None:
        ex = self.ex
        cid = ex.chain(lambda idx, res, extra: cb(res))
        ex.read(cid, 0, fd, buf, 0, buf.size, _PIPE_POS)

    def chunk_buffers(self, n: int) -> Buffer:
        """n MiB of buffer for one large file copied through the ring (recycled)."""
        if self._chunk_pool:
            return self._chunk_pool.pop()
        return Buffer(n << 20)

    def release_chunks(self, buf: Buffer) -> None:
        self._chunk_pool.append(buf)

    def may_read(self, md: Metadata) -> bool:
        """Would opening this file for reading succeed as far as permissions go?"""
        if self.is_root:
            return True
        if md.uid == self.euid:
            return bool(md.mode & 0o400)
        if md.gid in self.groups:
            return bool(md.mode & 0o040)
        return bool(md.mode & 0o004)

    def tmp_name(self, job: Job) -> bytes:
        """A new temporary name for ``job``'s entry (``job.tmpname`` is the
        caller's to set), unique to this run."""
        n = _tmp_next[0]
        _tmp_next[0] = n + 1
        self.tmp_jobs[id(job)] = job
        return b"." + job.dst_name[:200] + _TMP_MARK + str(os.getpid()).encode() + b"-" + \
            str(n).encode()

    def item(self, code: bytes, path: bytes) -> None:
        if self.itemize is not None:
            self.itemize(code.decode() + show(path))

    def close(self) -> None:
        """End of the whole copy (every source argument): let go of the hard-link
        table, which spans sources as rsync -H does, and drain the executor."""
        self._close_hardlink_fds()

    def _close_hardlink_fds(self) -> None:
        for group in self.hardlinks.values():
            if group.fd >= 0:
                self.ex.close_fd(0, 0, group.fd, SKIP)
                group.fd = -1
        self.hardlinks.clear()
        self.held.clear()
        while self.ex.busy():
            self.ex.run(wait=True)
        if self.bulk is not None:
            self.bulk.close()
