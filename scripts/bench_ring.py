#!/usr/bin/env python3
"""Ring speed: pyuring next to PyPI ``liburing``, C liburing and ``os.pread``, in one run.

Loops (every implementation runs the same ones; see docs/benchmarks.md):

* ``nop b=N`` -- prepare N NOPs (one prep call each, user_data = i),
  ``submit_and_wait(N)``, consume every completion (its ``res`` is checked).
* ``read b=N`` -- the same with N 4 KiB reads at random page-aligned offsets
  of a file that sits in the page cache, each into its own buffer.
* ``read qd=32`` -- 32 reads kept in flight: wait for at least one completion,
  and for each one that completes prepare a new read into the freed buffer.
* ``os.pread`` -- the synchronous baseline for the read loops: one
  ``os.pread(fd, 4096, offset)`` per read.

Each run lasts ``--seconds`` after ``--warmup`` seconds of the same loop; the
implementations alternate run by run (A B C A B C ...) and the table shows the
median of ``--repeats`` runs and the ratio pyuring / peer.

The peers run in long-lived child processes that take commands on stdin:

* PyPI ``liburing`` is installed into a temporary venv (``python -m venv`` +
  ``pip install liburing``) and driven by an embedded Python driver.
* C liburing: an embedded C program compiled at run time with ``cc -luring``
  (needs ``liburing.h``: ``apt-get install -y liburing-dev``, or ``--apt-install``).

A peer that cannot be set up is reported with the reason and skipped.

Run from a checkout: ``python scripts/bench_ring.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import pyuring  # noqa: E402

PAGE = 4096
N_OFFSETS = 1 << 16  # random offsets are drawn from this many, cycled
OFFSET_MASK = N_OFFSETS - 1
OFFSET_SEED = 20240601
RING_ENTRIES = 256
# IORING_SETUP_SUBMIT_ALL | SINGLE_ISSUER | DEFER_TASKRUN: what pyuring asks for by
# default (it adds NO_SQARRAY, which liburing before 2.5 cannot map); the peers get the
# same flags and fall back to 0 if the kernel refuses.
PEER_SETUP_FLAGS = 0x80 | 0x1000 | 0x2000

# (name, kind, n): kind "nop" / "read" take a batch size, "qd" a queue depth
LOOPS: List[Tuple[str, str, int]] = [
    ("nop b=1", "nop", 1),
    ("nop b=8", "nop", 8),
    ("nop b=32", "nop", 32),
    ("nop b=256", "nop", 256),
    ("read b=1", "read", 1),
    ("read b=8", "read", 8),
    ("read b=32", "read", 32),
    ("read b=256", "read", 256),
    ("read qd=32", "qd", 32),
]

PYURING = "pyuring"
PYPI = "PyPI liburing"
CLIB = "C liburing"
PREAD = "os.pread"

Result = Tuple[int, float]  # (operations, seconds)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def check_every(kind: str, n: int) -> int:
    """Loop iterations between two clock reads (about 64 operations), the same everywhere."""
    if kind == "qd":
        return 2
    if kind == "pread":
        return 64
    return max(1, 64 // n)


def make_offsets(pages: int) -> List[int]:
    """N_OFFSETS random page offsets, plus a copy of the first RING_ENTRIES at the end
    so that ``offs[k + i]`` never runs off the list for k < N_OFFSETS, i < RING_ENTRIES."""
    rnd = random.Random(OFFSET_SEED)
    offs = [rnd.randrange(pages) * PAGE for _ in range(N_OFFSETS)]
    return offs + offs[:RING_ENTRIES]


# ---------------------------------------------------------------------------
# pyuring loops (public API only)
# ---------------------------------------------------------------------------

def py_nop(ring: pyuring.Ring, batch: int, check: int, seconds: float) -> Result:
    prep = ring.prep_nop
    submit_and_wait = ring.submit_and_wait
    reap = ring.reap
    perf = time.perf_counter
    rounds = range(check)
    ops = 0
    t0 = perf()
    end = t0 + seconds
    while True:
        for _ in rounds:
            for i in range(batch):
                prep(user_data=i)
            submit_and_wait(batch)
            got = 0
            while True:
                for c in reap():
                    if c.res < 0:
                        raise OSError(-c.res, "NOP failed")
                    got += 1
                if got >= batch:
                    break
                submit_and_wait(batch - got)
            ops += got
        t = perf()
        if t >= end:
            return ops, t - t0


def py_read(ring: pyuring.Ring, fd: int, bufs: Sequence[pyuring.Buffer], offs: List[int],
            batch: int, check: int, seconds: float) -> Result:
    prep = ring.prep_read
    submit_and_wait = ring.submit_and_wait
    reap = ring.reap
    perf = time.perf_counter
    rounds = range(check)
    k = 0
    ops = 0
    t0 = perf()
    end = t0 + seconds
    while True:
        for _ in rounds:
            for i in range(batch):
                prep(fd, bufs[i], PAGE, offs[k + i], user_data=i)
            k = (k + batch) & OFFSET_MASK
            submit_and_wait(batch)
            got = 0
            while True:
                for c in reap():
                    if c.res != PAGE:
                        raise OSError(-c.res if c.res < 0 else 0, f"read returned {c.res}")
                    got += 1
                if got >= batch:
                    break
                submit_and_wait(batch - got)
            ops += got
        t = perf()
        if t >= end:
            return ops, t - t0


def py_qd(ring: pyuring.Ring, fd: int, bufs: Sequence[pyuring.Buffer], offs: List[int],
          depth: int, check: int, seconds: float) -> Result:
    prep = ring.prep_read
    submit_and_wait = ring.submit_and_wait
    reap = ring.reap
    perf = time.perf_counter
    rounds = range(check)
    for i in range(depth):
        prep(fd, bufs[i], PAGE, offs[i], user_data=i)
    k = depth
    ops = 0
    t0 = perf()
    end = t0 + seconds
    while True:
        for _ in rounds:
            submit_and_wait(1)
            for c in reap():
                if c.res != PAGE:
                    raise OSError(-c.res if c.res < 0 else 0, f"read returned {c.res}")
                i = c.user_data
                prep(fd, bufs[i], PAGE, offs[k], user_data=i)
                k = (k + 1) & OFFSET_MASK
                ops += 1
        t = perf()
        if t >= end:
            break
    left = depth  # drain: every buffer is in flight or prepared
    while left:
        submit_and_wait(1)
        left -= len(reap())
    return ops, t - t0


def py_pread(fd: int, offs: List[int], check: int, seconds: float) -> Result:
    pread = os.pread
    perf = time.perf_counter
    k = 0
    ops = 0
    t0 = perf()
    end = t0 + seconds
    while True:
        for i in range(k, k + check):
            if len(pread(fd, PAGE, offs[i])) != PAGE:
                raise OSError(0, "short pread")
        k = (k + check) & OFFSET_MASK
        ops += check
        t = perf()
        if t >= end:
            return ops, t - t0


class PyuringBench:
    name = PYURING

    def __init__(self, path: str, pages: int) -> None:
        self.ring = pyuring.Ring(RING_ENTRIES)
        self.fd = os.open(path, os.O_RDONLY)
        self.bufs = [pyuring.Buffer(PAGE) for _ in range(RING_ENTRIES)]
        self.offs = make_offsets(pages)
        self.counters: Dict[str, Dict[str, float]] = {}

    def describe(self) -> str:
        return f"pyuring {pyuring.__version__}, ring flags {self.ring.flags:#x}"

    def _loop(self, kind: str, n: int, seconds: float) -> Result:
        check = check_every(kind, n)
        if kind == "nop":
            return py_nop(self.ring, n, check, seconds)
        if kind == "read":
            return py_read(self.ring, self.fd, self.bufs, self.offs, n, check, seconds)
        if kind == "qd":
            return py_qd(self.ring, self.fd, self.bufs, self.offs, n, check, seconds)
        raise ValueError(kind)

    def run(self, loop: str, kind: str, n: int, warmup: float, seconds: float) -> Result:
        if warmup > 0:
            self._loop(kind, n, warmup)
        self.ring.reset_stats()
        ops, elapsed = self._loop(kind, n, seconds)
        st = self.ring.stats
        acc = self.counters.setdefault(loop, {"sqes": 0, "enters": 0, "completions": 0})
        acc["sqes"] += st.sqes
        acc["enters"] += st.enters
        acc["completions"] += st.completions
        return ops, elapsed

    def close(self) -> None:
        self.ring.close()
        os.close(self.fd)
        for b in self.bufs:
            b.close()


class PreadBench:
    name = PREAD

    def __init__(self, path: str, pages: int) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self.offs = make_offsets(pages)

    def describe(self) -> str:
        return "os.pread(fd, 4096, offset) in a Python loop"

    def run(self, loop: str, kind: str, n: int, warmup: float, seconds: float) -> Result:
        check = check_every("pread", 1)
        if warmup > 0:
            py_pread(self.fd, self.offs, check, warmup)
        return py_pread(self.fd, self.offs, check, seconds)

    def close(self) -> None:
        os.close(self.fd)


# ---------------------------------------------------------------------------
# peers in child processes: one JSON command per line in, one JSON line out
# ---------------------------------------------------------------------------

class ChildBench:
    """A long-lived child process that runs loops on request."""

    def __init__(self, name: str, argv: List[str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        hello = self._read()
        self.info: Dict[str, Any] = hello

    def _read(self) -> Dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"{self.name} driver died: {err.strip()[-2000:]}")
        reply: Dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.name}: {reply['error']}")
        return reply

    def describe(self) -> str:
        return str(self.info.get("describe", self.name))

    def run(self, loop: str, kind: str, n: int, warmup: float, seconds: float) -> Result:
        assert self.proc.stdin is not None
        cmd = {"kind": kind, "n": n, "check": check_every(kind, n), "warmup": warmup,
               "seconds": seconds}
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        reply = self._read()
        return int(reply["ops"]), float(reply["elapsed"])

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


# The PyPI liburing driver.  Two API generations exist: the current one (Zig,
# 2026.x: Ring / Cqe / CqeIter) and the older Cython one (2024.x: io_uring /
# io_uring_cqe).  Each gets the loop its documentation recommends, with every
# function bound to a local name.
LIBURING_DRIVER = r'''
import json, os, random, sys, time
from importlib.metadata import version
import liburing as L

PAGE = 4096
path, pages, seed, n_offs, flags, entries = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                             int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
rnd = random.Random(seed)
offs = [rnd.randrange(pages) * PAGE for _ in range(n_offs)]
offs += offs[:entries]
MASK = n_offs - 1
fd = os.open(path, os.O_RDONLY)
bufs = [bytearray(PAGE) for _ in range(entries)]
perf = time.perf_counter
NEW = hasattr(L, "CqeIter")

def setup(f):
    r = L.Ring() if NEW else L.io_uring()
    L.io_uring_queue_init(entries, r, f)
    return r

try:
    ring = setup(flags)
except Exception:
    flags = 0
    ring = setup(0)
ring_flags = ring.flags

get = L.io_uring_get_sqe
prep_nop = L.io_uring_prep_nop
prep_read = L.io_uring_prep_read
submit_and_wait = L.io_uring_submit_and_wait

if NEW:
    cqe = L.Cqe()
    CqeIter = L.CqeIter
    advance = L.io_uring_cq_advance

    def nop(batch, check, seconds):
        r = ring
        rounds = range(check)
        ops = 0
        t0 = perf()
        end = t0 + seconds
        while True:
            for _ in rounds:
                for i in range(batch):
                    sqe = get(r)
                    prep_nop(sqe)
                    sqe.user_data = i
                submit_and_wait(r, batch)
                got = 0
                while True:
                    n = 0
                    for _ in CqeIter(r, cqe):
                        if cqe[0].res < 0:
                            raise OSError(-cqe[0].res, "NOP failed")
                        n += 1
                    advance(r, n)
                    got += n
                    if got >= batch:
                        break
                    submit_and_wait(r, batch - got)
                ops += got
            t = perf()
            if t >= end:
                return ops, t - t0

    def read(batch, check, seconds):
        r = ring
        rounds = range(check)
        k = 0
        ops = 0
        t0 = perf()
        end = t0 + seconds
        while True:
            for _ in rounds:
                for i in range(batch):
                    sqe = get(r)
                    prep_read(sqe, fd, bufs[i], offs[k + i])
                    sqe.user_data = i
                k = (k + batch) & MASK
                submit_and_wait(r, batch)
                got = 0
                while True:
                    n = 0
                    for _ in CqeIter(r, cqe):
                        if cqe[0].res != PAGE:
                            raise OSError(0, "read returned %d" % cqe[0].res)
                        n += 1
                    advance(r, n)
                    got += n
                    if got >= batch:
                        break
                    submit_and_wait(r, batch - got)
                ops += got
            t = perf()
            if t >= end:
                return ops, t - t0

    def qd(depth, check, seconds):
        r = ring
        rounds = range(check)
        for i in range(depth):
            sqe = get(r)
            prep_read(sqe, fd, bufs[i], offs[i])
            sqe.user_data = i
        k = depth
        ops = 0
        t0 = perf()
        end = t0 + seconds
        while True:
            for _ in rounds:
                submit_and_wait(r, 1)
                n = 0
                for _ in CqeIter(r, cqe):
                    e = cqe[0]
                    if e.res != PAGE:
                        raise OSError(0, "read returned %d" % e.res)
                    i = e.user_data
                    sqe = get(r)
                    prep_read(sqe, fd, bufs[i], offs[k])
                    sqe.user_data = i
                    k = (k + 1) & MASK
                    n += 1
                advance(r, n)
                ops += n
            t = perf()
            if t >= end:
                break
        left = depth
        while left:
            submit_and_wait(r, 1)
            n = 0
            for _ in CqeIter(r, cqe):
                n += 1
            advance(r, n)
            left -= n
        return ops, t - t0

else:
    cqe = L.io_uring_cqe()
    set_data = L.io_uring_sqe_set_data64
    peek = L.io_uring_peek_cqe
    seen = L.io_uring_cqe_seen
    cq_ready = L.io_uring_cq_ready

    def drain(r, expect):
        n = cq_ready(r)
        for _ in range(n):
            peek(r, cqe)
            res = cqe.res
            if res < 0 or (expect is not None and res != expect):
                raise OSError(-res if res < 0 else 0, "bad completion %d" % res)
            seen(r, cqe)
        return n

    def nop(batch, check, seconds):
        r = ring
        rounds = range(check)
        ops = 0
        t0 = perf()
        end = t0 + seconds
        while True:
            for _ in rounds:
                for i in range(batch):
                    sqe = get(r)
                    prep_nop(sqe)
                    set_data(sqe, i)
                submit_and_wait(r, batch)
                got = drain(r, None)
                while got < batch:
                    submit_and_wait(r, batch - got)
                    got += drain(r, None)
                ops += got
            t = perf()
            if t >= end:
                return ops, t - t0

    def read(batch, check, seconds):
        r = ring
        rounds = range(check)
        k = 0
        ops = 0
        t0 = perf()
        end = t0 + seconds
        while True:
            for _ in rounds:
                for i in range(batch):
                    sqe = get(r)
                    prep_read(sqe, fd, bufs[i], PAGE, offs[k + i])
                    set_data(sqe, i)
                k = (k + batch) & MASK
                submit_and_wait(r, batch)
                got = drain(r, PAGE)
                while got < batch:
                    submit_and_wait(r, batch - got)
                    got += drain(r, PAGE)
                ops += got
            t = perf()
            if t >= end:
                return ops, t - t0

    def qd(depth, check, seconds):
        r = ring
        rounds = range(check)
        for i in range(depth):
            sqe = get(r)
            prep_read(sqe, fd, bufs[i], PAGE, offs[i])
            set_data(sqe, i)
        k = depth
        ops = 0
        t0 = perf()
        end = t0 + seconds
        while True:
            for _ in rounds:
                submit_and_wait(r, 1)
                for _ in range(cq_ready(r)):
                    peek(r, cqe)
                    if cqe.res != PAGE:
                        raise OSError(0, "read returned %d" % cqe.res)
                    i = cqe.user_data
                    seen(r, cqe)
                    sqe = get(r)
                    prep_read(sqe, fd, bufs[i], PAGE, offs[k])
                    set_data(sqe, i)
                    k = (k + 1) & MASK
                    ops += 1
            t = perf()
            if t >= end:
                break
        left = depth
        while left:
            submit_and_wait(r, 1)
            left -= drain(r, None)
        return ops, t - t0

LOOPS = {"nop": nop, "read": read, "qd": qd}
api = "Zig API (Ring, CqeIter)" if NEW else "Cython API (io_uring, peek/seen)"
print(json.dumps({"describe": "PyPI liburing %s, %s, ring flags %#x"
                  % (version("liburing"), api, ring_flags),
                  "version": version("liburing"), "flags": flags}), flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    try:
        fn = LOOPS[cmd["kind"]]
        if cmd["warmup"] > 0:
            fn(cmd["n"], cmd["check"], cmd["warmup"])
        ops, elapsed = fn(cmd["n"], cmd["check"], cmd["seconds"])
        print(json.dumps({"ops": ops, "elapsed": elapsed}), flush=True)
    except Exception as exc:
        print(json.dumps({"error": repr(exc)}), flush=True)
'''

# The C liburing program: same loops, same protocol (argv: path flags entries;
# stdin lines "kind n check warmup seconds"; replies are JSON lines).
C_SOURCE = r'''
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

static struct io_uring ring;
static int fd;
static unsigned long pages;
static char *buf;
static unsigned long long rs = 0x9E3779B97F4A7C15ULL;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static inline unsigned long long next_off(void)
{
    rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
    return (rs % pages) * PAGE;
}

static void die(const char *what, int err)
{
    printf("{\"error\": \"%s: %s\"}\n", what, strerror(err));
    fflush(stdout);
    exit(1);
}

static void prep_read(unsigned i)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_read(sqe, fd, buf + (size_t)i * PAGE, PAGE, next_off());
    sqe->user_data = i;
}

/* consume every ready CQE, checking res; returns how many */
static unsigned consume(int expect)
{
    unsigned head, n = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
        if (cqe->res < 0)
            die("completion", -cqe->res);
        if (expect >= 0 && cqe->res != expect)
            die("short read", EIO);
        n++;
    }
    io_uring_cq_advance(&ring, n);
    return n;
}

static unsigned long batch_loop(int is_read, unsigned batch, unsigned check, double seconds,
                                double *elapsed)
{
    unsigned long ops = 0;
    double t0 = now(), end = t0 + seconds, t;
    for (;;) {
        for (unsigned r = 0; r < check; r++) {
            for (unsigned i = 0; i < batch; i++) {
                if (is_read) {
                    prep_read(i);
                } else {
                    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
                    io_uring_prep_nop(sqe);
                    sqe->user_data = i;
                }
            }
            int ret = io_uring_submit_and_wait(&ring, batch);
            if (ret < 0)
                die("io_uring_submit_and_wait", -ret);
            unsigned got = consume(is_read ? PAGE : -1);
            while (got < batch) {
                ret = io_uring_submit_and_wait(&ring, batch - got);
                if (ret < 0)
                    die("io_uring_submit_and_wait", -ret);
                got += consume(is_read ? PAGE : -1);
            }
            ops += got;
        }
        t = now();
        if (t >= end)
            break;
    }
    *elapsed = t - t0;
    return ops;
}

static unsigned long qd_loop(unsigned depth, unsigned check, double seconds, double *elapsed)
{
    unsigned long ops = 0;
    for (unsigned i = 0; i < depth; i++)
        prep_read(i);
    double t0 = now(), end = t0 + seconds, t;
    for (;;) {
        for (unsigned r = 0; r < check; r++) {
            int ret = io_uring_submit_and_wait(&ring, 1);
            if (ret < 0)
                die("io_uring_submit_and_wait", -ret);
            unsigned head, n = 0;
            struct io_uring_cqe *cqe;
            io_uring_for_each_cqe(&ring, head, cqe) {
                if (cqe->res != PAGE)
                    die("read", cqe->res < 0 ? -cqe->res : EIO);
                prep_read((unsigned)cqe->user_data);
                n++;
            }
            io_uring_cq_advance(&ring, n);
            ops += n;
        }
        t = now();
        if (t >= end)
            break;
    }
    *elapsed = t - t0;
    unsigned left = depth;
    while (left) {
        int ret = io_uring_submit_and_wait(&ring, 1);
        if (ret < 0)
            die("io_uring_submit_and_wait", -ret);
        left -= consume(-1);
    }
    return ops;
}

static unsigned long run(const char *kind, unsigned n, unsigned check, double seconds,
                         double *elapsed)
{
    if (!strcmp(kind, "nop"))
        return batch_loop(0, n, check, seconds, elapsed);
    if (!strcmp(kind, "read"))
        return batch_loop(1, n, check, seconds, elapsed);
    return qd_loop(n, check, seconds, elapsed);
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    unsigned flags = (unsigned)strtoul(argv[2], NULL, 0);
    unsigned entries = (unsigned)strtoul(argv[3], NULL, 0);
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = flags;
    int ret = io_uring_queue_init_params(entries, &ring, &p);
    if (ret < 0) {
        flags = 0;
        memset(&p, 0, sizeof(p));
        ret = io_uring_queue_init_params(entries, &ring, &p);
    }
    if (ret < 0)
        die("io_uring_queue_init_params", -ret);
    fd = open(argv[1], O_RDONLY);
    if (fd < 0)
        die("open", errno);
    pages = (unsigned long)(lseek(fd, 0, SEEK_END) / PAGE);
    if (posix_memalign((void **)&buf, PAGE, (size_t)PAGE * entries))
        die("posix_memalign", ENOMEM);
    memset(buf, 0, (size_t)PAGE * entries);
#ifdef IO_URING_VERSION_MAJOR
    printf("{\"describe\": \"C liburing %d.%d (cc -O2), ring flags %#x\", \"flags\": %u}\n",
           IO_URING_VERSION_MAJOR, IO_URING_VERSION_MINOR, p.flags, flags);
#else
    printf("{\"describe\": \"C liburing (cc -O2), ring flags %#x\", \"flags\": %u}\n",
           p.flags, flags);
#endif
    fflush(stdout);
    char line[512];
    while (fgets(line, sizeof(line), stdin)) {
        /* a JSON object with the keys in the order the parent writes them */
        char kind[16];
        unsigned n, check;
        double warmup, seconds, elapsed;
        if (sscanf(line, "{\"kind\": \"%15[a-z]\", \"n\": %u, \"check\": %u, \"warmup\": %lf, "
                         "\"seconds\": %lf}", kind, &n, &check, &warmup, &seconds) != 5)
            die("bad command", EINVAL);
        if (warmup > 0)
            run(kind, n, check, warmup, &elapsed);
        unsigned long ops = run(kind, n, check, seconds, &elapsed);
        printf("{\"ops\": %lu, \"elapsed\": %.9f}\n", ops, elapsed);
        fflush(stdout);
    }
    io_uring_queue_exit(&ring);
    return 0;
}
'''


# ---------------------------------------------------------------------------
# setting the peers up
# ---------------------------------------------------------------------------

def tail_of(text: str, lines: int = 3) -> str:
    """The last few lines of a tool's output (its ERROR lines when it has some), on one line."""
    all_lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in all_lines if ln.startswith("ERROR")]
    return " / ".join((errors or all_lines)[-lines:])


