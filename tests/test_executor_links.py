"""Which failing operations break a link -- and what the copy engine does about it.

io_uring_enter(2) says a failing request breaks its link (the rest of the
chain completes with -ECANCELED).  On the running kernel (6.18) that holds for
opens, reads, writes and closes, but not for MKDIRAT, UNLINKAT, RENAMEAT,
LINKAT, SYMLINKAT or STATX failing while they run: the next request runs anyway,
and with IOSQE_CQE_SKIP_SUCCESS the failure is not posted at all.  Found when a
full disk made every ``mkdir`` of a copy look like an ``open`` failing with
ENOENT.

So the executors refuse to link those operations to a following one
(``executor._chain_end_only``), and the engine sequences them itself.  The
last tests here are what linking cost: a rename that moved a stranger's entry
into place after the link before it had failed.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest

from pyuring import Ring
from pyuring import _abi as A
from pyuring.copy import engine
from pyuring.executor import HARDLINK, LINK, RESOLVE_SAFE, SKIP, Executor, make_executor

from .conftest import URING
from .test_copy_support import (
    BACKENDS,
    check_backend,
    copy_api,
    fix_times,
    mounted,
    tmp_names,
    write,
)
from .test_ring_support import by_ud, run

# ---------------------------------------------------------------------------
# the kernel, through the Ring
# ---------------------------------------------------------------------------
PrepFail = Callable[[Ring, int, str, int], None]

_FAILING: Dict[str, PrepFail] = {
    # each prepares one request that fails with EEXIST / ENOENT at run time
    "MKDIRAT": lambda r, d, p, f: r.prep_mkdirat(d, b"there", 0o700, user_data=1, flags=f),
    "UNLINKAT": lambda r, d, p, f: r.prep_unlinkat(d, b"missing", 0, user_data=1, flags=f),
    "RENAMEAT": lambda r, d, p, f: r.prep_renameat(d, b"missing", d, b"x", 0, user_data=1,
                                                   flags=f),
    "LINKAT": lambda r, d, p, f: r.prep_linkat(d, b"missing", d, b"x", 0, user_data=1,
                                               flags=f),
    "SYMLINKAT": lambda r, d, p, f: r.prep_symlinkat(b"t", d, b"there", user_data=1, flags=f),
}


@pytest.mark.skipif(not URING, reason="io_uring is unavailable here")
@pytest.mark.parametrize("op", sorted(_FAILING))
def test_kernel_runs_the_next_request_after_a_failing_fs_op(tmp_path: Path, op: str) -> None:
    """Observed kernel behaviour (the reason for the refusal below).  A kernel
    that breaks the link after all skips this test (the refusal is then merely
    conservative there, and still right for the kernels that do not)."""
    (tmp_path / "there").mkdir()
    d = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with Ring(8) as ring:
            _FAILING[op](ring, d, str(tmp_path), A.IOSQE_IO_LINK)
            ring.prep_nop(user_data=2)
            got = by_ud(run(ring, 2))
            assert got[1].res in (-errno.EEXIST, -errno.ENOENT)
            if got[2].res == -errno.ECANCELED:
                pytest.skip(f"this kernel breaks the link after a failing {op}")
            assert got[2].res == 0
            # with CQE_SKIP_SUCCESS the failure itself is not posted either
            _FAILING[op](ring, d, str(tmp_path), A.IOSQE_IO_LINK | A.IOSQE_CQE_SKIP_SUCCESS)
            ring.prep_nop(user_data=3)
            assert [(c.user_data, c.res) for c in run(ring, 1)] == [(3, 0)]
    finally:
        os.close(d)


@pytest.mark.skipif(not URING, reason="io_uring is unavailable here")
def test_kernel_breaks_the_link_after_a_failing_open(tmp_path: Path) -> None:
    d = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with Ring(8) as ring:
            ring.prep_openat(d, b"missing", os.O_RDONLY, user_data=1, flags=A.IOSQE_IO_LINK)
            ring.prep_nop(user_data=2)
            got = by_ud(run(ring, 2))
            assert (got[1].res, got[2].res) == (-errno.ENOENT, -errno.ECANCELED)
    finally:
        os.close(d)


# ---------------------------------------------------------------------------
# the executors refuse such links
# ---------------------------------------------------------------------------
def _calls(d: int) -> Dict[str, Callable[[Executor, int, int], None]]:
    return {
        "MKDIRAT": lambda ex, c, f: ex.mkdirat(c, 0, d, b"n", 0o700, f),
        "UNLINKAT": lambda ex, c, f: ex.unlinkat(c, 0, d, b"n", 0, f),
        "RENAMEAT": lambda ex, c, f: ex.renameat(c, 0, d, b"n", d, b"m", 0, f),
        "LINKAT": lambda ex, c, f: ex.linkat(c, 0, d, b"n", d, b"m", 0, f),
        "SYMLINKAT": lambda ex, c, f: ex.symlinkat(c, 0, b"t", d, b"n", f),
        "STATX": lambda ex, c, f: ex.statx(c, 0, d, b"n", A.AT_SYMLINK_NOFOLLOW, f),
        "FSYNC": lambda ex, c, f: ex.fsync(c, 0, d, f),
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_executors_refuse_to_link_after_fs_ops(tmp_path: Path, backend: str) -> None:
    check_backend(backend)
    d = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    ex = make_executor(backend)
    try:
        for op, call in _calls(d).items():
            for flags in (LINK, LINK | SKIP, HARDLINK):
                with pytest.raises(ValueError, match=op):
                    call(ex, 0, flags)
        assert not ex.busy()  # nothing was queued
        # at the end of a chain (or alone) they are fine
        got: List[Tuple[int, int]] = []
        cid = ex.chain(lambda i, r, e: got.append((i, r)))
        ex.openat2(cid, 0, d, b".", os.O_RDONLY | os.O_DIRECTORY, 0, RESOLVE_SAFE, LINK | SKIP)
        ex.mkdirat(cid, 1, d, b"made", 0o700)
        while ex.busy():
            ex.run()
        assert got == [(1, 0)] and (tmp_path / "made").is_dir()
    finally:
        ex.close()
        os.close(d)


# ---------------------------------------------------------------------------
# the engine: failures of those operations are reported as what they are
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_directories_on_a_full_destination(tmp_path: Path, backend: str) -> None:
    """mkdir (or a file's creation) fails with ENOSPC -- no inodes left: reported
    once, the copy stops (exit 11); not one 'cannot open ... ENOENT' per
    directory, which is what a silently failed, linked MKDIRAT produced."""
    check_backend(backend)
    src = tmp_path / "src"
    for i in range(200):
        _put(src / f"d{i:03d}" / "sub" / "f", b"x")
    fix_times(src)
    with mounted("tmpfs", tmp_path / "full", "size=4m,nr_inodes=64") as full:
        stats, msgs = copy_api(src, full / "dst", backend=backend)
        # the directories open when the copy stopped were closed (they were
        # not: a full destination left the mount busy)
        assert _fds_under(tmp_path) == [], "directory fds left open after the stop"
        assert stats.exit_code == 11, msgs
        assert len(msgs) <= 3, msgs
        assert "No space left on device" in msgs[0], msgs
        assert not any("cannot open" in m for m in msgs), msgs
        assert any(m.startswith("stopping: the destination is unusable") for m in msgs), msgs


def _fds_under(root: Path) -> List[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(root)):
            out.append(target)
    return out


def _put(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, data)


def _fixed_tmp_name(monkeypatch: pytest.MonkeyPatch, name: bytes) -> None:
    monkeypatch.setattr(engine.Engine, "tmp_name", lambda self, n: name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_replacing_a_file_never_renames_a_strangers_entry(tmp_path: Path, backend: str,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """The temporary name the replacement is linked to already exists: the
    LINKAT fails, and nothing may then rename that entry over the file."""
    check_backend(backend)
    src, dst = tmp_path / "src", tmp_path / "dst"
    _put(src / "f", b"new contents, longer than before")
    _put(dst / "f", b"old")
    fix_times(src)
    _put(dst / ".trap", b"a stranger's file")
    _fixed_tmp_name(monkeypatch, b".trap")
    stats, msgs = copy_api(src, dst, backend=backend)
    assert stats.exit_code == 23, msgs
    assert len(msgs) == 1 and "File exists" in msgs[0], msgs
    assert (dst / "f").read_bytes() == b"old"
    assert (dst / ".trap").read_bytes() == b"a stranger's file"


@pytest.mark.parametrize("backend", BACKENDS)
def test_replacing_a_symlink_never_renames_a_strangers_entry(tmp_path: Path, backend: str,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    check_backend(backend)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    os.symlink("new-target", src / "l")
    os.symlink("old-target", dst / "l")
    _put(dst / ".trap", b"a stranger's file")
    _fixed_tmp_name(monkeypatch, b".trap")
    stats, msgs = copy_api(src, dst, backend=backend)
    assert stats.exit_code == 23, msgs
    assert len(msgs) == 1 and "File exists" in msgs[0], msgs
    assert os.readlink(dst / "l") == "old-target"
    assert stat.S_ISREG(os.lstat(dst / ".trap").st_mode)


@pytest.mark.parametrize("backend", BACKENDS)
def test_replacing_files_and_symlinks_still_works(tmp_path: Path, backend: str) -> None:
    check_backend(backend)
    src, dst = tmp_path / "src", tmp_path / "dst"
    _put(src / "f", b"new contents")
    os.symlink("new-target", src / "l")
    os.makedirs(src / "was-a-file")
    _put(dst / "f", b"old")
    os.symlink("old-target", dst / "l")
    _put(dst / "was-a-file", b"in the way")
    fix_times(src)
    stats, msgs = copy_api(src, dst, backend=backend)
    assert (stats.exit_code, msgs) == (0, [])
    assert (dst / "f").read_bytes() == b"new contents"
    assert os.readlink(dst / "l") == "new-target"
    assert (dst / "was-a-file").is_dir()
    assert tmp_names(dst) == []


# ---------------------------------------------------------------------------
# completions of operations given up
# ---------------------------------------------------------------------------
@pytest.mark.skipif(not URING, reason="io_uring is unavailable here")
def test_a_completion_after_abandon_is_ignored(tmp_path: Path) -> None:
    """abandon() forgets the chains in flight; when one of them completes after
    all, run() must pass it by (it raised KeyError)."""
    from pyuring._mem import Buffer
    from pyuring.executor import UringExecutor

    ex = UringExecutor()
    r, w = os.pipe()
    d = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    buf = Buffer(8)
    late: List[int] = []
    try:
        cid = ex.chain(lambda i, res, e: late.append(res))
        ex.read(cid, 0, r, buf, 0, 8, (1 << 64) - 1)
        ex.run(wait=False)
        ex.abandon()
        os.write(w, b"late")
        got: List[Tuple[int, int]] = []
        cid = ex.chain(lambda i, res, e: got.append((i, res)))
        ex.statx(cid, 0, d, b".", A.AT_SYMLINK_NOFOLLOW)
        deadline = 50
        while not got and deadline:
            ex.run(wait=True, timeout=0.1)
            deadline -= 1
        ex.run(wait=True, timeout=0.1)  # the late READ's completion, if not yet seen
        assert got == [(0, 0)]
        assert late == []
    finally:
        ex.close()
        for fd in (r, w, d):
            os.close(fd)
