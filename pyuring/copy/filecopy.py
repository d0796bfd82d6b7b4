"""Regular files: quick check, hard links, the small-file and large-file data paths.

Small files (up to ``small_file_max``, not sparse) are read with one READ into
a slot of the shared buffer pool -- through a direct descriptor on io_uring,
so OPENAT2 -> READ is one linked chain and the source never gets an fd -- and
written with one WRITE.  One byte more than the stat size is asked for: a
longer read means the file grew, and it moves to the large path.

Large and sparse files are copied by the kernel with ``copy_file_range``
(extent by extent with SEEK_DATA / SEEK_HOLE when sparse), or with chained
READ/WRITE pairs through the ring when ``data_path="ring"``.  See
docs/benchmarks.md for why ``copy_file_range`` is the default above the
small-file size.

Every destination file is written as an O_TMPFILE (or, where the filesystem
lacks it, under a temporary name) and published whole with LINKAT / RENAMEAT.
"""

from __future__ import annotations

import errno
import os
from functools import partial

from .. import _abi as A
from ..executor import HARDLINK, LINK, RESOLVE_SAFE, SKIP
from .attrs import (
    UnsafeToPublish,
    acls_last,
    apply_file_meta,
    common_xattr,
    final_mode,
    fix_unchanged,
    item_sent,
    item_unchanged_dry,
    needs_meta_before_publish,
    read_xattrs,
    set_owner_mode,
    unchanged_fixes,
    xattr_error,
    xattr_reader,
    xattrs_before_replacing,
    xattrs_differ,
    xattrs_need_write,
)
from .bulk import DataTask
from .engine import O_TMPFILE, Engine, HardlinkGroup, Job
from .text import show

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional, Tuple

    from ..metadata import Metadata

_CHUNK = 1 << 20
#: the most xattrs a file's publishing chain writes (more: one by one, the old way)
_CHAIN_XATTRS = 16
#: answers of listxattrat after which it stops being asked when 3 in 4 had xattrs
_XATTRAT_TRIAL = 64


def start_file(eng: Engine, job: Job) -> None:
    md, opts = job.meta, eng.opts
    assert md is not None
    if not (opts.hard_links and md.nlink > 1):
        copy_first(eng, job, None, _up_to_date(eng, job))
        return
    key = (md.dev, md.ino)
    group = eng.hardlinks.get(key)
    if group is not None and not group.failed:
        if not (group.deferred and _up_to_date(eng, job)):
            link_to_group(eng, job, group)
            return
        # a name whose copy is up to date, in a group whose first name has
        # none: the names waiting are linked to this copy, nothing is sent
        eng.undefer(group)
        group.first = eng.first_name(job)
        copy_first(eng, job, group, True)
        return
    renewed = group is not None
    group = eng.hardlinks[key] = HardlinkGroup(md.nlink - 1, eng.first_name(job))
    same = _up_to_date(eng, job)
    if not same and not renewed and eng.may_defer():
        # Another name's copy may be up to date, later in the walk (a re-run
        # after a name was added): the data waits until the names have come
        # (link_to_group) or the walk idles (Engine.run).  rsync, which has
        # the whole file list first, links a new name to the existing copy.
        eng.defer(group)
        group.waiters.append(job)
        return
    copy_first(eng, job, group, same)


def _up_to_date(eng: Engine, job: Job) -> bool:
    """The quick check: does the destination have the source's size and mtime?"""
    md, dm, opts = job.meta, job.dmeta, eng.opts
    assert md is not None
    return dm is not None and dm.mode & 0o170000 == 0o100000 and not opts.ignore_times \
        and dm.size == md.size \
        and (dm.mtime_ns == md.mtime_ns or opts.same_mtime(md.mtime_ns, dm.mtime_ns)) \
        and not (job.parent.shared and _attrs_would_change(eng, job))


def copy_first(eng: Engine, job: Job, group: Optional[HardlinkGroup], same: bool) -> None:
    """A regular file, alone or its group's first name: its data (unless
    ``same``: the destination's quick check says it is up to date)."""
    md, dm, opts = job.meta, job.dmeta, eng.opts
    assert md is not None
    if same:
        assert dm is not None
        eng.stats.unchanged += 1
        if group is None and not opts.dry_run and not (opts.xattrs or opts.acls) \
                and not any(unchanged_fixes(eng, md, dm)):
            eng.finish(job)  # (a no-change re-run: most files end here)
            return
        if group is not None:
            group.dst_ino = dm.ino

        def after() -> None:
            if group is not None and not opts.dry_run:
                _open_group_fd(eng, job, group)
                return
            if group is not None:  # a dry run: the other names are compared with it
                group.ready = True
                release_waiters(eng, group)
            eng.finish(job)

        if opts.dry_run:
            item_unchanged_dry(eng, job)
            after()
        else:
            fix_unchanged(eng, job, after)
        return
    if opts.dry_run:
        if eng.itemize is not None:
            item_sent(eng, job)
        eng.stats.transferred += 1
        eng.stats.bytes_transferred += md.size
        if group is not None:
            group.ready = True  # nothing is linked in a dry run: list the others
            release_waiters(eng, group)
        eng.finish(job)
        return
    if dm is not None:
        xattrs_before_replacing(eng, job)
    if md.size and md.size <= eng.small_max and not md.is_sparse and eng.free_slots:
        _small(eng, job)
    elif md.size == 0 and eng.may_read(md) and not (job.xattrs and job.parent.shared):
        # (no source open: its xattrs, if any, come from a second open at the
        # end -- where others may swap the name, the large way's checked one)
        job.waiting = 1
        _open_dst(eng, job)
    else:
        _large(eng, job)


