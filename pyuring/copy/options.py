"""What to copy and how: the engine's options, spelled as rsync spells them."""

from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass
class Options:
    """Copy options.  ``Options.archive()`` is rsync's ``-a`` (``-rlptgoD``).

    Beyond rsync: atime is kept along with mtime (as ``cp -a`` does) whenever
    ``times`` is on, and sparse files always stay sparse.
    """

    recursive: bool = False
    links: bool = False  # -l: copy symlinks as symlinks
    perms: bool = False  # -p
    times: bool = False  # -t (mtime and atime, to the nanosecond)
    group: bool = False  # -g
    owner: bool = False  # -o (takes effect as root)
    devices: bool = False  # --devices (part of -D)
    specials: bool = False  # --specials: FIFOs and sockets (part of -D)
    hard_links: bool = False  # -H
    xattrs: bool = False  # -X
    acls: bool = False  # -A
    dry_run: bool = False
    verbose: int = 0
    quiet: bool = False
    ignore_times: bool = False  # -I: no quick check, copy every file
    fsync: bool = False
    numeric_ids: bool = False  # ids are always numeric for a local copy; accepted for rsync
    backend: str = "auto"  # auto | uring | sync
    queue_depth: int = 256  # SQ entries of the ring
    max_files_in_flight: int = 128
    data_path: str = "auto"  # auto | ring | copy_file_range (files above small_file_max)
    small_file_max: int = 128 * 1024  # files up to this size take the one-read path
    progress: bool = False

    @classmethod
    def archive(cls, **overrides: object) -> Options:
        opts = cls(recursive=True, links=True, perms=True, times=True, group=True, owner=True,
                   devices=True, specials=True)
        for key, value in overrides.items():
            if not hasattr(opts, key):
                raise TypeError(f"unknown option {key!r}")
            setattr(opts, key, value)
        return opts

    def validate(self) -> Optional[str]:
        """A one-line reason these options are unusable, or None."""
        if self.backend not in ("auto", "uring", "sync"):
            return f"--backend must be auto, uring or sync (not {self.backend!r})"
        if self.data_path not in ("auto", "ring", "copy_file_range"):
            return f"--data-path must be auto, ring or copy_file_range (not {self.data_path!r})"
        if not 1 <= self.queue_depth <= 32768:
            return "--queue-depth must be between 1 and 32768"
        if not 1 <= self.max_files_in_flight <= 4096:
            return "--max-files-in-flight must be between 1 and 4096"
        if self.quiet and self.verbose:
            return "-q and -v cannot be combined"
        return None
