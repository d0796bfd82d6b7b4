"""What to copy and how: the engine's options, spelled as rsync spells them."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Optional


SECOND_NS = 1_000_000_000

#: The times file systems clamp to (timestamp_truncate: the second, nanoseconds
#: 0): a source time beyond one of them, found as that limit in the destination,
#: is the same time -- or every re-run would copy such a file again.  The 32-bit
#: limits (ext4 with 128-byte inodes, XFS without bigtime, ...), ext4's with extra
#: time bits (2446-05-10), XFS bigtime's (2486-07-02): each measured on Linux 6.18.
_CLAMPED_TO = frozenset(sec * 1_000_000_000 for sec in (
    -(1 << 31), (1 << 31) - 1, 15_032_385_535, 16_299_260_424))


_DEFAULTS: Dict[str, Any] = {
    "recursive": False,
    "links": False,  # -l: copy symlinks as symlinks
    "perms": False,  # -p
    "times": False,  # -t (mtime and atime, to the nanosecond)
    "group": False,  # -g
    "owner": False,  # -o (takes effect as root)
    "devices": False,  # --devices (part of -D)
    "specials": False,  # --specials: FIFOs and sockets (part of -D)
    "hard_links": False,  # -H
    "xattrs": False,  # -X
    "acls": False,  # -A
    "dry_run": False,
    "verbose": 0,
    "quiet": False,
    "ignore_times": False,  # -I: no quick check, copy every file
    "modify_window": -1,  # --modify-window: how close two mtimes must be (same_mtime)
    "fsync": False,
    "numeric_ids": False,  # ids are always numeric for a local copy; accepted for rsync
    "backend": "auto",  # auto | uring | sync
    "queue_depth": 256,  # SQ entries of the ring
    "max_files_in_flight": 128,
    "data_path": "auto",  # auto | ring | copy_file_range (files above small_file_max)
    "small_file_max": 128 * 1024,  # files up to this size take the one-read path
    "copy_threads": 4,  # threads copying large files' data (io_uring backend; 0: inline)
    "io_workers": -1,  # cap on io-wq workers of each kind: -1 auto, 0 the kernel's own
    "progress": False,
}


class Options:
    """Copy options.  ``Options.archive()`` is rsync's ``-a`` (``-rlptgoD``).

    Beyond rsync: atime is kept along with mtime (as ``cp -a`` does) whenever
    ``times`` is on, and sparse files always stay sparse.  (A plain class, not
    a dataclass: importing dataclasses costs more start-up than this file.)
    """

    recursive: bool
    links: bool
    perms: bool
    times: bool
    group: bool
    owner: bool
    devices: bool
    specials: bool
    hard_links: bool
    xattrs: bool
    acls: bool
    dry_run: bool
    verbose: int
    quiet: bool
    ignore_times: bool
    modify_window: int
    fsync: bool
    numeric_ids: bool
    backend: str
    queue_depth: int
    max_files_in_flight: int
    data_path: str
    small_file_max: int
    copy_threads: int
    io_workers: int
    progress: bool

    def __init__(self, **fields: Any) -> None:
        for key, value in _DEFAULTS.items():
            setattr(self, key, value)
        for key, value in fields.items():
            if key not in _DEFAULTS:
                raise TypeError(f"unknown option {key!r}")
            setattr(self, key, value)

    @classmethod
    def archive(cls, **overrides: Any) -> Options:
        opts = cls(recursive=True, links=True, perms=True, times=True, group=True, owner=True,
                   devices=True, specials=True)
        for key, value in overrides.items():
            if key not in _DEFAULTS:
                raise TypeError(f"unknown option {key!r}")
            setattr(opts, key, value)
        return opts

    def as_dict(self) -> Dict[str, Any]:
        return {key: getattr(self, key) for key in _DEFAULTS}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Options) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        changed = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items() if v != _DEFAULTS[k])
        return f"Options({changed})"

    def same_mtime(self, src_ns: int, dst_ns: int) -> bool:
        """Does a destination's mtime count as its source's?  (The quick check,
        -v's ``t``, and whether times are set again.)

        ``modify_window`` 0 or more is rsync's --modify-window: whole seconds at
        most that many apart (1 for FAT's 2-second times).  Negative, the
        default: the same nanosecond -- or the source's time cut to what the
        destination's file system keeps, where that is coarser: whole seconds
        (ext4 with 128-byte inodes, ext3), 10 ms (exFAT), 100 ns (NTFS, SMB).
        That precision is read off the destination time's trailing decimal
        zeros, as the kernel truncates (timestamp_truncate): without this, such
        a destination is copied again on every run.  (rsync's default compares
        whole seconds everywhere, and misses a change within the second.)"""
        window = self.modify_window
        if window >= 0:
            return abs(src_ns // SECOND_NS - dst_ns // SECOND_NS) <= window
        if src_ns == dst_ns:
            return True
        if dst_ns in _CLAMPED_TO and (src_ns > dst_ns) == (dst_ns > 0):
            return True  # (beyond what the destination can hold: clamped to its limit)
        frac = dst_ns % SECOND_NS
        unit = SECOND_NS
        while frac % unit:
            unit //= 10
        return dst_ns == src_ns - src_ns % unit

    def times_differ(self, src_ns: int, dst_ns: int) -> bool:
        """-t is on and the destination's mtime does not count as the source's."""
        return self.times and not self.same_mtime(src_ns, dst_ns)

    def validate(self) -> Optional[str]:
        """A one-line reason these options are unusable, or None."""
        for key, default in _DEFAULTS.items():
            value = getattr(self, key)
            # (each field has its default's type; verbose, a count, also takes a bool)
            want = int if key == "verbose" else type(default)
            if not isinstance(value, want) or (want is int and isinstance(value, bool)
                                                and key != "verbose"):
                return (f"option {key} must be {want.__name__} "
                        f"(not {type(value).__name__} {value!r})")
        if self.backend not in ("auto", "uring", "sync"):
            return f"--backend must be auto, uring or sync (not {self.backend!r})"
        if self.data_path not in ("auto", "ring", "copy_file_range"):
            return f"--data-path must be auto, ring or copy_file_range (not {self.data_path!r})"
        if not 1 <= self.queue_depth <= 32768:
            return "--queue-depth must be between 1 and 32768"
        if not 1 <= self.max_files_in_flight <= 4096:
            return "--max-files-in-flight must be between 1 and 4096"
        if not 0 <= self.small_file_max <= 64 << 20:
            return "--small-file-max must be between 0 and 64 MiB"
        if not 0 <= self.copy_threads <= 64:
            return "--copy-threads must be between 0 and 64"
        if not -1 <= self.io_workers <= 4096:
            return "--io-workers must be auto, 0 or between 1 and 4096"
        if self.quiet and self.verbose:
            return "-q and -v cannot be combined"
        return None
