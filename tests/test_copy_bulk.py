"""Large files' data in worker threads (``pyuring/copy/bulk.py``).

The data of files above ``small_file_max`` is copied by ``copy_file_range`` in
worker threads on the io_uring backend, so that the ring goes on with the other
files meanwhile and several large files copy at once.  Each test here makes a
worker wait for something only a non-blocking engine can deliver (a second
worker at a barrier; small files published by the main thread; a stop
request), so a pool that copied inline or one file at a time fails it by
timing out -- not by a stopwatch.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest

from pyuring.copy import Copier, Options, bulk, engine

from .test_copy_support import (
    SMALL_FILE_MAX,
    check_backend,
    copy_api,
    fix_times,
    make_sparse,
    run_cli,
    tmp_names,
    write,
)
from .treecompare import assert_same_tree

BIG = SMALL_FILE_MAX * 4
WAIT = 30.0  # generous: only a broken engine ever waits this long


@pytest.fixture()
def uring() -> str:
    return check_backend("uring")


def _data_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pyuring-copy-data"]


def _no_threads_left() -> None:
    for t in _data_threads():
        t.join(WAIT)
    assert _data_threads() == []


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _patch_run(monkeypatch: pytest.MonkeyPatch,
               before: Callable[[bulk.DataTask], None]) -> None:
    """Run ``before(task)`` in the worker ahead of every background copy."""
    real = bulk.DataCopy.run

    def run(self: bulk.DataCopy, task: bulk.DataTask) -> None:
        if threading.current_thread() is not threading.main_thread():
            before(task)
        real(self, task)

    monkeypatch.setattr(bulk.DataCopy, "run", run)


def _big_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """List every source directory with its entry ``big`` first."""
    real = engine.Engine.list_src

    def list_src(self: engine.Engine, d: engine.DirTask) -> Iterator[Any]:
        return iter(sorted(real(self, d), key=lambda e: e.name != b"big"))

    monkeypatch.setattr(engine.Engine, "list_src", list_src)


def _interrupt_when(event: threading.Event, c: Copier) -> None:
    def go() -> None:
        if event.wait(WAIT):
            c.interrupt()

    threading.Thread(target=go).start()


def _tree(root: Path, big: int, small: int, seed: int = 5) -> Path:
    rng = random.Random(seed)
    root.mkdir()
    for i in range(big):
        write(root / ("big" if i == 0 else f"big-{i}"), rng.randbytes(BIG + i * 4097))
    for i in range(small):
        write(root / f"small-{i:03d}", rng.randbytes(rng.randrange(0, 5000)))
    fix_times(root)
    return root


def test_several_large_files_copy_at_once(tmp_path: Path, uring: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Three workers meet at a barrier before copying: only three copies in
    flight at once get past it."""
    src = _tree(tmp_path / "src", big=3, small=10)
    barrier = threading.Barrier(3, timeout=WAIT)

    def meet(task: bulk.DataTask) -> None:
        barrier.wait()

    _patch_run(monkeypatch, meet)
    msgs: List[str] = []
    c = Copier(Options.archive(backend=uring), msgs.append)
    stats = c.run([os.fsencode(f"{src}/")], os.fsencode(tmp_path / "dst"))
    assert msgs == [] and stats.exit_code == 0, msgs
    assert c.engine is not None and c.engine.bulk is not None
    assert c.engine.bulk.peak == 3
    assert_same_tree(src, tmp_path / "dst")
    assert stats.direct_syscalls.get("copy_file_range", 0) >= 3  # merged from the workers
    _no_threads_left()


