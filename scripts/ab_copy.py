"""A/B: two (or more) builds or settings of pyuring's copy, side by side.

``bench_copy.py`` compares pyuring with its peers; this compares pyuring with
itself -- a change against the commit before it, or one option against
another -- the same careful way:

* a fresh journaled ext4 in a loop file on ``/dev/shm``, with the source tree
  built on it (``bench_copy.build_small``: shape (a), or a copy of ``--tree``);
* every run copies into a new directory, and by default nothing is deleted
  while measuring; with ``--delete`` each destination is removed after its
  run (untimed), so the page cache does not grow, which holds the VM in its
  fast state;
* an untimed ``syncfs`` after every run; for trees above 256 MiB the
  destination's clean pages are dropped again, so memory use stays flat;
* the variants alternate run by run (A B, B A, A B, ...) after one untimed
  warm-up run each; medians and the ratio to the first variant are printed.

A variant is ``NAME=DIR`` (a checkout or a copy of one: its ``pyuring``
package is what runs) optionally followed by ``::`` and extra CLI arguments,
e.g. ``head=/work/main`` and ``old=/tmp/old``, or ``t0=/work/main::--copy-threads 0``.
With ``--mode inproc`` the pseudo-option ``--ab-split=N`` runs the variant as N forked
processes, each copying every N-th top-level entry (what splitting a copy between
processes would give; pyuring itself has no such mode).

``--mode cli`` (the default) times ``python -m pyuring.copy -a SRC/ DST`` as a
user runs it, start-up included (working directory ``/``: ``python -m`` puts it
first on ``sys.path``).  ``--mode inproc`` times ``copytree()`` alone in a child
that has already imported the package, and also reports the CPU time of the
thread that drives the ring (``time.thread_time()``), the copy's critical path.

Needs root (mkfs, mount)::

    python scripts/ab_copy.py new=/work/main old=/tmp/old --rounds 10
    python scripts/ab_copy.py new=/work/main old=/tmp/old --mode inproc --rerun
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts.bench_copy import (  # noqa: E402
    GiB,
    LoopFs,
    after_run,
    build_small,
    real_python,
    syncfs,
)

_INPROC = """\
import json, sys, time
sys.path.insert(0, sys.argv[1])
from pyuring.copy.cli import main
t = time.perf_counter(); c = time.thread_time()
rc = main(sys.argv[2:])
print(json.dumps({"rc": rc, "wall": time.perf_counter() - t,
                  "thread": time.thread_time() - c}))
"""

# --ab-split=N: N forked processes, each copying every N-th top-level entry of
# SRC into DST (rsync's rule: SRC/NAME without a slash lands in DST/NAME).  A
# measurement of what splitting a copy between processes would give, nothing
# pyuring offers; the thread CPU reported is the parent's (idle) and not useful.
_SPLIT = """\
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from pyuring.copy.cli import main
n, opts, src, dst = int(sys.argv[2]), sys.argv[3:-2], sys.argv[-2].rstrip("/"), sys.argv[-1]
names = sorted(os.listdir(src))
os.mkdir(dst)
t = time.perf_counter(); c = time.thread_time()
pids = []
for k in range(n):
    if not names[k::n]:
        continue  # (more parts than top-level entries)
    pid = os.fork()
    if pid == 0:
        os._exit(main([*opts, *(os.path.join(src, x) for x in names[k::n]), dst + "/"]))
    pids.append(pid)
codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids]
rc = next((c for c in codes if c), 0)  # (a part killed by a signal counts too)
print(json.dumps({"rc": rc, "wall": time.perf_counter() - t,
                  "thread": time.thread_time() - c}))
