"""The cap on io-wq worker threads (``--io-workers``, ``pyuring/copy/api.py``).

A copy's punted operations (STATX, O_TMPFILE opens, WRITE, LINKAT) run on the
kernel's io-wq workers.  The copy caps them (by default at one less than the
usable CPUs) while it runs, and gives the thread's io-wq its earlier limits
back afterwards: the limits belong to the thread, not to the ring.  These
tests read the limits back from the kernel during and after a copy and count
the ``iou-wrk`` threads of a copying process.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, List, Tuple

import pytest

from pyuring import _syscall
from pyuring.copy import Options, api
from pyuring.errors import UringError
from pyuring.executor import make_executor

from .test_copy_support import check_backend, cli_env, copy_api, fix_times, run_cli, write
from .treecompare import assert_same_tree


@pytest.fixture()
def uring() -> str:
    return check_backend("uring")


def _tree(root: Path, files: int) -> Path:
    for d in range(10):
        (root / f"d{d}").mkdir(parents=True)
    for i in range(files):
        write(root / f"d{i % 10}" / f"f{i}", os.urandom(i % 3000))
    fix_times(root)
    return root


def _set_thread_limits(bounded: int, unbounded: int) -> Tuple[int, int]:
    ex = make_executor("uring", entries=8)
    try:
        before: Tuple[int, int] = ex.ring.register_iowq_max_workers(  # type: ignore[attr-defined]
            bounded, unbounded)
        return before
    finally:
        ex.close()


def _thread_limits() -> Tuple[int, int]:
    """This thread's io-wq limits (bounded, unbounded), as the kernel reports them."""
    return _set_thread_limits(0, 0)  # (0: leave as is, only report)


def _spy_limits(monkeypatch: pytest.MonkeyPatch) -> List[Tuple[int, int]]:
    """Record the ring's io-wq limits at the copy's first wait for completions."""
    seen: List[Tuple[int, int]] = []
    real = make_executor

    def spying(*a: Any, **kw: Any) -> Any:
        ex = real(*a, **kw)
        ring = getattr(ex, "ring", None)
        if ring is not None:
            run = ex.run

            def run_and_look(*ra: Any, **rkw: Any) -> Any:
                if not seen:
                    seen.append(ring.register_iowq_max_workers(0, 0))
                return run(*ra, **rkw)

            ex.run = run_and_look  # type: ignore[method-assign]
        return ex

    monkeypatch.setattr(api, "make_executor", spying)
    return seen


@pytest.mark.parametrize("cpus, fsync, asked, expected", [
    (1, False, -1, 1), (2, False, -1, 1), (8, False, -1, 7), (8, True, -1, 0),
    (2, False, 0, 0), (2, False, 3, 3), (2, True, 3, 3),
])
def test_the_cap_a_copy_asks_for(monkeypatch: pytest.MonkeyPatch, cpus: int, fsync: bool,
                                 asked: int, expected: int) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cpus)))
    assert api.io_worker_cap(Options.archive(fsync=fsync, io_workers=asked)) == expected


@pytest.mark.parametrize("magic, expected", [(0xEF53, 1), (0x6969, 0), (0x65735546, 0),
                                             (0xFF534D42, 0), (0x01021994, 1)],
                         ids=["ext4", "nfs", "fuse", "cifs", "tmpfs"])
def test_no_cap_on_network_file_systems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        magic: int, expected: int) -> None:
    """A root on a network or cluster file system: its operations wait on a
    server, and many at once is what makes them fast."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    remote = os.fsencode(tmp_path / "remote")
    looked: List[bytes] = []

    def statfs_type(path: bytes) -> int:
        looked.append(path)
        if not os.path.exists(path):
            raise FileNotFoundError(2, "No such file or directory")
        return magic if path == remote else 0xEF53

    monkeypatch.setattr(_syscall, "statfs_type", statfs_type)
    os.mkdir(remote)
    local = os.fsencode(tmp_path)
    assert api.io_worker_cap(Options.archive(), [local, remote]) == expected
    # a destination that does not exist yet: its directory's file system decides
    assert api.io_worker_cap(Options.archive(), [local, remote + b"/new/"]) == expected
    assert remote + b"/new/" in looked
    # an explicit --io-workers is taken as given
    assert api.io_worker_cap(Options.archive(io_workers=2), [remote]) == 2


@pytest.mark.skipif(shutil.which("stat") is None, reason="needs coreutils stat")
@pytest.mark.parametrize("where", ["/", "/proc", "/sys", "/dev/shm", "tmp"])
def test_statfs_type_is_what_stat_f_says(tmp_path: Path, where: str) -> None:
    """The f_type read from struct statfs against coreutils' ``stat -f -c %t``."""
    path = str(tmp_path) if where == "tmp" else where
    if not os.path.isdir(path):
        pytest.skip(f"no {path} here")
    out = subprocess.run(["stat", "-f", "-c", "%t", path], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert _syscall.statfs_type(os.fsencode(path)) == int(out, 16)


@pytest.mark.parametrize("asked", [1, 3])
def test_the_cap_holds_during_the_copy_and_is_undone_after(
        tmp_path: Path, uring: str, monkeypatch: pytest.MonkeyPatch, asked: int) -> None:
    before = _thread_limits()
    assert before[0] > 0, before  # the thread has an io-wq once it has a ring
    seen = _spy_limits(monkeypatch)
    src = _tree(tmp_path / "src", 200)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=uring, io_workers=asked)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst")
    # (never above the thread's own limits: its io-wq was sized by its first ring)
    expected = (min(asked, before[0]), min(asked, before[1]))
    assert seen == [expected]
    assert stats.io_workers == expected[0]
    assert _thread_limits() == before