def _attrs_would_change(eng: Engine, job: Job) -> bool:
    """An unchanged file in a source directory others may write to: would it
    get another mode, owner or xattrs?  Then its data is copied again instead.
    Its name may hold a file swapped in since the last run with the same size
    and mtime; the copy must not give the data already there (the other
    file's) this one's owner, setuid bit or security.capability."""
    md, dm = job.meta, job.dmeta
    assert md is not None and dm is not None
    if any(unchanged_fixes(eng, md, dm)):
        return True
    return eng.copies_xattrs and xattrs_differ(eng, job)


# --------------------------------------------------------------------------------------
# opening the destination
# --------------------------------------------------------------------------------------
def _create_mode(eng: Engine, job: Job) -> int:
    md = job.meta
    assert md is not None
    final = final_mode(eng, md, job.dmeta, job.parent.dst_gid_new)
    if xattrs_need_write(eng, job.xattrs, final):
        return final | 0o200  # until the xattrs are on (apply_file_meta)
    return final


def _open_dst(eng: Engine, job: Job) -> None:
    """Open a new, nameless destination file; its fd arrives in on_dst_open."""
    ex, d = eng.ex, job.parent
    md = job.meta
    assert md is not None
    mode = _create_mode(eng, job)
    cid = ex.chain(lambda idx, res, extra: _on_dst_open(eng, job, res))
    if eng.tmpfile_ok:
        ex.openat2(cid, 0, d.dst_fd, b".", os.O_WRONLY | O_TMPFILE, mode, RESOLVE_SAFE)
    else:
        job.tmpname = eng.tmp_name(job)
        ex.openat2(cid, 0, d.dst_fd, job.tmpname, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode,
                   RESOLVE_SAFE)


def _on_dst_open(eng: Engine, job: Job, res: int) -> None:
    if res < 0:
        err = -res
        if not job.tmpname and err in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            # this filesystem has no O_TMPFILE: temporary names, for this file
            # and for the others whose O_TMPFILE opens are still in flight
            eng.tmpfile_ok = False
            _open_dst(eng, job)
            return
        job.tmpname = b""
        job.waiting -= 1
        if job.waiting:
            # the source's open or read is still on its way (its fd, its slot
            # in the pool): reported now (ENOSPC stops the copy at once), the
            # job ends when that has arrived
            eng.dst_error(job, err, "create")
            job.dst_err = err
            return
        eng.dst_failed(job, err, "create")
        return
    job.dst_fd = res
    _arrived(eng, job)


def _arrived(eng: Engine, job: Job) -> None:
    """One of the two things a copy waits for (source data, destination fd) is here."""
    job.waiting -= 1
    if not job.waiting:
        if job.dst_err:  # (reported when it happened)
            eng.drop_job(job)
            return
        _both_open(eng, job)


def _both_open(eng: Engine, job: Job) -> None:
    if job.slot >= 0:
        _write_small(eng, job)
    elif job.src_fd == -1 and job.nread == 0:
        # an empty file we may read: nothing to read, no source open needed
        if needs_meta_before_publish(eng, job):
            _finalize(eng, job)
        else:
            _publish(eng, job, 0)
    else:
        _copy_large(eng, job)


# --------------------------------------------------------------------------------------
# small files: one read, one write
# --------------------------------------------------------------------------------------
def _small(eng: Engine, job: Job) -> None:
    md = job.meta
    assert md is not None
    ex, d = eng.ex, job.parent
    slot = eng.free_slots.pop()
    job.slot = slot
    job.waiting = 2
    boff = slot * eng.slot_size
    want = md.size + 1
    if eng.direct and eng.tmpfile_ok and not job.parent.shared and (
            not job.xattrs or (not job.parent.acl_inherit and _xattrs_by_name(eng, job))):
        # One chain, two completions: OPENAT2 the source into a direct slot ->
        # READ it (HARDLINK: the destination opens whatever the read did) ->
        # OPENAT2 the O_TMPFILE.  A failed source open silences the rest.
        # (partial, not a lambda: one Python frame less per completion)
        # (no xattrs here: with -p the mode is the source's, the common case)
        mode = md.mode & 0o7777 if eng.opts.perms else _create_mode(eng, job)
        ex.open_read_tmpfile(partial(_on_small, eng, job), d.src_fd, job.name, slot, eng.pool,
                             boff, want, d.dst_fd, mode)
        return
    else:
        cid = ex.chain(lambda idx, res, extra: _on_src_fd(eng, job, res))
        ex.openat2(cid, 0, d.src_fd, job.name, os.O_RDONLY | os.O_NOFOLLOW, 0, RESOLVE_SAFE)
    _open_dst(eng, job)


def _xattrs_by_name(eng: Engine, job: Job) -> bool:
    """-X / -A: may this file take the packed chain, whose source is a direct
    descriptor (no fd to read xattrs from)?  Yes when it has no xattrs, or
    when they can be read now and written in its publishing chain
    (_meta_in_chain): asked by name, listxattrat and getxattrat (Linux 6.13)
    relative to the directory fd without following a symlink.  Only in a
    directory nobody else may write to (the packed chain's own condition):
    there nobody can swap the entry between these calls and the open.  Any
    doubt (an error, names past 4 KiB, an older kernel): False, and the copy
    takes the way that reads them from the opened file.  Where the xattrs
    could not go into that chain and nearly every file has some (SELinux
    labels, a non-root copy of read-only files) the question is not asked
    any more after the first 64 answers: it would only add a syscall per file."""
    if not eng.xattrat_ok:
        return False
    count = eng.ex.direct_syscalls
    try:
        reader = xattr_reader(eng)
        count["listxattrat"] += 1
        raw = reader.names(job.parent.src_fd, job.name)
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EPERM):
            eng.xattrat_ok = False  # (no such call here, or a filter refuses it)
        elif exc.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
            job.xattrs = False  # (a file system without xattrs)
            return True
        return False
    eng.xattrat_asked += 1
    if not raw:
        job.xattrs = False
        return True
    sets = eng.xattr_name_sets
    names = sets.get(raw)
    if names is None:
        # (a tree has few sets of names: each is filtered and ordered once)
        keep = eng._xattr_names
        names = acls_last([n for n in raw.split(b"\0") if n and keep(os.fsdecode(n))])
        if len(sets) < 256:
            sets[raw] = names
    if not names:
        job.xattrs = False
        return True
    if _chain_holds(eng, len(names)) and not _chain_refuses(eng, job, True):
        pairs = []
        try:
            for name in names:
                count["getxattrat"] += 1
                pairs.append((name, reader.value(job.parent.src_fd, job.name, name)))
        except OSError:
            return False  # (the way through the fd says what it is)
        job.xattr_pairs = pairs
        return True
    eng.xattrat_found += 1
    if eng.xattrat_asked >= _XATTRAT_TRIAL and 4 * eng.xattrat_found > 3 * eng.xattrat_asked:
        eng.xattrat_ok = False
    return False


