"""Symlink-race attacks on a running copy; shared by ``test_copy_security.py`` and
``scripts/stress.py``.  No tests here, and no pytest import (the stress script uses it).

The world (:class:`RaceWorld`) is one base directory holding:

``src/``
    a few thousand small files in nested directories (``dNN/sM/fK``, some hard
    links, varied modes and -- as root -- owners), plus the *victims* the
    attacker swaps: directories ``vdK`` and files ``vfK`` / ``vgK`` (also nested,
    under ``nest/``), each next to a prepared symlink ``.vdK.swap`` etc. that
    points outside (absolute or relative), and directories ``dtK`` and files
    ``ftK`` / ``fdK`` whose *copies* the attacker swaps in the destination.
``outside/``
    the canary directory, outside both trees: canary files (named like the
    tree's entries, so that a copy that followed a symlink would find names it
    knows) with a unique marker as content, an xattr holding the marker, a
    distinctive mode, owner (as root), mtime, and an atime older than the
    mtime -- under relatime any read moves it.  An inotify watch sees every
    open, read, write, attribute change, create or delete there.
``dst-N/``
    destinations.  Before each fresh copy, symlinks to the outside are
    planted in the destination under the attacker's names.

The attacker is a separate process (true parallelism) that loops over all
pairs with ``renameat2(RENAME_EXCHANGE)``: each swap is atomic, so every name
is always either the real entry or the symlink.  In the destination it also
re-plants symlinks the copy replaced (a copy publishes with rename, which
replaces a planted symlink by the new file), plants symlinks in directories
the copy creates, and plants a symlink under a name the copy is about to
create (so that its mkdir / link meets EEXIST and has to replace it).

After each copy, :meth:`RaceWorld.check` returns the violations: any inotify
event outside; any change of the outside's listing, content, mode, owner, times
(ctime included) or xattrs; any regular file of the destination holding the
marker; any destination entry carrying the canary's xattr, mtime or owner; a
copy that crashed (traceback, internal error, exit code other than 0/23/24); a
part of the tree the attacker never touched that was not copied exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from .race_support import Inotify, describe
from .treecompare import diff_trees

REPO = Path(__file__).resolve().parent.parent
TMP_MARK = b".pyuring-tmp-"
#: exit codes a raced copy may end with: success, partial transfer, vanished files
ALLOWED_EXIT = (0, 23, 24)
IS_ROOT = os.geteuid() == 0
O_NOATIME = getattr(os, "O_NOATIME", 0)
#: a copy that takes longer than this is hung
COPY_TIMEOUT = 120.0



# --------------------------------------------------------------------------------------
# the outside
# --------------------------------------------------------------------------------------
#: the canary's times: atime older than mtime, so that under relatime a read moves it
CANARY_ATIME_NS = 1_000_000_000_111_111_111
CANARY_MTIME_NS = 1_100_000_000_222_222_222
CANARY_OWNER = (4321, 4322)  # as root
CANARY_FILE_MODE = 0o640
CANARY_DIR_MODE = 0o751


def _read_noatime(path: bytes) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | O_NOATIME)
    try:
        chunks: List[bytes] = []
        while True:
            b = os.read(fd, 1 << 16)
            if not b:
                return b"".join(chunks)
            chunks.append(b)
    finally:
        os.close(fd)


def _list_noatime(path: bytes) -> List[bytes]:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | O_NOATIME)
    try:
        return sorted(os.fsencode(n) for n in os.listdir(fd))
    finally:
        os.close(fd)


def _xattrs(path: bytes) -> List[Tuple[str, bytes]]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []
    out = []
    for n in names:
        try:
            out.append((n, os.getxattr(path, n, follow_symlinks=False)))
        except OSError:
            pass
    return sorted(out)


class Outside:
    """The canary directory: nothing in it may ever be opened, read or changed."""

    #: files named like entries of the tree (a copy that followed a symlink here
    #: would find them), plus one name nothing in the tree has
    FILES = ("f0", "f1", "f2", "f3", "data", "canary-only-outside")
    DIRS = ("inner", "sub")

    def __init__(self, path: Path, marker: bytes) -> None:
        self.path = path
        self.root = os.fsencode(path)
        self.marker = marker
        self.xattrs = False
        path.mkdir()
        paths: List[bytes] = []
        for name in self.FILES:
            p = os.path.join(self.root, name.encode())
            with open(p, "wb") as f:
                f.write(self.content(p))
            paths.append(p)
        for name in self.DIRS:
            d = os.path.join(self.root, name.encode())
            os.mkdir(d)
            p = os.path.join(d, b"f0")
            with open(p, "wb") as f:
                f.write(self.content(p))
            paths += [p, d]
        paths.append(self.root)
        for p in paths:
            is_dir = os.path.isdir(p)
            try:
                os.setxattr(p, "user.canary", marker)
                self.xattrs = True
            except OSError:
                pass
            if IS_ROOT:
                os.setxattr(p, "trusted.canary", marker)
                os.chown(p, *CANARY_OWNER)
            os.chmod(p, CANARY_DIR_MODE if is_dir else CANARY_FILE_MODE)
        for p in paths:  # times last (the chmods above move the directories' ctimes only)
            os.utime(p, ns=(CANARY_ATIME_NS, CANARY_MTIME_NS))
        self.paths = sorted(paths)
        self.before = self.snapshot()

    def content(self, path: bytes) -> bytes:
        """What the canary file at ``path`` holds: the marker, several times over."""
        return b"CANARY %s %s\n" % (self.marker, path) * 50

    def snapshot(self) -> Dict[bytes, object]:
        """Everything observable about the outside, read without moving an atime."""
        snap: Dict[bytes, object] = {}
        for p in self.paths:
            st = os.lstat(p)
            snap[p] = {"ino": st.st_ino, "mode": oct(st.st_mode), "uid": st.st_uid,
                       "gid": st.st_gid, "nlink": st.st_nlink, "size": st.st_size,
                       "atime": st.st_atime_ns, "mtime": st.st_mtime_ns,
                       "ctime": st.st_ctime_ns, "xattrs": _xattrs(p)}
            if stat.S_ISDIR(st.st_mode):
                snap[p + b"#listing"] = _list_noatime(p)
            else:
                snap[p + b"#content"] = hashlib.sha256(_read_noatime(p)).hexdigest()
        return snap

    def differences(self) -> List[str]:
        now = self.snapshot()
        out: List[str] = []
        for k in sorted(set(now) | set(self.before)):
            a, b = self.before.get(k), now.get(k)
            if a == b:
                continue
            if isinstance(a, dict) and isinstance(b, dict):
                changed = ", ".join(f"{f} {a[f]!r} -> {b[f]!r}" for f in a if a[f] != b[f])
                out.append(f"outside changed: {os.fsdecode(k)}: {changed}")
            else:
                out.append(f"outside changed: {os.fsdecode(k)}: {a!r} -> {b!r}")
        return out


# --------------------------------------------------------------------------------------
# the attacker
# --------------------------------------------------------------------------------------
_ATTACKER = textwrap.dedent(r"""
    import ctypes, errno, json, os, signal, sys
    libc = ctypes.CDLL(None, use_errno=True)
    ren = libc.renameat2
    cfg = json.loads(sys.argv[1])
    enc = os.fsencode
    src = [(enc(a), enc(b)) for a, b in cfg["src"]]
    dst = [[enc(a), enc(b), enc(t)] for a, b, t in cfg["dst"]]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    swaps = misses = plants = 0
    rounds = 0
    print("ready", flush=True)
    while not stop:
        for a, b in src:
            if ren(-100, a, -100, b, 2) == 0:
                swaps += 1
            else:
                misses += 1
        for p in dst:
            a, b, t = p
            if ren(-100, a, -100, b, 2) == 0:
                swaps += 1
                continue
            misses += 1
            if ctypes.get_errno() != errno.ENOENT:
                continue
            try:
                if not os.path.lexists(b):
                    # the parent exists now (created by the copy): plant the symlink
                    os.symlink(t, b)
                    plants += 1
                elif not os.path.lexists(a):
                    # the copy has not created this name yet: be there first
                    os.symlink(t, a)
                    plants += 1
            except OSError:
                pass
        rounds += 1
        if rounds % 8 == 0:
            for p in dst:
                a, b, t = p
                # the copy published over our symlink (rename replaces it): plant again
                if os.path.lexists(a) and not os.path.islink(a) and not os.path.islink(b):
                    tmp = b + b".plant"
                    try:
                        os.symlink(t, tmp)
                        os.rename(tmp, b)
                        plants += 1
                    except OSError:
                        try:
                            os.unlink(tmp)
                        except OSError:
                            pass
    # leave the source as it was: every victim under its own name
    for a, b in src:
        if os.path.islink(a):
            ren(-100, a, -100, b, 2)
    print(json.dumps({"swaps": swaps, "misses": misses, "plants": plants,
                      "rounds": rounds}), flush=True)
