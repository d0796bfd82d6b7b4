"""Faults: io_uring blocked by seccomp, SIGINT/SIGTERM/SIGKILL mid-copy, a full
destination, a tiny fd limit, and memory bounded on 100,000 files.

Interruptions land mid-copy without any timing: the child runs with -v and a
stdout pipe shrunk to one page; the test reads a few itemized lines and then
stops reading, so the child soon blocks inside the copy writing its next line.
The signal arrives while it is blocked there (or about to be), and the test then
drains the pipe so that the child can react.
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from .conftest import IS_ROOT, URING, requires_root
from .test_copy_support import (
    BACKENDS,
    HANG_GUARD,
    RACE_ACTIONS,
    SMALL_COPY_GUARD,
    SMALL_FILE_MAX,
    Result,
    archive_all,
    assert_clean_failure,
    build_mixed_tree,
    check_backend,
    cli_env,
    copy_api,
    fix_times,
    install_statx_hook,
    loop_fs,
    mounted,
    regular_files,
    run_cli,
    scratch_fs,
    seccomp_available,
    seccomp_prelude,
    tmp_names,
    write,
)
from .treecompare import assert_same_tree, diff_trees, file_digest

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)

needs_seccomp = pytest.mark.skipif(not seccomp_available(),
                                   reason="the seccomp test filter is for x86-64/aarch64 Linux")


# --------------------------------------------------------------------------------------
# io_uring blocked
# --------------------------------------------------------------------------------------
@needs_seccomp
@pytest.mark.parametrize("err", [1, 38], ids=["EPERM", "ENOSYS"])
def test_auto_falls_back_when_io_uring_is_blocked(tmp_path: Path, err: int) -> None:
    src = build_mixed_tree(tmp_path / "src", big=1 << 20)
    r = run_cli(["-aHX", "-v", "--json", f"{src}/", str(tmp_path / "fallback")],
                prelude=seccomp_prelude(err))
    assert "Traceback" not in r.stderr, r
    assert r.returncode == 0, r
    st = r.json()
    assert st["backend"] == "sync"
    assert st["sqes"] == 0
    assert "io_uring" in st["backend_note"]
    notes = [ln for ln in r.err_lines if "synchronous backend" in ln]
    assert len(notes) == 1, r  # said once, under -v
    # (with --json the -v lines go to stderr too)
    assert [ln for ln in r.err_lines if ln.startswith("pyuring-copy:")] == notes, r
    assert_same_tree(src, tmp_path / "fallback")
    if URING:
        ring = run_cli(["-aHX", "--backend", "uring", f"{src}/", str(tmp_path / "ring")])
        assert ring.returncode == 0, ring
        assert diff_trees(tmp_path / "ring", tmp_path / "fallback") == []
    # without -v the fallback is silent
    r = run_cli(["-aHX", f"{src}/", str(tmp_path / "quiet")], prelude=seccomp_prelude(err))
    assert r.returncode == 0 and r.stderr == "", r


_OLD_KERNEL = """
import sys
import pyuring._abi as A, pyuring.probe
p = sys.modules["pyuring.probe"]  # (pyuring.probe, the attribute, is the function)
real = p.probe_ring_fd
def old(fd):  # a 5.10 kernel: a ring, but none of the *at operations of 5.11/5.15
    drop = {A.IORING_OP_MKDIRAT, A.IORING_OP_SYMLINKAT, A.IORING_OP_LINKAT,
            A.IORING_OP_RENAMEAT, A.IORING_OP_UNLINKAT}
    return p.Probe(set(real(fd)) - drop)
p.probe_ring_fd = old
"""


@pytest.mark.skipif(not URING, reason="io_uring is unavailable here")
def test_a_ring_without_the_operations_a_copy_needs(tmp_path: Path) -> None:
    """A kernel that sets up a ring but lacks MKDIRAT and friends (5.1-5.14):
    auto takes the synchronous backend before any work, and says why under
    -v; --backend uring is refused with one line.  (Before, auto chose the
    ring and every directory and file failed.)"""
    src = build_mixed_tree(tmp_path / "src", big=1 << 20)
    r = run_cli(["-aHX", "-v", "--json", f"{src}/", str(tmp_path / "auto")],
                prelude=_OLD_KERNEL)
    assert "Traceback" not in r.stderr, r
    assert r.returncode == 0, r
    st = r.json()
    assert st["backend"] == "sync" and st["sqes"] == 0
    assert "MKDIRAT" in st["backend_note"] and "LINKAT" in st["backend_note"]
    assert_same_tree(src, tmp_path / "auto")
    r = run_cli(["-a", "--backend", "uring", f"{src}/", str(tmp_path / "uring")],
                prelude=_OLD_KERNEL)
    assert_clean_failure(r, 1, "MKDIRAT")
    assert not (tmp_path / "uring").exists()


@needs_seccomp
@pytest.mark.parametrize("err", [1, 38], ids=["EPERM", "ENOSYS"])
def test_backend_uring_fails_cleanly_when_blocked(tmp_path: Path, err: int) -> None:
    src = build_mixed_tree(tmp_path / "src", big=1 << 20)
    r = run_cli(["-a", "--backend", "uring", f"{src}/", str(tmp_path / "dst")],
                prelude=seccomp_prelude(err))
    assert_clean_failure(r, 1, "io_uring")
    assert not (tmp_path / "dst").exists()


@needs_seccomp
@pytest.mark.parametrize("where", ["seccomp", "not-linux"])
def test_unavailable_io_uring_is_not_an_internal_error(tmp_path: Path, where: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write(src / "f", b"f")
    prelude = seccomp_prelude(1) if where == "seccomp" else NOT_LINUX_PRELUDE
    r = run_cli(["-a", "--backend", "uring", f"{src}/", str(tmp_path / "dst")],
                prelude=prelude)
    assert r.returncode == 1, r
    assert "internal error" not in r.stderr and "PYURING_DEBUG" not in r.stderr, r


NOT_LINUX_PRELUDE = "import sys\nsys.platform = 'darwin'\n"


def test_import_works_on_another_platform_and_fails_only_at_use(tmp_path: Path) -> None:
    import subprocess

    code = NOT_LINUX_PRELUDE + (
        "import pyuring, pyuring.copy\n"
        "from pyuring.copy import copytree, Options, CopyStats\n"
        "print('imported')\n")
    p = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True,
                       text=True, timeout=HANG_GUARD)
    assert p.returncode == 0 and p.stdout == "imported\n", p.stderr
    src = tmp_path / "src"
    src.mkdir()
    write(src / "f", b"f")
    r = run_cli(["-a", "--backend", "uring", f"{src}/", str(tmp_path / "dst")],
                prelude=NOT_LINUX_PRELUDE)
    assert_clean_failure(r, 1, "Linux")


def test_copy_works_without_ctypes_util(tmp_path: Path, backend: str) -> None:
    src = build_mixed_tree(tmp_path / "src", big=1 << 20)
    r = run_cli(["-aHX", "--json", "--backend", backend, f"{src}/", str(tmp_path / "dst")],
                prelude="import sys\nsys.modules['ctypes.util'] = None\n")
    assert r.returncode == 0, r
    assert r.json()["backend"] == backend
    assert_same_tree(src, tmp_path / "dst")


# --------------------------------------------------------------------------------------
# interruptions
# --------------------------------------------------------------------------------------
N_SMALL = 3000
BIG = 200 << 20


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 small files with long names (so -v lines fill a pipe) and a 200 MiB file."""
    root = tmp_path_factory.mktemp("interrupt") / "src"
    rng = random.Random(20)
    for d in range(30):
        sub = root / f"directory-number-{d:02d}-with-a-long-name"
        sub.mkdir(parents=True)
        for i in range(N_SMALL // 30):
            write(sub / f"file-{i:04d}-padded-to-make-itemized-lines-long",
                  rng.randbytes(rng.choice((0, 1, 100, 4096, 9000))))
        os.symlink(f"file-{d:04d}-padded-to-make-itemized-lines-long", sub / "a-link")
    with open(root / "huge", "wb") as f:
        block = rng.randbytes(1 << 20)
        for i in range(BIG >> 20):
            f.write(block[i:] + block[:i])
    fix_times(root)
    return root


class Child:
    """The CLI with -v, its stdout a one-page pipe read line by line by the test."""

    def __init__(self, args: List[str], env: Optional[Dict[str, str]] = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "pyuring.copy", *args],
                                     env=env or cli_env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.proc.stdout is not None
        try:
            fcntl.fcntl(self.proc.stdout.fileno(), F_SETPIPE_SZ, 4096)
        except OSError:
            pass  # a 64 KiB pipe fills too, a little later
        self.lines = 0

    def read_lines(self, n: int) -> None:
        assert self.proc.stdout is not None
        while self.lines < n:
            line = self.proc.stdout.readline()
            assert line, f"the copy ended before {n} itemized lines: {self.finish()}"
            self.lines += 1

    def finish(self) -> Result:
        try:
            out, err = self.proc.communicate(timeout=HANG_GUARD)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"the copy did not end after the signal: {err!r}") from None
        return Result(self.proc.returncode, out, err)


