#!/usr/bin/env python3
"""Copy speed: ``python -m pyuring.copy -a`` next to cp, rsync, tar and shutil, in one run.

Every comparison runs side by side in one process, as ``shared/benchmarking.md``
asks:

* A fresh journaled ext4 in a loop file on ``/dev/shm`` (tmpfs), created by this
  script (``mkfs.ext4``, enough inodes), mounted ``noatime`` on a private mount
  point; the source trees are built there.  Source and destinations share the
  file system, so ``copy_file_range`` works for whoever uses it.
* Nothing is deleted between timed runs: every run copies into a new directory
  (on the root ext4 without a journal the inode allocator is very slow right
  after a mass delete).  Where the copies of a shape would not fit into
  ``--max-image-gib`` the shape gets a fresh file system every few rounds
  instead.  Everything is removed at the end (umount, rm image), also on Ctrl-C
  and errors, unless ``--keep``.  With ``--delete`` each destination is
  removed after its run instead (untimed, then ``syncfs``; the last round's
  stay for the check): the copies' page cache then does not grow, and this VM
  stays in its fast state, where new page-cache pages are not slow to touch
  (docs/benchmarks.md, 2026-12-04; the journaled loop file system showed no
  slowdown after the deletes).
* Warm cache: the source stays in the page cache; one untimed warm-up run per
  tool comes first.  After every run an untimed ``syncfs`` on the test file
  system, so that no run pays for the writeback of the previous one; for large
  shapes (b, c) the destination's now clean pages are then dropped
  (``POSIX_FADV_DONTNEED``, destination files only), so that memory use stays
  flat.  A second or later file system of a shape first gets one untimed
  ``cp -a`` (a primer) before its timed runs.
* The tools alternate run by run (the order rotates every round); the tables
  show medians, CPU time (user+sys of the children, ``getrusage``) and ratios.

Shapes (``--shapes``):

a  5,000 files of 0-8 KiB (random sizes, fixed seed) in 50 directories
b  a copy of a real tree (``--tree``, default /usr/share)
c  1 GiB + 4 x 64 MiB files
d  no-change re-run: every tool first copies tree (a) once (untimed), then the
   timed runs re-run each tool onto its own complete destination
e  hardlinks, symlinks, xattrs, ACLs, owners, modes and ns times; every tool
   runs with the flags that keep the most (cp -a, rsync -aHAX, tar --xattrs
   --acls, pyuring -aHAX)

Tools: ``cp -a``, ``rsync -a``, ``tar -C src -cf - . | tar -C dst -xf -``,
``shutil.copytree(src, dst, symlinks=True)`` (a child of the same interpreter),
``pyuring -a`` (default backend) and ``pyuring -a --backend sync``.  pyuring
runs from this checkout: ``<python> -m pyuring.copy`` with PYTHONPATH set to the
repository root.  ``<python>`` is ``sys.executable`` resolved to the real
interpreter binary (not a pyenv shim); its start-up time is measured separately.
With ``--venv`` pyuring and shutil run from a throwaway venv of that interpreter:
it starts as an interpreter of a ``pip install`` into a venv does, without the
``.pth`` files of the base site-packages (in this sandbox one of them imports
certifi at every start, ~23 ms that a user's machine does not have); the start-up
probe then times the base interpreter too.

After the timed runs every tool's last destination is compared with the source
(entries, types, sizes, modes, owners, mtimes, symlink targets, and a content
hash of a sample); differences of a pyuring destination fail the run (exit 2).

Needs root (mkfs, mount).  Run from a checkout: ``python scripts/bench_copy.py``.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import hashlib
import json
import os
import platform
import random
import resource
import shutil
import signal
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Dict, Iterator, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent

GiB = 1 << 30
MiB = 1 << 20
KiB = 1 << 10

SEED = 20240604
LARGE = 256 * MiB      # shapes with more than this per copy: drop destination pages
SMALL_FILES = 5000
SMALL_DIRS = 50
SMALL_MAX = 8 * KiB

SHAPE_NAMES = {
    "a": "5,000 files of 0-8 KiB in 50 dirs",
    "b": "real tree",
    "c": "1 GiB + 4 x 64 MiB",
    "d": "no-change re-run of (a)",
    "e": "hardlinks, symlinks, xattrs, ACLs",
}
SHORT_NAMES = {
    "a": "(a) 5,000 files of 0-8 KiB",
    "b": "(b) real tree",
    "c": "(c) 1 GiB + 4 x 64 MiB",
    "d": "(d) no-change re-run",
    "e": "(e) links, xattrs, ACLs",
}
DEFAULT_SHAPES = "a,b,c,d,e"

TOOL_KEYS = ["cp", "rsync", "tar", "shutil", "pyuring", "pyuring-sync"]
PYURING_KEYS = ("pyuring", "pyuring-sync")

SHUTIL_CODE = (
    "import shutil, sys\n"
    "shutil.copytree(sys.argv[1], sys.argv[2], symlinks=True, dirs_exist_ok=sys.argv[3] == '1')\n"
)


_T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


class Interrupted(Exception):
    """SIGTERM / SIGHUP, turned into an exception so that cleanup runs."""


def _on_signal(signum: int, _frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


# ---------------------------------------------------------------------------
# the interpreter and the tools
# ---------------------------------------------------------------------------

def is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def in_venv(path: str) -> bool:
    """Is ``path`` a venv's interpreter (``<venv>/bin/python``)?"""
    return os.path.isfile(os.path.join(os.path.dirname(os.path.dirname(path)), "pyvenv.cfg"))


def real_python(requested: Optional[str]) -> str:
    """The interpreter binary itself: a pyenv shim is a shell script that costs
    tens of milliseconds per start, which must not be charged to pyuring.  A
    venv's interpreter is kept as it is named (resolving its symlink would
    leave the venv)."""
    named = os.path.abspath(requested or sys.executable)
    if in_venv(named) and is_elf(os.path.realpath(named)):
        return named
    exe = os.path.realpath(named)
    if is_elf(exe):
        return exe
    r = subprocess.run([exe, "-c", "import os, sys; print(os.path.realpath(sys.executable))"],
                       capture_output=True, text=True, check=True)
    resolved = r.stdout.strip()
    if not is_elf(resolved):
        raise SystemExit(f"cannot find the real interpreter binary behind {exe}")
    return resolved


@dataclass
class Tool:
    key: str
    label: str
    argv: List[str]                       # placeholders {src} / {dst}; tar: the "c" side
    argv2: Optional[List[str]] = None     # tar: the "x" side of the pipe
    mkdir_dst: bool = False               # tar needs an existing destination
    is_pyuring: bool = False

    def render(self, argv: List[str], src: str, dst: str) -> List[str]:
        return [a.replace("{src}", src).replace("{dst}", dst) for a in argv]

    def command_line(self) -> str:
        one = " ".join(self.argv)
        if self.argv2 is not None:
            one += " | " + " ".join(self.argv2)
        return one