def _chain_holds(eng: Engine, n: int) -> bool:
    """Can a publishing chain carry ``n`` FSETXATTR?  It must fit the SQ whole."""
    return n <= min(_CHAIN_XATTRS, eng.ex.max_chain - 2)


def _chain_refuses(eng: Engine, job: Job, xattrs: bool) -> bool:
    """Where _meta_in_chain's order would not give the same file: a
    replacement, --fsync, a destination directory whose default ACL the new
    file inherits, setuid/setgid bits a WRITE would clear, and (``xattrs``)
    a kernel without FSETXATTR or a non-root copy of a read-only file."""
    d, md = job.parent, job.meta
    assert md is not None
    if job.tmpname or job.dmeta is not None or eng.opts.fsync or d.acl_inherit:
        return True
    final = final_mode(eng, md, None, d.dst_gid_new)
    if final & 0o6000 and not eng.write_keeps_suid:
        return True  # (a WRITE without CAP_FSETID clears them: the old way sets them after)
    return xattrs and (not eng.ex.has_fsetxattr or xattrs_need_write(eng, True, final))


def _on_small(eng: Engine, job: Job, idx: int, res: int, _extra: Any) -> None:
    if idx == 1:  # the READ
        job.nread = res
        return
    if idx == 0:  # the source did not open; nothing else of the chain ran
        job.waiting = 1
        _src_error(eng, job, -res, "open")
        return
    if res < 0:  # the O_TMPFILE
        if res == -errno.ECANCELED:
            return
        job.waiting = 1
        if job.nread < 0:  # the READ failed too: both are reported
            eng.dst_error(job, -res, "create")
            _fail_src(eng, job)
            return
        _on_dst_open(eng, job, res)  # reports, or retries with a temporary name
        return
    job.dst_fd = res
    job.waiting = 0
    _write_small(eng, job)


def _verified(eng: Engine, job: Job, fd: int, then: Callable[[], None],
              always: bool = False) -> None:
    """The source is open as ``fd``: go on (``then``) once it is known to be the
    file its statx described.  Where only this copy's user or root can rename
    entries of the directory (not DirTask.shared) it cannot be another: at once.
    Elsewhere a name swapped between the statx and the open would have its data
    copied with the other file's mode and owner -- a file its writer cannot
    read made readable in DST -- so the fd's own statx is compared (through the
    ring; one round trip more; Metadata.same_file), and another file, or one
    whose mode or owner changed meanwhile, is reported as vanished (the file
    statx saw did, from that name) and not copied."""
    job.src_fd = fd  # (closed with the job, whatever happens)
    if not job.parent.shared and not always:
        then()
        return
    md = job.meta
    assert md is not None

    def check(idx: int, res: int, now: Optional[Metadata]) -> None:
        if res >= 0 and now is not None and now.same_file(md):
            then()
        else:
            _src_error(eng, job, errno.ENOENT, "open")

    eng.ex.statx(eng.ex.chain(check), 0, fd, b"", A.AT_EMPTY_PATH | A.AT_SYMLINK_NOFOLLOW)


def _on_src_fd(eng: Engine, job: Job, res: int) -> None:
    if res < 0:
        _src_error(eng, job, -res, "open")
        return
    _verified(eng, job, res, lambda: _read_src(eng, job))


def _read_src(eng: Engine, job: Job) -> None:
    res = job.src_fd
    if job.dst_err:  # nothing to read for: the destination failed
        _arrived(eng, job)
        return
    md = job.meta
    assert md is not None
    cid = eng.ex.chain(lambda idx, r, extra: _on_read(eng, job, r))
    eng.ex.read(cid, 0, res, eng.pool, job.slot * eng.slot_size, md.size + 1, 0)


def _src_error(eng: Engine, job: Job, err: int, what: str) -> None:
    """The source failed while the destination open may still be in flight."""
    job.nread = -err
    job.tmpname = job.tmpname or b""
    job.dtype = -1 if what == "open" else -2  # remembered for the message
    job.waiting -= 1
    if not job.waiting:
        _fail_src(eng, job)


def _fail_src(eng: Engine, job: Job) -> None:
    if job.dst_fd >= 0 and job.tmpname:
        eng.unlink_tmp(job.parent, job.tmpname)
        job.tmpname = b""
    eng.src_failed(job, -job.nread, "open" if job.dtype == -1 else "read")


