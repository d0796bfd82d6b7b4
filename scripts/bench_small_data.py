"""How to move a small file's bytes: through a user buffer, a pipe, or copy_file_range.

The copy engine reads a small file into a slot of its buffer pool and writes it
from there (READ -> WRITE through the ring).  The alternatives io_uring or the
kernel offer move the data without a second copy through user memory:
``splice`` via a pipe (IORING_OP_SPLICE twice, with a pipe per file in flight)
and ``copy_file_range`` (no opcode: a direct syscall).  This measures what the
data movement itself costs per file, with plain synchronous syscalls and
everything else equal (the same opens, creates and closes), so that the choice
rests on a number:

* ``rw``: ``readv`` into a 16 KiB buffer, ``write`` from it;
* ``splice``: ``splice`` file -> pipe, ``splice`` pipe -> file;
* ``cfr``: one ``copy_file_range``.

Shape (a)'s tree (5,000 files of 0-8 KiB) on a fresh loop ext4 on /dev/shm;
every run copies into a new directory; the variants alternate; medians of the
process CPU time (the loop is synchronous: CPU time is its whole cost).
Needs root (mkfs, mount)::

    python scripts/bench_small_data.py --rounds 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts.bench_copy import GiB, LoopFs, build_small, syncfs  # noqa: E402

MODES = ("rw", "splice", "cfr")


def copy_all(mode: str, files: List[Tuple[str, str]], src: str, out: str) -> float:
    os.mkdir(out)
    for d in sorted({d for d, _ in files}):
        os.mkdir(os.path.join(out, d))
    buf = bytearray(16384)
    view = memoryview(buf)
    r, w = os.pipe()
    try:
        t = time.process_time()
        for d, f in files:
            fi = os.open(os.path.join(src, d, f), os.O_RDONLY)
            fo = os.open(os.path.join(out, d, f), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            if mode == "rw":
                n = os.readv(fi, [buf])
                os.write(fo, view[:n])
            elif mode == "splice":
                n = os.splice(fi, w, 16384)
                while n:  # (a short splice would leave bytes for the next file)
                    n -= os.splice(r, fo, n)
            else:
                os.copy_file_range(fi, fo, 16384)
            os.close(fi)
            os.close(fo)
        return time.process_time() - t
    finally:
        os.close(r)
        os.close(w)


def check(files: List[Tuple[str, str]], src: str, out: str) -> None:
    """Every 50th file must have arrived whole (the timing means nothing otherwise)."""
    for d, f in files[::50]:
        with open(os.path.join(src, d, f), "rb") as a, open(os.path.join(out, d, f), "rb") as b:
            if a.read() != b.read():
                raise SystemExit(f"{out}/{d}/{f} differs from the source")


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=8, help="timed runs per variant (8)")
    ap.add_argument("--shm", default="/dev/shm")
    a = ap.parse_args(argv)
    if a.rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    if not hasattr(os, "splice") or not hasattr(os, "copy_file_range"):
        raise SystemExit("needs Python 3.10 or later (os.splice)")
    if os.geteuid() != 0:
        raise SystemExit("needs root (mkfs, mount)")
    fs = LoopFs(a.shm, 2 * GiB, 65536 + 5100 * 3 * (a.rounds + 1))
    cpu: Dict[str, List[float]] = {m: [] for m in MODES}
    try:
        mnt = fs.create()
        src = os.path.join(mnt, "src")
        build_small(src)
        files = [(d, f) for d in sorted(os.listdir(src))
                 for f in sorted(os.listdir(os.path.join(src, d)))]
        syncfs(mnt)
        for rnd in range(a.rounds + 1):  # round 0: untimed warm-up
            order = MODES if rnd % 2 == 0 else MODES[::-1]
            for m in order:
                out = os.path.join(mnt, f"{m}-{rnd}")
                took = copy_all(m, files, src, out)
                syncfs(mnt)
                check(files, src, out)
                if rnd:
                    cpu[m].append(took)
    finally:
        fs.destroy()
    base = statistics.median(cpu["rw"])
    print(f"{len(files):,} files of 0-8 KiB, {a.rounds} alternating rounds, median CPU time")
    for m in MODES:
        med = statistics.median(cpu[m])
        print(f"  {m:>7}: {med * 1000:6.1f} ms  {med / len(files) * 1e6:5.2f} us/file  "
              f"x{med / base:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
