"""Owner, permissions, times and extended attributes of the copies.

Everything goes through fds.  io_uring has no opcode for fchown, fchmod or
futimens, so these are direct syscalls -- made only when needed: a file created
with the right mode (umask 0 during the copy) by the right user needs only its
times set.
"""

from __future__ import annotations

import errno
import os

from .. import _abi as A
from .. import _syscall
from ..dirfd import _chmod_o_path, _reopen_widened
from ..executor import RESOLVE_SAFE, SKIP
from ..metadata import STATX_WANTED, Metadata
from .text import show

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import AnyStr, Callable, List, Optional, Sequence, Tuple, Union

    from .engine import DirTask, Engine, Job


def _ids_change(eng: Engine, md: Metadata, cur_uid: int, cur_gid: int) -> bool:
    uid, gid = eng.owner_target(md)
    return (uid >= 0 and uid != cur_uid) or (gid >= 0 and gid != cur_gid)


def src_still_is(eng: Engine, job: Job, fd: int) -> bool:
    """A source opened by name again (for its xattrs): is it the file its
    statx described?  Only asked where someone else may rename entries of its
    directory (DirTask.shared); elsewhere nobody can swap it.  One statx."""
    md = job.meta
    if not job.parent.shared or md is None:
        return True
    eng.ex.direct_syscalls["statx"] += 1
    try:
        buf = _syscall.ctypes.create_string_buffer(A.STATX_STRUCT_SIZE)
        _syscall.statx(fd, b"", A.AT_EMPTY_PATH | A.AT_SYMLINK_NOFOLLOW, STATX_WANTED, buf)
    except OSError:
        return False
    return Metadata.from_statx(buf).same_file(md)


def _vanished(eng: Engine, job: Job) -> None:
    eng.stats.vanished += 1  # (exit 24, as for a file that vanished before)
    eng.report(f'file has vanished: "{show(job.path)}"')


def needs_meta_before_publish(eng: Engine, job: Job) -> bool:
    """Must owner/mode/xattrs be set before the file gets its name?

    Yes when the owner changes (a setuid file must not be visible as root's),
    when a non-root write will have cleared setuid/setgid, and for xattrs
    (security.capability).  Otherwise the name is given first and the times
    right after -- one round trip less per file.
    """
    md = job.meta
    assert md is not None
    if job.xattrs:
        return True
    if _ids_change(eng, md, eng.euid, job.parent.dst_gid_new):
        return True
    return not eng.write_keeps_suid and bool(
        final_mode(eng, md, job.dmeta, job.parent.dst_gid_new) & 0o6000)


def final_mode(eng: Engine, md: Metadata, dm: Optional[Metadata], gid_new: int = -1) -> int:
    """The permission bits the copy of ``md`` ends with, replacing ``dm`` (None:
    nothing there; ``gid_new``: the group a new entry gets there unless -g sets
    it).  Without -p an entry that exists as the same type keeps its
    permissions, as with rsync; a new one gets the source's less the umask."""
    if eng.opts.perms:
        return md.mode & 0o7777
    if dm is not None and dm.mode & 0o170000 == md.mode & 0o170000:
        if dm.mode & 0o6000 and dm.mode & 0o170000 != 0o040000:
            # A replaced file must not keep setuid/setgid for an owner it no
            # longer has (rsync does keep them: a user's setuid file rewritten
            # by root would be a setuid-root file with the user's contents).
            uid, gid = eng.owner_target(md)
            if (uid if uid >= 0 else eng.euid) != dm.uid \
                    or (gid if gid >= 0 else gid_new) != dm.gid:
                return dm.mode & 0o1777
        return dm.mode & 0o7777
    return md.mode & 0o777 & ~eng.umask


def xattrs_need_write(eng: Engine, xattrs: bool, mode: int) -> bool:
    """Setting user.* xattrs needs write permission on the inode (not just the
    fd): a non-root copy of a read-only file is created writable by its owner
    and given its real mode after the xattrs, as cp -a and rsync -X do."""
    return xattrs and not eng.is_root and not mode & 0o200


class UnsafeToPublish(OSError):
    """A new file could not be given its owner, and still has setuid/setgid
    bits it was created with: it must not get a name."""