def _on_read(eng: Engine, job: Job, res: int) -> None:
    """The READ of a source opened as a plain fd (the -X / -A way, or no slots)."""
    if job.src_fd >= 0 and not job.xattrs:
        eng.ex.close_fd(0, 0, job.src_fd, SKIP)
        job.src_fd = -1  # (with -X/-A it stays open until the xattrs are copied)
    if res == -errno.ESPIPE and not job.rechecked:
        # pread of a pipe: a FIFO swapped in for the file (or a file system's
        # non-seekable file, which fails again after the check)
        _reopen_checked(eng, job, lambda: _read_src(eng, job))
        return
    if res < 0:
        _src_error(eng, job, -res, "read")
        return
    job.nread = res
    _arrived(eng, job)


def _write_small(eng: Engine, job: Job) -> None:
    md = job.meta
    assert md is not None
    if job.nread < 0:
        _fail_src(eng, job)
        return
    n = job.nread
    if n > md.size:
        # it grew since we looked: copy all of it the large way
        eng.free_slots.append(job.slot)
        job.slot = -1
        job.waiting = 1
        _reopen_checked(eng, job, lambda: _arrived(eng, job))
        return
    if n < md.size:
        if not job.parent.shared and not job.rechecked:
            # it shrank -- or its name holds something else now, such as a
            # FIFO (io_uring's first, non-blocking try at the open opens one at
            # once; its read waits for a writer and gets what that wrote)
            job.waiting = 1
            _reopen_checked(eng, job, lambda: _read_src(eng, job))
            return
        _changed(eng, job, n)
    if needs_meta_before_publish(eng, job):
        if not _meta_in_chain(eng, job, n):
            _write(eng, job, 0, n)
    else:
        # the common case: WRITE -> LINKAT in one chain, times set right after
        _publish(eng, job, n)


def _reopen_checked(eng: Engine, job: Job, then: Callable[[], None]) -> None:
    """Open the source's name again and go on (``then``) only if the fd's
    statx shows the file the first statx described, in any directory: a read
    that did not give the size that statx said (short, or more: it grew) is
    where a swap shows itself.  O_NONBLOCK: a FIFO must not wait for a
    writer; taken off again (one fcntl, on this rare path only), since the
    ring hands EAGAIN back for reads of files without non-blocking support."""
    job.rechecked = True
    if job.src_fd >= 0:  # (-X / -A kept it for the xattrs: the reopen gets a new one)
        eng.ex.close_fd(0, 0, job.src_fd, SKIP)
        job.src_fd = -1

    def blocking() -> None:
        try:
            eng.ex.direct_syscalls["fcntl"] += 1
            os.set_blocking(job.src_fd, True)
        except OSError as exc:
            _src_error(eng, job, exc.errno or errno.EIO, "read")
            return
        then()

    def opened(idx: int, res: int, extra: Any) -> None:
        if res < 0:
            _src_error(eng, job, -res, "open")
        else:
            _verified(eng, job, res, blocking, always=True)

    eng.ex.openat2(eng.ex.chain(opened), 0, job.parent.src_fd, job.name,
                   os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, 0, RESOLVE_SAFE)


def _meta_in_chain(eng: Engine, job: Job, n: int) -> bool:
    """A new small file whose owner, setuid bits or xattrs must be on before it
    has a name: owner and mode now, then one chain WRITE -> FSETXATTR ... ->
    LINKAT, and the times right after, as for any file.  The WRITE leads: it
    clears security.capability (and, by a non-root user, setuid/setgid).
    Against writing first, then the attributes, then the link: one round trip
    less, and the xattr writes (~7 us each with the journal) run on an io-wq
    worker, not on the ring's thread.  False (nothing done) where that order
    would not give the same file: a non-root copy of a setuid file or of a
    read-only one with xattrs, a destination directory whose default ACL the
    new file inherited, a kernel without FSETXATTR, --fsync."""
    ex, d = eng.ex, job.parent
    pairs = job.xattr_pairs
    # (pairs read by name were read because the chain takes them: _xattrs_by_name)
    # (but a destination without O_TMPFILE, found by the chain's open, makes a
    # temporary name, which only the old way renames)
    if n <= 0 or job.tmpname or (pairs is None and _chain_refuses(eng, job, job.xattrs)):
        return False
    if job.xattrs and pairs is None:
        if job.src_fd < 0:
            return False
        pairs = read_xattrs(eng, job.src_fd, job.path)
    if pairs and (not _chain_holds(eng, len(pairs))
                  or not all(common_xattr(name) for name, _v in pairs)):
        # (the old way sets these, one by one; and names the one refused
        # where only it may be, btrfs.* onto another file system)
        job.xattr_pairs = pairs
        return False
    try:
        set_owner_mode(eng, job, job.dst_fd)
    except UnsafeToPublish as exc:
        eng.dst_failed(job, exc.errno or errno.EIO, "set the owner of")
        return True
    except OSError as exc:
        _attrs_failed(eng, job, exc)
    if pairs is None:
        pairs = []
    if job.src_fd >= 0:
        ex.close_fd(0, 0, job.src_fd, SKIP)
        job.src_fd = -1
    boff = job.slot * eng.slot_size
    callback = partial(_on_published, eng, job, n)
    if not pairs:
        ex.write_linkat(callback, _W, job.dst_fd, eng.pool, boff, n, _LINK, d.dst_fd,
                        job.dst_name)
        return True
    cid = ex.chain(callback)
    ex.write(cid, _W, job.dst_fd, eng.pool, boff, n, 0, LINK | SKIP)
    for name, value in pairs:
        ex.fsetxattr(cid, _X, job.dst_fd, name, value, HARDLINK)
    ex.linkat(cid, _LINK, job.dst_fd, b"", d.dst_fd, job.dst_name, A.AT_EMPTY_PATH)
    return True


