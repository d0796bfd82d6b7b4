"""Compare two trees attribute by attribute (what ``cp -a`` keeps, and more).

``diff_trees(a, b)`` returns a list of human-readable differences; an empty
list means the trees are equal in: entry names and types, file contents,
permission bits (setuid/setgid/sticky included), owner, group, mtime and
atime to the nanosecond (symlinks and directories included), symlink
targets, device numbers, xattrs (user/trusted/security and POSIX ACLs),
hard-link groups (same partition of names into inodes) and sparseness
(a sparse source file must not become fully allocated).
"""

from __future__ import annotations

import os
import stat
from typing import Dict, List, Optional, Set, Tuple


def _xattrs(path: bytes) -> Dict[bytes, bytes]:
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


def walk(root: bytes) -> Dict[bytes, os.stat_result]:
    """Relative path -> lstat for every entry below root (root itself as b".")."""
    out = {b".": os.lstat(root)}
    stack = [b""]
    while stack:
        rel = stack.pop()
        full = os.path.join(root, rel) if rel else root
        for name in os.listdir(full):
            r = os.path.join(rel, name) if rel else name
            st = os.lstat(os.path.join(root, r))
            out[r] = st
            if stat.S_ISDIR(st.st_mode):
                stack.append(r)
    return out


def _groups(entries: Dict[bytes, os.stat_result]) -> Set[Tuple[bytes, ...]]:
    by_ino: Dict[Tuple[int, int], List[bytes]] = {}
    for rel, st in entries.items():
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            by_ino.setdefault((st.st_dev, st.st_ino), []).append(rel)
    return {tuple(sorted(v)) for v in by_ino.values() if len(v) > 1}


def diff_trees(a: bytes, b: bytes, *, times: bool = True, atime: bool = True,
               owner: bool = True, xattrs: bool = True, hardlinks: bool = True,
               root_meta: bool = True, sparse: bool = True,
               ignore: Optional[Set[bytes]] = None) -> List[str]:
    a, b = os.fsencode(a), os.fsencode(b)
    ea, eb = walk(a), walk(b)
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
        sa, sb = ea[rel], eb[rel]
        pa, pb = os.path.join(a, rel), os.path.join(b, rel)
        if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
            diffs.append(f"type differs: {show}")
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
            else:
                with open(pa, "rb") as fa, open(pb, "rb") as fb:
                    while True:
                        ca, cb = fa.read(1 << 20), fb.read(1 << 20)
                        if ca != cb:
                            diffs.append(f"content differs: {show}")
                            break
                        if not ca:
                            break
            if sparse and sa.st_blocks * 512 < sa.st_size and \
                    sb.st_blocks > sa.st_blocks + 64:
                diffs.append(f"sparseness lost: {show}: {sa.st_blocks} -> {sb.st_blocks} blocks")
        elif stat.S_ISLNK(sa.st_mode):
            if os.readlink(pa) != os.readlink(pb):
                diffs.append(f"symlink target differs: {show}")
        elif stat.S_ISCHR(sa.st_mode) or stat.S_ISBLK(sa.st_mode):
            if sa.st_rdev != sb.st_rdev:
                diffs.append(f"device number differs: {show}")
        if xattrs and _xattrs(pa) != _xattrs(pb):
            diffs.append(f"xattrs differ: {show}: {_xattrs(pa)!r} != {_xattrs(pb)!r}")
    if hardlinks:
        ga, gb = _groups(ea), _groups(eb)
        if ga != gb:
            diffs.append(f"hard-link groups differ: {sorted(ga)} != {sorted(gb)}")
    return diffs