def set_owner_mode(eng: Engine, job: Job, fd: int) -> int:
    """Owner, then the setuid/setgid bits (chown clears them, and so does a
    write without CAP_FSETID) of a new file; returns its final mode.  Where
    the chown fails, those bits are taken away (a setuid file must not be
    published as the copying user's), or UnsafeToPublish is raised."""
    md = job.meta
    assert md is not None
    ex = eng.ex
    chowned = False
    final = final_mode(eng, md, job.dmeta, job.parent.dst_gid_new)
    if _ids_change(eng, md, eng.euid, job.parent.dst_gid_new):
        uid, gid = eng.owner_target(md)
        try:
            ex.fchown(fd, uid, gid)
            chowned = True
        except OSError as exc:
            if exc.errno != errno.EPERM or eng.is_root:
                if final & 0o6000:
                    try:
                        ex.fchmod(fd, final & 0o1777)
                    except OSError:
                        raise UnsafeToPublish(exc.errno, exc.strerror) from exc
                raise
    if final & 0o6000 and (chowned or not eng.write_keeps_suid):
        ex.fchmod(fd, final)
    return final


def apply_file_meta(eng: Engine, job: Job, fd: int) -> None:
    """Owner, special mode bits, xattrs and times of a freshly written file."""
    md = job.meta
    assert md is not None
    ex, opts = eng.ex, eng.opts
    final = set_owner_mode(eng, job, fd)
    acl_set = False
    if job.xattrs and job.xattr_pairs is not None:  # (read already: filecopy)
        acl_set = _set_pairs(eng, fd, job.path, job.xattr_pairs)
    elif job.xattrs and job.src_fd >= 0:
        acl_set = copy_xattrs_fd(eng, job.src_fd, fd, job.path)
    elif job.xattrs:
        acl_set = _copy_xattrs_reopen(eng, job, fd)
    reset = xattrs_need_write(eng, job.xattrs, final)  # created writable for the xattrs
    if job.parent.acl_inherit and not acl_set:  # (only ever set under -A)
        # an access ACL inherited from the destination's default ACL, which the
        # source does not have (rsync -A and cp -a remove it); it also masked the
        # mode the file was created with
        reset = _drop_inherited_acl(eng, fd, job.path) or reset
    if reset:
        ex.fchmod(fd, final)  # now its real mode
    if opts.times:
        ex.futimens(fd, md.atime_ns, md.mtime_ns)


def apply_dir_meta(eng: Engine, d: DirTask, md: Metadata) -> None:
    """At the end of a directory: owner, mode, xattrs, then times (contents are done)."""
    ex, opts = eng.ex, eng.opts
    fd = d.dst_fd
    # Change only what differs from what the destination has (a no-change
    # re-run then touches no directory: no syscall, no ctime moved).  For a
    # directory we created: our uid, the gid new entries get, mode 0700.
    have = d.dst_meta
    cur_uid, cur_gid = (have.uid, have.gid) if have is not None else (eng.euid,
                                                                       d.dst_gid_new)
    cur_mode = have.mode & 0o7777 if have is not None else 0o700
    if d.dst_mode_now >= 0:
        cur_mode = d.dst_mode_now  # opened up for this copy (Engine._open_up)
    want_mode = final_mode(eng, md, have)
    try:
        if _ids_change(eng, md, cur_uid, cur_gid):
            uid, gid = eng.owner_target(md)
            try:
                ex.fchown(fd, uid, gid)
                cur_mode = -1  # chown may have cleared setgid: set the mode again
            except OSError as exc:
                if exc.errno != errno.EPERM or eng.is_root:
                    raise
        # (not after a full disk stopped the copy: an xattr may need a block,
        # and its failure would leave the mode and times unset; a re-run
        # gives them)
        if (opts.xattrs or opts.acls) and eng.fatal is None:
            # before the mode: a read-only mode would refuse user.* xattrs
            copy_xattrs_fd(eng, d.src_fd, fd, d.rel or b".", replace=True)
        if want_mode != cur_mode:
            ex.fchmod(fd, want_mode)
        d.dst_mode_now = -1
        # mtime decides: our own getdents of the destination may move its atime
        if opts.times and (have is None or d.touched
                           or not opts.same_mtime(md.mtime_ns, have.mtime_ns)):
            ex.futimens(fd, md.atime_ns, md.mtime_ns)
    except OSError as exc:
        eng.attr_error(f'cannot set attributes of directory "{show(d.rel or b".")}"', exc)