"""


class Variant:
    def __init__(self, spec: str) -> None:
        name, sep, rest = spec.partition("=")
        if not sep or not name:
            raise SystemExit(f"a variant is NAME=DIR[::ARGS], not {spec!r}")
        where, _, args = rest.partition("::")
        self.name = name
        self.root = os.path.realpath(where)
        if not os.path.isfile(os.path.join(self.root, "pyuring", "copy", "__main__.py")):
            raise SystemExit(f"{self.root} has no pyuring package")
        self.args = shlex.split(args)
        self.walls: List[float] = []
        self.threads: List[float] = []


def run_once(py: str, v: Variant, mode: str, src: str, dst: str) -> Tuple[float, float]:
    argv = ["-a", *v.args, src + "/", dst]
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # run from cached bytecode, like an install
    if mode == "cli":
        env["PYTHONPATH"] = v.root
        t = time.perf_counter()
        r = subprocess.run([py, "-m", "pyuring.copy", *argv], env=env, cwd="/",
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t
        if r.returncode:
            raise SystemExit(f"{v.name}: exit {r.returncode}: {r.stderr.strip()[-500:]}")
        return wall, float("nan")
    split = [a for a in v.args if a.startswith("--ab-split=")]
    if split:
        argv = [str(int(split[-1].split("=", 1)[1])), "-a",
                *(a for a in v.args if not a.startswith("--ab-split=")), src, dst]
    r = subprocess.run([py, "-c", _SPLIT if split else _INPROC, v.root, *argv], env=env,
                       cwd="/", capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{v.name}: exit {r.returncode}: {r.stderr.strip()[-500:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    if res["rc"]:
        raise SystemExit(f"{v.name}: copy exit status {res['rc']}: {r.stderr.strip()[-500:]}")
    return float(res["wall"]), float(res["thread"])


def tree_size(root: str) -> Tuple[int, int]:
    total, entries = 0, 0
    for dirpath, dirs, files in os.walk(root):
        entries += len(dirs) + len(files)
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                pass
    return total, entries


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variants", nargs="+", metavar="NAME=DIR[::ARGS]")
    ap.add_argument("--rounds", type=int, default=8, help="timed runs per variant (8)")
    ap.add_argument("--mode", choices=("cli", "inproc"), default="cli")
    ap.add_argument("--tree", help="copy this tree instead of shape (a)")
    ap.add_argument("--shm", default="/dev/shm")
    ap.add_argument("--python", help="interpreter (default: this one, resolved)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--delete", action="store_true",
                    help="remove each destination after its run (untimed, then syncfs): "
                         "the page cache of the copies does not grow, which holds the VM "
                         "in its fast state (docs/benchmarks.md, 2026-12-04)")
    ap.add_argument("--rerun", action="store_true",
                    help="time no-change re-runs: each variant copies once (untimed), then "
                         "every run copies again onto its own complete destination")
    a = ap.parse_args(argv)
    if a.rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    if os.geteuid() != 0:
        raise SystemExit("needs root (mkfs, mount)")
    variants = [Variant(s) for s in a.variants]
    if len({v.name for v in variants}) != len(variants):
        raise SystemExit("variant names must differ")
    if a.mode == "cli" and any(x.startswith("--ab-split=") for v in variants for x in v.args):
        raise SystemExit("--ab-split needs --mode inproc")
    py = real_python(a.python)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up on kill, too
    per_copy, entries = tree_size(a.tree) if a.tree else (40 << 20, 5100)
    copies = (a.rounds + 1) * len(variants) + 1
    fs = LoopFs(a.shm, max(1 * GiB, int(per_copy * copies * 1.3) + GiB),
                max(65536, int(entries * copies * 1.2)))
    try:
        mnt = fs.create()
        src = os.path.join(mnt, "src")
        if a.tree:
            subprocess.run(["cp", "-a", a.tree.rstrip("/") + "/.", src + "/"], check=False)
        else:
            build_small(src)
        syncfs(mnt)
        large = per_copy > 256 << 20
        if a.rerun:
            for v in variants:
                run_once(py, v, a.mode, src, os.path.join(mnt, f"rerun-{v.name}"))
            syncfs(mnt)
        n = 0
        for rnd in range(a.rounds + 1):  # round 0: untimed warm-up
            order = variants if rnd % 2 == 0 else variants[::-1]
            for v in order:
                n += 1
                dst = os.path.join(mnt, f"rerun-{v.name}" if a.rerun else f"d{n:04d}-{v.name}")
                wall, thread = run_once(py, v, a.mode, src, dst)
                after_run(mnt, dst, large)
                if a.delete and not a.rerun:
                    shutil.rmtree(dst)
                    syncfs(mnt)
                if rnd:
                    v.walls.append(wall)
                    v.threads.append(thread)
    finally:
        fs.destroy()
    base = statistics.median(variants[0].walls)
    out: Dict[str, Dict[str, object]] = {}
    for v in variants:
        med = statistics.median(v.walls)
        row: Dict[str, object] = {"wall_ms": round(med * 1000, 1),
                                  "runs_ms": [round(w * 1000, 1) for w in v.walls],
                                  "ratio": round(med / base, 3), "args": v.args, "dir": v.root}
        if a.mode == "inproc":
            row["thread_ms"] = round(statistics.median(v.threads) * 1000, 1)
        out[v.name] = row
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    what = (a.tree or "shape (a): 5,000 files of 0-8 KiB") + ("; no-change re-runs" if a.rerun
                                                             else "")
    print(f"{what}; mode {a.mode}; {a.rounds} alternating rounds; medians")
    for name, row in out.items():
        extra = f"  thread {row['thread_ms']} ms" if "thread_ms" in row else ""
        print(f"  {name:>12}: {row['wall_ms']:8.1f} ms  x{row['ratio']:.3f}{extra}  "
              f"(min {min(row['runs_ms']):.1f}, max {max(row['runs_ms']):.1f})")  # type: ignore
    return 0


if __name__ == "__main__":
    sys.exit(main())