""")


class Attacker:
    """The attacker process, swapping its pairs until the ``with`` block ends."""

    def __init__(self, src_pairs: Sequence[Tuple[bytes, bytes]],
                 dst_pairs: Sequence[Tuple[bytes, bytes, bytes]]) -> None:
        self.cfg = json.dumps({
            "src": [[os.fsdecode(a), os.fsdecode(b)] for a, b in src_pairs],
            "dst": [[os.fsdecode(a), os.fsdecode(b), os.fsdecode(t)] for a, b, t in dst_pairs],
        })
        self.proc: Optional[subprocess.Popen[str]] = None
        self.result: Dict[str, int] = {}

    def __enter__(self) -> Attacker:
        self.proc = subprocess.Popen([sys.executable, "-c", _ATTACKER, self.cfg],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.proc.kill()
            _, err = self.proc.communicate()
            raise RuntimeError(f"the attacker did not start: {line!r} {err!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        assert proc is not None
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RuntimeError("the attacker did not stop") from None
        if proc.returncode != 0:
            raise RuntimeError(f"the attacker failed ({proc.returncode}): {err}")
        self.result = json.loads(out.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------
# running a copy
# --------------------------------------------------------------------------------------
class CopyRun:
    """How one copy ended: exit code and messages."""

    def __init__(self, exit_code: int, messages: List[str], crash: str = "") -> None:
        self.exit_code = exit_code
        self.messages = messages
        self.crash = crash  # a traceback or internal error, if any

    def problems(self) -> List[str]:
        out: List[str] = []
        if self.crash:
            out.append(f"the copy crashed: {self.crash[-3000:]}")
        if self.exit_code not in ALLOWED_EXIT:
            out.append(f"exit code {self.exit_code} (allowed: {ALLOWED_EXIT}); messages: "
                       f"{self.messages[-20:]}")
        for m in self.messages:
            if "internal error" in m or "Traceback" in m:
                out.append(f"internal error reported: {m}")
        return out


def cli_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env.pop("PYURING_DEBUG", None)
    env.pop("PYURING_BACKEND", None)
    return env


def run_cli(args: Sequence[str | bytes], timeout: float = COPY_TIMEOUT) -> CopyRun:
    """``python -m pyuring.copy ARGS`` in a child process."""
    argv: List[str | bytes] = [sys.executable, "-m", "pyuring.copy", *args]
    try:
        p = subprocess.run(argv, env=cli_env(), stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return CopyRun(-1, [], f"hung: still running after {timeout:.0f} s: {args!r}")
    err = p.stderr.decode("utf-8", "replace")
    crash = err if "Traceback" in err else ""
    return CopyRun(p.returncode, err.splitlines(), crash)


def run_api(src: bytes, dst: bytes, flags: str, backend: str,
            timeout: float = COPY_TIMEOUT) -> CopyRun:
    """The in-process API with the options ``flags`` stands for (a thread, for a timeout)."""
    from pyuring.copy import Copier, Options

    opts = Options.archive(backend=backend, hard_links="H" in flags, xattrs="X" in flags,
                           acls="A" in flags, ignore_times="I" in flags)
    msgs: List[str] = []
    result: List[CopyRun] = []

    def body() -> None:
        import traceback

        try:
            stats = Copier(opts, msgs.append).run([src], dst)
            result.append(CopyRun(stats.exit_code, msgs))
        except BaseException:
            result.append(CopyRun(-1, msgs, traceback.format_exc()))

    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        return CopyRun(-1, msgs, f"hung: still running after {timeout:.0f} s")
    return result[0]


# --------------------------------------------------------------------------------------
# the world
# --------------------------------------------------------------------------------------
def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def tree_content(rel: str) -> bytes:
    return b"TREE %s\n" % rel.encode() * (1 + len(rel) % 7)


class RaceWorld:
    """src, outside and destinations under ``base``; see the module docstring."""

    def __init__(self, base: Path, *, dirs: int = 24, subdirs: int = 3, files: int = 40,
                 victims: int = 3) -> None:
        self.base = base
        self.src = base / "src"
        self.marker = b"MARK-" + os.urandom(12).hex().encode()
        self.outside = Outside(base / "outside", self.marker)
        self.src_pairs: List[Tuple[bytes, bytes]] = []
        #: (victim relative path, kind "dir" / "file") -- outcomes are tallied
        self.victims: List[Tuple[str, str]] = []
        #: relative (a, b, symlink target) in the destination
        self.dst_pairs: List[Tuple[str, str, bytes]] = []
        self.stable: List[str] = []  # top-level directories nothing attacks
        self.counter = 0
        #: untouched top-level directories compared per check (0: all), in rotation
        self.stable_per_check = 0
        self._build(dirs, subdirs, files, victims)
        self.base_listing = sorted(os.listdir(base))
        self.inotify: Optional[Inotify] = Inotify()
        for p in self.outside.paths:
            if os.path.isdir(p):
                self.inotify.watch(p)
        self.outcomes: Dict[str, Dict[str, int]] = {"dir": {}, "file": {}}
        self.swaps = 0
        self.plants = 0
        self.partial = 0  # copies that ended with 23/24 (raced entries reported)

    # -- building ------------------------------------------------------------------------
    def _build(self, ndirs: int, nsub: int, nfiles: int, nvictims: int) -> None:
        src, out = self.src, self.outside.path
        src.mkdir()
        uid_pool = [0, 1, 1000, 65534] if IS_ROOT else [os.geteuid()]
        n = 0
        for i in range(ndirs):
            top = f"d{i:02d}"
            self.stable.append(top)
            for j in range(nsub):
                d = src / top / f"s{j}"
                d.mkdir(parents=True)
                for k in range(nfiles):
                    rel = f"{top}/s{j}/f{k}"
                    mode = (0o644, 0o600, 0o755, 0o640, 0o4755, 0o2711)[n % 6]
                    _write(src / rel, tree_content(rel), mode)
                    if IS_ROOT and n % 5 == 0:
                        os.chown(src / rel, uid_pool[n % len(uid_pool)],
                                 uid_pool[(n // 3) % len(uid_pool)])
                        os.chmod(src / rel, mode)
                    n += 1
                os.link(d / "f0", d / "hardlink-to-f0")
                os.symlink("f1", d / "link-to-f1")
        # victims in the source: a directory, a file, a file swapped with a link to a file
        for place in ("", "nest/a/", "nest/b/c/"):
            if place:
                (src / place).mkdir(parents=True, exist_ok=True)
            for k in range(nvictims):
                up = "../" * (place.count("/") + 1)
                rel_out = f"{up}outside"
                self._victim_dir(place + f"vd{k}", str(out) if k % 2 else rel_out)
                self._victim_file(place + f"vf{k}", rel_out if k % 2 else str(out))
                self._victim_file(place + f"vg{k}", f"{rel_out}/f0" if k % 2 else
                                  str(out / "f0"))
        # entries whose copies are attacked in the destination
        for k in range(nvictims):
            d = src / f"dt{k}"
            d.mkdir()
            for name in ("f0", "f1", "data"):
                _write(d / name, tree_content(f"dt{k}/{name}"), 0o640)
            (d / "inner").mkdir()
            _write(d / "inner" / "f0", tree_content(f"dt{k}/inner/f0"))
            (d / "sub").mkdir()
            self.dst_pairs.append((f"dt{k}", f".dt{k}.swap", os.fsencode(out)))
            # nested pairs live in a directory nobody swaps: the attacker's own
            # path-based renames must never resolve through one of its symlinks
            nd = src / f"dn{k}"
            nd.mkdir()
            (nd / "inner").mkdir()
            _write(nd / "inner" / "f0", tree_content(f"dn{k}/inner/f0"))
            _write(nd / "f1", tree_content(f"dn{k}/f1"), 0o2755)
            self.dst_pairs.append((f"dn{k}/inner", f"dn{k}/.inner.swap", os.fsencode(out)))
            self.dst_pairs.append((f"dn{k}/f1", f"dn{k}/.f1.swap", os.fsencode(out / "f1")))
            _write(src / f"ft{k}", tree_content(f"ft{k}"), 0o600)
            self.dst_pairs.append((f"ft{k}", f".ft{k}.swap", os.fsencode(out / "f0")))
            _write(src / f"fd{k}", tree_content(f"fd{k}"), 0o4755)
            self.dst_pairs.append((f"fd{k}", f".fd{k}.swap", b"../outside"))
        # atimes after the ctimes: reading the source does not move them (relatime)
        future = time.time_ns() + 3600 * 10**9
        for dirpath, dirnames, filenames in os.walk(src):
            for name in filenames + dirnames:
                os.utime(os.path.join(dirpath, name), ns=(future, 1_600_000_000_123_456_789),
                         follow_symlinks=False)

    def change_metadata(self, i: int) -> None:
        """Change mode (and, as root, owner) -- not data -- of the files attacked in the
        destination and of some untouched ones: a plain re-run then fixes them in place
        (by fd, through an O_PATH open of the destination name)."""
        rels = [a for a, _b, _t in self.dst_pairs if not a.startswith("dt")]
        rels += [f"{top}/s0/f{k}" for top in self.stable[:4] for k in range(6)]
        uids = [0, 1, 1000, 65534]
        for n, rel in enumerate(rels):
            p = self.src / rel
            if not p.is_file() or p.is_symlink():
                continue
            if IS_ROOT:
                os.chown(p, uids[(i + n) % 4], uids[(i + 2 * n) % 4])
            os.chmod(p, (0o644, 0o4755, 0o600, 0o2750, 0o640)[(i + n) % 5])

    def _victim_dir(self, rel: str, target: str) -> None:
        d = self.src / rel
        d.mkdir()
        for name in ("f0", "f1", "data"):
            _write(d / name, tree_content(f"{rel}/{name}"), 0o600)
        (d / "inner").mkdir()
        _write(d / "inner" / "f0", tree_content(f"{rel}/inner/f0"))
        self._pair(rel, target, "dir")

    def _victim_file(self, rel: str, target: str) -> None:
        _write(self.src / rel, tree_content(rel), 0o640)
        self._pair(rel, target, "file")

    def _pair(self, rel: str, target: str, kind: str) -> None:
        a = self.src / rel
        b = a.parent / f".{a.name}.swap"
        os.symlink(target, b)
        self.src_pairs.append((os.fsencode(a), os.fsencode(b)))
        self.victims.append((rel, kind))

    def close(self) -> None:
        if self.inotify is not None:
            self.inotify.close()
            self.inotify = None

    # -- one race ------------------------------------------------------------------------
    def new_dst(self) -> Path:
        """A fresh destination, with the attacker's symlinks planted in it."""
        self.counter += 1
        dst = self.base / f"dst-{self.counter}"
        dst.mkdir()
        for a, b, target in self.dst_pairs:
            if "/" not in a:
                os.symlink(target, dst / b)
        return dst

    def race_mode(self, dst: Optional[Path], mode: str, i: int, flags: str, *, backend: str,
                  via: str) -> Tuple[Path, str, CopyRun, List[str]]:
        """One raced copy of a cycle: ``fresh`` into a new destination, ``meta`` after
        changing the source's metadata, ``again`` with -I over the last destination.

        Returns (destination, the flags used, how the copy ended, violations).
        """
        if mode == "fresh" or dst is None:
            if dst is not None:
                remove_tree(dst)
            dst = self.new_dst()
        elif mode == "meta":
            self.change_metadata(i)
        else:
            flags += "I"
        run, problems = self.race(dst, backend=backend, via=via, flags=flags)
        return dst, flags, run, problems

    def race(self, dst: Path, *, backend: str, via: str, flags: str) -> Tuple[CopyRun,
                                                                               List[str]]:
        """Copy src/ into dst under attack; (how the copy ended, violations)."""
        assert self.inotify is not None
        fresh = not any(True for n in os.listdir(dst) if not n.startswith("."))
        self.inotify.events()  # drop what our own preparation caused
        dst_pairs = [(os.fsencode(dst / a), os.fsencode(dst / b), t)
                     for a, b, t in self.dst_pairs]
        src_arg = os.fsencode(self.src) + b"/"
        with Attacker(self.src_pairs, dst_pairs) as att:
            if via == "cli":
                run = run_cli([f"-{flags}", "--backend", backend, src_arg, os.fsencode(dst)])
            else:
                run = run_api(src_arg, os.fsencode(dst), flags, backend)
        events = self.inotify.events()
        self.swaps += att.result.get("swaps", 0)
        self.plants += att.result.get("plants", 0)
        if run.exit_code in (23, 24):
            self.partial += 1
        problems = run.problems()
        problems += self.check(dst, flags)
        problems += [f"inotify event outside: {e}" for e in describe(events)]
        if fresh:
            self._tally(dst)
        self.inotify.events()  # our own checks read the outside (O_NOATIME)
        return run, problems

    def _tally(self, dst: Path) -> None:
        for rel, kind in self.victims:
            p = dst / rel
            if p.is_symlink():
                what = "symlink"
            elif p.is_dir():
                what = "dir"
            elif p.is_file():
                what = "file"
            else:
                what = "absent"
            counts = self.outcomes[kind]
            counts[what] = counts.get(what, 0) + 1

    # -- checks --------------------------------------------------------------------------
    def check(self, dst: Path, flags: str) -> List[str]:
        problems = self.outside.differences()
        listing = sorted(os.listdir(self.base))
        extra = set(listing) - set(self.base_listing) - {p.name for p in
                                                          self.base.glob("dst-*")}
        if extra or set(self.base_listing) - set(listing):
            problems.append(f"the base directory changed: {self.base_listing} -> {listing}")
        problems += scan_destination(dst, self.marker)
        for a, b in self.src_pairs:
            if os.path.islink(a) or not os.path.islink(b):
                problems.append(f"the source victim {os.fsdecode(a)} was not restored")
        n = self.stable_per_check or len(self.stable)
        first = (self.counter * n) % len(self.stable)
        for top in (self.stable + self.stable)[first:first + n]:
            diffs = diff_trees(self.src / top, dst / top, atime=False, hardlinks="H" in flags)
            problems += [f"untouched part copied wrong: {top}: {d}" for d in diffs[:5]]
        return problems

    def outcome_summary(self) -> str:
        parts = []
        for kind, counts in self.outcomes.items():
            seen = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            parts.append(f"{kind} victims copied as: {seen or 'nothing yet'}")
        return "; ".join(parts)