def make_tools(py: str, shape: str, keys: Sequence[str]) -> List[Tool]:
    full = shape == "e"          # keep everything each tool can keep
    rerun = shape == "d"
    tar_x = ["--xattrs", "--xattrs-include=*", "--acls", "--format=posix"] if full else []
    tools = {
        "cp": Tool("cp", "cp -a", ["cp", "-a", "{src}/.", "{dst}"]),
        "rsync": Tool("rsync", "rsync -aHAX" if full else "rsync -a",
                      ["rsync", "-aHAX" if full else "-a", "{src}/", "{dst}/"]),
        "tar": Tool("tar", "tar --xattrs --acls | tar" if full else "tar | tar",
                    ["tar", *tar_x, "-C", "{src}", "-cf", "-", "."],
                    ["tar", *[x for x in tar_x if x != "--format=posix"],
                     "-C", "{dst}", "-xf", "-"],
                    mkdir_dst=True),
        "shutil": Tool("shutil", "shutil.copytree",
                       [py, "-c", SHUTIL_CODE, "{src}", "{dst}", "1" if rerun else "0"]),
        "pyuring": Tool("pyuring", "pyuring -aHAX" if full else "pyuring -a",
                        [py, "-m", "pyuring.copy", "{src}/", "{dst}", "-aHAX" if full else "-a"],
                        is_pyuring=True),
        "pyuring-sync": Tool("pyuring-sync",
                             ("pyuring -aHAX" if full else "pyuring -a") + " --backend sync",
                             [py, "-m", "pyuring.copy", "{src}/", "{dst}",
                              "-aHAX" if full else "-a", "--backend", "sync"],
                             is_pyuring=True),
    }
    return [tools[k] for k in keys]


@dataclass
class Run:
    wall: float
    user: float
    sys: float
    rc: int
    stderr: str = ""

    def as_dict(self) -> Dict[str, Any]:
        return {"wall": round(self.wall, 6), "user": round(self.user, 6),
                "sys": round(self.sys, 6), "rc": self.rc,
                **({"stderr": self.stderr} if self.stderr else {})}


def _read_tail(f: IO[bytes], limit: int = 2000) -> str:
    f.seek(0)
    data = f.read()
    text = data.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else "..." + text[-limit:]


#: every timed child runs here: ``python -m`` puts its working directory first on
#: sys.path, so a child started from the checkout would import the checkout's
#: pyuring instead of the one PYTHONPATH names (the --snapshot copy)
CHILD_CWD = "/"


def run_tool(tool: Tool, src: str, dst: str, env: Dict[str, str],
             extra: Sequence[str] = (), capture: bool = False) -> Tuple[Run, str]:
    """One timed run: perf_counter around the child(ren), rusage deltas for CPU."""
    argv = tool.render(tool.argv, src, dst) + list(extra)
    if dst:
        os.makedirs(dst if tool.mkdir_dst else os.path.dirname(dst), exist_ok=True)
    out_mode: Any = subprocess.PIPE if capture else subprocess.DEVNULL
    with tempfile.TemporaryFile() as err:
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if tool.argv2 is None:
            t0 = time.perf_counter()
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out_mode,
                                  stderr=err, env=env, check=False, cwd=CHILD_CWD)
            wall = time.perf_counter() - t0
            rc = proc.returncode
            out = proc.stdout.decode("utf-8", "replace") if capture and proc.stdout else ""
        else:
            argv2 = tool.render(tool.argv2, src, dst)
            t0 = time.perf_counter()
            p1 = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=err, env=env, cwd=CHILD_CWD)
            try:
                assert p1.stdout is not None
                p2 = subprocess.Popen(argv2, stdin=p1.stdout, stdout=subprocess.DEVNULL,
                                      stderr=err, env=env, cwd=CHILD_CWD)
            except BaseException:
                p1.kill()
                p1.wait()
                raise
            p1.stdout.close()
            try:
                rc2 = p2.wait()
                rc1 = p1.wait()
            except BaseException:
                for p in (p1, p2):
                    p.kill()
                    p.wait()
                raise
            wall = time.perf_counter() - t0
            rc = rc1 or rc2
            out = ""
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        text = _read_tail(err)
    return Run(wall, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime, rc, text), out


# ---------------------------------------------------------------------------
# the loop-mounted ext4 on tmpfs
# ---------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def syncfs(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        rc: int = _libc.syncfs(fd)
        if rc != 0:
            os.sync()
    finally:
        os.close(fd)


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * KiB
    return 0


class LoopFs:
    """A fresh ext4 (with journal) in a file on /dev/shm, mounted on a new private dir."""

    counter = 0

    def __init__(self, shm: str, size: int, inodes: int) -> None:
        LoopFs.counter += 1
        self.image = os.path.join(shm, f"pyuring-bench-copy-{os.getpid()}-{LoopFs.counter}.img")
        self.size = size
        self.inodes = inodes
        self.mount: Optional[str] = None
        self.kept = False

    def create(self) -> str:
        need = self.size + 1 * GiB
        if mem_available() < need:
            raise SystemExit(f"not enough memory for a {self.size / GiB:.1f} GiB image on tmpfs "
                             f"(MemAvailable {mem_available() / GiB:.1f} GiB); "
                             f"use fewer --repeats or --max-image-gib")
        with open(self.image, "wb") as f:
            f.truncate(self.size)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-N", str(self.inodes),
                        "-L", "pyuring-bench", self.image], check=True)
        self.mount = tempfile.mkdtemp(prefix="pyuring-bench-copy.", dir="/mnt")
        subprocess.run(["mount", "-o", "loop,noatime", self.image, self.mount], check=True)
        return self.mount

    def destroy(self) -> None:
        if self.mount is not None:
            for attempt in range(5):
                r = subprocess.run(["umount", self.mount], capture_output=True, text=True)
                if r.returncode == 0:
                    break
                if attempt == 4:
                    log(f"umount {self.mount} failed ({r.stderr.strip()}); lazy unmount")
                    subprocess.run(["umount", "-l", self.mount], check=False)
                time.sleep(0.2)
            try:
                os.rmdir(self.mount)
            except OSError as e:
                log(f"cannot remove {self.mount}: {e}")
            self.mount = None
        if os.path.exists(self.image):
            os.unlink(self.image)


# ---------------------------------------------------------------------------
# source trees
# ---------------------------------------------------------------------------

@dataclass
class TreeInfo:
    entries: int          # directories, files, symlinks (the root included)
    files: int
    bytes: int            # apparent size of the regular files
    alloc: int            # bytes allocated on disk (st_blocks), directories included


def scan_tree(root: str) -> TreeInfo:
    info = TreeInfo(0, 0, 0, 0)
    seen: set[Tuple[int, int]] = set()
    for st, _rel, _path in walk_lstat(root):
        info.entries += 1
        if stat.S_ISREG(st.st_mode):
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            info.files += 1
            info.bytes += st.st_size
        info.alloc += st.st_blocks * 512
    return info


def walk_lstat(root: str) -> Iterator[Tuple[os.stat_result, str, str]]:
    """(lstat, relative path, path) of root and everything below it, no symlinks followed."""
    yield os.lstat(root), ".", root
    stack = [(root, "")]
    while stack:
        path, rel = stack.pop()
        try:
            it = os.scandir(path)
        except OSError as e:
            log(f"  cannot list {path}: {e}")
            continue
        with it:
            for de in it:
                r = f"{rel}{de.name}"
                try:
                    st = de.stat(follow_symlinks=False)
                except OSError:
                    continue
                yield st, r, de.path
                if stat.S_ISDIR(st.st_mode):
                    stack.append((de.path, r + "/"))