def _assert_only_whole_files(src: Path, dst: Path) -> int:
    """Every regular file under a final name equals its source; returns how many."""
    n = 0
    for rel, full in regular_files(dst):
        if b".pyuring-tmp-" in rel:
            continue
        s = os.path.join(os.fsencode(src), rel)
        sdir, sname = os.path.split(s)
        ddir, dname = os.path.split(full)
        sfd = os.open(sdir or b".", os.O_RDONLY | os.O_DIRECTORY)
        dfd = os.open(ddir or b".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert file_digest(sfd, sname) == file_digest(dfd, dname), \
                f"{os.fsdecode(rel)} is under its final name but differs from its source"
        finally:
            os.close(sfd)
            os.close(dfd)
        n += 1
    for dirpath, dirs, files in os.walk(dst):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            if os.path.islink(p) and ".pyuring-tmp-" not in name:
                link_rel = os.path.relpath(p, dst)
                assert os.readlink(p) == os.readlink(src / link_rel), link_rel
    return n


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_cleanly_and_rerun_completes(tmp_path: Path, big_tree: Path,
                                                  backend: str, sig: int) -> None:
    dst = tmp_path / "dst"
    child = Child(["-aH", "-v", "--backend", backend, f"{big_tree}/", str(dst)])
    child.read_lines(40)
    # the child is now copying, and blocks writing its itemized lines: interrupt it
    child.proc.send_signal(sig)
    r = child.finish()
    assert "Traceback" not in r.stderr, r
    assert r.returncode == 20, r
    assert "interrupted" in r.stderr
    assert tmp_names(dst) == []
    copied = _assert_only_whole_files(big_tree, dst)
    assert copied < N_SMALL, "the signal did not interrupt the copy"
    r2 = run_cli(["-aH", "--json", "--backend", backend, f"{big_tree}/", str(dst)])
    assert r2.returncode == 0, r2
    assert r2.json()["transferred"] >= N_SMALL + 1 - copied
    assert_same_tree(big_tree, dst)


@pytest.mark.parametrize("after_lines", [1, 150, 1200])
def test_sigkill_leaves_only_whole_files(tmp_path: Path, big_tree: Path, backend: str,
                                         after_lines: int) -> None:
    dst = tmp_path / "dst"
    child = Child(["-aH", "-v", "--backend", backend, f"{big_tree}/", str(dst)])
    child.read_lines(after_lines)
    child.proc.kill()
    r = child.finish()
    assert r.returncode == -signal.SIGKILL
    _assert_only_whole_files(big_tree, dst)
    # leftovers are recognisable by name, and the next run removes them
    for t in tmp_names(dst):
        assert b".pyuring-tmp-" in os.path.basename(t)
    r2 = run_cli(["-aH", "--backend", backend, f"{big_tree}/", str(dst)])
    assert r2.returncode == 0, r2
    assert tmp_names(dst) == []
    assert_same_tree(big_tree, dst)


# --------------------------------------------------------------------------------------
# a full destination
# --------------------------------------------------------------------------------------
@requires_root
def test_enospc_stops_with_exit_11_and_no_partial_file(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(11)
    write(src / "ten-mib", rng.randbytes(10 << 20))
    for i in range(10):
        write(src / f"mib-{i}", rng.randbytes(1 << 20))
    for i in range(50):
        write(src / f"small-{i:02d}", rng.randbytes(10_000))
    fix_times(src)
    with mounted("tmpfs", tmp_path / "full", "size=2m") as full:
        r = run_cli(["-a", "--backend", backend, f"{src}/", str(full / "dst")],
                    timeout=SMALL_COPY_GUARD * 3)
        assert "Traceback" not in r.stderr, r
        assert r.returncode == 11, r
        nospace = [ln for ln in r.err_lines if "No space left on device" in ln]
        assert nospace, r
        assert 1 <= len(r.err_lines) <= 5, f"reported per file in flight: {r.err_lines}"
        # (what holds: not "complete" -- a file in place may lack its xattrs)
        assert any("no file in place is partly written, a re-run completes the copy" in ln
                   for ln in r.err_lines), r
        _assert_only_whole_files(src, full / "dst")
        assert tmp_names(full / "dst") == []


def test_a_stop_ends_the_hard_link_groups_waiting_for_a_copy(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """-H into an existing destination: groups whose other names are outside
    the tree wait (filecopy.start_file) until nothing else is in flight.  A
    stop meanwhile ends them unsent: exit 20, no message, no temporary name,
    and the directories get their attributes; a re-run sends them."""
    from pyuring.copy import Copier, api
    from pyuring.executor import make_executor

    src, outside, dst = tmp_path / "src", tmp_path / "outside", tmp_path / "dst"
    (src / "l").mkdir(parents=True)
    outside.mkdir()
    fix_times(src)
    assert copy_api(src, dst, backend=backend, opts=archive_all())[0].exit_code == 0
    for i in range(10):
        write(src / "l" / f"lone{i}", b"lone %d" % i)
        os.link(src / "l" / f"lone{i}", outside / f"lone{i}")
    fix_times(src / "l")
    opts = archive_all()
    opts.backend = backend
    msgs: List[str] = []
    copier = Copier(opts, msgs.append)
    seen: List[bytes] = []

    def tenth(_p: bytes) -> None:
        seen.append(_p)
        if len(seen) == 10:
            copier.interrupt()

    monkeypatch.setattr(api, "make_executor", make_executor)  # (restored after)
    fired = install_statx_hook(api, os.fsencode(src / "l"),
                               {b"lone%d" % i: tenth for i in range(10)})
    stats = copier.run([os.fsencode(src) + b"/"], dst)
    assert len(fired) == 10 and stats.exit_code == 20 and msgs == [], (stats, msgs)
    assert stats.transferred == 0 and not list((dst / "l").iterdir())
    assert tmp_names(dst) == []
    assert os.lstat(dst / "l").st_mtime_ns == os.lstat(src / "l").st_mtime_ns
    assert copy_api(src, dst, backend=backend, opts=archive_all())[0].transferred == 10
    assert_same_tree(src, dst)


@requires_root
def test_a_full_disk_gives_the_directories_it_made_their_attributes(
        tmp_path: Path, backend: str) -> None:
    """A copy stopped by ENOSPC gives every directory it made the source's
    mode and times once the entries in flight have ended, as a SIGINT stop
    does (before, the unfinished ones kept 0700 and the time of the copy),
    without a line per directory; their xattrs wait for the re-run, which
    completes the copy."""
    src = tmp_path / "src"
    rng = random.Random(12)
    for d in range(4):
        sub = src / f"d{d}" / "sub"
        sub.mkdir(parents=True)
        for i in range(3):
            write(src / f"d{d}" / f"mib-{i}", rng.randbytes(1 << 20))
            write(sub / f"small-{i}", rng.randbytes(3000))
        os.setxattr(src / f"d{d}", "user.tag", b"dir %d" % d)
        os.chmod(sub, 0o750)
        os.chmod(src / f"d{d}", 0o705)
    fix_times(src)
    with mounted("tmpfs", tmp_path / "full", "size=3m") as full:
        dst = full / "dst"
        r = run_cli(["-aX", "--backend", backend, f"{src}/", str(dst)],
                    timeout=SMALL_COPY_GUARD * 3)
        assert r.returncode == 11 and "Traceback" not in r.stderr, r
        assert 1 <= len(r.err_lines) <= 5, r.err_lines
        made = [Path(p) for p, _d, _f in os.walk(dst)]
        assert len(made) >= 3, made
        for p in made:
            s = os.lstat(src / p.relative_to(dst))
            assert stat.S_IMODE(os.lstat(p).st_mode) == stat.S_IMODE(s.st_mode), p
            assert os.lstat(p).st_mtime_ns == s.st_mtime_ns, p
        _assert_only_whole_files(src, dst)
        assert tmp_names(dst) == []
        subprocess.run(["mount", "-o", "remount,size=64m", str(full)], check=True)
        r = run_cli(["-aX", "--backend", backend, f"{src}/", str(dst)])
        assert r.returncode == 0 and r.err_lines == [], r
        assert_same_tree(src, dst, xattrs=True)


# --------------------------------------------------------------------------------------
# a tiny fd limit
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def five_thousand(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("emfile") / "src"
    rng = random.Random(64)
    deep = root
    for level in range(12):  # a walk that keeps directories open
        deep = deep / f"level{level}"
        deep.mkdir(parents=True)
        for i in range(5):
            write(deep / f"f{i}", rng.randbytes(rng.choice((0, 10, 5000))))
    for d in range(50):
        sub = root / f"d{d:02d}"
        sub.mkdir()
        for i in range(99):
            write(sub / f"f{i:02d}", rng.randbytes(rng.choice((0, 1, 300, 3000))))
        os.symlink("f00", sub / "link")
    write(root / "large", rng.randbytes(3 << 20))
    fix_times(root)
    return root


def _limit_fds() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


@pytest.mark.parametrize("be", [*BACKENDS, "auto"])
def test_copy_completes_under_ulimit_n_64(tmp_path: Path, five_thousand: Path,
                                          be: str) -> None:
    """The default backend (auto) too: a low fd limit is no reason to fail."""
    backend = check_backend(be)
    r = run_cli(["-aH", "--json", "--backend", backend, f"{five_thousand}/",
                 str(tmp_path / "dst")], preexec_fn=_limit_fds)
    assert "Traceback" not in r.stderr, r
    assert r.returncode == 0, r
    assert r.stderr == ""
    assert r.json()["files"] >= 5000
    assert_same_tree(five_thousand, tmp_path / "dst")


# --------------------------------------------------------------------------------------
# bounded memory
# --------------------------------------------------------------------------------------
def _build_many(root: Path, dirs: int, per_dir: int) -> None:
    root.mkdir()
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
    for d in range(dirs):
        sub = root / f"d{d:03d}"
        sub.mkdir()
        dfd = os.open(sub, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for i in range(per_dir):
                fd = os.open(f"f{i:05d}", flags, 0o644, dir_fd=dfd)
                if i % 2:
                    os.write(fd, b"x" * (i % 64))
                os.close(fd)
        finally:
            os.close(dfd)


_MEASURE = """
import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _run_measured(args: List[str]) -> Tuple[int, int]:
    """Run the CLI; (exit code, its peak RSS in KiB).

    A small Python in between runs it and reads RUSAGE_CHILDREN: a child forked
    straight from pytest would inherit pytest's own high-water mark (Linux keeps
    ru_maxrss across the exec), and would report that instead.
    """
    p = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "pyuring.copy",
                        *args], env=cli_env(), stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=HANG_GUARD)
    assert p.returncode == 0, p.stderr
    rc, maxrss = p.stdout.split()
    return int(rc), int(maxrss)


@pytest.mark.slow
def test_100k_files_under_64_mib_peak_rss(tmp_path: Path, backend: str) -> None:
    with scratch_fs(tmp_path, "many") as fs:
        _build_many(fs / "src", 100, 1000)
        rc, maxrss_kib = _run_measured(["-a", "--backend", backend, f"{fs / 'src'}/",
                                        str(fs / "dst")])
        assert rc == 0
        assert maxrss_kib < 64 * 1024, f"peak RSS {maxrss_kib / 1024:.1f} MiB"
        assert sum(len(os.listdir(fs / "dst" / d)) for d in os.listdir(fs / "dst")) == 100_000
        names = sorted(os.listdir(fs / "dst" / "d042"))
        assert len(names) == 1000 and names[0] == "f00000"
        assert (fs / "dst" / "d042" / "f00999").read_bytes() == b"x" * (999 % 64)


def test_api_copy_after_interrupted_cli_copy(tmp_path: Path, backend: str) -> None:
    """The Python API resumes what an interrupted CLI run left, like the CLI does."""
    src = build_mixed_tree(tmp_path / "src", big=8 << 20)
    dst = tmp_path / "dst"
    child = Child(["-aHX", "-v", "--max-files-in-flight", "1", "--backend", backend,
                   f"{src}/", str(dst)])
    child.read_lines(3)
    child.proc.kill()
    child.finish()
    _assert_only_whole_files(src, dst)
    stats, msgs = copy_api(src, dst, backend=backend, opts=archive_all())
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, dst)


_FIFO_CHILD = """
import json, os, sys
import pyuring.copy.api as api
from pyuring.copy.cli import main
from tests.test_copy_support import RACE_ACTIONS, install_statx_hook
spec = json.loads(sys.argv[1])
install_statx_hook(api, os.fsencode(spec["src"]), {b"victim": RACE_ACTIONS["to_fifo"]})
sys.exit(main(["-a", "--backend", spec["backend"], spec["src"] + "/", spec["dst"]]))
"""


def _is_fifo(path: Path) -> bool:
    try:
        return stat.S_ISFIFO(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False  # between the unlink and the mkfifo of the swap


def test_sigint_while_an_open_waits_on_a_swapped_in_fifo(tmp_path: Path, backend: str) -> None:
    """A source file swapped for a FIFO between its statx and its open makes the open
    wait for a writer.  SIGINT must still end the copy: exit 20, within the engine's
    stop grace period, with every published file complete."""
    import json
    import time

    from pyuring.copy.engine import STOP_GRACE

    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"f{i}").write_bytes(os.urandom(100 + i))
    (src / "victim").write_bytes(b"soon a fifo")
    spec = {"src": str(src), "dst": str(tmp_path / "dst"), "backend": backend}
    p = subprocess.Popen([sys.executable, "-c", _FIFO_CHILD, json.dumps(spec)], env=cli_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not _is_fifo(src / "victim"):
            assert time.monotonic() < deadline, "the race never fired"
            assert p.poll() is None, p.communicate()
            time.sleep(0.02)
        time.sleep(0.5)  # let the open block
        assert p.poll() is None, "the copy ended although an open waits on a FIFO"
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        _out, err = p.communicate(timeout=STOP_GRACE + 10)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    text = err.decode("utf-8", "replace")
    assert p.returncode == 20, text
    assert "Traceback" not in text
    assert "Interrupted system call" not in text  # (the stop's own EINTR: no error)
    assert took < STOP_GRACE + 5
    for rel, full in regular_files(tmp_path / "dst"):
        assert Path(os.fsdecode(full)).read_bytes() == (src / os.fsdecode(rel)).read_bytes()
    assert not tmp_names(tmp_path / "dst")


def _interrupted_with_fifos(src: Path, dst: Path, victims: int,
                            monkeypatch: pytest.MonkeyPatch) -> Any:
    """Copy 20 files and ``victims`` files swapped for FIFOs right after their
    statx (io_uring, in a thread); Copier.interrupt() once the FIFOs wait.
    Whatever still waits afterwards gets a writer."""
    import threading
    import time
    from types import SimpleNamespace

    from pyuring.copy import Copier, Options, api
    from pyuring.copy.engine import STOP_GRACE
    from pyuring.executor import make_executor

    src.mkdir()
    for i in range(20):
        (src / f"f{i}").write_bytes(os.urandom(100 + i))
    names = [f"victim{i:02}" for i in range(victims)]
    for n in names:
        (src / n).write_bytes(b"soon a fifo")
    monkeypatch.setattr(api, "make_executor", make_executor)  # (restored after)
    install_statx_hook(api, os.fsencode(src),
                       {os.fsencode(n): RACE_ACTIONS["to_fifo"] for n in names})
    # (not -X: it sends the small files' opens to io-wq, where a FIFO's open
    # blocks a worker, and the later victims' STATX could wait behind it for
    # longer than the race's deadline -- 1 run in ~8 here; without it the open
    # succeeds at once and the READ waits in the ring)
    opts = Options.archive(hard_links=True)
    opts.backend = "uring"
    msgs: List[str] = []
    copier = Copier(opts, msgs.append)
    result: List[object] = []

    def copy() -> None:
        try:
            result.append(copier.run([os.fsencode(src) + b"/"], dst))
        except BaseException as exc:
            result.append(exc)

    worker = threading.Thread(target=copy, daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while not all(_is_fifo(src / n) for n in names):
            assert time.monotonic() < deadline, "the race never fired"
            time.sleep(0.02)
        time.sleep(0.5)  # let the opens block
        assert worker.is_alive(), "the copy ended although an open waits on a FIFO"
        t0 = time.monotonic()
        copier.interrupt()
        worker.join(STOP_GRACE + 10)
        took = time.monotonic() - t0
        alive = worker.is_alive()
    finally:
        if worker.is_alive():  # free the opens (a writer arrives), then the thread
            for n in names:
                try:
                    os.close(os.open(src / n, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:
                    pass  # (ENXIO: nobody waits on this one)
            worker.join(10)
    return SimpleNamespace(alive=alive, took=took, result=result, msgs=msgs)


@pytest.mark.parametrize("how, victims", [("sync_msg_ring", 1), ("throwaway_ring", 1),
                                          ("sync_msg_ring", 24)])
def test_interrupt_from_another_thread_while_an_open_waits_on_a_fifo(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, victims: int) -> None:
    """Copier.interrupt() from another thread is no signal: the ring's wait for
    the FIFO's open must be ended by a completion posted to the ring (MSG_RING
    without a ring of one's own, or from a throwaway ring on kernels before
    6.13).  The copy ends as stopped (exit 20) within the stop grace period --
    also with 24 opens blocked, when the wait in the kernel asks for several
    completions."""
    from pyuring import register
    from pyuring.copy import CopyStats
    from pyuring.copy.engine import STOP_GRACE
    from pyuring.errors import OpcodeUnsupported

    check_backend("uring")
    if how == "throwaway_ring":
        def unsupported(*_a: object) -> None:
            raise OpcodeUnsupported(errno.EINVAL, "pretend: before Linux 6.13")

        monkeypatch.setattr(register, "sync_msg_ring", unsupported)
    src = tmp_path / "src"
    run = _interrupted_with_fifos(src, tmp_path / "dst", victims, monkeypatch)
    alive, took, result, msgs = run.alive, run.took, run.result, run.msgs
    assert not alive, "interrupt() from another thread did not end the copy"
    assert took < STOP_GRACE + 5
    stats = result[0]
    assert isinstance(stats, CopyStats), stats
    assert stats.interrupted and stats.exit_code == 20, msgs
    for rel, full in regular_files(tmp_path / "dst"):
        assert Path(os.fsdecode(full)).read_bytes() == (src / os.fsdecode(rel)).read_bytes()
    assert not tmp_names(tmp_path / "dst")


# --------------------------------------------------------------------------------------
# a destination open that fails while the source side is still in flight
# --------------------------------------------------------------------------------------
def _dst_fails_first(monkeypatch: pytest.MonkeyPatch, victim: bytes,
                     reads: List[int]) -> None:
    """Sync backend: hold back the source open of ``victim`` until its O_TMPFILE
    open has been issued -- and fail that one (EBADF) -- so that the destination's
    failure is delivered first, as io-wq may deliver it.  Every READ's offset
    into the buffer pool goes to ``reads``."""
    import pyuring.copy.api as api
    from pyuring.executor import make_executor

    def make(*a: object, **kw: object) -> object:
        ex = make_executor(*a, **kw)  # type: ignore[arg-type]
        real_open, real_read = ex.openat2, ex.read
        held: List[Tuple[object, ...]] = []
        done: List[bool] = []

        def openat2(cid: int, idx: int, dfd: int, name: bytes, oflags: int,
                    *rest: object, **k: object) -> None:
            if name == victim and not done:
                held.append((cid, idx, dfd, name, oflags, *rest))
                done.append(True)
                return
            if oflags & os.O_TMPFILE == os.O_TMPFILE and held:
                real_open(cid, idx, -1, name, oflags, *rest, **k)  # type: ignore[arg-type]
                real_open(*held.pop(), **k)  # type: ignore[arg-type]
                return
            real_open(cid, idx, dfd, name, oflags, *rest, **k)  # type: ignore[arg-type]

        def read(cid: int, idx: int, fd: int, buf: object, boff: int,
                 *rest: object, **k: object) -> None:
            reads.append(boff)
            real_read(cid, idx, fd, buf, boff, *rest, **k)  # type: ignore[arg-type]

        ex.openat2, ex.read = openat2, read  # type: ignore[method-assign]
        return ex

    monkeypatch.setattr(api, "make_executor", make)


@pytest.mark.parametrize("size, xattrs", [(100, True), (SMALL_FILE_MAX * 3, False)],
                         ids=["small-X", "large"])
def test_a_failed_destination_open_waits_for_the_source_side(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, xattrs: bool) -> None:
    """The job ends once both halves are in: the source's fd is closed, and its
    slot in the buffer pool is not given away while a READ into it may come."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "victim", os.urandom(size))
    for i in range(4):
        write(src / f"other{i}", os.urandom(50 + i))
    fix_times(src)
    reads: List[int] = []
    _dst_fails_first(monkeypatch, b"victim", reads)
    before = sorted(os.listdir("/proc/self/fd"))
    stats, msgs = copy_api(src, tmp_path / "dst", backend="sync", xattrs=xattrs)
    assert sorted(os.listdir("/proc/self/fd")) == before
    assert min(reads, default=0) >= 0
    assert stats.exit_code == 23 and stats.errors == 1, msgs
    assert len(msgs) == 1 and msgs[0].startswith('cannot create "victim"'), msgs
    assert sorted(os.listdir(tmp_path / "dst")) == [f"other{i}" for i in range(4)]


def _wrap_opens(monkeypatch: pytest.MonkeyPatch,
                change: Callable[[int, bytes, int], Tuple[int, int]]) -> None:
    """Every executor's ``openat2(cid, idx, dfd, name, oflags, ...)`` goes through
    ``change(dfd, name, oflags) -> (dfd, oflags)`` first."""
    import pyuring.copy.api as api
    from pyuring.executor import make_executor

    def make(*a: object, **kw: object) -> object:
        ex = make_executor(*a, **kw)  # type: ignore[arg-type]
        real = ex.openat2

        def openat2(cid: int, idx: int, dfd: int, name: bytes, oflags: int,
                    *rest: object, **k: object) -> None:
            dfd, oflags = change(dfd, name, oflags)
            real(cid, idx, dfd, name, oflags, *rest, **k)  # type: ignore[arg-type]

        ex.openat2 = openat2  # type: ignore[method-assign]
        return ex

    monkeypatch.setattr(api, "make_executor", make)


def _is_tmpfile(oflags: int) -> bool:
    return oflags & os.O_TMPFILE == os.O_TMPFILE


def test_no_o_tmpfile_on_the_destination(tmp_path: Path, backend: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Every O_TMPFILE open fails with EINVAL (as on a file system without it):
    all of them -- also those already in flight when the first failure is seen --
    are retried under temporary names, and every file arrives."""
    check_backend(backend)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        write(src / f"f{i:02}", os.urandom(i * 37))
    fix_times(src)
    _wrap_opens(monkeypatch, lambda dfd, name, fl: (
        dfd, fl & ~os.O_WRONLY if _is_tmpfile(fl) else fl))  # (EINVAL without O_WRONLY)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True)
    assert stats.exit_code == 0 and msgs == [], msgs
    assert_same_tree(src, tmp_path / "dst")
    assert not tmp_names(tmp_path / "dst")


def test_a_failed_first_name_of_a_hard_link_group(tmp_path: Path, backend: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The first name of an inode fails to be created: the names waiting to link
    to it are copied on their own (linked to each other), not lost; their
    directory is finished (mode, times) and no fd is left open."""
    check_backend(backend)
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    write(src / "d" / "a", os.urandom(SMALL_FILE_MAX * 2))  # large: its own opens
    os.link(src / "d" / "a", src / "d" / "b")
    os.link(src / "d" / "a", src / "d" / "c")
    write(src / "d" / "z", b"other")
    os.chmod(src / "d", 0o750)
    fix_times(src)
    failed: List[bool] = []

    def fail_first_create(dfd: int, name: bytes, fl: int) -> Tuple[int, int]:
        if _is_tmpfile(fl) and not failed:
            failed.append(True)
            return -1, fl  # EBADF
        return dfd, fl

    _wrap_opens(monkeypatch, fail_first_create)
    before = sorted(os.listdir("/proc/self/fd"))
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, hard_links=True)
    assert sorted(os.listdir("/proc/self/fd")) == before
    assert stats.exit_code == 23 and stats.errors == 1, msgs
    assert len(msgs) == 1 and msgs[0].startswith('cannot create "d/'), msgs
    dst = tmp_path / "dst" / "d"
    copied = sorted(os.listdir(dst))
    assert len(copied) == 3 and "z" in copied, copied  # two of a/b/c, and z
    inodes = {os.stat(dst / n).st_ino for n in copied if n != "z"}
    assert len(inodes) == 1  # the two survivors are one file again
    for n in copied:
        assert (dst / n).read_bytes() == (src / "d" / n).read_bytes()
    assert stat.S_IMODE(os.stat(dst).st_mode) == 0o750
    assert os.stat(dst).st_mtime_ns == os.stat(src / "d").st_mtime_ns


def _nofile_256_of_4096() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))


@requires_root  # (a hard limit of 4096 may be above an unprivileged one)
def test_hard_links_outside_the_tree_under_a_low_soft_fd_limit(tmp_path: Path) -> None:
    """-H: every file also has a name outside SRC (as in snapshots), so each group
    keeps its fd to the end of the copy.  The CLI raises the soft RLIMIT_NOFILE to
    the hard one: 600 such files under a soft limit of 256 all copy."""
    src, outside = tmp_path / "src", tmp_path / "outside"
    src.mkdir()
    outside.mkdir()
    for i in range(600):
        write(src / f"f{i:03}", b"x%d" % i)
        os.link(src / f"f{i:03}", outside / f"f{i:03}")
    fix_times(src)
    r = run_cli(["-aH", f"{src}/", str(tmp_path / "dst")], preexec_fn=_nofile_256_of_4096)
    assert r.returncode == 0, r
    assert len(os.listdir(tmp_path / "dst")) == 600


def _linked_groups(src: Path, outside: Path, n: int) -> None:
    """n files in a/, each also in z/ (walked after all of a/) and outside SRC."""
    (src / "a").mkdir(parents=True)
    (src / "z").mkdir()
    outside.mkdir()
    for i in range(n):
        write(src / "a" / f"f{i:03}", b"group %d" % i)
        os.link(src / "a" / f"f{i:03}", src / "z" / f"f{i:03}")
        os.link(src / "a" / f"f{i:03}", outside / f"f{i:03}")
    fix_times(src)


@pytest.mark.parametrize("handles", [True, False])
def test_hard_link_groups_past_the_fd_limit_let_go_their_fds(
        tmp_path: Path, backend: str, handles: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """-H through the API (which leaves the caller's limits alone) under a soft
    RLIMIT_NOFILE 100 above the fds in use: 300 groups that never complete (a
    name outside SRC) would hold 300 fds.  Past the budget the oldest is closed and its first copy
    found again (by file handle as root, else by name) when z/ comes: every pair is
    linked, no fd is left.  Without handles (``handles``: open_by_handle_at
    refused with EPERM, as for root in a user namespace) root goes by name too."""
    import resource

    from pyuring import _syscall

    if not handles:
        def refused(*_a: Any) -> int:
            raise PermissionError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(_syscall, "open_by_handle", refused)

    src = tmp_path / "src"
    _linked_groups(src, tmp_path / "outside", 300)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = sorted(os.listdir("/proc/self/fd"))
    # the caller holds fds of its own too (the copy must count them)
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(200)]
    # 100 fds to spare (whatever else this process holds), for 300 groups
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 100, hard))
    try:
        stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, hard_links=True)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for fd in held:
            os.close(fd)
    assert sorted(os.listdir("/proc/self/fd")) == before
    assert stats.exit_code == 0, msgs[:5]
    assert stats.hardlinks == 300
    calls = stats.direct_syscalls
    if IS_ROOT and handles:  # most found again by file handle, none by name
        assert calls.get("open_by_handle_at", 0) >= 200 and calls.get("openat2", 0) == 0
        assert calls["name_to_handle_at"] <= 300  # (once per group)
    else:  # ... by name: the directory, then the file
        assert calls.get("openat2", 0) >= 2 * 200
    dst = tmp_path / "dst"
    for i in range(300):
        a, z = os.stat(dst / "a" / f"f{i:03}"), os.stat(dst / "z" / f"f{i:03}")
        assert a.st_ino == z.st_ino and a.st_nlink == 2
    assert_same_tree(src, dst, hardlinks=False)  # (nlink: the outside names)