def setup_pypi_liburing(work: Path, spec: str, venv_arg: Optional[str], path: str,
                        pages: int) -> Tuple[Optional[ChildBench], str]:
    venv = Path(venv_arg) if venv_arg else work / "venv"
    py = venv / "bin" / "python"
    if not py.exists():
        log(f"creating a venv in {venv} ...")
        r = subprocess.run([sys.executable, "-m", "venv", str(venv)],
                           capture_output=True, text=True)
        if r.returncode:
            return None, f"python -m venv failed: {tail_of(r.stderr or r.stdout)}"
    probe = subprocess.run([str(py), "-c", "import liburing"], capture_output=True, text=True)
    if probe.returncode:
        log(f"pip install {spec} ...")
        r = subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check",
                            "-q", spec], capture_output=True, text=True)
        if r.returncode:
            return None, f"pip install {spec} failed: {tail_of(r.stderr or r.stdout)}"
    driver = work / "liburing_driver.py"
    driver.write_text(LIBURING_DRIVER)
    argv = [str(py), str(driver), path, str(pages), str(OFFSET_SEED), str(N_OFFSETS),
            str(PEER_SETUP_FLAGS), str(RING_ENTRIES)]
    try:
        child = ChildBench(PYPI, argv)
    except (OSError, RuntimeError, ValueError) as exc:
        return None, f"the liburing driver failed to start: {exc}"
    return child, child.describe()


