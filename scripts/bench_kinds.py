"""pyuring -aHAX against cp -a, one kind of entry at a time.

``bench_copy.py``'s shape (e) mixes hard links, symlinks, xattrs, ACLs and
owners; when it is slower than ``cp -a`` this says which kind of entry costs
what.  Each kind is a tree of 3,000 entries in 40 directories:

* ``plain``: regular files of 0-8 KiB;
* ``sym``: symlinks only (dangling: their targets do not matter);
* ``xattr``: regular files, each with one 40-byte ``user.*`` xattr;
* ``own``: regular files owned by uid/gid 1000 (root only);
* ``hl``: regular files, every second one with a second name elsewhere.

Every file gets a fixed past mtime.  As in ``bench_copy.py`` the trees live on
a fresh journaled ext4 in a loop file on ``/dev/shm`` (``LoopFs``), nothing is
deleted while measuring (every run copies into a new directory), each run is
followed by an untimed ``syncfs``, and the two tools alternate run by run after
one untimed warm-up each.  Times include start-up (``python -m pyuring.copy``
as a user runs it, from a venv with ``--venv``), from a compiled snapshot of the
checkout's package (no stale or missing ``.pyc`` is charged to it).

Needs root (mkfs, mount)::

    python scripts/bench_kinds.py --rounds 7 --venv
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts.bench_copy import GiB, LoopFs, make_venv, real_python, syncfs  # noqa: E402

KINDS = ("plain", "sym", "xattr", "own", "hl")
ENTRIES = 3000
DIRS = 40
MTIME_NS = 1_600_000_000_987_654_321


def build(root: str, kind: str, seed: int = 1) -> None:
    rnd = random.Random(seed)
    dirs = []
    for j in range(DIRS):
        d = os.path.join(root, f"d{j:02d}")
        os.makedirs(d)
        dirs.append(d)
    for i in range(ENTRIES):
        p = os.path.join(rnd.choice(dirs), f"f{i:04d}")
        if kind == "sym":
            os.symlink(f"../target/{i}", p)
            os.utime(p, ns=(MTIME_NS, MTIME_NS), follow_symlinks=False)
            continue
        with open(p, "wb") as f:
            f.write(rnd.randbytes(rnd.randint(0, 8192)))
        if kind == "xattr":
            os.setxattr(p, "user.tag", rnd.randbytes(40))
        elif kind == "own":
            os.chown(p, 1000, 1000)
        elif kind == "hl" and i % 2:
            os.link(p, os.path.join(rnd.choice(dirs), f"h{i:04d}"))
        os.utime(p, ns=(MTIME_NS, MTIME_NS))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help=f"comma-separated kinds (default {','.join(KINDS)})")
    ap.add_argument("--rounds", type=int, default=7, help="timed runs per tool and kind")
    ap.add_argument("--python", default=None, help="interpreter for pyuring")
    ap.add_argument("--venv", action="store_true",
                    help="run pyuring from a throwaway venv of that interpreter")
    ap.add_argument("--shm", default="/dev/shm")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_kinds.py needs root (mkfs, mount)", file=sys.stderr)
        return 1
    kinds = [k for k in args.kinds.split(",") if k]
    for k in kinds:
        if k not in KINDS:
            ap.error(f"unknown kind {k!r}")
    py = real_python(args.python)
    if args.venv:
        py = make_venv(py)
    snap = tempfile.mkdtemp(prefix="pyuring-bench-kinds-")
    shutil.copytree(REPO / "pyuring", os.path.join(snap, "pyuring"))
    subprocess.run([py, "-m", "compileall", "-q", snap], check=True)
    env = dict(os.environ, PYTHONPATH=snap)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    runs = 2 * (args.rounds + 1)
    fs = LoopFs(args.shm, 4 * GiB, 40_000 + len(kinds) * (1 + runs) * 2 * (ENTRIES + DIRS))
    mount = fs.create()
    try:
        times: Dict[str, Dict[str, List[float]]] = {}
        for kind in kinds:
            src = os.path.join(mount, "src-" + kind)
            build(src, kind)
            syncfs(mount)
            tools = {"cp -a": ["cp", "-a"],
                     "pyuring -aHAX": [py, "-m", "pyuring.copy", "-aHAX"]}
            times[kind] = {t: [] for t in tools}
            n = 0
            for r in range(args.rounds + 1):
                order = list(tools) if r % 2 == 0 else list(tools)[::-1]
                for tool in order:
                    n += 1
                    dst = os.path.join(mount, f"dst-{kind}-{n}")
                    argv = [*tools[tool], src + "/", dst] if tool != "cp -a" \
                        else [*tools[tool], src, dst]
                    t0 = time.perf_counter()
                    subprocess.run(argv, check=True, env=env, cwd="/")
                    took = time.perf_counter() - t0
                    syncfs(mount)
                    if r:  # (round 0: the untimed warm-up)
                        times[kind][tool].append(took)
        print(f"{'kind':6} {'cp -a':>9} {'pyuring -aHAX':>14} {'ratio':>7}   "
              f"(medians of {args.rounds} runs, seconds)")
        for kind in kinds:
            cp = statistics.median(times[kind]["cp -a"])
            pu = statistics.median(times[kind]["pyuring -aHAX"])
            print(f"{kind:6} {cp:9.3f} {pu:14.3f} {pu / cp:6.2f}x")
    finally:
        fs.destroy()
        shutil.rmtree(snap, ignore_errors=True)
        if args.venv:
            shutil.rmtree(os.path.dirname(os.path.dirname(py)), ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