def _replace_a_let_go_first_copy(tmp_path: Path, backend: str,
                                 monkeypatch: pytest.MonkeyPatch,
                                 replace: Callable[[Path], None]) -> Tuple[Any, List[str], str]:
    """-H with fds let go past a budget of 4; when the second name of group 0
    comes, ``replace(first copy's path)`` has run.  (stats, msgs, the
    directory whose copy was replaced)."""
    from pyuring.copy import api, engine
    from pyuring.executor import make_executor

    src, dst = tmp_path / "src", tmp_path / "dst"
    # (one file in flight: the walk takes one of a/, z/ whole, then the other,
    # so the first one's f000 is done, and its fd let go, when the other's comes)
    _linked_groups(src, tmp_path / "outside", 200)
    monkeypatch.setattr(engine, "group_fd_budget", lambda: 4)
    monkeypatch.setattr(api, "make_executor", make_executor)  # (restored after)
    swapped: List[str] = []

    def swap(_path: bytes) -> None:
        for first in ("a", "z"):  # whichever was copied already
            if (dst / first / "f000").exists():
                replace(dst / first / "f000")
                swapped.append(first)
                return

    fired_a = install_statx_hook(api, os.fsencode(src / "a"), {b"f000": swap})
    fired_z = install_statx_hook(api, os.fsencode(src / "z"), {b"f000": swap})
    stats, msgs = copy_api(src, dst, backend=backend, hard_links=True, max_files_in_flight=1)
    assert fired_a == fired_z == [b"f000"] and len(swapped) == 1, (fired_a, fired_z, swapped)
    return stats, msgs, swapped[0]