@pytest.mark.parametrize("mine, asked, during", [((5, 6), 2, (2, 2)), ((1, 2), 3, (1, 2))])
def test_limits_the_program_set_are_kept_and_never_raised(
        tmp_path: Path, uring: str, monkeypatch: pytest.MonkeyPatch, mine: Tuple[int, int],
        asked: int, during: Tuple[int, int]) -> None:
    original = _set_thread_limits(*mine)
    try:
        seen = _spy_limits(monkeypatch)
        src = _tree(tmp_path / "src", 30)
        stats, msgs = copy_api(src, tmp_path / "dst", backend=uring, io_workers=asked)
        assert stats.exit_code == 0, msgs
        assert seen == [during]
        assert stats.io_workers == during[0]
        assert _thread_limits() == mine
    finally:
        _set_thread_limits(*original)


def test_the_limits_come_back_after_a_copy_that_fails(tmp_path: Path, uring: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    before = _thread_limits()
    during: List[Tuple[int, int]] = []

    def broken(*a: Any, **kw: Any) -> None:
        during.append(_thread_limits())
        raise RuntimeError("engine broke")

    monkeypatch.setattr(api.Copier, "_run_engine", broken)
    src = _tree(tmp_path / "src", 5)
    with pytest.raises(RuntimeError, match="engine broke"):
        copy_api(src, tmp_path / "dst", backend=uring, io_workers=1)
    assert during == [(1, 1)]
    assert _thread_limits() == before


class _FakeRing:
    sq_entries = 256

    def __init__(self, answer: Tuple[int, int]) -> None:
        self.answer = answer
        self.calls: List[Tuple[int, int]] = []

    def register_iowq_max_workers(self, bounded: int, unbounded: int) -> Tuple[int, int]:
        self.calls.append((bounded, unbounded))
        return self.answer


class _FakeExecutor:
    def __init__(self, ring: _FakeRing) -> None:
        self.ring = ring


@pytest.mark.parametrize("before, restored", [
    ((8, 96362), (8, 96362)),
    # RLIMIT_NPROC unlimited: the unbounded limit reads back as 0
    ((8, 0), (8, 0x7FFFFFFF)),
    # the thread had no io-wq yet: the ring made one with the kernel's defaults
    ((0, 0), (min(256, 4 * (os.cpu_count() or 1)), 0x7FFFFFFF)),
])
def test_what_the_restore_gives_back(before: Tuple[int, int],
                                     restored: Tuple[int, int]) -> None:
    ring = _FakeRing(before)
    ex: Any = _FakeExecutor(ring)
    cap, got = api.cap_io_workers(ex, 3)
    assert (cap, got) == (min(3, before[0]) if before[0] else 3, before)
    api.restore_io_workers(ex, got)
    assert ring.calls[0] == (0, 0)  # asked first
    assert ring.calls[-1] == restored


@pytest.mark.parametrize("value", [-2, 4097])
def test_api_io_workers_out_of_range(value: int) -> None:
    problem = Options.archive(io_workers=value).validate()
    assert problem is not None and "--io-workers" in problem


@pytest.mark.parametrize("kw", [{"io_workers": 0}, {"fsync": True}],
                         ids=["io_workers=0", "fsync"])
def test_no_cap_leaves_the_kernels_limits(tmp_path: Path, uring: str,
                                          monkeypatch: pytest.MonkeyPatch, kw: Any) -> None:
    """``--io-workers 0``, and ``--fsync`` by default: fsyncs wait on the journal,
    not the CPU, and many at once is what makes them fast."""
    before = _thread_limits()
    seen = _spy_limits(monkeypatch)
    src = _tree(tmp_path / "src", 40)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=uring, **kw)
    assert stats.exit_code == 0, msgs
    assert seen == [before]
    assert stats.io_workers == 0
    assert _thread_limits() == before