def setup_c_liburing(work: Path, apt_install: bool, path: str) -> Tuple[Optional[ChildBench], str]:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None, "no C compiler (cc) found"
    src = work / "bench_ring.c"
    exe = work / "bench_ring_c"
    src.write_text(C_SOURCE)

    def build() -> subprocess.CompletedProcess[str]:
        return subprocess.run([cc, "-O2", "-o", str(exe), str(src), "-luring"],
                              capture_output=True, text=True)

    r = build()
    if r.returncode and apt_install and os.geteuid() == 0 and shutil.which("apt-get"):
        log("apt-get install -y liburing-dev ...")
        subprocess.run(["apt-get", "install", "-y", "liburing-dev"], capture_output=True,
                       text=True)
        r = build()
    if r.returncode:
        hint = ("liburing.h not found (apt-get install -y liburing-dev, or rerun with "
                "--apt-install)" if "liburing.h" in r.stderr else tail_of(r.stderr))
        return None, f"cannot build the C benchmark: {hint}"
    try:
        child = ChildBench(CLIB, [str(exe), path, str(PEER_SETUP_FLAGS), str(RING_ENTRIES)])
    except (OSError, RuntimeError, ValueError) as exc:
        return None, f"the C benchmark failed to start: {exc}"
    desc = child.describe()
    if "liburing (" in desc:  # no version macro in old headers: ask dpkg
        q = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "liburing-dev"],
                           capture_output=True, text=True) if shutil.which("dpkg-query") else None
        if q is not None and q.returncode == 0 and q.stdout:
            desc = desc.replace("C liburing", f"C liburing {q.stdout.strip()}")
    child.info["describe"] = desc
    return child, desc