def _a_new_first_copy(dst: Path, stats: Any, msgs: List[str], swapped: str) -> None:
    """The later name of group 0 is a copy of its own; the other groups are linked."""
    assert stats.exit_code == 0, msgs
    assert stats.hardlinks == 199
    later = "z" if swapped == "a" else "a"
    assert (dst / later / "f000").read_bytes() == b"group 0"
    assert (dst / swapped / "f000").read_bytes() == b"someone else's file"
    assert os.stat(dst / later / "f000").st_nlink == 1
    for i in range(1, 200):
        assert os.stat(dst / "a" / f"f{i:03}").st_ino == os.stat(dst / "z" / f"f{i:03}").st_ino


def test_a_let_go_first_copy_that_is_gone_makes_a_new_first(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first copy of a group whose fd was let go is replaced in the
    destination before the group's next name comes: that name is copied on its
    own (not linked to whatever has the old name now), the others are linked."""
    def replace(path: Path) -> None:
        os.unlink(path)
        write(path, b"someone else's file")

    stats, msgs, swapped = _replace_a_let_go_first_copy(tmp_path, backend, monkeypatch, replace)
    _a_new_first_copy(tmp_path / "dst", stats, msgs, swapped)


_KEPT_OPEN: List[int] = []


def _deleted_but_open(path: Path) -> None:
    _KEPT_OPEN.append(os.open(path, os.O_RDONLY))  # (its inode stays: nlink 0)
    os.unlink(path)


def _renamed(path: Path) -> None:
    os.rename(path, path.with_name("moved"))


def _retimed(path: Path) -> None:
    os.utime(path, ns=(0, 12345))


@pytest.mark.parametrize("change, linked", [(_deleted_but_open, False), (_renamed, True),
                                            (_retimed, False)])
def test_a_let_go_first_copy_changed_in_place(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch,
        change: Callable[[Path], None], linked: bool) -> None:
    """Found again (by handle as root), the first copy is linked to only while
    it is the file the copy made, as the copy left it: deleted (still open
    elsewhere: nlink 0) or given another mtime, the later name is a copy of
    its own; renamed within DST it is still ours (root finds it by handle and
    links to it; by name it is not found, and the name is copied on its own).
    No fd is left behind either way."""
    before = sorted(os.listdir("/proc/self/fd"))
    try:
        stats, msgs, swapped = _replace_a_let_go_first_copy(tmp_path, backend, monkeypatch,
                                                            change)
    finally:
        for fd in _KEPT_OPEN:
            os.close(fd)
        _KEPT_OPEN.clear()
    assert sorted(os.listdir("/proc/self/fd")) == before
    dst = tmp_path / "dst"
    later = dst / ("z" if swapped == "a" else "a") / "f000"
    linked = linked and IS_ROOT
    assert stats.exit_code == 0, msgs
    assert stats.hardlinks == (200 if linked else 199)
    assert later.read_bytes() == b"group 0"
    if linked:
        assert os.stat(later).st_ino == os.stat(dst / swapped / "moved").st_ino
    else:
        assert os.stat(later).st_nlink == 1


@requires_root
def test_a_first_copy_on_a_fuse_or_network_file_system_is_found_by_name(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """There a handle may stop opening once the inode leaves the kernel's cache
    (FUSE without export support: ESTALE), which would lose every later link:
    such first copies are found again by name, their file system asked once."""
    from pyuring.copy import engine

    monkeypatch.setattr(engine, "_on_remote_fs", lambda fd: True)
    stats, msgs, _ = _replace_a_let_go_first_copy(tmp_path, backend, monkeypatch,
                                                  lambda path: None)
    assert stats.exit_code == 0 and stats.hardlinks == 200, msgs
    calls = stats.direct_syscalls
    assert calls.get("name_to_handle_at", 0) == calls.get("open_by_handle_at", 0) == 0
    assert calls["fstatfs"] == 1 and calls["openat2"] >= 2


@requires_root
def test_a_let_go_first_copy_is_not_confused_with_a_file_given_its_inode_number(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone able to write in the destination directory replaces a let-go
    first copy by a file of theirs that gets the freed inode number (ext4 and
    soon hands a freed one out again) and the copy's mtime.  Found again by
    name, it would pass for the first copy and the group's later names would
    be linked to it; root finds first copies by file handle, whose generation
    tells the two apart."""
    reused: List[bool] = []

    def replace(path: Path) -> None:
        st = os.stat(path)
        os.unlink(path)
        tries = [path.with_name(f".theirs{i}") for i in range(32)]
        for p in tries:
            write(p, b"someone else's file")
            if os.stat(p).st_ino == st.st_ino:
                os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
                os.rename(p, path)
                break
        for p in tries:
            if p.exists():
                os.unlink(p)
        reused.append(path.exists())
        if not path.exists():
            write(path, b"someone else's file")

    stats, msgs, swapped = _replace_a_let_go_first_copy(tmp_path, backend, monkeypatch, replace)
    if not reused[0]:
        pytest.skip("the file system did not hand the inode number out again")
    _a_new_first_copy(tmp_path / "dst", stats, msgs, swapped)


def test_a_deep_tree_under_the_usual_soft_fd_limit(tmp_path: Path, backend: str) -> None:
    """Each directory on the way down holds two fds until its contents are done:
    600 levels need ~1,200, more than the common soft limit of 1,024.  The CLI
    raises the soft limit to the hard one (before, only with -H: exit 23 and
    every level past ~500 missing)."""
    import resource

    depth = 600
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 2 * depth + 512:
        pytest.skip(f"the hard RLIMIT_NOFILE here is {hard}")
    src = tmp_path / "src"
    leaf = src.joinpath(*["d"] * depth)
    leaf.mkdir(parents=True)
    write(leaf / "leaf", b"deep")

    def soft_1024() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

    r = run_cli(["-a", "--backend", backend, f"{src}/", str(tmp_path / "dst")],
                preexec_fn=soft_1024)
    assert r.returncode == 0, r.err_lines[:3]
    assert (tmp_path / "dst").joinpath(*["d"] * depth, "leaf").read_bytes() == b"deep"


@pytest.mark.skipif(not URING, reason="io_uring is unavailable here")
def test_only_the_copy_asks_for_its_operations(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The opcode check is the copy's (make_executor(required_ops=COPY_OPS)): a
    DirectoryFd on the same old kernel keeps its ring for what it can do."""
    from pyuring import DirectoryFd, OpcodeUnsupported
    from pyuring import _abi as A
    from pyuring.executor import COPY_OPS, make_executor

    probe_module = sys.modules["pyuring.probe"]
    real = probe_module.probe_ring_fd
    monkeypatch.setattr(probe_module, "probe_ring_fd",
                        lambda fd: probe_module.Probe(set(real(fd)) - {A.IORING_OP_MKDIRAT}))
    with pytest.raises(OpcodeUnsupported, match="MKDIRAT"):
        make_executor("uring", required_ops=COPY_OPS)
    write(tmp_path / "f", b"x")
    with DirectoryFd.open(tmp_path, backend="uring") as d:
        assert d.backend == "uring"
        assert d.statx(b"f").size == 1


def test_a_source_directory_removed_before_its_listing_has_vanished(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opened, then removed before getdents64 (which answers ENOENT): rsync's
    "directory has vanished" and exit 24.  Before, exit 23 and a message
    without the directory's name."""
    from pyuring.copy import engine

    src = tmp_path / "src"
    (src / "gone").mkdir(parents=True)
    write(src / "f", b"kept")
    real = engine.Engine.list_src

    def list_src(self: engine.Engine, d: engine.DirTask) -> Any:
        if d.rel == b"gone":
            os.rmdir(src / "gone")
        return real(self, d)

    monkeypatch.setattr(engine.Engine, "list_src", list_src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert (stats.exit_code, stats.vanished, stats.errors) == (24, 1, 0), msgs
    assert msgs == ['directory has vanished: "gone"']
    assert (tmp_path / "dst" / "f").read_bytes() == b"kept"


def test_a_destination_made_by_another_copy_meanwhile(tmp_path: Path, backend: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Two copies to one new DST at once: the one whose mkdir comes second goes
    on into the directory the other made (rsync does); before, exit 11."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    write(src / "d" / "f", b"data")
    fix_times(src)
    real_mkdir = os.mkdir
    made: List[Any] = []

    def other_copy_first(path: Any, mode: int = 0o777, **kw: Any) -> None:
        if kw or made:  # (the sync backend's mkdirat of the entries below)
            return real_mkdir(path, mode, **kw)
        real_mkdir(path, 0o755)  # (the other copy's)
        made.append(path)
        raise FileExistsError(errno.EEXIST, "File exists", path)

    monkeypatch.setattr(os, "mkdir", other_copy_first)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert made and msgs == [] and stats.exit_code == 0
    assert_same_tree(src, tmp_path / "dst")


def test_a_symlink_or_fifo_made_by_another_copy_meanwhile_is_replaced(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another copy into the same destination makes a name after this one's
    listing: a file is replaced atomically (as before); a symlink and a FIFO
    are now too (before: "cannot create symlink ...: File exists", exit 23,
    found by a trial of two copies at once)."""
    from pyuring.copy import api
    from pyuring.executor import make_executor

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    write(src / "f", b"data")
    os.symlink("f", src / "l")
    os.mkfifo(src / "p")
    fix_times(src)
    dst.mkdir()

    def other_copy(path: bytes) -> None:
        name = os.path.basename(path)
        if name == b"l":
            os.symlink("elsewhere", dst / "l")
        else:
            write(dst / os.fsdecode(name), b"the other copy's")

    monkeypatch.setattr(api, "make_executor", make_executor)  # (restored after)
    fired = install_statx_hook(api, os.fsencode(src), {b"l": other_copy, b"p": other_copy})
    stats, msgs = copy_api(src, dst, backend=backend)
    assert sorted(fired) == [b"l", b"p"] and msgs == [] and stats.exit_code == 0, msgs
    assert os.readlink(dst / "l") == "f"
    assert stat.S_ISFIFO(os.lstat(dst / "p").st_mode)
    assert tmp_names(dst) == []
    assert_same_tree(src, dst)


def test_a_hard_link_group_whose_first_copy_another_copy_replaced(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """-H, two copies at once: the other renames its copy of a group's first
    name over this one's before the later names are linked.  The LINKAT of
    the unlinked inode fails (ENOENT); the next name is now copied on its own
    and the rest linked to it, where before each said "cannot hard link ...:
    No such file or directory" (exit 23, found by a trial of two copies)."""
    from pyuring.copy import filecopy

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    write(src / "a", b"data")
    for n in "bcd":
        os.link(src / "a", src / n)
    fix_times(src)
    real = filecopy.link_to_group
    fired: List[str] = []

    def other_copy_first(eng: Any, job: Any, group: Any) -> None:
        if group.ready and not fired:
            first = os.fsdecode(group.home[1])  # (rel, name) of the held first copy
            st = os.lstat(src / first)
            write(tmp_path / "other", b"data")
            os.utime(tmp_path / "other", ns=(st.st_atime_ns, st.st_mtime_ns))
            os.rename(tmp_path / "other", dst / first)
            fired.append(first)
        real(eng, job, group)

    monkeypatch.setattr(filecopy, "link_to_group", other_copy_first)
    stats, msgs = copy_api(src, dst, backend=backend, hard_links=True)
    assert fired and msgs == [] and (stats.exit_code, stats.errors) == (0, 0), msgs
    rest = sorted(set("abcd") - set(fired))
    assert [(dst / n).read_bytes() for n in "abcd"] == [b"data"] * 4
    assert tmp_names(dst) == []
    # the names after the replacement share one inode again, a new one
    inodes = {os.lstat(dst / n).st_ino for n in rest}
    assert len(inodes) == 1 and os.lstat(dst / fired[0]).st_ino not in inodes
    assert os.lstat(dst / rest[0]).st_nlink == 3
    # and a re-run finds every name up to date (nothing sent, nothing refused)
    stats, msgs = copy_api(src, dst, backend=backend, hard_links=True)
    assert msgs == [] and stats.exit_code == 0 and stats.transferred == 0


def _without_o_tmpfile(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every copy of this test writes under temporary names, as on a
    destination without O_TMPFILE (as after the first EOPNOTSUPP)."""
    import pyuring.copy.engine as engine

    real_init = engine.Engine.__init__

    def no_tmpfile(self: engine.Engine, *a: Any, **k: Any) -> None:
        real_init(self, *a, **k)
        self.tmpfile_ok = False

    monkeypatch.setattr(engine.Engine, "__init__", no_tmpfile)


def test_a_stop_that_gives_up_removes_the_temporary_names_it_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a destination without O_TMPFILE each new file gets a temporary name
    as soon as its open is issued.  A stop that gives up on files whose source
    waits on a FIFO swapped in (past the grace period) used to leave those
    names behind; now it removes them."""
    import pyuring.copy.engine as engine
    from pyuring.copy import CopyStats

    check_backend("uring")
    monkeypatch.setattr(engine, "STOP_GRACE", 0.5)
    _without_o_tmpfile(monkeypatch)
    src = tmp_path / "src"
    run = _interrupted_with_fifos(src, tmp_path / "dst", 4, monkeypatch)
    alive, result, msgs = run.alive, run.result, run.msgs
    assert not alive
    stats = result[0]
    assert isinstance(stats, CopyStats) and stats.exit_code == 20, (result, msgs)
    assert tmp_names(tmp_path / "dst") == []
    for rel, full in regular_files(tmp_path / "dst"):
        assert Path(os.fsdecode(full)).read_bytes() == (src / os.fsdecode(rel)).read_bytes()


@requires_root
@pytest.mark.parametrize("when", ["mid-copy", "before a re-run that changes modes"])
def test_a_destination_remounted_read_only_stops_the_copy_with_one_message(
        tmp_path: Path, backend: str, when: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """ext4 with errors=remount-ro: after a file system error every change
    fails with EROFS -- creating files, and setting attributes.  Before, each
    failure to set attributes was listed (26 lines in the trial of 2026-12-05;
    here one per file of the re-run, exit 23) and the copy went on; now the
    first EROFS of either kind stops it, as a full disk does: exit 11, one
    line and the closing one."""
    from pyuring.copy import api
    from pyuring.executor import make_executor

    src = tmp_path / "src"
    for d in range(4):
        (src / f"d{d}").mkdir(parents=True)
        for i in range(60):
            write(src / f"d{d}" / f"f{i:03}", os.urandom(i * 37), 0o640)
    fix_times(src)
    with loop_fs(tmp_path, "ext4", "64M", ["-e", "remount-ro"]) as fs:
        dev = subprocess.run(["findmnt", "-no", "SOURCE", str(fs)], capture_output=True,
                             text=True).stdout.strip()
        trigger = Path("/sys/fs/ext4") / os.path.basename(dev) / "trigger_fs_error"
        if not trigger.exists():
            pytest.skip(f"no {trigger} on this kernel")

        def fs_error(_path: bytes = b"") -> None:
            trigger.write_text("1\n")

        if when == "mid-copy":
            monkeypatch.setattr(api, "make_executor", make_executor)  # (restored after)
            fired = install_statx_hook(api, os.fsencode(src / "d2"), {b"f030": fs_error})
        else:
            copy_api(src, fs / "dst", backend=backend)
            for p in src.rglob("f*"):
                p.chmod(0o600)
            fs_error()
            fired = [b"f030"]
        stats, msgs = copy_api(src, fs / "dst", backend=backend)
        assert fired == [b"f030"]
        assert stats.exit_code == 11, msgs
        assert len(msgs) <= 2, msgs
        assert msgs[-1].startswith("stopping: the destination is unusable (Read-only"), msgs
        for rel, full in regular_files(fs / "dst"):  # (whole files only)
            assert Path(os.fsdecode(full)).read_bytes() == (src / os.fsdecode(rel)).read_bytes()


@requires_root
def test_a_read_only_mount_below_the_destination_refuses_only_what_goes_there(
        tmp_path: Path, backend: str) -> None:
    """A read-only bind mount (or snapshot) inside a writable DST: the
    entries that go there fail one by one (exit 23), everything else is
    copied and its directories get their modes, as rsync.  Before, the first
    EROFS stopped the whole copy (exit 11) as if the destination had been
    remounted read-only -- on every run, so it never completed (found by a
    trial on other file systems)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    for d in "amz":
        (src / d).mkdir(parents=True)
        for i in range(40):
            write(src / d / f"f{i:02}", b"%d" % i)
    (src / "a").chmod(0o750)
    (src / "z").chmod(0o705)
    fix_times(src)
    (dst / "m").mkdir(parents=True)
    with mounted("bind", dst / "m", bind=dst / "m") as ro:
        r = subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], capture_output=True,
                           text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot make a bind mount read-only here: {r.stderr.strip()}")
        stats, msgs = copy_api(src, dst, backend=backend)
        assert stats.exit_code == 23, msgs
        assert not any(m.startswith("stopping") for m in msgs), msgs
        assert len(msgs) >= 40 and all("Read-only file system" in m and "\"m" in m
                                       for m in msgs), msgs
        for d in "az":
            assert sorted(os.listdir(dst / d)) == sorted(os.listdir(src / d))
            assert os.lstat(dst / d).st_mode == os.lstat(src / d).st_mode
            assert os.lstat(dst / d).st_mtime_ns == os.lstat(src / d).st_mtime_ns
        assert os.listdir(dst / "m") == []
    assert_same_tree(src / "a", dst / "a")
    assert_same_tree(src / "z", dst / "z")


def test_an_entry_the_destination_cannot_create_is_exit_23_not_11(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """exfat-fuse answers mknod of a FIFO with EIO.  rsync's exit 11 is for
    data it could not write; an entry it could not create is 23, as here
    now (before: 11, "error in file I/O", for a run whose only failure was a
    file type the destination lacks; found by a trial on exFAT)."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "f", b"data")
    os.mkfifo(src / "p")
    fix_times(src)

    def no_fifos(*_a: Any, **_kw: Any) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "mknod", no_fifos)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert msgs == ['cannot create "p": Input/output error (5)']
    assert (stats.exit_code, stats.errors, stats.io_errors) == (23, 1, 0)
    assert (tmp_path / "dst" / "f").read_bytes() == b"data"


def test_a_directory_made_by_another_copy_after_the_listing_is_gone_into(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A subdirectory that another copy (or, on a case-insensitive
    destination, the listing's "Photos" for "photos") makes between this
    copy's listing and its MKDIRAT: EEXIST.  It is gone into and filled, and
    gets the source's mode, as rsync and cp do; before, "cannot mkdir
    directory ...: File exists" (exit 23) and its contents were never copied
    (found by a trial on exFAT)."""
    from pyuring.copy import api
    from pyuring.executor import make_executor

    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d" / "sub").mkdir(parents=True)
    write(src / "d" / "f", b"data")
    write(src / "d" / "sub" / "g", b"more")
    (src / "d").chmod(0o750)
    fix_times(src)
    dst.mkdir()

    def other_copy(_path: bytes) -> None:
        (dst / "d").mkdir(0o777)
        write(dst / "d" / "theirs", b"kept")

    monkeypatch.setattr(api, "make_executor", make_executor)  # (restored after)
    fired = install_statx_hook(api, os.fsencode(src), {b"d": other_copy})
    lines: List[str] = []
    stats, msgs = copy_api(src, dst, backend=backend, itemized=lines)
    assert fired == [b"d"] and msgs == [] and stats.exit_code == 0, msgs
    assert [line for line in lines if line.endswith(" d/")] == ["cd+++++++++ d/"], lines
    assert (dst / "d" / "theirs").read_bytes() == b"kept"
    for a in ("st_mode", "st_mtime_ns"):
        assert getattr(os.lstat(dst / "d"), a) == getattr(os.lstat(src / "d"), a), a
    assert (dst / "d" / "f").read_bytes() == b"data"
    assert_same_tree(src / "d" / "sub", dst / "d" / "sub")


def test_a_directory_made_between_unlink_and_mkdir_gets_the_sources_attributes(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file was in the way of a directory (UNLINK, then MKDIRAT), and a
    directory appeared between the two (another copy).  The copy goes into
    it -- judged by its own fstat, not by the statx of the file that was
    removed: with that, a directory whose mode and times the file happened
    to share was left at the other's 0700 (a review found it)."""
    import pyuring.copy.engine as engine

    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    write(src / "d" / "f", b"data")
    (src / "d").chmod(0o750)
    fix_times(src)
    dst.mkdir()
    write(dst / "d", b"in the way", 0o750)
    st = os.lstat(src / "d")
    os.utime(dst / "d", ns=(st.st_atime_ns, st.st_mtime_ns))
    real = engine.Engine._dst_dir_step
    fired: List[int] = []

    def other_copy_between(self: Any, job: Any, step: int) -> None:
        if step == engine._DIR_MKDIR and not fired:
            os.mkdir(dst / "d", 0o700)
            fired.append(step)
        real(self, job, step)

    monkeypatch.setattr(engine.Engine, "_dst_dir_step", other_copy_between)
    stats, msgs = copy_api(src, dst, backend=backend)
    assert fired and msgs == [] and stats.exit_code == 0, msgs
    assert_same_tree(src, dst)


@requires_root
def test_a_temporary_name_is_closed_before_it_is_removed(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed file's temporary name (a destination without O_TMPFILE) is
    removed after its fd is closed: FUSE keeps an open file's unlinked name
    under another (libfuse's .fuse_hidden*), and on a full disk exfat-fuse
    refused that, leaving up to 50 temporary names and once a 12.8 MB partial
    file (found by a trial on exFAT)."""
    _without_o_tmpfile(monkeypatch)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(12):
        write(src / f"f{i:02}", os.urandom(9000 if i % 2 else 300_000))
    fix_times(src)
    real_unlink = os.unlink
    removed: List[str] = []
    still_open: List[str] = []

    def unlink(name: Any, *a: Any, dir_fd: Optional[int] = None, **k: Any) -> None:
        if "pyuring-tmp" in os.fsdecode(name) and dir_fd is not None:
            removed.append(os.fsdecode(name))
            where = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), os.fsdecode(name))
            for fd in os.listdir("/proc/self/fd"):
                try:
                    if os.readlink(f"/proc/self/fd/{fd}") == where:
                        still_open.append(os.fsdecode(name))
                except OSError:
                    pass
        real_unlink(name, *a, dir_fd=dir_fd, **k)

    real_close = os.close
    late_errors: List[int] = []

    def close(fd: int) -> None:
        try:
            late = "pyuring-tmp" in os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            late = False
        real_close(fd)
        if late:  # (NFS, FUSE: close(2) reports a write error it held back)
            late_errors.append(fd)
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.setattr(os, "close", close)
    with mounted("tmpfs", tmp_path / "full", "size=1m") as full:
        stats, msgs = copy_api(src, full / "dst", backend=backend)
        assert stats.exit_code == 11, msgs
        assert not any("internal error" in m for m in msgs), msgs
        assert removed and still_open == [], (removed, still_open)
        assert late_errors  # (and they did not end the copy: a review found they did)
        assert tmp_names(full / "dst") == []


def test_a_stopped_copy_gives_its_directories_their_modes(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Copier.interrupt() mid-copy (as the CLI's SIGINT handler calls it):
    what is in flight finishes, and every directory the copy made gets the
    source's mode and mtime -- before, the unfinished ones kept 0700 (as cp
    leaves them; rsync gives the mode at once).  A re-run completes the copy."""
    from pyuring.copy import Copier, api
    from pyuring.executor import make_executor

    src = tmp_path / "src"
    for d in range(4):
        (src / f"d{d}" / "sub").mkdir(parents=True)
        for i in range(200):  # (more than the files in flight: some are not started)
            write(src / f"d{d}" / f"f{i:03}", b"x" * (i % 50))
        os.chmod(src / f"d{d}" / "sub", 0o750)
        os.chmod(src / f"d{d}", 0o755)
    fix_times(src)
    dst = tmp_path / "dst"
    opts = archive_all()
    opts.backend = backend
    msgs: List[str] = []
    copier = Copier(opts, msgs.append)
    monkeypatch.setattr(api, "make_executor", make_executor)  # (restored after)
    # (at d1's first file, whichever the walk meets first: d1 may come last)
    fired = install_statx_hook(api, os.fsencode(src / "d1"),
                               {b"f%03d" % i: lambda _p: copier.interrupt()
                                for i in range(200)})
    stats = copier.run([os.fsencode(src) + b"/"], dst)
    assert fired and stats.exit_code == 20 and msgs == [], msgs
    made = [Path(p) for p, _d, _f in os.walk(dst)]
    assert len(made) >= 3 and len(list(regular_files(dst))) < 800
    for p in made:
        s = os.lstat(src / p.relative_to(dst))
        assert stat.S_IMODE(os.lstat(p).st_mode) == stat.S_IMODE(s.st_mode), p
        assert os.lstat(p).st_mtime_ns == s.st_mtime_ns, p
    for rel, full in regular_files(dst):  # (whole files only)
        assert Path(os.fsdecode(full)).read_bytes() == (src / os.fsdecode(rel)).read_bytes()
    assert run_cli(["-a", "--backend", backend, f"{src}/", str(dst)]).returncode == 0
    assert_same_tree(src, dst)