def item_dir(eng: Engine, d: DirTask, md: Metadata, have: Metadata) -> None:
    """-v: the itemized line of a directory that existed (one the copy makes is
    listed as made), written as its contents start, as rsync does: what
    apply_dir_meta will change at the end (which xattrs is asked, not done)."""
    names: List[str] = []
    if eng.copies_xattrs and d.dst_fd >= 0:
        try:
            _xattrs_would_change(eng, d.src_fd, d.dst_fd, names)
        except OSError:
            pass  # (apply_dir_meta reports it)
    t = eng.opts.times_differ(md.mtime_ns, have.mtime_ns)
    p = final_mode(eng, md, have) != have.mode & 0o7777
    item_attrs(eng, b"d", (d.rel or b".") + b"/", md, have, t, p, names)


def unchanged_fixes(eng: Engine, md: Metadata, dm: Metadata) -> Tuple[bool, bool]:
    """(mode, owner) of a destination file whose data is current: do they differ
    from what the copy would give it?"""
    return (eng.opts.perms and dm.mode & 0o7777 != md.mode & 0o7777,
            _ids_change(eng, md, dm.uid, dm.gid))


def item_attrs(eng: Engine, kind: bytes, path: bytes, md: Metadata, dm: Metadata,
               t: bool, p: bool, xnames: Sequence[str] = ()) -> None:
    """-v: an entry whose data is current and whose times (``t``), permissions
    (``p``), owner, group, ACLs or xattrs (``xnames``: names changed or removed)
    are brought up to date -- or, with -n, would be -- as rsync -i shows it:
    ``.d..tpog.ax`` (``kind``: f, d or L)."""
    a = any(n.startswith(_ACL_PREFIX) for n in xnames)
    x = any(not n.startswith(_ACL_PREFIX) for n in xnames)
    tpog = _tpog(eng, md, dm, t, p)
    if tpog != b"...." or a or x:
        eng.item(b"." + kind + b".." + tpog + b"."
                 + (b"a" if a else b".") + (b"x" if x else b".") + b" ", path)


def _tpog(eng: Engine, md: Metadata, dm: Metadata, t: bool, p: bool) -> bytes:
    """rsync -i's t, p, o and g letters (``.`` where nothing changes)."""
    uid, gid = eng.owner_target(md)
    return ((b"t" if t else b".") + (b"p" if p else b".")
            + (b"o" if uid >= 0 and uid != dm.uid else b".")
            + (b"g" if gid >= 0 and gid != dm.gid else b"."))


def item_made(eng: Engine, kind: bytes, path: bytes, md: Metadata,
              dm: Optional[Metadata]) -> None:
    """-v: a symlink or special file made (``kind``: L, D or S), as rsync -i
    writes it: ``cL+++++++++`` where there was none of its type, else what
    differs from the one it replaces: ``cLc.t......`` (c: the target or the
    device number)."""
    if dm is None or dm.mode & 0o170000 != md.mode & 0o170000:
        eng.item(b"c" + kind + b"+++++++++ ", path)
        return
    opts = eng.opts
    p = kind != b"L" and opts.perms and md.mode & 0o7777 != dm.mode & 0o7777
    eng.item(b"c" + kind + b"c."
             + _tpog(eng, md, dm, opts.times_differ(md.mtime_ns, dm.mtime_ns), p)
             + b"... ", path)


def item_sent(eng: Engine, job: Job) -> None:
    """-v: the line of a regular file whose data is sent, as rsync -i writes it:
    ``>f+++++++++`` where nothing (or no regular file) had its name, else what
    differs from the file it replaces: s (size), t (mtime; T without -t),
    p, o, g, and a / x (ACLs / xattrs, asked by name, only under -A / -X)."""
    md, dm = job.meta, job.dmeta
    assert md is not None
    if dm is None or not dm.is_file():
        eng.item(b">f+++++++++ ", job.path)
        return
    opts = eng.opts
    uid, gid = eng.owner_target(md)
    xnames = job.item_xattrs
    if xnames is None:
        xnames = _xattrs_differ_by_name(eng, job) if eng.copies_xattrs else []
    eng.item(b">f."
             + (b"s" if md.size != dm.size else b".")
             + ((b"." if opts.same_mtime(md.mtime_ns, dm.mtime_ns) else b"t") if opts.times
                else b"T")
             + (b"p" if opts.perms and md.mode & 0o7777 != dm.mode & 0o7777 else b".")
             + (b"o" if uid >= 0 and uid != dm.uid else b".")
             + (b"g" if gid >= 0 and gid != dm.gid else b".") + b"."
             + (b"a" if any(n.startswith(_ACL_PREFIX) for n in xnames) else b".")
             + (b"x" if any(not n.startswith(_ACL_PREFIX) for n in xnames) else b".")
             + b" ", job.path)


