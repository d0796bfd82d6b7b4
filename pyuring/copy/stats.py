"""``CopyStats``: what a copy did, for --stats, --json and the Python API."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict



class CopyStats:
    files: int = 0  # entries seen in the source (all types)
    regular_files: int = 0
    dirs: int = 0
    symlinks: int = 0
    specials: int = 0  # devices, FIFOs, sockets
    hardlinks: int = 0  # entries copied as a hard link to an earlier one (-H)
    transferred: int = 0  # regular files whose data was written
    unchanged: int = 0  # skipped by the quick check (size + mtime)
    bytes_total: int = 0  # size of all regular files seen
    bytes_transferred: int = 0
    errors: int = 0
    io_errors: int = 0  # errors writing the destination (ENOSPC, EIO, ...)
    vanished: int = 0
    skipped: int = 0  # entries not copied because of the options (no -r, -l, -D)
    changed_during_copy: int = 0
    interrupted: bool = False
    elapsed: float = 0.0
    backend: str = ""
    backend_note: str = ""
    io_workers: int = 0  # the cap on io-wq workers of each kind (0: the kernel's own)
    io_workers_top: int = 0  # where it goes if the ring's thread keeps waiting (0: stays)
    io_workers_raised: int = 0  # 1: it went there
    sqes: int = 0
    enters: int = 0
    completions: int = 0
    sqes_by_op: Dict[str, int]
    direct_syscalls: Dict[str, int]
    # (not a field of as_dict: the walk has seen every entry, bytes_total is
    # whole -- what --progress needs for an ETA)
    walk_done = False

    def __init__(self) -> None:
        # (a plain class: importing dataclasses costs more start-up than this file)
        self.sqes_by_op = {}
        self.direct_syscalls = {}

    @property
    def sqes_per_enter(self) -> float:
        return self.sqes / self.enters if self.enters else 0.0

    @property
    def exit_code(self) -> int:
        """rsync's exit codes: 20 interrupted, 11 file I/O, 23 partial, 24 vanished."""
        if self.interrupted:
            return 20
        if self.io_errors:
            return 11
        if self.errors:
            return 23
        if self.vanished:
            return 24
        return 0

    def as_dict(self) -> Dict[str, Any]:
        d = {k: getattr(self, k) for k in CopyStats.__annotations__}
        d["sqes_by_op"] = dict(self.sqes_by_op)
        d["direct_syscalls"] = dict(self.direct_syscalls)
        d["sqes_per_enter"] = round(self.sqes_per_enter, 2)
        d["exit_code"] = self.exit_code
        d["elapsed"] = round(self.elapsed, 6)
        return d

    def summary(self) -> str:
        """rsync --stats style text, plus the io_uring figures."""
        rate = self.bytes_transferred / self.elapsed if self.elapsed > 0 else 0.0
        lines = [
            f"Number of files: {self.files:,} (reg: {self.regular_files:,}, dir: "
            f"{self.dirs:,}, link: {self.symlinks:,}, special: {self.specials:,})",
            f"Number of regular files transferred: {self.transferred:,}",
            f"Number of files unchanged (quick check): {self.unchanged:,}",
            f"Number of hard links created: {self.hardlinks:,}",
            f"Total file size: {self.bytes_total:,} bytes",
            f"Total transferred file size: {self.bytes_transferred:,} bytes",
            f"Errors: {self.errors:,}  vanished: {self.vanished:,}  skipped: {self.skipped:,}",
            f"Elapsed: {self.elapsed:.3f} s  ({rate / 1e6:,.1f} MB/s)",
            f"Backend: {self.backend}{' (' + self.backend_note + ')' if self.backend_note else ''}",
        ]
        if self.backend == "uring":
            ops = ", ".join(f"{k} {v:,}" for k, v in sorted(self.sqes_by_op.items(),
                                                            key=lambda kv: -kv[1]))
            lines += [
                f"io_uring: {self.sqes:,} SQEs in {self.enters:,} io_uring_enter calls "
                f"({self.sqes_per_enter:.1f} SQEs per enter), {self.completions:,} completions",
                f"SQEs by opcode: {ops}",
                "io-wq workers: " + (f"at most {self.io_workers} of each kind"
                                     if self.io_workers else "the kernel's limit")
                + ("" if not self.io_workers_top else
                   f", then {self.io_workers_top} (the ring's thread kept waiting on them)"
                   if self.io_workers_raised else
                   f" ({self.io_workers_top} had the ring's thread kept waiting on them)"),
            ]
        direct = ", ".join(f"{k} {v:,}" for k, v in sorted(self.direct_syscalls.items(),
                                                           key=lambda kv: -kv[1]))
        total_direct = sum(self.direct_syscalls.values())
        lines.append(f"Direct syscalls: {total_direct:,} ({direct or 'none'})")
        return "\n".join(lines)