def _write(eng: Engine, job: Job, done: int, n: int) -> None:
    ex = eng.ex
    cid = ex.chain(lambda idx, res, extra: _on_written(eng, job, done, n, idx, res))
    boff = job.slot * eng.slot_size
    if eng.opts.fsync:
        ex.write(cid, 0, job.dst_fd, eng.pool, boff + done, n - done, done, LINK | SKIP)
        ex.fsync(cid, 1, job.dst_fd)
    else:
        ex.write(cid, 0, job.dst_fd, eng.pool, boff + done, n - done, done)


def _on_written(eng: Engine, job: Job, done: int, n: int, idx: int, res: int) -> None:
    if res < 0:
        if res == -errno.ECANCELED:
            return
        eng.dst_failed(job, -res, "write" if idx == 0 else "fsync")
        return
    if idx == 0 and done + res < n:
        _write(eng, job, done + res, n)  # a short write: finish it
        return
    eng.stats.bytes_transferred += n
    _finalize(eng, job)


def _changed(eng: Engine, job: Job, size: int) -> None:
    eng.stats.changed_during_copy += 1
    eng.report(f'file changed size during the copy: "{show(job.path)}" '
               f"(copied {size:,} bytes as read)")


# --------------------------------------------------------------------------------------
# large and sparse files
# --------------------------------------------------------------------------------------
def _large(eng: Engine, job: Job) -> None:
    job.waiting = 2
    _reopen_src_large(eng, job)
    _open_dst(eng, job)


def _reopen_src_large(eng: Engine, job: Job) -> None:
    ex = eng.ex
    cid = ex.chain(lambda idx, res, extra: _on_large_src(eng, job, res))
    ex.openat2(cid, 0, job.parent.src_fd, job.name, os.O_RDONLY | os.O_NOFOLLOW, 0,
               RESOLVE_SAFE)


def _on_large_src(eng: Engine, job: Job, res: int) -> None:
    if res < 0:
        _src_error(eng, job, -res, "open")
        return
    _verified(eng, job, res, lambda: _arrived(eng, job))


def _copy_large(eng: Engine, job: Job) -> None:
    md = job.meta
    assert md is not None
    if job.nread < 0:
        _fail_src(eng, job)
        return
    if eng.opts.data_path == "ring" and not md.is_sparse:
        _RingCopy(eng, job).start()
        return
    task = DataTask(job.src_fd, job.dst_fd, md.size, md.is_sparse, eng.opts.fsync,
                    lambda t: _large_done(eng, job, t))
    pool = eng.bulk_pool()
    if pool is not None and pool.submit(task):
        job.src_fd = job.dst_fd = -1  # the worker's until it reports back
        return
    eng.data.run(task)
    _large_done(eng, job, task)


def _large_done(eng: Engine, job: Job, task: DataTask) -> None:
    job.src_fd, job.dst_fd = task.src, task.dst
    count = eng.ex.direct_syscalls
    for name, n in task.counts.items():
        count[name] += n
    if task.stopped:
        eng.drop_job(job)  # the copy is stopping: no message, nothing published
        return
    if task.error == errno.ESPIPE and task.src_side and not job.rechecked:
        _pipe_read(eng, job)
        return
    if task.error and task.src_side:
        eng.src_failed(job, task.error, "read")  # (closes both fds, drops a temporary name)
        return
    if task.error:
        eng.dst_failed(job, task.error, "write")
        return
    _large_copied(eng, job, task.total)


def _pipe_read(eng: Engine, job: Job) -> None:
    """A large file's read said ESPIPE: a FIFO swapped in for the file (which
    has vanished from that name), or a file system's non-seekable file (the
    same file: then the error stands)."""
    _compare_fd(eng, job, lambda: eng.src_failed(job, errno.ESPIPE, "read"))


def _compare_fd(eng: Engine, job: Job, then: Callable[[], None]) -> None:
    """Go on (``then``) only if the open source fd is still the file its
    statx described, in any directory; another has vanished from that name."""
    job.rechecked = True
    job.waiting = 1  # (for _src_error, should it be another)

    def same() -> None:
        job.waiting = 0
        then()
    _verified(eng, job, job.src_fd, same, always=True)


def _large_copied(eng: Engine, job: Job, total: int) -> None:
    """A large file's data is in the new file.  A size other than the statx's
    where nobody compared the opened file with it (_verified) is where a swap
    shows itself: the fd's statx is compared now, and another file has
    vanished from that name (its data is not published)."""
    md = job.meta
    assert md is not None
    if total != md.size and not job.parent.shared and not job.rechecked:
        _compare_fd(eng, job, lambda: _large_copied(eng, job, total))
        return
    if not job.xattrs:
        eng.ex.close_fd(0, 0, job.src_fd, SKIP)
        job.src_fd = -1  # (with -X/-A _finalize reads the xattrs from it, then closes it)
    if total != md.size:
        _changed(eng, job, total)
    eng.stats.bytes_transferred += total
    _finalize(eng, job)


