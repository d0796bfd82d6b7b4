"""``Metadata``: what statx(2) says about a file, as one immutable value."""

from __future__ import annotations

import os
import stat
import struct

from . import _abi as A

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple, Optional
else:
    from ._records import NamedTuple

#: The fields pyuring asks statx for: everything ``os.lstat`` reports plus btime
#: and the mount id.
STATX_WANTED = A.STATX_BASIC_STATS | A.STATX_BTIME | A.STATX_MNT_ID
_UNPACK = A.STATX.unpack_from

#: Of a ``struct statx``: (mask, nlink, uid and gid as one number, mode, size,
#: mtime seconds, mtime nanoseconds) -- what a re-run's quick check compares,
#: read without building a Metadata.  (Offsets: A.STATX_FIELDS_OFFSETS.)
QUICK_FIELDS = struct.Struct("=I12xIQH2x8xQ64xqI")
#: The statx mask bits QUICK_FIELDS needs
QUICK_MASK = (A.STATX_TYPE | A.STATX_MODE | A.STATX_NLINK | A.STATX_UID | A.STATX_GID
              | A.STATX_MTIME | A.STATX_SIZE)
_makedev = os.makedev
_tuple_new = tuple.__new__


class Metadata(NamedTuple):
    """One file's metadata.  Times are integer nanoseconds since the epoch.

    Field for field equal to ``os.lstat``: ``mode`` is ``st_mode`` (type and
    permission bits), ``dev`` / ``rdev`` are combined device numbers like
    ``st_dev`` / ``st_rdev``.  ``btime_ns`` is None where the filesystem does
    not record a birth time.
    """

    mode: int
    uid: int
    gid: int
    nlink: int
    ino: int
    dev: int
    rdev: int
    size: int
    blocks: int
    blksize: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    btime_ns: Optional[int]
    attributes: int
    mount_id: int
    mask: int

    @property
    def type(self) -> int:
        """The S_IFMT bits (``stat.S_IFREG``, ``stat.S_IFDIR``, ...)."""
        return self.mode & 0o170000

    @property
    def permissions(self) -> int:
        """Permission bits including setuid, setgid and sticky."""
        return self.mode & 0o7777

    def is_dir(self) -> bool:
        return self.mode & 0o170000 == stat.S_IFDIR

    def is_file(self) -> bool:
        return self.mode & 0o170000 == stat.S_IFREG

    def is_symlink(self) -> bool:
        return self.mode & 0o170000 == stat.S_IFLNK

    @property
    def is_sparse(self) -> bool:
        """Fewer blocks allocated than the size needs: the file has holes."""
        return self.mode & 0o170000 == stat.S_IFREG and self.blocks * 512 < self.size

    @classmethod
    def from_statx(cls, buf: Any, offset: int = 0) -> Metadata:
        """Parse a ``struct statx`` from a buffer."""
        (mask, blksize, attributes, nlink, uid, gid, mode, _s0, ino, size, blocks, _amask,
         a_s, a_ns, _r1, b_s, b_ns, _r2, c_s, c_ns, _r3, m_s, m_ns, _r4,
         rdev_ma, rdev_mi, dev_ma, dev_mi, mnt_id, _dio1, _dio2) = _UNPACK(buf, offset)
        # tuple.__new__: the NamedTuple's own __new__ is Python code, twice as slow
        return _tuple_new(cls, (
            mode, uid, gid, nlink, ino, _makedev(dev_ma, dev_mi), _makedev(rdev_ma, rdev_mi),
            size, blocks, blksize,
            a_s * 1_000_000_000 + a_ns, m_s * 1_000_000_000 + m_ns,
            c_s * 1_000_000_000 + c_ns,
            b_s * 1_000_000_000 + b_ns if mask & A.STATX_BTIME else None,
            attributes, mnt_id if mask & A.STATX_MNT_ID else 0, mask,
        ))

    def same_file(self, other: Metadata) -> bool:
        """Is ``other`` this very file, and still readable by the same people?
        The inode (with its birth time: ext4 hands a freed inode number out
        again at once), its type and permissions, its owner and group."""
        return (self.ino == other.ino and self.dev == other.dev
                and self.btime_ns == other.btime_ns and self.mode == other.mode
                and self.uid == other.uid and self.gid == other.gid)

    @classmethod
    def from_stat(cls, st: os.stat_result) -> Metadata:
        """Build from ``os.stat_result`` (no btime, attributes or mount id)."""
        return cls(
            st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_ino, st.st_dev, st.st_rdev,
            st.st_size, st.st_blocks, st.st_blksize, st.st_atime_ns, st.st_mtime_ns,
            st.st_ctime_ns, None, 0, 0, A.STATX_BASIC_STATS,
        )