def xattrs_before_replacing(eng: Engine, job: Job) -> None:
    """item_sent's xattr names of a file about to replace a regular file."""
    dm = job.dmeta
    if eng.itemize is not None and eng.copies_xattrs and dm is not None and dm.is_file():
        job.item_xattrs = _xattrs_differ_by_name(eng, job)


def _xattrs_differ_by_name(eng: Engine, job: Job) -> List[str]:
    """The kept xattr names whose values differ between the source and the
    destination entry of ``job`` (or that only one has), asked by name; for
    an itemized line only: any error, and the answer is none."""
    d, keep = job.parent, eng._xattr_names
    reader = xattr_reader(eng)
    count = eng.ex.direct_syscalls
    try:
        sides = []
        for dfd, name in ((d.src_fd, job.name), (d.dst_fd, job.dst_name)):
            count["listxattrat"] += 1
            pairs = {}
            for n in _names_at(reader, dfd, name):
                if keep(os.fsdecode(n)):
                    count["getxattrat"] += 1
                    pairs[n] = reader.value(dfd, name, n)
            sides.append(pairs)
    except OSError:
        return []
    src, dst = sides
    return [os.fsdecode(n) for n in sorted(src.keys() | dst.keys()) if src.get(n) != dst.get(n)]


def item_unchanged(eng: Engine, job: Job, xnames: Sequence[str] = ()) -> None:
    """item_attrs of an unchanged regular file (its size and mtime are current)."""
    md, dm = job.meta, job.dmeta
    if eng.itemize is None or md is None or dm is None:
        return
    item_attrs(eng, b"f", job.path, md, dm, False,
               eng.opts.perms and dm.mode & 0o7777 != md.mode & 0o7777, xnames)


def item_unchanged_dry(eng: Engine, job: Job) -> None:
    """item_unchanged for -n: which xattrs would change is asked, not done."""
    names: List[str] = []
    if job.xattrs and eng.itemize is not None:
        _sync_unchanged_xattrs(eng, job, check=True, changed=names)
    item_unchanged(eng, job, names)


def fix_unchanged(eng: Engine, job: Job, done: Callable[[], None]) -> None:
    """The data is current; bring mode and owner up to date if they differ, then done()."""
    md, dm = job.meta, job.dmeta
    assert md is not None and dm is not None
    want_mode, want_ids = unchanged_fixes(eng, md, dm)
    changed: List[str] = []  # (xattr names, for the itemized line)
    if not (want_mode or want_ids):
        if job.xattrs:
            _sync_unchanged_xattrs(eng, job, changed=changed)
        item_unchanged(eng, job, changed)
        done()
        return
    ex = eng.ex
    cid = ex.chain(lambda idx, res, extra: _fix_with_fd(eng, job, res, want_ids, changed,
                                                        done))
    ex.openat2(cid, 0, job.parent.dst_fd, job.dst_name, os.O_PATH | os.O_NOFOLLOW, 0,
               RESOLVE_SAFE)