class _RingCopy:
    """A large file through the ring: READ -> WRITE chains of 1 MiB, four in flight.

    Each chunk is a linked pair, so the data makes one round trip through the
    ring per chunk.  A short READ (end of file, or the file shrank) breaks its
    link: the WRITE is cancelled and the chunk is written again with what was
    read.  Reading goes on until a READ returns 0, so a file that grows is
    copied to its new end.
    """

    DEPTH = 4

    def __init__(self, eng: Engine, job: Job) -> None:
        self.eng, self.job = eng, job
        self.next_off = 0
        self.inflight = 0
        self.eof = False
        self.failed = False
        self.error: Tuple[int, str, bool] = (0, "", False)
        self.total = 0
        self.bufs = eng.chunk_buffers(self.DEPTH)
        self.free = list(range(self.DEPTH))

    def start(self) -> None:
        while self.free and not self.eof:
            self._issue(self.free.pop())

    def _issue(self, b: int) -> None:
        _eng, ex = self.eng, self.eng.ex
        off = self.next_off
        self.next_off += _CHUNK
        self.inflight += 1
        cid = ex.chain(lambda idx, res, extra: self._done(b, off, idx, res))
        ex.read(cid, 0, self.job.src_fd, self.bufs, b * _CHUNK, _CHUNK, off, LINK | SKIP)
        ex.write(cid, 1, self.job.dst_fd, self.bufs, b * _CHUNK, _CHUNK, off)

    def _done(self, b: int, off: int, idx: int, res: int) -> None:
        if idx == 0:  # the READ broke its link: an error, or a short read
            if res < 0:
                self._fail(-res, "read", src=True)
                return
            self.eof = True  # (the WRITE of the pair was cancelled)
            if res > 0 and not self.failed:
                ex = self.eng.ex
                cid = ex.chain(lambda i, r, extra: self._written(b, off, res, r))
                ex.write(cid, 0, self.job.dst_fd, self.bufs, b * _CHUNK, res, off)
                return
            self._chunk_done(b)
            return
        if res == -errno.ECANCELED:
            return  # the READ of this pair has answered for it
        self._written(b, off, _CHUNK, res)

    def _written(self, b: int, off: int, n: int, res: int) -> None:
        """The WRITE of ``n`` bytes at ``off`` returned ``res``."""
        if res < 0:
            self._fail(-res, "write", src=False)
            return
        if res < n and not self.failed:  # a short write: finish it synchronously
            try:
                self.eng.ex.direct_syscalls["pwrite64"] += 1
                done = res
                view = self.bufs.view[b * _CHUNK: b * _CHUNK + n]
                while done < n:
                    done += os.pwrite(self.job.dst_fd, view[done:], off + done)
            except OSError as exc:
                self._fail(exc.errno or errno.EIO, "write", src=False)
                return
        self.total += n
        self._chunk_done(b)

    def _chunk_done(self, b: int) -> None:
        self.inflight -= 1
        eng = self.eng
        if not (self.eof or self.failed or eng.interrupted or eng.fatal is not None):
            self._issue(b)
            return
        self.free.append(b)
        self._end()

    def _fail(self, err: int, what: str, src: bool) -> None:
        self.inflight -= 1
        if not self.failed:
            self.failed = True
            self.error = (err, what, src)
        self._end()

    def _end(self) -> None:
        """Once no pair is in flight: fail, stop or publish the file.  (Not
        before: a linked WRITE gets its file only when the kernel issues it,
        and the job's fd numbers, closed, may by then be another file's.)"""
        if self.inflight:
            return
        eng, job = self.eng, self.job
        eng.release_chunks(self.bufs)
        if self.failed:
            err, what, src = self.error
            if src and err == errno.ESPIPE and not job.rechecked:
                _pipe_read(eng, job)
            elif src:
                eng.src_failed(job, err, what)
            else:
                eng.dst_failed(job, err, what)
            return
        if not self.eof:  # the copy is stopping: nothing published, no message
            eng.drop_job(job)
            return
        if eng.opts.fsync:  # (the small files' FSYNC is in their publishing chain)
            try:
                eng.ex.direct_syscalls["fsync"] += 1
                os.fsync(job.dst_fd)
            except OSError as exc:
                eng.dst_failed(job, exc.errno or errno.EIO, "fsync")
                return
        _large_copied(eng, job, self.total)


# --------------------------------------------------------------------------------------
# publishing
# --------------------------------------------------------------------------------------
def _finalize(eng: Engine, job: Job) -> None:
    """Owner, mode, xattrs and times first; then publish (when those must not lag)."""
    try:
        apply_file_meta(eng, job, job.dst_fd)
    except UnsafeToPublish as exc:
        eng.dst_failed(job, exc.errno or errno.EIO, "set the owner of")
        return
    except OSError as exc:
        _attrs_failed(eng, job, exc)
    if job.src_fd >= 0:  # kept open for the xattrs
        eng.ex.close_fd(0, 0, job.src_fd, SKIP)
        job.src_fd = -1
    _publish(eng, job, -1)


def _attrs_failed(eng: Engine, job: Job, exc: OSError) -> None:
    eng.attr_error(f'cannot set attributes of "{show(job.path)}"', exc)


# Indexes of the operations in a publishing chain.
_W, _F, _LINK, _TMPLINK, _RENAME, _X = 0, 1, 2, 3, 4, 5


def _publish(eng: Engine, job: Job, write_n: int) -> None:
    """Give the finished file its name: [WRITE ->] LINKAT, or LINKAT tmp, RENAMEAT.

    With ``write_n >= 0`` the data write of a small file leads the chain and
    the times are set after the name exists (see needs_meta_before_publish).
    With --fsync the chain ends at the FSYNC and the name follows once it has
    succeeded: a failing FSYNC does not break a link (executor._chain_end_only).
    """
    ex = eng.ex
    if write_n > 0 and not job.tmpname and job.dmeta is None and not eng.opts.fsync:
        # the common case (a new small file), as one call
        ex.write_linkat(partial(_on_published, eng, job, write_n), _W, job.dst_fd, eng.pool,
                        job.slot * eng.slot_size, write_n, _LINK, job.parent.dst_fd,
                        job.dst_name)
        return
    cid = ex.chain(partial(_on_published, eng, job, write_n))
    if write_n > 0:
        boff = job.slot * eng.slot_size
        ex.write(cid, _W, job.dst_fd, eng.pool, boff, write_n, 0, LINK | SKIP)
    if eng.opts.fsync and write_n >= 0:
        ex.fsync(cid, _F, job.dst_fd)
        return
    _name_it(eng, job, cid)


