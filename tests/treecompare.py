"""Compare two trees attribute by attribute (what ``cp -a`` keeps, and more).

``diff_trees(a, b)`` returns a list of human-readable differences; an empty
list means the trees are equal in: entry names and types, file contents,
permission bits (setuid/setgid/sticky included), owner, group, mtime and
atime to the nanosecond (symlinks and directories included), symlink
targets, device numbers, xattrs (user/trusted/security and POSIX ACLs),
hard-link groups (same partition of names into inodes) and sparseness
(a sparse source file must not become fully allocated).

Everything is read relative to open directory fds, one name at a time, so
trees deeper than PATH_MAX compare like any other; file contents are read
with O_NOATIME where allowed, so a comparison does not move the atimes it
compares.  ``snapshot`` records a tree (including inode numbers and ctimes)
for before/after checks such as "a dry run changed nothing".
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Set, Tuple, Union

_O_NOATIME = getattr(os, "O_NOATIME", 0)

PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


class Entry(NamedTuple):
    """One entry of a tree, as seen by :func:`snapshot`."""

    st: os.stat_result
    target: Optional[bytes]  # symlink target
    digest: Optional[bytes]  # sha256 of a regular file's content
    xattrs: Dict[bytes, bytes]


def _xattrs_at(dirfd: int, name: bytes) -> Dict[bytes, bytes]:
    # /proc/self/fd/N/name reaches the entry itself (no matter how deep it is)
    # and, with follow_symlinks=False, a symlink's own xattrs.
    path = os.fsencode(f"/proc/self/fd/{dirfd}/") + name
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for n in names:
        try:
            out[os.fsencode(n)] = os.getxattr(path, n, follow_symlinks=False)
        except OSError:
            pass
    return out


def _open_noatime(dirfd: int, name: bytes, flags: int) -> int:
    try:
        return os.open(name, flags | _O_NOATIME, dir_fd=dirfd)
    except PermissionError:
        return os.open(name, flags, dir_fd=dirfd)


def file_digest(dirfd: int, name: bytes) -> bytes:
    """sha256 of a regular file named relative to a directory fd."""
    fd = _open_noatime(dirfd, name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        h = hashlib.sha256()
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            h.update(chunk)
        return h.digest()
    finally:
        os.close(fd)


def _walk_fds(root: bytes) -> Iterator[Tuple[bytes, int, bytes, os.stat_result]]:
    """(relative path, parent dir fd, name, lstat) for every entry below root.

    The parent fd is valid only until the next item is produced.
    """
    top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    stack: List[Tuple[bytes, int]] = [(b"", top)]
    try:
        while stack:
            rel, fd = stack.pop()
            try:
                for name in sorted(os.fsencode(n) for n in os.listdir(fd)):
                    r = rel + b"/" + name if rel else name
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    yield r, fd, name, st
                    if stat.S_ISDIR(st.st_mode):
                        sub = _open_noatime(fd, name, os.O_RDONLY | os.O_DIRECTORY
                                            | os.O_NOFOLLOW | os.O_CLOEXEC)
                        stack.append((r, sub))
            finally:
                os.close(fd)
    finally:
        for _, fd in stack:
            os.close(fd)


def walk(root: PathArg) -> Dict[bytes, os.stat_result]:
    """Relative path -> lstat for every entry below root (root itself as b".")."""
    top = os.fsencode(root)
    out = {b".": os.lstat(top)}
    for rel, _fd, _name, st in _walk_fds(top):
        out[rel] = st
    return out


def snapshot(root: PathArg, *, content: bool = True, xattrs: bool = True) -> Dict[bytes, Entry]:
    """Relative path -> Entry for root (as b".") and everything below it."""
    top = os.path.abspath(os.fsencode(root))
    parent = os.open(os.path.dirname(top) or b"/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        rst = os.lstat(top)
        out = {b".": Entry(rst, None, None,
                           _xattrs_at(parent, os.path.basename(top)) if xattrs else {})}
    finally:
        os.close(parent)
    for rel, fd, name, st in _walk_fds(top):
        target = os.readlink(name, dir_fd=fd) if stat.S_ISLNK(st.st_mode) else None
        digest = file_digest(fd, name) if content and stat.S_ISREG(st.st_mode) else None
        out[rel] = Entry(st, target, digest, _xattrs_at(fd, name) if xattrs else {})
    return out


def _groups(entries: Dict[bytes, Entry]) -> Set[Tuple[bytes, ...]]:
    by_ino: Dict[Tuple[int, int], List[bytes]] = {}
    for rel, e in entries.items():
        st = e.st
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            by_ino.setdefault((st.st_dev, st.st_ino), []).append(rel)
    return {tuple(sorted(v)) for v in by_ino.values() if len(v) > 1}


def diff_snapshots(ea: Dict[bytes, Entry], eb: Dict[bytes, Entry], *, times: bool = True,
                   atime: bool = True, owner: bool = True, xattrs: bool = True,
                   hardlinks: bool = True, root_meta: bool = True, sparse: bool = True,
                   ignore: Optional[Set[bytes]] = None) -> List[str]:
    """Differences between two snapshots (see diff_trees for the flags)."""
    diffs: List[str] = []
    ignore = ignore or set()
    for rel in sorted(set(ea) | set(eb)):
        if rel in ignore:
            continue
        show = os.fsdecode(rel)
        if rel not in eb:
            diffs.append(f"missing in copy: {show}")
            continue
        if rel not in ea:
            diffs.append(f"extra in copy: {show}")
            continue
        if rel == b"." and not root_meta:
            continue
        a, b = ea[rel], eb[rel]
        sa, sb = a.st, b.st
        if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
            diffs.append(f"type differs: {show}: {oct(sa.st_mode)} != {oct(sb.st_mode)}")
            continue
        if not stat.S_ISLNK(sa.st_mode) and sa.st_mode != sb.st_mode:
            diffs.append(f"mode differs: {show}: {oct(sa.st_mode)} != {oct(sb.st_mode)}")
        if owner and (sa.st_uid, sa.st_gid) != (sb.st_uid, sb.st_gid):
            diffs.append(f"owner differs: {show}: {sa.st_uid}:{sa.st_gid} != "
                         f"{sb.st_uid}:{sb.st_gid}")
        if times and sa.st_mtime_ns != sb.st_mtime_ns:
            diffs.append(f"mtime differs: {show}: {sa.st_mtime_ns} != {sb.st_mtime_ns}")
        if times and atime and not stat.S_ISDIR(sa.st_mode) \
                and sa.st_atime_ns != sb.st_atime_ns:
            diffs.append(f"atime differs: {show}: {sa.st_atime_ns} != {sb.st_atime_ns}")
        if stat.S_ISREG(sa.st_mode):
            if sa.st_size != sb.st_size:
                diffs.append(f"size differs: {show}: {sa.st_size} != {sb.st_size}")
            elif a.digest != b.digest:
                diffs.append(f"content differs: {show}")
            if sparse and sa.st_blocks * 512 < sa.st_size and \
                    sb.st_blocks > sa.st_blocks + 64:
                diffs.append(f"sparseness lost: {show}: {sa.st_blocks} -> {sb.st_blocks} blocks")
        elif stat.S_ISLNK(sa.st_mode):
            if a.target != b.target:
                diffs.append(f"symlink target differs: {show}: {a.target!r} != {b.target!r}")
        elif stat.S_ISCHR(sa.st_mode) or stat.S_ISBLK(sa.st_mode):
            if sa.st_rdev != sb.st_rdev:
                diffs.append(f"device number differs: {show}")
        if xattrs and a.xattrs != b.xattrs:
            diffs.append(f"xattrs differ: {show}: {a.xattrs!r} != {b.xattrs!r}")
    if hardlinks:
        ga, gb = _groups(ea), _groups(eb)
        if ga != gb:
            diffs.append(f"hard-link groups differ: {sorted(ga)} != {sorted(gb)}")
    return diffs


def diff_trees(a: PathArg, b: PathArg, *, times: bool = True, atime: bool = True,
               owner: bool = True, xattrs: bool = True, hardlinks: bool = True,
               root_meta: bool = True, sparse: bool = True,
               ignore: Optional[Set[bytes]] = None) -> List[str]:
    """Differences between the trees at ``a`` (the source) and ``b`` (the copy)."""
    ea = snapshot(os.fsencode(a), xattrs=xattrs)
    eb = snapshot(os.fsencode(b), xattrs=xattrs)
    return diff_snapshots(ea, eb, times=times, atime=atime, owner=owner, xattrs=xattrs,
                          hardlinks=hardlinks, root_meta=root_meta, sparse=sparse,
                          ignore=ignore)


def assert_same_tree(a: PathArg, b: PathArg, **kw: Any) -> None:
    """diff_trees(a, b, **kw) must be empty; the assertion lists the differences."""
    diffs = diff_trees(a, b, **kw)
    assert not diffs, "trees differ:\n  " + "\n  ".join(diffs[:50])


def changes_between(before: Dict[bytes, Entry], after: Dict[bytes, Entry], *,
                    dirs: bool = True) -> List[str]:
    """What changed between two snapshots of one tree, inode numbers and ctimes included.

    With ``dirs=False`` directories themselves are left out (their contents are not).
    """
    if not dirs:
        skip = {r for r, e in before.items() if stat.S_ISDIR(e.st.st_mode)
                and r in after and stat.S_ISDIR(after[r].st.st_mode)}
        before = {r: e for r, e in before.items() if r not in skip}
        after = {r: e for r, e in after.items() if r not in skip}
    diffs = diff_snapshots(before, after)
    for rel in sorted(set(before) & set(after)):
        sa, sb = before[rel].st, after[rel].st
        if sa.st_ino != sb.st_ino:
            diffs.append(f"inode changed: {os.fsdecode(rel)}")
        if sa.st_ctime_ns != sb.st_ctime_ns:
            diffs.append(f"ctime changed: {os.fsdecode(rel)}")
    return diffs