def _fix_with_fd(eng: Engine, job: Job, fd: int, want_ids: bool, changed: List[str],
                 done: Callable[[], None]) -> None:
    md, dm = job.meta, job.dmeta
    assert md is not None and dm is not None
    ex = eng.ex
    try:
        if fd < 0:
            raise OSError(-fd, os.strerror(-fd))
        # the name may have been swapped for a link to some other file since
        # we looked at it: change nothing unless it is still that inode
        ex.direct_syscalls["fstat"] += 1
        st = os.fstat(fd)
        if st.st_ino != dm.ino or st.st_dev != dm.dev:
            raise OSError(errno.ESTALE, "entry replaced during the copy")
        if want_ids:
            uid, gid = eng.owner_target(md)
            ex.empty_path_chown(fd, uid, gid)
        if job.xattrs:
            # after the chown, which clears security.capability; before the mode
            _sync_unchanged_xattrs(eng, job, changed=changed)
        if eng.opts.perms:
            _chmod_o_path(ex, fd, md.mode & 0o7777)  # (with the fallback before 6.6)
    except OSError as exc:
        eng.attr_error(f'cannot set attributes of "{show(job.path)}"', exc)
    finally:
        if fd >= 0:
            ex.close_fd(0, 0, fd, SKIP)
    item_unchanged(eng, job, changed)
    done()


def _sync_unchanged_xattrs(eng: Engine, job: Job, check: bool = False,
                           changed: Optional[List[str]] = None) -> bool:
    """-X / -A on a re-run: make the xattrs of an unchanged file equal the source's.

    With ``check`` nothing is changed: would anything be?  (Asked in a source
    directory others may write to, where the answer yes has the file copied
    again: see filecopy._attrs_would_change.)  Any doubt there -- an error,
    a file that is not the statx'd one -- is a yes; a destination that takes
    no xattrs at all is a no.  The names changed (or, with ``check``, that would
    be) are added to ``changed``."""
    dm = job.dmeta
    assert dm is not None
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    count = eng.ex.direct_syscalls
    src = dst = opath = -1
    restore = -1
    acl_set = False
    try:
        count["openat"] += 2
        try:
            src = os.open(job.name, flags, dir_fd=job.parent.src_fd)
        except FileNotFoundError:
            if check:
                return True
            _vanished(eng, job)
            return False
        if not src_still_is(eng, job, src):
            if check:
                return True
            _vanished(eng, job)
            return False
        try:
            dst = os.open(job.dst_name, flags, dir_fd=job.parent.dst_fd)
        except PermissionError:
            if eng.is_root or dm.uid != eng.euid or eng.opts.dry_run:
                raise  # (a dry run changes nothing, not even for a moment)
            # a file of ours without u+r (rsync reads it all the same): u+rw
            # through an O_PATH fd of that very inode, the mode back at the end
            count["openat"] += 2
            opath = os.open(job.dst_name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC,
                            dir_fd=job.parent.dst_fd)
            dst, restore = _reopen_widened(
                eng.ex, opath, (dm.ino, dm.dev), 0o600,
                lambda: os.open(job.dst_name, flags, dir_fd=job.parent.dst_fd))
        count["fstat"] += 1
        st = os.fstat(dst)
        if (st.st_ino, st.st_dev) != (dm.ino, dm.dev):
            raise OSError(errno.ESTALE, "entry replaced during the copy")
        if check:
            return _xattrs_would_change(eng, src, dst, changed)
        unlock = -1
        if not eng.is_root and st.st_uid == eng.euid and not st.st_mode & 0o200:
            unlock = st.st_mode & 0o7777  # a read-only file of ours (rsync does the same)
        acl_set = copy_xattrs_fd(eng, src, dst, job.path, replace=True, unlock=unlock,
                                 changed=changed)
    except OSError as exc:
        if check:
            return True
        xattr_error(eng, job.path, exc)
    finally:
        if restore >= 0 and not acl_set:  # (a new access ACL set the source's mode)
            try:
                _chmod_o_path(eng.ex, opath, restore)
            except OSError as exc:
                xattr_error(eng, job.path, exc)
        for fd in (src, dst, opath):
            if fd >= 0:
                os.close(fd)
    return False


def xattrs_differ(eng: Engine, job: Job) -> bool:
    """-X / -A on a re-run in a directory others may write to: would an
    unchanged file's xattrs change?  (Then it is copied again, not given
    them: the name may hold a file swapped in since the last run with the
    same size and mtime, whose data must not get the other's xattrs --
    security.capability, an ACL.)  No: the later sync is skipped, it would
    find nothing to do."""
    if _sync_unchanged_xattrs(eng, job, check=True):
        return True
    job.xattrs = False
    return False