def _name_it(eng: Engine, job: Job, cid: int) -> None:
    d, ex = job.parent, eng.ex
    if job.tmpname:
        ex.renameat(cid, _RENAME, d.dst_fd, job.tmpname, d.dst_fd, job.dst_name, 0)
    elif job.dmeta is None:
        ex.linkat(cid, _LINK, job.dst_fd, b"", d.dst_fd, job.dst_name, A.AT_EMPTY_PATH)
    else:
        _replace_by_link(eng, job, cid, job.dst_fd, b"", A.AT_EMPTY_PATH)


def _replace_by_link(eng: Engine, job: Job, cid: int, fd: int, name: bytes, lflags: int) -> None:
    """Link to a temporary name; once that succeeded, _rename_tmp renames it over
    the existing entry (atomic).  Not linked: a failing LINKAT does not break a
    link, and the RENAMEAT would then move whatever has that name."""
    d, ex = job.parent, eng.ex
    job.tmpname = eng.tmp_name(job)
    ex.linkat(cid, _TMPLINK, fd, name, d.dst_fd, job.tmpname, lflags)


def _rename_tmp(eng: Engine, job: Job, callback: Callable[[int, int, Any], None]) -> None:
    d, ex = job.parent, eng.ex
    ex.renameat(ex.chain(callback), _RENAME, d.dst_fd, job.tmpname, d.dst_fd, job.dst_name, 0)


def _again(eng: Engine, job: Job, write_n: int) -> Callable[[int, int, Any], None]:
    """The callback of a further step of the same publication."""
    return partial(_on_published, eng, job, write_n)


def _on_published(eng: Engine, job: Job, write_n: int, idx: int, res: int, _extra: Any
                  ) -> None:
    ex, d = eng.ex, job.parent
    if idx == _X:  # an FSETXATTR (_meta_in_chain): the chain goes on whatever it says
        if res < 0 and res != -errno.ECANCELED:
            xattr_error(eng, job.path, OSError(-res, os.strerror(-res)))
        return
    if idx == _W:
        if res >= 0:
            # a short write broke the chain: write the rest, then publish
            _write(eng, job, res, write_n)
            return
        eng.dst_failed(job, -res, "write")
        return
    if res == -errno.ECANCELED:
        return  # an earlier operation of the chain failed and has reported
    if res >= 0 and idx == _F:
        _name_it(eng, job, ex.chain(_again(eng, job, write_n)))
        return
    if res == -errno.EEXIST and idx == _LINK:
        # the name appeared since we looked: replace it atomically (the times,
        # when still to be set, are set once this chain completes)
        _replace_by_link(eng, job, ex.chain(_again(eng, job, write_n)), job.dst_fd, b"",
                         A.AT_EMPTY_PATH)
        if write_n >= 0:
            job.dmeta = None  # (times are still to be set below, once published)
        return
    if res in (-errno.EPERM, -errno.ENOENT) and idx in (_LINK, _TMPLINK):
        # linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH on kernels before 6.10:
        # publish this file through /proc and name later files from the start
        eng.tmpfile_ok = False
        res = _proc_link(eng, job.dst_fd, d.dst_fd,
                         job.tmpname if idx == _TMPLINK else job.dst_name)
    if res >= 0 and idx == _TMPLINK:
        _rename_tmp(eng, job, _again(eng, job, write_n))
        return
    if res < 0:
        if job.tmpname and idx == _RENAME:
            eng.unlink_tmp(d, job.tmpname)
        job.tmpname = b""
        eng.dst_failed(job, -res, "fsync" if idx == _F else "publish")
        return
    job.tmpname = b""
    d.touched = True  # we changed it: its times are set again at its end
    md = job.meta
    assert md is not None
    if write_n >= 0:
        eng.stats.bytes_transferred += write_n
        if eng.opts.times:
            try:
                ex.futimens(job.dst_fd, md.atime_ns, md.mtime_ns)
            except OSError as exc:
                eng.attr_error(f'cannot set times of "{show(job.path)}"', exc)
    eng.stats.transferred += 1
    if eng.itemize is not None:
        item_sent(eng, job)
    group = eng.hardlinks.get((md.dev, md.ino)) if eng.opts.hard_links and md.nlink > 1 \
        else None
    if group is not None and not group.ready and not group.failed:
        eng.hold_group_fd(group, job.dst_fd, job.parent.rel, job.dst_name)
        group.ready = True
        job.dst_fd = -1
        release_waiters(eng, group)
    else:
        ex.close_fd(0, 0, job.dst_fd, SKIP)
        job.dst_fd = -1
    eng.finish(job)


def _proc_link(eng: Engine, fd: int, dirfd: int, name: bytes) -> int:
    """linkat through /proc/self/fd (for kernels that refuse AT_EMPTY_PATH to us)."""
    try:
        eng.ex.direct_syscalls["linkat"] += 1
        os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dirfd, follow_symlinks=True)
        return 0
    except OSError as exc:
        return -(exc.errno or errno.EIO)


# --------------------------------------------------------------------------------------
# hard links (-H)
# --------------------------------------------------------------------------------------
def _open_group_fd(eng: Engine, job: Job, group: HardlinkGroup) -> None:
    """The first name of a group is unchanged: get an fd of it for linkat."""
    ex = eng.ex
    cid = ex.chain(lambda idx, res, extra: _on_group_fd(eng, job, group, res))
    ex.openat2(cid, 0, job.parent.dst_fd, job.dst_name, os.O_PATH | os.O_NOFOLLOW, 0,
               RESOLVE_SAFE)


def _on_group_fd(eng: Engine, job: Job, group: HardlinkGroup, res: int) -> None:
    if res < 0:
        group.failed = True
    else:
        eng.hold_group_fd(group, res, job.parent.rel, job.dst_name)
        group.ready = True
    release_waiters(eng, group)
    eng.finish(job)