# ---------------------------------------------------------------------------
# data file, machine
# ---------------------------------------------------------------------------

def fs_type(path: str) -> str:
    best, kind = "", "?"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    mnt = parts[1].replace("\\040", " ")
                    if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and \
                            len(mnt) > len(best):
                        best, kind = mnt, parts[2]
    except OSError:
        pass
    return kind


def make_data_file(directory: Path, size: int) -> str:
    path = directory / "data.bin"
    chunk = os.urandom(1 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(size >> 20):
            os.write(fd, chunk)
        os.fsync(fd)  # clean pages: no writeback while we measure
    finally:
        os.close(fd)
    warm_file(str(path))
    return str(path)


def warm_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        while os.read(fd, 1 << 20):
            pass
    finally:
        os.close(fd)


def machine_info(data_path: Optional[str]) -> Dict[str, str]:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": str(os.cpu_count()),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }
    if data_path:
        info["data file"] = f"{data_path} ({fs_type(data_path)})"
    if shutil.which("git"):
        r = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                           capture_output=True, text=True)
        if r.returncode == 0:
            info["pyuring revision"] = r.stdout.strip()
    return info


# ---------------------------------------------------------------------------
# reporting
# ---------------------------------------------------------------------------

def fmt_rate(x: Optional[float]) -> str:
    if x is None:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    return f"{x / 1e3:.0f} k"