def _xattrs_would_change(eng: Engine, src: int, dst: int,
                         changed: Optional[List[str]] = None) -> bool:
    """With ``changed``: every name that would change is added to it (else the
    answer comes at the first)."""
    count = eng.ex.direct_syscalls
    try:
        count["flistxattr"] += 1
        names = [n for n in os.listxattr(src) if eng._xattr_names(n)]
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        names = []  # (a source file system without xattrs)
    try:
        drop, change = _xattr_diff(eng, src, dst, names)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return False  # (a destination file system without xattrs)
        raise
    out = changed if changed is not None else []
    out.extend(drop)
    for name, _value in change:
        if out and changed is None:
            break
        # one the destination's file system cannot take (ramfs lists none
        # and refuses user.*) would not change: the copy could not set it
        try:
            count["fgetxattr"] += 1
            os.getxattr(dst, name)
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                continue
        out.append(name)
    return bool(out)


# --------------------------------------------------------------------------------------
# extended attributes (-X) and ACLs (-A, as system.posix_acl_* xattrs)
# --------------------------------------------------------------------------------------
#: the namespaces every file system with xattrs knows: "not supported" for one
#: of their names means none is (a file system without xattrs: ramfs); for
#: another name (btrfs.compression onto ext4) only that name is refused
_COMMON_NAMESPACES = (b"user.", b"trusted.", b"security.", b"system.")


def common_xattr(name: Union[str, bytes]) -> bool:
    return os.fsencode(name).startswith(_COMMON_NAMESPACES)


def xattr_error(eng: Engine, path: bytes, exc: OSError,
                name: Optional[Union[str, bytes]] = None) -> None:
    if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP) and (name is None or common_xattr(name)):
        # xattrs or ACLs asked for (-X / -A) and lost are a partial transfer, as
        # rsync has it (exit 23; cp -a fails too): one message and one error for
        # the run, not one per file
        if not eng.xattr_warned:
            eng.xattr_warned = True
            eng.stats.errors += 1
            eng.report(f'extended attributes are not supported on the destination: '
                       f'those of "{show(path)}" and of any later file are not copied')
        return
    if name is None:
        eng.attr_error(f'cannot copy extended attributes of "{show(path)}"', exc)
    else:
        eng.attr_error(f'cannot copy extended attribute "{show(os.fsencode(name))}" of '
                       f'"{show(path)}"', exc)


_ACL_PREFIX = "system.posix_acl_"


def acls_last(names: List[AnyStr]) -> List[AnyStr]:
    """An access ACL sets the permission bits when it is written: when that takes
    u+w away, user.* xattrs written after it are refused (rsync, too, writes
    the ACLs after the other xattrs)."""
    return sorted(names, key=lambda n: os.fsdecode(n).startswith(_ACL_PREFIX))


def _list_xattrs(eng: Engine, src: int, path: bytes) -> Optional[List[str]]:
    """The names -X / -A copy from the open file ``src``, ACLs last; None when
    they cannot be listed (reported, unless the file system has no xattrs)."""
    eng.ex.direct_syscalls["flistxattr"] += 1
    try:
        return acls_last([n for n in os.listxattr(src) if eng._xattr_names(n)])
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
            xattr_error(eng, path, exc)
        return None


