"""Resource limits a copy may meet before or around its work: the open-file,
locked-memory and process limits, and memory.  Each one either is worked
around (the synchronous backend, large files copied on the ring's thread) or
ends the copy with one line and rsync's exit code -- never "internal error".
(A limit met by one file's copy is that file's error: tests/test_copy_faults.py.)
"""

from __future__ import annotations

import errno
import os
import random
import resource
import threading
from pathlib import Path
from typing import Any, List

import pytest

from .conftest import URING, requires_root
from .test_copy_support import (
    UNPRIV_PRELUDE,
    copy_api,
    fix_times,
    nobodys_tree,
    run_cli,
    traversable,
    write,
)
from .treecompare import assert_same_tree

needs_uring = pytest.mark.skipif(not URING, reason="io_uring is unavailable here")


def _large_tree(root: Path) -> Path:
    rng = random.Random(3)
    (root / "sub").mkdir(parents=True)
    for i in range(4):
        write(root / f"big{i}", rng.randbytes(300_000 + i))
        write(root / "sub" / f"small{i}", rng.randbytes(100 + i))
    fix_times(root)
    return root


@needs_uring
def test_large_files_are_copied_inline_without_a_pipe_for_the_workers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker threads report through a pipe; with no fd left for it
    (a low ulimit -n) the ring's thread copies large files itself.  Before,
    the copy ended with "internal error: OSError: [Errno 24]" and exit 1."""
    from pyuring.copy import bulk

    def no_pipe(*_a: Any, **_k: Any) -> None:
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    monkeypatch.setattr(bulk.BulkPool, "__init__", no_pipe)
    src = _large_tree(tmp_path / "src")
    stats, msgs = copy_api(src, tmp_path / "dst", backend="uring")
    assert stats.exit_code == 0 and msgs == [], msgs
    assert stats.direct_syscalls.get("copy_file_range", 0) >= 4, stats.direct_syscalls
    assert_same_tree(src, tmp_path / "dst")


@needs_uring
def test_large_files_are_copied_inline_when_no_thread_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process limit (ulimit -u) that lets no worker thread start: the
    ring's thread copies large files itself (before: "internal error:
    RuntimeError: can't start new thread", exit 1)."""
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    src = _large_tree(tmp_path / "src")
    stats, msgs = copy_api(src, tmp_path / "dst", backend="uring")
    assert stats.exit_code == 0 and msgs == [], msgs
    assert_same_tree(src, tmp_path / "dst")