def set_past_times(root: str, rnd: random.Random) -> None:
    """Fixed past mtimes with nanoseconds (deepest first, so directory times stay):
    a tree built seconds before a copy would otherwise have mtimes in the same
    second as the copy's, where second-granular comparisons (rsync's for
    directories) cannot tell them apart."""
    everything = sorted((p for _st, _r, p in walk_lstat(root)), key=len, reverse=True)
    for p in everything:
        t = 1_600_000_000 * 10**9 + rnd.randrange(10**17)
        os.utime(p, ns=(t + rnd.randrange(10**9), t), follow_symlinks=False)


def build_small(root: str, n: int = SMALL_FILES, ndirs: int = SMALL_DIRS,
                seed: int = SEED) -> None:
    rnd = random.Random(seed)
    os.makedirs(root)
    for j in range(ndirs):
        os.mkdir(os.path.join(root, f"d{j:02d}"))
    for i in range(n):
        size = rnd.randint(0, SMALL_MAX)
        with open(os.path.join(root, f"d{i % ndirs:02d}", f"f{i:05d}"), "wb") as f:
            f.write(rnd.randbytes(size))
    set_past_times(root, rnd)


def build_big(root: str, seed: int = SEED) -> None:
    rnd = random.Random(seed)
    os.makedirs(root)
    block = rnd.randbytes(16 * MiB)
    for name, size in [("big-1g", 1 * GiB)] + [(f"m64-{i}", 64 * MiB) for i in range(4)]:
        fd = os.open(os.path.join(root, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            done = 0
            k = 0
            while done < size:
                # rotate the block so that no two 16 MiB pieces are identical
                piece = block[k % 4096 * 4096:] + block[:k % 4096 * 4096]
                done += os.write(fd, piece[:size - done])
                k += 1
        finally:
            os.close(fd)
    set_past_times(root, rnd)


def _posix_acl(entries: List[Tuple[int, int, int]]) -> bytes:
    """The system.posix_acl_access xattr value: version 2, (tag, perm, id) entries."""
    out = (2).to_bytes(4, "little")
    for tag, perm, ident in sorted(entries):
        out += tag.to_bytes(2, "little") + perm.to_bytes(2, "little")
        out += (ident & 0xFFFFFFFF).to_bytes(4, "little")
    return out


def build_rich(root: str, seed: int = SEED) -> None:
    """Hardlinks, symlinks, user xattrs, ACLs, several owners and modes, ns mtimes."""
    rnd = random.Random(seed)
    undefined = 0xFFFFFFFF
    os.makedirs(root)
    dirs = []
    for j in range(40):
        d = os.path.join(root, f"dir{j:02d}")
        os.mkdir(d)
        dirs.append(d)
        for k in range(rnd.randint(0, 2)):
            sub = os.path.join(d, f"sub{k}")
            os.mkdir(sub)
            dirs.append(sub)
    files = []
    for i in range(3000):
        p = os.path.join(rnd.choice(dirs), f"f{i:04d}")
        with open(p, "wb") as f:
            f.write(rnd.randbytes(rnd.randint(0, 16 * KiB)))
        files.append(p)
        r = rnd.random()
        if r < 0.3:
            os.setxattr(p, "user.tag", rnd.randbytes(rnd.randint(8, 120)))
            if r < 0.05:
                os.setxattr(p, "user.second", b"x" * rnd.randint(1, 300))
        if 0.3 <= r < 0.4:
            os.setxattr(p, "system.posix_acl_access", _posix_acl(
                [(0x01, 6, undefined), (0x02, 4, 1000), (0x04, 4, undefined),
                 (0x10, 6, undefined), (0x20, 4, undefined)]))
        else:
            os.chmod(p, rnd.choice([0o644, 0o600, 0o755, 0o640, 0o4755, 0o444]))
        if rnd.random() < 0.2:
            os.chown(p, rnd.choice([1000, 1001, 65534]), rnd.choice([100, 1000, 65534]))
    for p in rnd.sample(files, 600):
        target = os.path.join(rnd.choice(dirs), "hl-" + os.path.basename(p))
        if not os.path.exists(target):
            os.link(p, target)
    for i in range(300):
        d = rnd.choice(dirs)
        os.symlink(os.path.relpath(rnd.choice(files), d), os.path.join(d, f"ln{i:03d}"))
    os.symlink("does/not/exist", os.path.join(root, "dangling"))
    os.chmod(dirs[3], 0o2775)
    os.chmod(dirs[4], 0o1777)
    os.chmod(dirs[5], 0o555)                  # read-only directory (root can still write)
    set_past_times(root, rnd)


# ---------------------------------------------------------------------------
# correctness: compare a destination with the source
# ---------------------------------------------------------------------------

@dataclass
class Entry:
    kind: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    ino: int
    nlink: int
    target: str


def snapshot(root: str) -> Dict[str, Entry]:
    out: Dict[str, Entry] = {}
    for st, rel, path in walk_lstat(root):
        m = st.st_mode
        kind = ("d" if stat.S_ISDIR(m) else "f" if stat.S_ISREG(m)
                else "l" if stat.S_ISLNK(m) else "o")
        out[rel] = Entry(kind, stat.S_IMODE(m), st.st_uid, st.st_gid,
                         st.st_size if kind == "f" else 0, st.st_mtime_ns, st.st_ino,
                         st.st_nlink, os.readlink(path) if kind == "l" else "")
    return out


def file_hash(path: str, cache: Optional[Dict[str, str]] = None) -> str:
    if cache is not None and path in cache:
        return cache[path]
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while True:
            chunk = f.read(8 * MiB)
            if not chunk:
                break
            h.update(chunk)
    digest = h.hexdigest()
    if cache is not None:
        cache[path] = digest
    return digest


def xattrs_of(path: str) -> Dict[str, bytes]:
    try:
        return {n: os.getxattr(path, n, follow_symlinks=False)
                for n in sorted(os.listxattr(path, follow_symlinks=False))}
    except OSError:
        return {}


@dataclass
class CheckResult:
    entries_src: int
    entries_dst: int
    hashed: int
    diffs: Dict[str, int] = field(default_factory=dict)      # category -> count
    examples: List[str] = field(default_factory=list)

    def add(self, category: str, example: str) -> None:
        self.diffs[category] = self.diffs.get(category, 0) + 1
        if len(self.examples) < 12:
            self.examples.append(f"{category}: {example}")

    @property
    def ok(self) -> bool:
        return not self.diffs

    def summary(self) -> str:
        head = f"{self.entries_dst}/{self.entries_src} entries, {self.hashed} hashed"
        if self.ok:
            return head + ", no differences"
        return head + ", differences: " + ", ".join(f"{k} {v}" for k, v in
                                                   sorted(self.diffs.items()))

    def as_dict(self) -> Dict[str, Any]:
        return {"entries_src": self.entries_src, "entries_dst": self.entries_dst,
                "hashed": self.hashed, "ok": self.ok, "diffs": self.diffs,
                "examples": self.examples}


def compare(src: str, dst: str, src_snap: Dict[str, Entry], sample: List[str],
            hash_cache: Dict[str, str], full: bool, hash_max: int) -> CheckResult:
    """Everything ``-a`` keeps; with ``full`` also hardlinks, xattrs and ACLs.
    Files of the sample larger than ``hash_max`` bytes are not hashed."""
    dst_snap = snapshot(dst)
    res = CheckResult(len(src_snap), len(dst_snap), 0)
    for rel, s in src_snap.items():
        d = dst_snap.get(rel)
        if d is None:
            res.add("missing", rel)
            continue
        if d.kind != s.kind:
            res.add("type", f"{rel}: {s.kind} -> {d.kind}")
            continue
        if s.kind == "f" and d.size != s.size:
            res.add("size", f"{rel}: {s.size} -> {d.size}")
        if s.kind == "l" and d.target != s.target:
            res.add("symlink target", f"{rel}: {s.target!r} -> {d.target!r}")
        if s.kind != "l" and d.mode != s.mode:
            res.add("mode", f"{rel}: {s.mode:o} -> {d.mode:o}")
        if (d.uid, d.gid) != (s.uid, s.gid):
            res.add("owner", f"{rel}: {s.uid}:{s.gid} -> {d.uid}:{d.gid}")
        if d.mtime_ns != s.mtime_ns:
            res.add("mtime" if s.kind != "l" else "symlink mtime",
                    f"{rel}: {s.mtime_ns} -> {d.mtime_ns}")
    for rel in dst_snap:
        if rel not in src_snap:
            res.add("extra", rel)
    for rel in sample:
        d = dst_snap.get(rel)
        if d is None or d.kind != "f" or d.size > hash_max:
            continue
        res.hashed += 1
        if file_hash(os.path.join(src, rel), hash_cache) != file_hash(os.path.join(dst, rel)):
            res.add("content", rel)
    if full:
        groups: Dict[int, List[str]] = {}
        for rel, s in src_snap.items():
            if s.kind == "f" and s.nlink > 1:
                groups.setdefault(s.ino, []).append(rel)
        owner: Dict[int, int] = {}
        for ino, rels in groups.items():
            inos = {dst_snap[r].ino for r in rels if r in dst_snap}
            if len(inos) != 1:
                res.add("hardlink", f"{rels} not one inode")
            for i in inos:
                if owner.setdefault(i, ino) != ino:
                    res.add("hardlink", f"{rels} joined with another group")
        for rel, s in src_snap.items():
            if rel not in dst_snap or s.kind == "o":
                continue
            xs = xattrs_of(os.path.join(src, rel))
            xd = xattrs_of(os.path.join(dst, rel))
            if xs != xd:
                names = sorted(set(xs) ^ set(xd)) or sorted(
                    n for n in xs if xs[n] != xd.get(n))
                res.add("xattr/acl", f"{rel}: {names}")
    return res


def hash_sample(src_snap: Dict[str, Entry], count: int, seed: int = SEED) -> List[str]:
    regular = sorted(r for r, e in src_snap.items() if e.kind == "f")
    rnd = random.Random(seed)
    picked = set(rnd.sample(regular, min(count, len(regular))))
    picked.update(sorted(regular, key=lambda r: src_snap[r].size, reverse=True)[:5])
    return sorted(picked)


# ---------------------------------------------------------------------------
# one shape
# ---------------------------------------------------------------------------

@dataclass
class ShapeResult:
    key: str
    title: str
    repeats: int
    tools: List[Tool]
    runs: Dict[str, List[Run]]
    source: Optional[TreeInfo] = None
    filesystems: int = 0
    rounds_per_fs: int = 0
    image_gib: float = 0.0
    checks: Dict[str, CheckResult] = field(default_factory=dict)
    pyuring_stats: Dict[str, Any] = field(default_factory=dict)
    warmup_rc: Dict[str, int] = field(default_factory=dict)
    problems: List[str] = field(default_factory=list)

    def median(self, key: str, what: str = "wall") -> Optional[float]:
        runs = self.runs.get(key) or []
        if not runs:
            return None
        return float(statistics.median([float(getattr(r, what)) for r in runs]))

    def reference(self) -> Tuple[str, Optional[float]]:
        """The yardstick: the fastest peer; rsync -a for the no-change re-run."""
        if self.key == "d" and self.median("rsync") is not None:
            return "rsync", self.median("rsync")
        best: Tuple[str, Optional[float]] = ("", None)
        for t in self.tools:
            m = self.median(t.key)
            if t.is_pyuring or m is None:
                continue
            if best[1] is None or m < best[1]:
                best = (t.key, m)
        return best

    def fastest_peer(self) -> Tuple[str, Optional[float]]:
        best: Tuple[str, Optional[float]] = ("", None)
        for t in self.tools:
            m = self.median(t.key)
            if not t.is_pyuring and m is not None and (best[1] is None or m < best[1]):
                best = (t.key, m)
        return best

    def label(self, key: str) -> str:
        return next((t.label for t in self.tools if t.key == key), key)


@dataclass
class Config:
    py: str
    env: Dict[str, str]
    shm: str
    max_image: int
    min_image: int
    inodes: Optional[int]
    tree: str
    keep: bool
    hash_sample: int
    tool_keys: List[str]
    delete: bool = False


def rotate(tools: List[Tool], r: int) -> List[Tool]:
    k = r % len(tools)
    return tools[k:] + tools[:k]


def fs_geometry(cfg: Config, per_copy_alloc: int, per_copy_entries: int,
                copies: int) -> Tuple[int, int]:
    """(image bytes, inodes) for a source plus ``copies`` copies of it."""
    inodes = int(per_copy_entries * (copies + 1) * 1.3) + 20000
    if cfg.inodes:
        inodes = max(inodes, cfg.inodes)
    data = int(per_copy_alloc * (copies + 1) * 1.15)
    size = data + inodes * 256 + 512 * MiB
    size = max(size, inodes * 4096 + 256 * MiB, cfg.min_image)   # <= 1 inode per 4 KiB
    return (size + MiB - 1) // MiB * MiB, inodes


def estimate(shape: str, cfg: Config) -> Tuple[int, int, Optional[TreeInfo]]:
    """(allocated bytes, entries) of one copy of the shape's source."""
    if shape in ("a", "d"):
        return SMALL_FILES * (SMALL_MAX + 4 * KiB) + SMALL_DIRS * 4 * KiB, \
            SMALL_FILES + SMALL_DIRS + 1, None
    if shape == "c":
        return GiB + 4 * 64 * MiB + 64 * MiB, 6, None
    if shape == "e":
        return 4000 * 24 * KiB, 4100, None
    log(f"  scanning {cfg.tree} ...")
    info = scan_tree(cfg.tree)
    return info.alloc + info.entries * 512, info.entries, info


def build_source(shape: str, src: str, cfg: Config) -> None:
    if shape in ("a", "d"):
        build_small(src)
    elif shape == "c":
        build_big(src)
    elif shape == "e":
        build_rich(src)
    else:
        r = subprocess.run(["cp", "-a", f"{cfg.tree}/.", src], capture_output=True, text=True)
        if r.returncode != 0:
            log(f"  cp -a {cfg.tree} -> source: exit {r.returncode} (copying what is "
                f"readable): {r.stderr.strip()[:300]}")


def pyuring_json(out: str) -> Dict[str, Any]:
    for line in reversed(out.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                return {}
            return data if isinstance(data, dict) else {}
    return {}


def drop_dest_cache(dst: str) -> None:
    """Drop the (clean, after syncfs) page cache of a destination's files, never the
    source's: without it every copy of a large shape stays cached next to its pages
    in the tmpfs image, and the last runs of a round pay for memory reclaim."""
    for st, _rel, path in walk_lstat(dst):
        if stat.S_ISREG(st.st_mode):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def after_run(mount: str, dst: str, large: bool) -> None:
    syncfs(mount)
    if large:
        drop_dest_cache(dst)


def timed(cfg: Config, res: ShapeResult, tool: Tool, src: str, dst: str, mount: str,
          warmup: bool, large: bool) -> None:
    extra: List[str] = ["--json"] if warmup and tool.is_pyuring else []
    run, out = run_tool(tool, src, dst, cfg.env, extra, capture=bool(extra))
    after_run(mount, dst, large)
    if run.rc != 0:
        msg = f"{tool.label} exit {run.rc}: {run.stderr[:500]}"
        if msg not in res.problems:
            res.problems.append(msg)
        log(f"    {msg}")
    elif run.stderr and tool.is_pyuring:
        res.problems.append(f"{tool.label} wrote to stderr: {run.stderr[:500]}")
    if warmup:
        res.warmup_rc[tool.key] = run.rc
        if extra:
            res.pyuring_stats[tool.key] = pyuring_json(out)
        log(f"    warm-up {tool.label:<34} {run.wall:8.3f} s")
    else:
        res.runs[tool.key].append(run)
        log(f"    {tool.label:<42} {run.wall:8.3f} s  (user {run.user:.3f}, sys {run.sys:.3f})")


def run_shape(shape: str, repeats: int, cfg: Config) -> ShapeResult:
    tools = make_tools(cfg.py, shape, cfg.tool_keys)
    title = SHAPE_NAMES[shape] if shape != "b" else f"real tree: {cfg.tree}"
    res = ShapeResult(shape, title, repeats, tools, {t.key: [] for t in tools})
    per_alloc, per_entries, tree_info = estimate(shape, cfg)
    rounds = repeats + 1                     # round 0 is the warm-up
    rerun = shape == "d"
    per_round = per_alloc * len(tools)
    large = per_alloc >= LARGE
    if rerun:
        rounds_per_fs = rounds
        copies = 2 * len(tools)              # tar's re-runs replace files; leave room
    else:
        rounds_per_fs = max(1, int((cfg.max_image - 2 * per_alloc) // max(per_round, 1)))
        rounds_per_fs = min(rounds_per_fs, rounds)
        copies = rounds_per_fs * len(tools) + 1      # + the primer copy
    size, inodes = fs_geometry(cfg, per_alloc, per_entries, copies)
    res.rounds_per_fs = rounds_per_fs
    res.image_gib = size / GiB
    log(f"[{shape}] {title}: {len(tools)} tools x ({repeats} timed + 1 warm-up) runs; "
        f"{rounds_per_fs} round(s) per file system of {size / GiB:.1f} GiB, {inodes} inodes")
    r = 0
    while r < rounds:
        fs = LoopFs(cfg.shm, size, inodes)
        res.filesystems += 1
        last_group = r + rounds_per_fs >= rounds
        try:
            mount = fs.create()
            src = os.path.join(mount, "src")
            t0 = time.perf_counter()
            build_source(shape, src, cfg)
            syncfs(mount)
            if res.source is None:
                res.source = scan_tree(src)
            log(f"  fs {res.filesystems}: {mount} ({fs.image}); source built in "
                f"{time.perf_counter() - t0:.1f} s: {res.source.files} files, "
                f"{res.source.bytes / MiB:.1f} MiB, {res.source.entries} entries")
            if r > 0:
                # a later file system: one untimed copy first, so that its first timed
                # run does not meet the memory the previous image gave back
                prime = os.path.join(mount, "prime")
                subprocess.run(["cp", "-a", f"{src}/.", prime], check=False)
                after_run(mount, prime, large)
            if rerun:
                log("  initial copies (untimed)")
                for t in tools:
                    run, _ = run_tool(t, src, os.path.join(mount, "dst", t.key), cfg.env)
                    after_run(mount, os.path.join(mount, "dst", t.key), large)
                    if run.rc != 0:
                        res.problems.append(f"{t.label} initial copy exit {run.rc}: "
                                            f"{run.stderr[:500]}")
            group_end = min(rounds, r + rounds_per_fs)
            while r < group_end:
                log(f"  round {r}" + (" (warm-up, untimed)" if r == 0 else ""))
                for t in rotate(tools, r):
                    dst = (os.path.join(mount, "dst", t.key) if rerun
                           else os.path.join(mount, f"r{r}", t.key))
                    timed(cfg, res, t, src, dst, mount, warmup=(r == 0), large=large)
                    if cfg.delete and not rerun and r < rounds - 1:
                        # (untimed; the last round's copies stay for the check)
                        shutil.rmtree(dst)
                        syncfs(mount)
                r += 1
            if last_group:
                log("  checking the destinations against the source")
                src_snap = snapshot(src)
                sample = hash_sample(src_snap, cfg.hash_sample)
                cache: Dict[str, str] = {}
                for t in tools:
                    dst = (os.path.join(mount, "dst", t.key) if rerun
                           else os.path.join(mount, f"r{rounds - 1}", t.key))
                    if not os.path.isdir(dst):
                        res.problems.append(f"{t.label}: destination {dst} missing")
                        continue
                    # every sampled file of pyuring's destinations is hashed; the
                    # peers' only up to 64 MiB (their check is informational)
                    chk = compare(src, dst, src_snap, sample, cache, full=(shape == "e"),
                                  hash_max=(1 << 62) if t.is_pyuring else 64 * MiB)
                    res.checks[t.key] = chk
                    log(f"    {t.label:<42} {chk.summary()}")
                if cfg.keep:
                    fs.kept = True
                    log(f"  --keep: leaving {fs.image} mounted on {mount}")
        finally:
            if not fs.kept:
                fs.destroy()
    if tree_info is not None:
        log(f"  {cfg.tree}: {tree_info.files} files, {tree_info.bytes / MiB:.0f} MiB")
    return res


# ---------------------------------------------------------------------------
# start-up, machine, reporting
# ---------------------------------------------------------------------------

def make_venv(py: str) -> str:
    """A throwaway venv of ``py`` (no packages; pyuring comes from PYTHONPATH):
    an interpreter that starts as one installed with ``pip install`` into a
    venv does, without the .pth files of the base interpreter's site-packages.
    (This sandbox's base interpreter has one that imports certifi at every
    start: ~23 ms.)"""
    where = tempfile.mkdtemp(prefix="pyuring-bench-venv-")
    subprocess.run([py, "-m", "venv", "--without-pip", where], check=True)
    return os.path.join(where, "bin", "python")


def measure_startup(py: str, env: Dict[str, str], n: int,
                    base: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
    # A no-change re-run of a one-file tree is a copy's fixed cost: imports, the
    # ring's setup, the walk's first steps and the exit.  (--version goes
    # through argparse and the interpreter's full teardown, which a copy skips.)
    with tempfile.TemporaryDirectory(prefix="pyuring-startup-") as tmp:
        src = os.path.join(tmp, "src")
        os.mkdir(src)
        with open(os.path.join(src, "f"), "wb") as f:
            f.write(b"x")
        one = [py, "-m", "pyuring.copy", "-a", src + "/", os.path.join(tmp, "dst")]
        cmds = {
            "/bin/true (spawn floor)": ["/bin/true"],
            "python -c pass": [py, "-c", "pass"],
            **({"base interpreter (not the venv): python -c pass": [base, "-c", "pass"]}
               if base else {}),
            "python -m pyuring.copy --version": [py, "-m", "pyuring.copy", "--version"],
            "python -m pyuring.copy -a (one file, no change)": one,
        }
        first, _ = run_tool(Tool("first", "first", one), "", "", env)
        if first.rc != 0:
            raise SystemExit(f"pyuring one-file copy failed: {first.stderr}")
        runs: Dict[str, List[Run]] = {k: [] for k in cmds}
        for i in range(n + 1):
            for name, argv in cmds.items():
                t = Tool(name, name, argv)
                run, _ = run_tool(t, "", "", env)
                if run.rc != 0:
                    raise SystemExit(f"{name} failed: {run.stderr}")
                if i:
                    runs[name].append(run)
    return {k: {"median_wall": statistics.median(r.wall for r in v),
                "median_cpu": statistics.median(r.user + r.sys for r in v),
                "runs": [r.wall for r in v]} for k, v in runs.items()}


def first_line(argv: List[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError:
        return "?"
    return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr) else "?"


def pyuring_tree_hash(root: Path = REPO) -> str:
    h = hashlib.sha256()
    for p in sorted((root / "pyuring").rglob("*.py")):
        h.update(str(p.relative_to(root)).encode() + b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def make_snapshot() -> str:
    """A frozen copy of the package, for a checkout that others are editing."""
    snap = tempfile.mkdtemp(prefix="pyuring-bench-snapshot.")
    shutil.copytree(REPO / "pyuring", os.path.join(snap, "pyuring"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    return snap


def git_revision() -> str:
    def git(*args: str) -> str:
        r = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""
    rev = git("rev-parse", "--short", "HEAD") or "?"
    status = git("status", "--porcelain", "--", "pyuring")
    if not status:
        return rev
    stat_line = git("diff", "--shortstat", "HEAD", "--", "pyuring")
    return f"{rev} with uncommitted changes in pyuring/ ({stat_line})"


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine_info(py: str) -> Dict[str, str]:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = f.readline().split()[1]
    py_version = subprocess.run([py, "-c", "import platform; print("
                                 "platform.python_implementation(), platform.python_version())"],
                                capture_output=True, text=True).stdout.strip()
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "kernel": platform.release(),
        "cpu": f"{os.cpu_count()} x {cpu}",
        "memory": f"{int(mem) * KiB / GiB:.1f} GiB",
        "python": f"{py_version} ({py})",
        "pyuring": git_revision(),
        "cp": first_line(["cp", "--version"]),
        "rsync": first_line(["rsync", "--version"]),
        "tar": first_line(["tar", "--version"]),
        "mkfs": first_line(["mkfs.ext4", "-V"]),
        "loadavg before": loadavg(),
    }


def fmt_s(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.3f}"


def fmt_x(a: Optional[float], b: Optional[float]) -> str:
    return "-" if a is None or b is None or b <= 0 else f"{a / b:.2f}x"


def markdown_table(head: List[str], rows: List[List[str]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_shape(res: ShapeResult) -> str:
    fk, fastest = res.fastest_peer()
    cp = res.median("cp")
    rs = res.median("rsync")
    head = ["tool", "runs", "median s", "min-max s", "user s", "sys s",
            f"/ fastest peer ({res.label(fk)})" if fk else "/ fastest peer", "/ cp -a",
            "/ rsync"]
    rows = []
    for t in res.tools:
        runs = res.runs[t.key]
        if not runs:
            rows.append([t.label] + ["-"] * (len(head) - 1))
            continue
        m = res.median(t.key)
        walls = [r.wall for r in runs]
        failed = sum(1 for r in runs if r.rc != 0)
        rows.append([t.label, f"{len(runs)}" + (f" ({failed} FAILED)" if failed else ""),
                     fmt_s(m), f"{min(walls):.3f}-{max(walls):.3f}",
                     fmt_s(res.median(t.key, "user")), fmt_s(res.median(t.key, "sys")),
                     fmt_x(m, fastest), fmt_x(m, cp), fmt_x(m, rs)])
    src = res.source
    lines = [f"## ({res.key}) {res.title}"]
    if src is not None:
        lines.append(f"source: {src.files} regular files, {src.bytes / MiB:.1f} MiB, "
                     f"{src.entries} entries; {res.repeats} timed runs per tool "
                     f"(+1 warm-up); {res.filesystems} file system(s) of "
                     f"{res.image_gib:.1f} GiB")
    lines += ["", markdown_table(head, rows), ""]
    for key, st in res.pyuring_stats.items():
        if st:
            ds = st.get("direct_syscalls") or {}
            lines.append(f"{res.label(key)} (warm-up run, --json): backend {st.get('backend')}, "
                         f"{st.get('sqes', 0)} SQEs in {st.get('enters', 0)} enters "
                         f"({st.get('sqes_per_enter', 0)} per enter), direct syscalls "
                         f"{sum(ds.values()) if isinstance(ds, dict) else ds}, "
                         f"transferred {st.get('transferred')}, unchanged {st.get('unchanged')}")
    for key, chk in res.checks.items():
        lines.append(f"check {res.label(key)}: {chk.summary()}")
        if key in PYURING_KEYS and not chk.ok:
            lines += [f"    {e}" for e in chk.examples]
    for p in res.problems:
        lines.append(f"PROBLEM: {p}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# the plot (hand-written SVG, no dependencies)
# ---------------------------------------------------------------------------

COLORS = {"cp": "#4e79a7", "rsync": "#f28e2b", "tar": "#76b7b2", "shutil": "#b07aa1",
          "pyuring": "#e15759", "pyuring-sync": "#ff9d9a"}


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plot_subtitle(info: Dict[str, Any]) -> str:
    return (f"{info.get('kernel', '?')}, {info.get('cpu', '?')}, "
            f"{str(info.get('python', '?')).split(' (')[0]}, "
            f"pyuring {str(info.get('pyuring', '?')).split(' (')[0]}, "
            f"{str(info.get('date', '?'))[:10]}")


def write_svg(path: str, results: List[ShapeResult], subtitle: str) -> None:
    groups = [r for r in results if any(r.runs.values())]
    keys = [k for k in TOOL_KEYS if any(k in r.runs and r.runs[k] for r in groups)]
    labels = {k: next((t.label.split(" --")[0] if k != "pyuring-sync" else "pyuring --backend sync"
                       for r in groups for t in r.tools if t.key == k), k) for k in keys}
    ratios: List[List[Optional[float]]] = []
    for r in groups:
        _, ref = r.reference()
        row: List[Optional[float]] = []
        for k in keys:
            m = r.median(k)
            row.append(m / ref if m is not None and ref else None)
        ratios.append(row)
    top = max([x for row in ratios for x in row if x is not None] + [1.2])
    ymax = float(int(top * 1.15 / 0.5) + 1) * 0.5
    bar_w, gap = 22, 44
    left, right, plot_top, plot_h = 60, 20, 70, 320
    group_w = len(keys) * bar_w + gap
    width = max(760, left + right + max(1, len(groups)) * group_w)
    height = plot_top + plot_h + 110
    y0 = plot_top + plot_h

    def y(v: float) -> float:
        return y0 - v / ymax * plot_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="15" font-weight="bold">pyuring copy vs peers: '
           f'median wall time / reference (lower is better)</text>',
           f'<text x="{left}" y="40" fill="#555">{_esc(subtitle)}</text>',
           f'<text x="{left}" y="56" fill="#555">reference = fastest peer; for (d) rsync -a; '
           f'dashed = target (1.0x; 0.5x for d)</text>']
    step = 0.5 if ymax <= 4 else 1.0
    v = 0.0
    while v <= ymax + 1e-9:
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                   f'stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}x</text>')
        v += step
    for gi, (r, row) in enumerate(zip(groups, ratios)):
        gx = left + gap / 2 + gi * group_w
        target = 0.5 if r.key == "d" else 1.0
        out.append(f'<line x1="{gx - 6:.1f}" x2="{gx + len(keys) * bar_w + 6:.1f}" '
                   f'y1="{y(target):.1f}" y2="{y(target):.1f}" stroke="#000" '
                   f'stroke-dasharray="5,3"/>')
        for ki, (k, val) in enumerate(zip(keys, row)):
            if val is None:
                continue
            x = gx + ki * bar_w
            out.append(f'<rect x="{x + 2:.1f}" y="{y(val):.1f}" width="{bar_w - 4}" '
                       f'height="{y0 - y(val):.1f}" fill="{COLORS.get(k, "#999")}"/>')
            out.append(f'<text x="{x + bar_w / 2:.1f}" y="{y(val) - 3:.1f}" font-size="9" '
                       f'text-anchor="middle">{val:.2f}</text>')
        name = SHORT_NAMES[r.key] if r.key != "b" else f"(b) {r.title.split(': ', 1)[-1]}"
        ref_key, ref = r.reference()
        out.append(f'<text x="{gx + len(keys) * bar_w / 2:.1f}" y="{y0 + 16}" '
                   f'text-anchor="middle">{_esc(name[:30])}</text>')
        out.append(f'<text x="{gx + len(keys) * bar_w / 2:.1f}" y="{y0 + 30}" '
                   f'text-anchor="middle" fill="#555">1.0x = {_esc(r.label(ref_key))} '
                   f'{fmt_s(ref)} s</text>')
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{y0}" y2="{y0}" stroke="#000"/>')
    lx = left
    for k in keys:
        out.append(f'<rect x="{lx}" y="{y0 + 52}" width="12" height="12" '
                   f'fill="{COLORS.get(k, "#999")}"/>')
        out.append(f'<text x="{lx + 16}" y="{y0 + 62}">{_esc(labels[k])}</text>')
        lx += 30 + 7 * len(labels[k])
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

def results_from_json(paths: Sequence[str]) -> Tuple[List[ShapeResult], Dict[str, Any]]:
    """Shape results saved with --json-file, for --replot.  A shape found in
    several files comes from the last of them (a rerun of some shapes, merged
    with an earlier full run); the machine info is the last file's, the pyuring
    version every file's."""
    shapes: Dict[str, ShapeResult] = {}
    info: Dict[str, Any] = {}
    versions: List[str] = []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        info = dict(data.get("machine", {}))
        version = str(info.get("pyuring", "?")).split(" (")[0]
        if version not in versions:
            versions.append(version)
        for key, s in data["shapes"].items():
            tools = [Tool(k, t["label"], [], is_pyuring=k.startswith("pyuring"))
                     for k, t in s["tools"].items()]
            runs = {k: [Run(r["wall"], r["user"], r["sys"], r["rc"]) for r in t["runs"]]
                    for k, t in s["tools"].items()}
            shapes[key] = ShapeResult(key, s["title"], s["repeats"], tools, runs)
    info["pyuring"] = " + ".join(versions)  # (the subtitle names every run's version)
    return [shapes[k] for k in SHAPE_NAMES if k in shapes], info


def parse_repeats(spec: str) -> Tuple[int, Dict[str, int]]:
    default = 5
    per: Dict[str, int] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" in part:
            k, v = part.split("=", 1)
            per[k.strip()] = int(v)
        else:
            default = int(part)
    return default, per


def ensure_tools(keys: List[str], apt_ok: bool) -> None:
    missing = [b for b in ("cp", "tar", "rsync", "mkfs.ext4", "mount")
               if shutil.which(b) is None and (b != "rsync" or "rsync" in keys)]
    if "rsync" in missing and apt_ok:
        log("rsync missing: apt-get install -y rsync")
        subprocess.run(["apt-get", "install", "-y", "-q", "rsync"], check=False,
                       stdout=subprocess.DEVNULL)
        missing = [b for b in missing if shutil.which(b) is None]
    if missing:
        raise SystemExit(f"missing programs: {', '.join(missing)}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                 epilog="Shapes: " + "; ".join(f"{k}: {v}" for k, v in
                                                               SHAPE_NAMES.items()))
    ap.add_argument("--shapes", default=DEFAULT_SHAPES,
                    help=f"comma-separated shapes to run (default {DEFAULT_SHAPES})")
    ap.add_argument("--repeats", default="5,b=3",
                    help="timed runs per tool: N, optionally per shape, e.g. '5,b=3' "
                         "(the default)")
    ap.add_argument("--tools", default=",".join(TOOL_KEYS),
                    help=f"comma-separated subset of {','.join(TOOL_KEYS)}")
    ap.add_argument("--tree", default="/usr/share", help="the real tree of shape b")
    ap.add_argument("--max-image-gib", type=float, default=8.0,
                    help="largest loop image; a shape whose copies do not fit gets a fresh "
                         "file system every few rounds (default 8)")
    ap.add_argument("--image-gib", type=float, default=0.0,
                    help="minimum image size (default: computed per shape)")
    ap.add_argument("--inodes", type=int, default=0,
                    help="minimum inode count for mkfs -N (default: computed per shape)")
    ap.add_argument("--shm", default="/dev/shm", help="where the loop images live (tmpfs)")
    ap.add_argument("--python", default=None,
                    help="interpreter for pyuring and shutil (default: this one, resolved)")
    ap.add_argument("--venv", action="store_true",
                    help="run pyuring and shutil from a throwaway venv of that interpreter "
                         "(its start without the base site-packages' .pth files)")
    ap.add_argument("--hash-sample", type=int, default=300,
                    help="files per destination whose content is hashed in the check")
    ap.add_argument("--startup-runs", type=int, default=15,
                    help="runs of each start-up probe (default 15)")
    ap.add_argument("--delete", action="store_true",
                    help="remove each destination after its run (untimed, then syncfs; the "
                         "last round's stay for the check): the page cache of the copies "
                         "does not grow, which holds this VM in its fast state")
    ap.add_argument("--keep", action="store_true",
                    help="leave the last file system of every shape mounted for inspection")
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    ap.add_argument("--json-file", default=None, metavar="FILE",
                    help="also write the JSON results to FILE (next to the tables)")
    ap.add_argument("--plot", default=None, metavar="FILE.svg",
                    help="write a bar chart of the ratios (SVG)")
    ap.add_argument("--replot", nargs="+", default=None, metavar="RESULTS.json",
                    help="measure nothing: draw --plot from results saved with --json-file "
                         "(a shape in several files is taken from the last)")
    ap.add_argument("--no-apt", action="store_true", help="do not apt-get install rsync")
    ap.add_argument("--snapshot", action="store_true",
                    help="run pyuring from a copy of the package taken at start (PYTHONPATH "
                         "points there), so that edits to the checkout during the run do "
                         "not leak into it")
    args = ap.parse_args(argv)

    if args.replot:
        if not args.plot:
            raise SystemExit("--replot needs --plot FILE.svg")
        saved, info = results_from_json(args.replot)
        write_svg(args.plot, saved, _plot_subtitle(info))
        log(f"plot written to {args.plot}")
        return 0
    if os.geteuid() != 0:
        raise SystemExit("needs root (mkfs.ext4, mount)")
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    for s in shapes:
        if s not in SHAPE_NAMES:
            raise SystemExit(f"unknown shape {s!r} (choose from {', '.join(SHAPE_NAMES)})")
    keys = [k.strip() for k in args.tools.split(",") if k.strip()]
    for k in keys:
        if k not in TOOL_KEYS:
            raise SystemExit(f"unknown tool {k!r}")
    default_rep, per_rep = parse_repeats(args.repeats)
    if args.plot and not args.plot.endswith(".svg"):
        raise SystemExit("--plot writes SVG: give a file name ending in .svg")
    ensure_tools(keys, not args.no_apt)

    py = base_py = real_python(args.python)
    venv_dir = ""
    if args.venv:
        py = make_venv(base_py)
        venv_dir = os.path.dirname(os.path.dirname(py))
    try:
        info = machine_info(py)
        snap = make_snapshot() if args.snapshot else None
    except BaseException:
        if venv_dir:
            shutil.rmtree(venv_dir, ignore_errors=True)
        raise
    code_root = Path(snap) if snap else REPO
    code_hash = pyuring_tree_hash(code_root)
    env = dict(os.environ)
    # Time Python as users run it: with its bytecode cache.  (Some sandboxes set
    # PYTHONDONTWRITEBYTECODE, which makes every start-up compile pyuring anew.)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = str(code_root) + (os.pathsep + env["PYTHONPATH"]
                                          if env.get("PYTHONPATH") else "")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cfg = Config(py=py, env=env, shm=args.shm, max_image=int(args.max_image_gib * GiB),
                 min_image=int(args.image_gib * GiB), inodes=args.inodes or None,
                 tree=args.tree.rstrip("/") or "/", keep=args.keep,
                 hash_sample=args.hash_sample, tool_keys=keys, delete=args.delete)

    signal.signal(signal.SIGINT, signal.default_int_handler)   # even if started with it ignored
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)

    started = time.perf_counter()
    log("machine: " + "; ".join(f"{k}: {v}" for k, v in info.items()))
    log(f"pyuring from {code_root} (code hash {code_hash})")
    results: List[ShapeResult] = []
    startup: Dict[str, Dict[str, Any]] = {}
    interrupted = False
    try:
        log("python start-up ...")
        startup = measure_startup(py, env, args.startup_runs,
                                  base_py if venv_dir else None)
        for s in shapes:
            results.append(run_shape(s, per_rep.get(s, default_rep), cfg))
    except (KeyboardInterrupt, Interrupted):
        interrupted = True
        log("interrupted: cleaned up; partial results follow")
    finally:
        if snap:
            shutil.rmtree(snap, ignore_errors=True)
        if venv_dir:
            shutil.rmtree(venv_dir, ignore_errors=True)
    info["loadavg after"] = loadavg()
    info["duration"] = f"{time.perf_counter() - started:.0f} s"
    code_changed = pyuring_tree_hash() != code_hash
    if code_changed:
        if snap:
            log("note: pyuring/*.py in the checkout changed during the run; the snapshot "
                "taken at start was measured")
        else:
            log("WARNING: pyuring/*.py changed during the run; the figures may mix two "
                "versions (use --snapshot)")
    info["pyuring measured"] = (f"snapshot of the checkout taken at start, code hash "
                                f"{code_hash}" if snap else f"the checkout, code hash {code_hash}")
    info["destinations"] = ("each deleted after its run (--delete)" if args.delete
                            else "all kept until the end")

    problems: List[str] = []
    for res in results:
        for key in PYURING_KEYS:
            chk = res.checks.get(key)
            if chk is not None and not chk.ok:
                problems.append(f"({res.key}) {res.label(key)}: {chk.summary()}")
            if any(r.rc != 0 for r in res.runs.get(key, [])) or res.warmup_rc.get(key, 0):
                problems.append(f"({res.key}) {res.label(key)}: non-zero exit status")

    if args.json or args.json_file:
        doc: Dict[str, Any] = {
            "machine": info, "pyuring_code_hash": code_hash, "snapshot": bool(snap),
            "checkout_changed": code_changed,
            "command": [os.path.basename(sys.argv[0]), *(argv or sys.argv[1:])],
            "startup": startup, "interrupted": interrupted, "problems": problems,
            "shapes": {},
        }
        for res in results:
            ref_key, ref = res.reference()
            fk, fastest = res.fastest_peer()
            mine = res.median("pyuring")
            cp = res.median("cp")
            doc["shapes"][res.key] = {
                "title": res.title, "repeats": res.repeats,
                "source": res.source.__dict__ if res.source else None,
                "filesystems": res.filesystems, "rounds_per_fs": res.rounds_per_fs,
                "image_gib": round(res.image_gib, 2),
                "tools": {t.key: {"label": t.label, "command": t.command_line(),
                                  "runs": [r.as_dict() for r in res.runs[t.key]],
                                  "median_wall": res.median(t.key),
                                  "median_user": res.median(t.key, "user"),
                                  "median_sys": res.median(t.key, "sys")}
                          for t in res.tools},
                "fastest_peer": fk, "reference": ref_key,
                "pyuring_over_fastest_peer": mine / fastest if mine and fastest else None,
                "pyuring_over_cp": mine / cp if mine and cp else None,
                "pyuring_over_reference": mine / ref if mine and ref else None,
                "pyuring_stats": res.pyuring_stats,
                "checks": {k: c.as_dict() for k, c in res.checks.items()},
                "problems": res.problems,
            }
        if args.json_file:
            with open(args.json_file, "w") as f:
                json.dump(doc, f, indent=1)
                f.write("\n")
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        print("# bench_copy: " + " ".join(sys.argv[1:] if argv is None else argv))
        for k, v in info.items():
            print(f"- {k}: {v}")
        if code_changed:
            print("- the checkout's pyuring/*.py changed during the run" +
                  (" (the snapshot was measured)" if snap else ": figures may mix versions"))
        print("\n## Python start-up (median of "
              f"{args.startup_runs} runs, wall / CPU)")
        for name, fig in startup.items():
            print(f"- {name}: {fig['median_wall'] * 1e3:.1f} ms / "
                  f"{fig['median_cpu'] * 1e3:.1f} ms")
        for res in results:
            print()
            print(render_shape(res))
        print("\n## Targets")
        for res in results:
            mine = res.median("pyuring")
            ref_key, ref = res.reference()
            if mine is None or ref is None:
                continue
            goal = 0.5 if res.key == "d" else 1.0
            verdict = "met" if mine / ref <= goal else "NOT met"
            print(f"- ({res.key}) pyuring -a / {res.label(ref_key)} = {mine / ref:.2f}x "
                  f"(target <= {goal}x): {verdict}")
        if problems:
            print("\n## PROBLEMS")
            for p in problems:
                print(f"- {p}")
    if args.plot and results:
        write_svg(args.plot, results, _plot_subtitle(info))
        log(f"plot written to {args.plot}")
    if problems:
        log("FAILED: pyuring destinations differ from the source or pyuring exited non-zero")
        return 2
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