def test_small_files_publish_while_a_large_one_copies(tmp_path: Path, uring: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The large file is listed first; its worker waits until every small file
    has its final name -- which only the main thread, still running the ring,
    can give them."""
    src = _tree(tmp_path / "src", big=1, small=60)
    dst = tmp_path / "dst"
    smalls = {f"small-{i:03d}" for i in range(60)}
    seen: List[int] = []

    def wait_for_smalls(task: bulk.DataTask) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if smalls <= set(os.listdir(dst)):
                seen.append(len(smalls))
                return
            time.sleep(0.002)

    _big_first(monkeypatch)
    _patch_run(monkeypatch, wait_for_smalls)
    stats, msgs = copy_api(src, dst, backend=uring, max_files_in_flight=8)
    assert msgs == [] and stats.exit_code == 0, msgs
    assert seen == [60], "the small files were not published during the large copy"
    assert_same_tree(src, dst)
    _no_threads_left()


def test_inline_when_threads_are_off_or_on_the_sync_backend(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    src = _tree(tmp_path / "src", big=2, small=5)
    make_sparse(src / "sparse", 8 * BIG, [(0, b"head"), (5 * BIG, b"x" * 9000)])
    fix_times(src)
    runs: List[str] = []
    real = bulk.DataCopy.run

    def run(self: bulk.DataCopy, task: bulk.DataTask) -> None:
        runs.append(threading.current_thread().name)
        real(self, task)

    monkeypatch.setattr(bulk.DataCopy, "run", run)
    backends = [("sync", 4), ("uring", 0)] if check_backend("uring") else [("sync", 4)]
    for backend, threads in backends:
        runs.clear()
        dst = tmp_path / f"dst-{backend}"
        stats, msgs = copy_api(src, dst, backend=backend, copy_threads=threads)
        assert msgs == [] and stats.exit_code == 0, msgs
        assert runs == ["MainThread"] * 3, (backend, runs)
        assert_same_tree(src, dst)
        assert os.stat(dst / "sparse").st_blocks * 512 < 2 * BIG  # the holes stayed holes
    assert _data_threads() == []


def test_stop_while_large_files_copy(tmp_path: Path, uring: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop request reaches the workers between two copy steps: nothing half
    copied is published, no fd and no thread is left, the run says interrupted."""
    src = _tree(tmp_path / "src", big=2, small=20)
    dst = tmp_path / "dst"
    monkeypatch.setattr(bulk, "STEP", 4096)  # many steps per file: many chances to stop
    started = threading.Event()
    holder: List[Copier] = []

    def stop_then_copy(task: bulk.DataTask) -> None:
        started.set()
        deadline = time.monotonic() + WAIT
        eng = holder[0].engine
        assert eng is not None and eng.bulk is not None
        while not eng.bulk.stopping and time.monotonic() < deadline:
            time.sleep(0.001)

    _patch_run(monkeypatch, stop_then_copy)
    fds = _open_fds()
    msgs: List[str] = []
    c = Copier(Options.archive(backend=uring), msgs.append)
    holder.append(c)
    _interrupt_when(started, c)
    stats = c.run([os.fsencode(f"{src}/")], os.fsencode(dst))
    assert stats.interrupted and stats.exit_code == 20, (stats.exit_code, msgs)
    assert not any("cannot" in m for m in msgs), msgs
    names = set(os.listdir(dst))
    assert "big" not in names and "big-1" not in names
    for name in names:
        assert (dst / name).read_bytes() == (src / name).read_bytes()
    assert tmp_names(dst) == []
    _no_threads_left()
    assert _open_fds() == fds


def test_a_worker_stuck_past_the_grace_period(tmp_path: Path, uring: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine stops waiting after STOP_GRACE; the worker, when it comes
    back, closes its task's fds itself and publishes nothing.  Nothing else is
    in flight: the stop from another thread must wake the engine's wait itself."""
    src = _tree(tmp_path / "src", big=1, small=0)
    dst = tmp_path / "dst"
    monkeypatch.setattr(engine, "STOP_GRACE", 0.3)
    started, release = threading.Event(), threading.Event()

    def stuck(task: bulk.DataTask) -> None:
        started.set()
        release.wait(WAIT)

    _patch_run(monkeypatch, stuck)
    fds = _open_fds()
    msgs: List[str] = []
    c = Copier(Options.archive(backend=uring), msgs.append)
    _interrupt_when(started, c)
    t0 = time.monotonic()
    stats = c.run([os.fsencode(f"{src}/")], os.fsencode(dst))
    assert time.monotonic() - t0 < WAIT / 2
    assert stats.interrupted and stats.exit_code == 20
    assert not any("cannot" in m for m in msgs), msgs
    assert _data_threads(), "the stuck worker should still be there"
    release.set()
    _no_threads_left()
    assert "big" not in os.listdir(dst)
    assert tmp_names(dst) == []
    assert _open_fds() == fds


def test_a_failing_worker_reports_instead_of_hanging(tmp_path: Path, uring: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    src = _tree(tmp_path / "src", big=2, small=5)

    def boom(task: bulk.DataTask) -> None:
        raise RuntimeError("a bug in a worker")

    _patch_run(monkeypatch, boom)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=uring)
    assert stats.exit_code == 11  # (reported as EIO: an I/O error, as rsync counts them)
    assert sorted(m.split('"')[1] for m in msgs) == ["big", "big-1"], msgs
    assert all("cannot write" in m and "Input/output error" in m for m in msgs), msgs
    assert not {"big", "big-1"} & set(os.listdir(tmp_path / "dst"))
    assert tmp_names(tmp_path / "dst") == []
    _no_threads_left()


def test_read_error_in_a_worker_is_a_source_error(tmp_path: Path, uring: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """copy_file_range unsupported (EXDEV) -> pread/pwrite; a pread that fails is
    reported as a read error of that source file, and the others copy."""
    src = _tree(tmp_path / "src", big=2, small=5)
    big_ino = os.stat(src / "big").st_ino

    def no_range(*a: Any) -> int:
        raise OSError(18, "Invalid cross-device link")

    real_preadv = os.preadv

    def preadv(fd: int, bufs: Any, off: int) -> int:
        if os.fstat(fd).st_ino == big_ino:
            raise OSError(5, "Input/output error")
        return real_preadv(fd, bufs, off)

    monkeypatch.setattr(os, "copy_file_range", no_range)
    monkeypatch.setattr(os, "preadv", preadv)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=uring)
    assert stats.exit_code == 23
    assert len(msgs) == 1 and 'cannot read "big"' in msgs[0], msgs
    assert (tmp_path / "dst" / "big-1").read_bytes() == (src / "big-1").read_bytes()
    assert "big" not in os.listdir(tmp_path / "dst")
    assert stats.direct_syscalls.get("pread64", 0) >= 1
    _no_threads_left()


@pytest.mark.parametrize("value", ["-1", "65", "x"])
def test_copy_threads_out_of_range(tmp_path: Path, value: str) -> None:
    r = run_cli(["-a", f"--copy-threads={value}", str(tmp_path), str(tmp_path / "d")])
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "--copy-threads" in r.stderr


def test_cli_copy_threads_zero_and_default_agree(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", big=3, small=20)
    for n in ("0", "4"):
        r = run_cli(["-a", "--copy-threads", n, f"{src}/", str(tmp_path / f"d{n}")])
        assert r.returncode == 0, r
        assert_same_tree(src, tmp_path / f"d{n}")


@pytest.mark.parametrize("backend", ["uring", "sync"])
def test_xattrs_of_a_large_file_come_from_the_fd_already_open(tmp_path: Path, backend: str
                                                              ) -> None:
    """-X: the source stays open through the data copy (in a worker or inline)
    and its xattrs are read from that fd -- not from a second open by name."""
    check_backend(backend)
    src = _tree(tmp_path / "src", big=2, small=0)
    try:
        os.setxattr(src / "big", "user.note", b"large and annotated")
    except OSError as exc:
        pytest.skip(f"no user xattrs here: {exc}")
    fix_times(src)
    plain, msgs = copy_api(src, tmp_path / "plain", backend=backend)
    assert msgs == []
    with_x, msgs = copy_api(src, tmp_path / "with-x", backend=backend, xattrs=True)
    assert msgs == [] and with_x.exit_code == 0
    assert os.getxattr(tmp_path / "with-x" / "big", "user.note") == b"large and annotated"
    assert_same_tree(src, tmp_path / "with-x")
    assert "openat" not in with_x.direct_syscalls, with_x.direct_syscalls
    if backend == "uring":
        assert with_x.sqes_by_op.get("OPENAT2") == plain.sqes_by_op.get("OPENAT2")


@pytest.mark.parametrize("backend", ["uring", "sync"])
@pytest.mark.parametrize("err", [18, 22, 38])  # EXDEV, EINVAL, ENOSYS
def test_a_copy_file_range_refusal_is_for_that_file_only(
        tmp_path: Path, backend: str, err: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refusal that belongs to one file (EXDEV: another pair of filesystems;
    EINVAL: a file the call cannot do) makes that file fall back to
    pread/pwrite and no other; only ENOSYS (no such call in this kernel) turns
    copy_file_range off for the rest of the copy.  One data copier (no worker
    threads), so every file meets the same one."""
    src = _tree(tmp_path / "src", big=3, small=2)
    real = os.copy_file_range
    seen: List[Any] = []
    refused: List[int] = []  # the first large file to be copied

    def copy_file_range(s: int, d: int, n: int, off_s: Any = None, off_d: Any = None) -> int:
        ino = os.fstat(s).st_ino
        if not refused:
            refused.append(ino)
        if ino == refused[0] or (err == 38 and seen):
            seen.append((ino, "refused"))
            raise OSError(err, os.strerror(err))
        seen.append((ino, "copied"))
        return real(s, d, n, off_s, off_d)

    monkeypatch.setattr(os, "copy_file_range", copy_file_range)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, copy_threads=0)
    assert stats.exit_code == 0 and not msgs, msgs
    assert_same_tree(src, tmp_path / "dst")
    copied = {ino for ino, how in seen if how == "copied"}
    others = {os.stat(src / n).st_ino for n in ("big", "big-1", "big-2")} - set(refused)
    if err == 38:
        # the first call, refused by ENOSYS, is the only one made
        assert seen == [(refused[0], "refused")], seen
    else:
        assert copied == others, seen
        assert [ino for ino, how in seen if how == "refused"] == refused, seen
    assert stats.direct_syscalls.get("pread64", 0) >= 1