def copy_xattrs_fd(eng: Engine, src: int, dst: int, path: bytes,
                   replace: bool = False, unlock: int = -1,
                   changed: Optional[List[str]] = None) -> bool:
    """Copy the xattrs ``-X`` / ``-A`` select.  With ``replace`` (a destination
    that existed before) change only what differs -- a no-change re-run writes
    nothing -- and remove the destination's that the source lacks.  ``unlock``
    >= 0: the destination's mode, which lacks u+w (a non-root owner cannot set
    user.* xattrs then); it gets u+w for the changes and this mode back.
    True when an access ACL was written (it set the permission bits)."""
    count = eng.ex.direct_syscalls
    names = _list_xattrs(eng, src, path)
    if names is None:
        return False
    if not replace:
        return _set_pairs(eng, dst, path, _values(eng, src, path, names))
    try:
        drop, change = _xattr_diff(eng, src, dst, names)
    except OSError as exc:
        xattr_error(eng, path, exc)
        return False
    if not (drop or change):
        return False
    if unlock >= 0:
        try:
            eng.ex.fchmod(dst, unlock | 0o200)
        except OSError:
            unlock = -1  # (the changes below fail and say why)
    acl_set = False
    # (``changed``, for the itemized line: what was changed, or failed to be --
    # not what the destination's file system cannot hold, which -n leaves out too)
    failed = [0]
    for name in drop:
        try:
            count["fremovexattr"] += 1
            os.removexattr(dst, name)
        except OSError as exc:
            # (ENODATA: gone already -- with another name that was the same
            # data, as a file system's alias of an ACL)
            if exc.errno != errno.ENODATA:
                _xattr_failed(eng, path, exc, name, failed)
                if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                    continue
        if changed is not None:
            changed.append(name)
    for name, value in change:
        try:
            count["fsetxattr"] += 1
            os.setxattr(dst, name, value)
            acl_set = acl_set or name == "system.posix_acl_access"
        except OSError as exc:
            _xattr_failed(eng, path, exc, name, failed)
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                continue
        if changed is not None:
            changed.append(name)
    _more_failed(eng, path, failed)
    # (a new access ACL has set the mode to its own, the source's: that one stays)
    if unlock >= 0 and not acl_set:
        try:
            eng.ex.fchmod(dst, unlock)
        except OSError as exc:
            xattr_error(eng, path, exc)
    return acl_set


def _xattr_diff(eng: Engine, src: int, dst: int, names: List[str]
                ) -> Tuple[List[str], List[Tuple[str, bytes]]]:
    """What makes dst's selected xattrs the source's ``names``: (names to
    remove, (name, value) to set)."""
    count = eng.ex.direct_syscalls
    keep: Callable[[str], bool] = eng._xattr_names
    count["flistxattr"] += 1
    have = {n for n in os.listxattr(dst) if keep(n)}
    drop = sorted(n for n in have if n not in names)  # (the same order every run)
    change = []
    for name in names:
        count["fgetxattr"] += 1
        value = os.getxattr(src, name)
        if name in have:
            count["fgetxattr"] += 1
            if os.getxattr(dst, name) == value:
                continue
        change.append((name, value))
    return drop, change


def read_xattrs(eng: Engine, src: int, path: bytes) -> List[Tuple[bytes, bytes]]:
    """The (name, value) pairs -X / -A copy from the open file ``src``, ACLs
    last (see acls_last); what cannot be read is reported and left out."""
    names = _list_xattrs(eng, src, path)
    return _values(eng, src, path, names) if names else []


def _values(eng: Engine, src: int, path: bytes, names: List[str]) -> List[Tuple[bytes, bytes]]:
    count = eng.ex.direct_syscalls
    pairs = []
    for name in names:
        try:
            count["fgetxattr"] += 1
            pairs.append((os.fsencode(name), os.getxattr(src, name)))
        except OSError as exc:
            xattr_error(eng, path, exc)
    return pairs


def _set_pairs(eng: Engine, dst: int, path: bytes, pairs: List[Tuple[bytes, bytes]]) -> bool:
    """Set xattrs read before (read_xattrs, or by name); True when an access
    ACL was among them (it set the permission bits)."""
    count = eng.ex.direct_syscalls
    acl_set = False
    failed = [0]
    for name, value in pairs:
        try:
            count["fsetxattr"] += 1
            os.setxattr(dst, name, value)
            acl_set = acl_set or name == b"system.posix_acl_access"
        except OSError as exc:
            _xattr_failed(eng, path, exc, name, failed)
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP) and common_xattr(name):
                break  # (none will go)
    _more_failed(eng, path, failed)
    return acl_set


def _xattr_failed(eng: Engine, path: bytes, exc: OSError, name: Union[str, bytes],
                  failed: List[int]) -> None:
    """One of a file's xattrs could not be set or removed: the first such is
    said with its name, the others counted (a file may have thousands)."""
    if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP) and common_xattr(name):
        xattr_error(eng, path, exc)  # (the run's one line for a file system without)
        return
    failed[0] += 1
    if failed[0] == 1:
        xattr_error(eng, path, exc, name)


def _more_failed(eng: Engine, path: bytes, failed: List[int]) -> None:
    if failed[0] > 1 and eng.fatal is None:
        eng.stats.errors += 1
        eng.report(f'cannot copy {failed[0] - 1} more extended attributes of "{show(path)}"')