def send_deferred(eng: Engine, group: HardlinkGroup) -> None:
    """No name of a deferred group (start_file) has an up-to-date copy: its
    first name's data is sent after all, and the others are linked to it."""
    eng.undefer(group)
    first = group.waiters.pop(0)
    copy_first(eng, first, group, False)


def release_waiters(eng: Engine, group: HardlinkGroup) -> None:
    """The group's first name is in place (or failed): serve the names waiting."""
    waiters, group.waiters = group.waiters, []
    for w in waiters:
        if not group.failed:
            link_to_group(eng, w, group)
        elif w.meta is not None and w.meta.is_file():
            start_file(eng, w)  # copy it on its own
        else:
            eng.dispatch_unlinked(w)


def link_to_group(eng: Engine, job: Job, group: HardlinkGroup) -> None:
    if not group.ready:
        group.waiters.append(job)  # the first copy is still in flight (or deferred)
        if group.deferred and len(group.waiters) > group.remaining:
            send_deferred(eng, group)  # every name has come, none up to date
        return
    dm = job.dmeta
    if group.fd < 0 and group.home is not None and not eng.opts.dry_run \
            and (dm is None or dm.ino != group.dst_ino) \
            and not eng.find_group_fd(group, job.parent.dst_fd):
        # its fd was let go (Engine.hold_group_fd), and the first copy is not
        # where it was: this name is copied on its own, and becomes a new first
        group.failed = True
        eng.let_go_group(group)
        if job.meta is not None and job.meta.is_file():
            start_file(eng, job)
        else:
            eng.dispatch_unlinked(job)
        return
    group.remaining -= 1
    if dm is not None and dm.ino == group.dst_ino:
        eng.stats.unchanged += 1
        _group_done(eng, group)
        eng.finish(job)
        return
    if eng.opts.dry_run:
        _item_link(eng, job, group)
        eng.stats.hardlinks += 1
        _group_done(eng, group)
        eng.finish(job)
        return
    ex, d = eng.ex, job.parent
    group.linking += 1
    cid = ex.chain(lambda idx, res, extra: _on_linked(eng, job, group, idx, res))
    if dm is None:
        ex.linkat(cid, _LINK, group.fd, b"", d.dst_fd, job.dst_name, A.AT_EMPTY_PATH)
    else:
        _replace_by_link(eng, job, cid, group.fd, b"", A.AT_EMPTY_PATH)


def _on_linked(eng: Engine, job: Job, group: HardlinkGroup, idx: int, res: int) -> None:
    d = job.parent
    if res in (-errno.EPERM, -errno.ENOENT) and idx in (_LINK, _TMPLINK):
        # no AT_EMPTY_PATH for us (kernels before 6.10, non-root): through /proc
        res = _proc_link(eng, group.fd, d.dst_fd, job.tmpname if idx == _TMPLINK
                         else job.dst_name)
    if res >= 0 and idx == _TMPLINK:
        # (group.linking stays: the RENAMEAT still names an entry of the group)
        _rename_tmp(eng, job, lambda i, r, extra: _on_linked(eng, job, group, _RENAME, r))
        return
    group.linking -= 1
    if res < 0:
        if job.tmpname and idx == _RENAME:
            eng.unlink_tmp(d, job.tmpname)
        job.tmpname = b""
        if res == -errno.ENOENT and idx != _RENAME and _first_gone(eng, group):
            _copy_alone(eng, job, group)
            return
        _group_done(eng, group)
        eng.dst_failed(job, -res, "hard link")
        return
    job.tmpname = b""
    d.touched = True
    eng.stats.hardlinks += 1
    _item_link(eng, job, group)
    _group_done(eng, group)
    eng.finish(job)


def _first_gone(eng: Engine, group: HardlinkGroup) -> bool:
    """Has the group's first copy lost its last name?  Another copy of the
    same tree into the same destination renamed its own file over it (or
    someone removed it): a LINKAT of an unlinked inode fails with ENOENT."""
    if group.fd < 0:
        return False
    try:
        eng.ex.direct_syscalls["fstat"] += 1
        return os.fstat(group.fd).st_nlink == 0
    except OSError:
        return False


def _copy_alone(eng: Engine, job: Job, group: HardlinkGroup) -> None:
    """The first copy is gone: this name is copied on its own (it becomes the
    first of a new group, which later names link to), as rsync's hard-link
    fallback does; not "cannot hard link" (exit 23).  The names already
    linked keep the old inode: a later run finds them up to date."""
    group.failed = True
    eng.let_go_group(group)
    _group_done(eng, group)
    md = job.meta
    if md is not None and md.is_file():
        start_file(eng, job)
    else:
        eng.dispatch_unlinked(job)


def _item_link(eng: Engine, job: Job, group: HardlinkGroup) -> None:
    """-v: rsync -i's line of a name linked to its group's first copy: its type
    (f, L, D, S), ``+`` for a new name or blanks for one replaced, ``=> first``."""
    if eng.itemize is None:
        return
    md = job.meta
    assert md is not None
    eng.item(b"h" + eng.item_kind(md) + (b"+++++++++ " if job.dmeta is None else b" " * 10),
             job.path + b" => " + group.first)


def _group_done(eng: Engine, group: HardlinkGroup) -> None:
    # Close the first copy's fd only when no name is left to link (or it is
    # gone: _copy_alone) *and* no LINKAT using it is still in flight (io-wq
    # resolves the fd when it runs).
    if (group.remaining <= 0 or group.failed) and group.linking == 0 and group.fd >= 0:
        eng.ex.close_fd(0, 0, group.fd, SKIP)
        group.fd = -1
        group.failed = True  # nothing more will link to it
        eng.let_go_group(group)