def scan_destination(dst: Path, marker: bytes) -> List[str]:
    """Violations: outside bytes, xattrs, times or owner anywhere below ``dst``."""
    problems: List[str] = []
    root = os.fsencode(dst)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            show = os.fsdecode(p)
            if name == b"canary-only-outside":
                problems.append(f"an outside-only name appeared in the destination: {show}")
            if st.st_mtime_ns in (CANARY_MTIME_NS, CANARY_ATIME_NS) or \
                    st.st_atime_ns == CANARY_ATIME_NS:
                problems.append(f"the canary's times appeared in the destination: {show}")
            if IS_ROOT and (st.st_uid, st.st_gid) == CANARY_OWNER:
                problems.append(f"the canary's owner appeared in the destination: {show}")
            for xname, value in _xattrs(p):
                if marker in value:
                    problems.append(f"the canary's xattr {xname} appeared in the "
                                    f"destination: {show}")
            if stat.S_ISREG(st.st_mode):
                data = _read_noatime(p)
                if marker in data:
                    problems.append(f"outside content in the destination: {show}")
    return problems


def remove_tree(path: Path) -> None:
    """rm -rf that never follows a symlink (and copes with 0o000 directories)."""
    if not os.path.lexists(path):
        return
    if not IS_ROOT:
        for dirpath, dirnames, _ in os.walk(path):
            for d in dirnames:
                p = os.path.join(dirpath, d)
                if not os.path.islink(p):
                    os.chmod(p, 0o700)
    shutil.rmtree(path)


def observed_both_ways(world: RaceWorld) -> Set[str]:
    """Kinds of victim for which the copy met both the real entry and the symlink."""
    out = set()
    for kind, counts in world.outcomes.items():
        real = "dir" if kind == "dir" else "file"
        if counts.get(real, 0) and counts.get("symlink", 0):
            out.add(kind)
    return out