def test_a_kernel_that_refuses_the_cap_still_copies(tmp_path: Path, uring: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from pyuring.register import Registrations  # (the copy's ring: no prep_* methods)

    def refuse(self: Any, bounded: int = 0, unbounded: int = 0) -> Tuple[int, int]:
        raise UringError(errno.EINVAL, "io_uring_register: Invalid argument")

    monkeypatch.setattr(Registrations, "register_iowq_max_workers", refuse)
    src = _tree(tmp_path / "src", 30)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=uring, io_workers=2)
    assert stats.exit_code == 0, msgs
    assert stats.io_workers == 0
    assert_same_tree(src, tmp_path / "dst")


def test_the_sync_backend_has_no_workers_to_cap(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", 30)
    stats, msgs = copy_api(src, tmp_path / "dst", backend="sync", io_workers=2)
    assert stats.exit_code == 0, msgs
    assert stats.io_workers == 0


def _most_workers_seen(args: List[str]) -> int:
    """Run the CLI and count its ``iou-wrk`` threads until it ends; the most at once."""
    p = subprocess.Popen([sys.executable, "-m", "pyuring.copy", *args], env=cli_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    most = 0
    deadline = time.monotonic() + 120
    task_dir = f"/proc/{p.pid}/task"
    while p.poll() is None and time.monotonic() < deadline:
        n = 0
        try:
            tids = os.listdir(task_dir)
        except OSError:
            break
        for tid in tids:
            try:
                with open(f"{task_dir}/{tid}/comm", "rb") as f:
                    n += f.read().startswith(b"iou-wrk")
            except OSError:
                pass  # (a thread that ended meanwhile)
        most = max(most, n)
    _out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return most


def test_a_copying_process_never_runs_more_workers_than_the_cap(tmp_path: Path,
                                                                uring: str) -> None:
    """One bounded plus one unbounded worker at most with ``--io-workers 1``; and the
    same copy without a cap does start more (else this machine cannot show it)."""
    src = _tree(tmp_path / "src", 3000)
    capped = [_most_workers_seen(["-a", "--io-workers", "1", f"{src}/", str(tmp_path / f"c{i}")])
              for i in range(3)]
    assert max(capped) <= 2, capped
    uncapped = []
    for i in range(5):
        uncapped.append(_most_workers_seen(["-a", "--io-workers", "0", f"{src}/",
                                            str(tmp_path / f"u{i}")]))
        if uncapped[-1] > 2:
            break
    else:
        pytest.skip(f"without a cap the kernel never ran more than 2 workers here ({uncapped})")
    assert_same_tree(src, tmp_path / "c0")


@pytest.mark.parametrize("value, expected", [("auto", None), ("0", 0), ("3", 3)])
def test_cli_io_workers(tmp_path: Path, uring: str, value: str, expected: Any) -> None:
    src = _tree(tmp_path / "src", 20)
    r = run_cli(["-a", "--json", "--io-workers", value, f"{src}/", str(tmp_path / "dst")])
    assert r.returncode == 0, r
    if expected is None:
        expected = api.io_worker_cap(Options.archive())
    assert r.json()["io_workers"] == expected
    assert_same_tree(src, tmp_path / "dst")


@pytest.mark.parametrize("value", ["x", "-1", "4097", ""])
def test_cli_io_workers_out_of_range(tmp_path: Path, value: str) -> None:
    r = run_cli(["-a", f"--io-workers={value}", str(tmp_path), str(tmp_path / "d")])
    assert r.returncode == 1, r
    assert "Traceback" not in r.stderr
    assert len(r.err_lines) == 1, r
    assert "--io-workers" in r.stderr
    assert not (tmp_path / "d").exists()


def test_stats_name_the_cap(tmp_path: Path, uring: str) -> None:
    src = _tree(tmp_path / "src", 10)
    r = run_cli(["-a", "--stats", "--io-workers", "2", f"{src}/", str(tmp_path / "dst")])
    assert r.returncode == 0, r
    assert "io-wq workers: at most 2 of each kind" in r.stdout