def _drop_inherited_acl(eng: Engine, fd: int, path: bytes) -> bool:
    """Remove the access ACL a new file got from its directory's default ACL;
    True when there was one."""
    try:
        eng.ex.direct_syscalls["fremovexattr"] += 1
        os.removexattr(fd, "system.posix_acl_access")
    except OSError as exc:
        if exc.errno != errno.ENODATA:
            xattr_error(eng, path, exc)
        return False
    return True


def _copy_xattrs_reopen(eng: Engine, job: Job, dst: int) -> bool:
    """The source was read through a direct descriptor: open it once more for
    xattrs.  True when an access ACL was written (copy_xattrs_fd)."""
    count = eng.ex.direct_syscalls
    try:
        count["openat"] += 1
        fd = os.open(job.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=job.parent.src_fd)
    except OSError as exc:
        xattr_error(eng, job.path, exc)
        return False
    try:
        if not src_still_is(eng, job, fd):
            _vanished(eng, job)  # (an empty file's: it goes out without xattrs)
            return False
        return copy_xattrs_fd(eng, fd, dst, job.path)
    finally:
        count["close"] += 1
        os.close(fd)


def copy_xattrs_by_name(eng: Engine, job: Job, replace: bool = False,
                        changed: Optional[List[str]] = None, dry: bool = False) -> None:
    """Symlinks (no usable fd): the *xattrat syscalls (Linux 6.13) by name.
    With ``replace`` (an unchanged symlink on a re-run) only what differs is
    changed, and the destination's names the source lacks are removed (and
    added to ``changed``, with those set).  ``dry``: nothing is changed, the
    names that would be are still added to ``changed``."""
    keep = eng._xattr_names
    d = job.parent
    count = eng.ex.direct_syscalls
    nofollow = A.AT_SYMLINK_NOFOLLOW
    reader = xattr_reader(eng)
    try:
        count["listxattrat"] += 1
        names = [n for n in _names_at(reader, d.src_fd, job.name) if keep(os.fsdecode(n))]
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            names = []  # (a source file system without xattrs: none to copy)
        elif exc.errno == errno.ENOSYS:
            return  # kernel before 6.13: symlink xattrs cannot be reached by fd or name
        else:
            xattr_error(eng, job.path, exc)
            return
    try:
        have: List[bytes] = []
        if replace:
            count["listxattrat"] += 1
            have = [n for n in _names_at(reader, d.dst_fd, job.dst_name)
                    if keep(os.fsdecode(n))]
            for name in have:
                if name not in names:
                    if changed is not None:
                        changed.append(os.fsdecode(name))
                    if not dry:
                        count["removexattrat"] += 1
                        try:
                            _syscall.removexattrat(d.dst_fd, job.dst_name, nofollow, name)
                        except OSError as exc:
                            if exc.errno != errno.ENODATA:  # (gone already: as above)
                                raise
        for name in names:
            count["getxattrat"] += 1
            value = reader.value(d.src_fd, job.name, name)
            if name in have:
                count["getxattrat"] += 1
                if reader.value(d.dst_fd, job.dst_name, name) == value:
                    continue
            if changed is not None and replace:
                changed.append(os.fsdecode(name))
            if not dry:
                count["setxattrat"] += 1
                _syscall.setxattrat(d.dst_fd, job.dst_name, nofollow, name, value, 0)
    except OSError as exc:
        if exc.errno == errno.ENOSYS:
            return  # kernel before 6.13: symlink xattrs cannot be reached by fd or name
        xattr_error(eng, job.path, exc)


def xattr_reader(eng: Engine) -> _syscall.XattrReader:
    """The copy's one XattrReader (its buffers are made once)."""
    reader = eng.xattr_reader
    if reader is None:
        reader = eng.xattr_reader = _syscall.XattrReader()
    return reader


def _names_at(reader: _syscall.XattrReader, dfd: int, name: bytes) -> List[bytes]:
    """The xattr names of ``name`` in ``dfd`` (not following a symlink)."""
    try:
        raw = reader.names(dfd, name)
    except OSError as exc:
        if exc.errno != errno.ERANGE:
            raise
        from ..dirfd import _xattrat_list  # (past 4 KiB of names: a buffer that grows)

        return _xattrat_list(dfd, name)
    return [x for x in raw.split(b"\0") if x] if raw else []