def _nofile(n: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


def test_an_open_file_limit_too_low_to_start_is_one_line(tmp_path: Path) -> None:
    src = _large_tree(tmp_path / "src")
    r = run_cli(["-a", f"{src}/", str(tmp_path / "dst")], cwd="/",
                preexec_fn=lambda: _nofile(7))
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r
    assert r.returncode == 11, r
    assert r.err_lines == ["pyuring-copy: cannot go on: Too many open files (24) "
                           "(ulimit -n is 7)"], r


def test_a_tight_open_file_limit_copies_or_reports_each_directory(tmp_path: Path) -> None:
    """ulimit -n 12: the files are copied; a directory past the fds left is
    one line each side, the destination's said as such (before: the same
    line twice)."""
    src = _large_tree(tmp_path / "src")
    (src / "sub" / "deeper" / "still").mkdir(parents=True)
    r = run_cli(["-a", f"{src}/", str(tmp_path / "dst")], cwd="/",
                preexec_fn=lambda: _nofile(12))
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r
    assert r.returncode in (0, 23), r
    assert len(set(r.err_lines)) == len(r.err_lines), r
    for i in range(4):
        assert (tmp_path / "dst" / f"big{i}").read_bytes() == (src / f"big{i}").read_bytes()


def _as_nobody_limited(limit: int, value: int) -> Any:
    def pre() -> None:
        resource.setrlimit(limit, (value, value))
    return pre


@requires_root
@needs_uring
@pytest.mark.parametrize("backend", ["auto", "uring"])
def test_a_locked_memory_limit_below_the_ring(tmp_path: Path, backend: str) -> None:
    """Without CAP_IPC_LOCK the ring's pages count against RLIMIT_MEMLOCK:
    io_uring_setup says ENOMEM.  auto falls back to plain syscalls (and says
    so under -v); uring says why in one line, exit 1 (before: "internal
    error: UringError", exit 1, for both)."""
    src, dst = nobodys_tree(tmp_path)
    with traversable(tmp_path):
        r = run_cli(["-av", "--backend", backend, f"{src}/", str(dst)], cwd="/",
                    prelude=UNPRIV_PRELUDE,
                    preexec_fn=_as_nobody_limited(resource.RLIMIT_MEMLOCK, 4096))
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r
    if backend == "auto":
        assert r.returncode == 0, r
        assert any("used the synchronous backend" in ln and "ulimit -l" in ln
                   for ln in r.err_lines), r
        assert (dst / "f").read_bytes() == b"data"
    else:
        assert r.returncode == 1 and len(r.err_lines) == 1, r
        assert "--backend uring: io_uring is not available here" in r.err_lines[0], r
        assert "ulimit -l" in r.err_lines[0], r


@requires_root
@needs_uring
def test_a_process_limit_that_leaves_io_wq_no_worker(tmp_path: Path) -> None:
    """RLIMIT_NPROC reached by the user's processes: io-wq cannot start a
    worker and the kernel cancels every operation sent to it.  auto now
    finds that out before any work and uses plain syscalls (before: every
    entry failed with "Operation canceled", exit 23, nothing copied)."""
    src, dst = nobodys_tree(tmp_path)
    with traversable(tmp_path):
        r = run_cli(["-av", f"{src}/", str(dst)], cwd="/", prelude=UNPRIV_PRELUDE,
                    preexec_fn=_as_nobody_limited(resource.RLIMIT_NPROC, 1))
    assert "Traceback" not in r.stderr, r
    assert r.returncode == 0, r
    assert any("used the synchronous backend" in ln and "ulimit -u" in ln
               for ln in r.err_lines), r
    assert (dst / "f").read_bytes() == b"data"


def test_buffers_past_the_address_space_limit_are_one_line(tmp_path: Path) -> None:
    """--small-file-max at its largest with the default files in flight asks
    for ~8 GiB of buffer: under ulimit -v that is rsync's exit 22 and one
    line (before: "internal error: OSError: [Errno 12]", exit 1)."""
    src = _large_tree(tmp_path / "src")
    r = run_cli(["-a", "--small-file-max", str(64 << 20), f"{src}/", str(tmp_path / "dst")],
                cwd="/", preexec_fn=_as_nobody_limited(resource.RLIMIT_AS, 3 << 30))
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r
    assert r.returncode == 22, r
    assert len(r.err_lines) == 1 and "cannot allocate the buffers" in r.err_lines[0], r


def test_a_chain_of_directories_past_path_max_costs_memory_in_step_with_its_depth(
        tmp_path: Path, backend: str) -> None:
    """Every directory level on the walk's stack kept its whole path from the
    root: memory in the square of the depth (a trial: 1 GB for 2,000 levels
    of 255-byte names; here 300 levels took 12.4 MB).  Past PATH_MAX a level
    keeps its name only, and its path is made when a message or a -v line
    asks for one -- which must still be the whole path."""
    import tracemalloc

    from pyuring.copy import Copier
    from pyuring.copy.options import Options

    depth, name = 300, b"n" * 250
    src = tmp_path / "src"
    src.mkdir()
    fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir(name, dir_fd=fd)
        down = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = down
    leaf = os.open(b"leaf", os.O_WRONLY | os.O_CREAT, 0o640, dir_fd=fd)
    os.write(leaf, b"deep")
    os.close(leaf)
    os.close(fd)
    opts = Options.archive()
    opts.backend, opts.verbose = backend, 1
    lines: List[str] = []
    msgs: List[str] = []

    def item(line: str) -> None:
        if line.endswith("leaf"):
            lines.append(line)

    tracemalloc.start()
    try:
        stats = Copier(opts, msgs.append, item).run([os.fsencode(src) + b"/"],
                                                      os.fsencode(tmp_path / "dst"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (stats.exit_code, msgs) == (0, [])
    assert peak < 6_000_000, peak  # (~3.8 MB measured; 12.4 MB before)
    assert lines == [">f+++++++++ " + "/".join([name.decode()] * depth) + "/leaf"]
    fd = os.open(tmp_path / "dst", os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        down = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = down
    try:
        leaf = os.open(b"leaf", os.O_RDONLY, dir_fd=fd)
        assert os.read(leaf, 10) == b"deep" and os.fstat(leaf).st_mode & 0o7777 == 0o640
        os.close(leaf)
    finally:
        os.close(fd)