def fmt_ratio(a: Optional[float], b: Optional[float]) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def median_of(results: Dict[str, Dict[str, List[float]]], loop: str,
              impl: str) -> Optional[float]:
    runs = results.get(loop, {}).get(impl)
    return statistics.median(runs) if runs else None


def render_table(results: Dict[str, Dict[str, List[float]]], impls: List[str],
                 counters: Dict[str, Dict[str, float]]) -> str:
    peers = [p for p in (PYPI, CLIB) if p in impls]
    with_pread = PREAD in impls
    head = ["loop", PYURING, *peers] + ([PREAD] if with_pread else [])
    head += [f"{PYURING} / {p}" for p in peers]
    head += ([f"{PYURING} / {PREAD}"] if with_pread else []) + ["SQEs/enter"]
    rows: List[List[str]] = []
    pread = next((median_of(results, loop, PREAD) for loop in results
                  if PREAD in results[loop]), None)
    for loop, kind, _n in LOOPS:
        if loop not in results:
            continue
        mine = median_of(results, loop, PYURING)
        row = [loop, fmt_rate(mine)]
        row += [fmt_rate(median_of(results, loop, p)) for p in peers]
        if with_pread:
            row.append(fmt_rate(pread) if kind != "nop" else "")
        row += [fmt_ratio(mine, median_of(results, loop, p)) for p in peers]
        if with_pread:
            row.append(fmt_ratio(mine, pread) if kind != "nop" else "")
        c = counters.get(loop)
        row.append(f"{c['sqes'] / c['enters']:.1f}" if c and c["enters"] else "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_spread(results: Dict[str, Dict[str, List[float]]], impls: List[str]) -> str:
    parts = []
    for impl in impls:
        worst = 0.0
        for per in results.values():
            runs = per.get(impl)
            if runs and len(runs) > 1:
                worst = max(worst, (max(runs) - min(runs)) / statistics.median(runs))
        parts.append(f"{impl} {worst * 100:.0f}%")
    return "largest run-to-run spread (max-min)/median per implementation: " + ", ".join(parts)


def targets(results: Dict[str, Dict[str, List[float]]]) -> List[str]:
    out = []
    mine = median_of(results, "nop b=32", PYURING)
    peer = median_of(results, "nop b=32", PYPI)
    if mine is not None and peer is not None:
        ok = "MET" if mine >= peer else "NOT MET"
        out.append(f"NOP b=32 >= PyPI liburing: {ok} ({mine / peer:.2f}x)")
    elif mine is not None:
        out.append("NOP b=32 >= PyPI liburing: not checked (PyPI liburing unavailable)")
    mine = median_of(results, "read qd=32", PYURING)
    peer = median_of(results, "read qd=32", CLIB)
    if mine is not None and peer is not None:
        ok = "MET" if mine >= 0.6 * peer else "NOT MET"
        out.append(f"read qd=32 >= 0.6x C liburing: {ok} ({mine / peer:.2f}x)")
    elif mine is not None:
        out.append("read qd=32 >= 0.6x C liburing: not checked (C liburing unavailable)")
    return out


# ---------------------------------------------------------------------------

class Bench(Protocol):
    name: str

    def describe(self) -> str: ...

    def run(self, loop: str, kind: str, n: int, warmup: float, seconds: float) -> Result: ...

    def close(self) -> None: ...


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=1.0, help="length of one timed run")
    ap.add_argument("--warmup", type=float, default=0.2,
                    help="untimed run of the same loop before each timed run")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per implementation")
    ap.add_argument("--loops", default="all",
                    help="comma-separated loop names or kinds (nop, read, qd), default all")
    ap.add_argument("--file-mib", type=int, default=256, help="size of the data file")
    ap.add_argument("--dir", default=None,
                    help="where the data file goes (default: the temp dir, normally /tmp; "
                         "tmpfs reads are slower through io_uring, see docs/benchmarks.md)")
    ap.add_argument("--no-pypi", action="store_true", help="skip the PyPI liburing peer")
    ap.add_argument("--liburing-spec", default="liburing",
                    help="what to pip install for the PyPI peer (e.g. liburing==2024.5.3)")
    ap.add_argument("--venv", default=None,
                    help="use (or create and keep) this venv for the PyPI peer")
    ap.add_argument("--no-c", action="store_true", help="skip the C liburing peer")
    ap.add_argument("--apt-install", action="store_true",
                    help="apt-get install liburing-dev if liburing.h is missing (root)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = ap.parse_args(argv)

    wanted = {s.strip() for s in args.loops.split(",")} if args.loops != "all" else None
    loops = [(name, kind, n) for name, kind, n in LOOPS
             if wanted is None or name in wanted or kind in wanted]
    need_file = any(kind != "nop" for _, kind, _ in loops)

    work = Path(tempfile.mkdtemp(prefix="bench_ring.", dir=args.dir))
    benches: List[Bench] = []
    pread_bench: Optional[PreadBench] = None
    peer_status: Dict[str, str] = {}
    try:
        data_path = ""
        pages = 1
        if need_file:
            log(f"writing a {args.file_mib} MiB data file in {work} ...")
            data_path = make_data_file(work, args.file_mib << 20)
            pages = (args.file_mib << 20) // PAGE
        else:
            data_path = str(work / "empty")
            Path(data_path).write_bytes(b"\0" * PAGE)
        mine = PyuringBench(data_path, pages)
        benches.append(mine)
        peer_status[PYURING] = mine.describe()
        if args.no_pypi:
            peer_status[PYPI] = "skipped (--no-pypi)"
        else:
            child, status = setup_pypi_liburing(work, args.liburing_spec, args.venv,
                                                data_path, pages)
            peer_status[PYPI] = status
            if child is not None:
                benches.append(child)
            else:
                log(f"PyPI liburing peer unavailable: {status}")
        if args.no_c:
            peer_status[CLIB] = "skipped (--no-c)"
        else:
            child, status = setup_c_liburing(work, args.apt_install, data_path)
            peer_status[CLIB] = status
            if child is not None:
                benches.append(child)
            else:
                log(f"C liburing peer unavailable: {status}")
        # os.pread does not batch: it is measured once, in the rotation of one read
        # loop (qd=32 when selected), and shown against every read loop.
        if need_file:
            pread_bench = PreadBench(data_path, pages)
        pread_host = next((name for name, kind, _ in loops if kind == "qd"),
                          next((name for name, kind, _ in loops if kind == "read"), None))
        if pread_bench is not None:
            peer_status[PREAD] = pread_bench.describe()
        no_peer = ""
        if not any(b.name in (PYPI, CLIB) for b in benches):
            no_peer = ("neither PyPI liburing nor C liburing could be set up: pyuring is "
                       "compared with os.pread only" if need_file else
                       "neither PyPI liburing nor C liburing could be set up: no peer to compare")
            log(no_peer)
        for name, status in peer_status.items():
            log(f"  {name}: {status}")

        results: Dict[str, Dict[str, List[float]]] = {}
        load_before = os.getloadavg()[0]
        t_start = time.perf_counter()
        for loop, kind, n in loops:
            rotation = list(benches)
            if pread_bench is not None and loop == pread_host:
                rotation.append(pread_bench)
            for rep in range(args.repeats):
                for b in rotation:  # alternate implementations run by run
                    ops, elapsed = b.run(loop, kind, n, args.warmup, args.seconds)
                    results.setdefault(loop, {}).setdefault(b.name, []).append(ops / elapsed)
                log(f"{loop:11s} run {rep + 1}/{args.repeats}: " + ", ".join(
                    f"{b.name} {fmt_rate(results[loop][b.name][-1])}" for b in rotation))
        wall = time.perf_counter() - t_start

        impls = [b.name for b in benches] + ([PREAD] if pread_bench is not None else [])
        machine = machine_info(data_path if need_file else None)
        machine["load average (1 min) before / after"] = (
            f"{load_before:.2f} / {os.getloadavg()[0]:.2f}")
        counters = {
            loop: {**c, "sqes_per_enter": c["sqes"] / c["enters"] if c["enters"] else 0.0}
            for loop, c in mine.counters.items()
        }
        verdicts = targets(results)
        if args.json:
            out = {
                "command": shlex.join(["python", "scripts/bench_ring.py",
                                       *(argv if argv is not None else sys.argv[1:])]),
                "machine": machine,
                "config": {"seconds": args.seconds, "warmup": args.warmup,
                           "repeats": args.repeats, "file_mib": args.file_mib,
                           "ring_entries": RING_ENTRIES},
                "implementations": peer_status,
                "results": {
                    loop: {impl: {"median": statistics.median(runs), "runs": runs}
                           for impl, runs in per.items()}
                    for loop, per in results.items()
                },
                "pyuring_counters": counters,
                "note": no_peer,
                "targets": verdicts,
                "wall_seconds": wall,
            }
            print(json.dumps(out, indent=2))
        else:
            print("machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()))
            print(f"runs: {args.repeats} x {args.seconds:g} s per loop and implementation "
                  f"(after {args.warmup:g} s warm-up each), medians, alternating")
            for name, status in peer_status.items():
                print(f"  {name}: {status}")
            if no_peer:
                print(f"NOTE: {no_peer}")
            print()
            print(render_table(results, impls, counters))
            print()
            print(render_spread(results, impls))
            for v in verdicts:
                print("target: " + v)
        return 0
    finally:
        for b in benches:
            try:
                b.close()
            except Exception as exc:  # keep closing the others
                log(f"closing {b.name}: {exc!r}")
        if pread_bench is not None:
            pread_bench.close()
        shutil.rmtree(work, ignore_errors=True)  # a --venv lives outside it


if __name__ == "__main__":
    sys.exit(main())
