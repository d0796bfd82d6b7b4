"""Large files' data paths under failure: a full destination, a failing READ
among several in flight, a sparse file truncated during its copy, a
destination without O_TMPFILE, --fsync on the ring data path.

Each test here failed before the fix it stands for (2026-12-03 review).
"""

from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import Any, List

import pytest

from pyuring.copy import api
from pyuring.executor import make_executor

from .conftest import requires_root
from .test_copy_support import (
    RACE_ACTIONS,
    SMALL_FILE_MAX,
    copy_api,
    fix_times,
    install_statx_hook,
    loop_fs,
    mounted,
    run_cli,
    tmp_names,
    write,
)
from .treecompare import assert_same_tree

MIB = 1 << 20


def test_ring_data_path_on_a_full_destination(tmp_path: Path, backend: str) -> None:
    """The last, short chunk's WRITE comes back short (the file system is full):
    an I/O error and nothing published -- not a truncated file and exit 0."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "f", os.urandom(900 * 1024))
    fix_times(src)
    with mounted("tmpfs", tmp_path / "full", "size=4m") as full:
        write(full / "filler", bytes(3584 * 1024))
        stats, msgs = copy_api(src, full / "d", backend=backend, data_path="ring")
        assert stats.exit_code == 11, msgs
        assert not (full / "d" / "f").exists()
        assert not tmp_names(full / "d")


def test_ring_data_path_failing_read_harms_no_other_file(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One chunk's READ fails while the other READ -> WRITE pairs of the file are
    in flight.  The job's fds stay open until every pair has answered: closed
    earlier, their numbers go to the next files' O_TMPFILEs, and the pending
    WRITEs would land there."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "big", b"\xbb" * (64 * MIB))
    for i in range(200):
        write(src / f"s{i:03}", os.urandom(300))
    fix_times(src)
    fd = os.open(src / "big", os.O_RDONLY)
    try:  # from the disk, its READs stay in flight while the small files go on
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    real = make_executor

    def make(*a: Any, **kw: Any) -> Any:
        ex = real(*a, **kw)
        read = ex.read
        once: List[bool] = []

        def failing_read(cid: int, idx: int, fd: int, buf: Any, boff: int, n: int,
                         off: int, *rest: Any, **k: Any) -> None:
            if off == 2 * MIB and n == MIB and not once:
                once.append(True)
                fd = 9999  # EBADF, standing in for a disk's EIO
            read(cid, idx, fd, buf, boff, n, off, *rest, **k)

        ex.read = failing_read  # type: ignore[method-assign]
        return ex

    monkeypatch.setattr(api, "make_executor", make)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, data_path="ring")
    assert stats.exit_code == 23 and len(msgs) == 1 and '"big"' in msgs[0], msgs
    assert not (tmp_path / "dst" / "big").exists()
    for i in range(200):
        name = f"s{i:03}"
        assert (tmp_path / "dst" / name).read_bytes() == (src / name).read_bytes(), name


def test_sparse_file_truncated_during_its_copy(tmp_path: Path, backend: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Data at [0, 1 MiB) and [4, 5 MiB), truncated to 10 bytes between the statx
    and the copy: the copy ends where the source does, and says so."""
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        f.write(os.urandom(MIB))
        f.seek(4 * MIB)
        f.write(os.urandom(MIB))
    fix_times(src)
    if os.stat(src / "sparse").st_blocks * 512 >= 5 * MIB:
        pytest.skip("this file system does not keep holes")
    monkeypatch.setattr(api, "make_executor", make_executor)  # (restored after)
    fired = install_statx_hook(api, os.fsencode(src), {b"sparse": RACE_ACTIONS["shrink"]})
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert fired == [b"sparse"]
    assert stats.exit_code == 0, msgs
    assert stats.changed_during_copy == 1, msgs
    assert (tmp_path / "dst" / "sparse").read_bytes() == (src / "sparse").read_bytes()


def _pseudo_file() -> Path:
    """A sysfs file that says st_size 4096 (and no blocks: "sparse") but holds
    a line of text."""
    for name in ("kernel/mm/transparent_hugepage/enabled", "power/state",
                 "kernel/uevent_seqnum", "kernel/profiling", "kernel/rcu_expedited"):
        p = Path("/sys") / name
        try:
            st = p.stat()
            size = len(p.read_bytes())
        except OSError:
            continue
        if st.st_blocks == 0 and 0 < size < st.st_size:
            return p
    pytest.skip("no sysfs file here whose st_size is more than it holds")


@pytest.mark.parametrize("data_path", ["auto", "ring"])
def test_pseudo_file_is_copied_as_read_not_padded(tmp_path: Path, backend: str,
                                                  data_path: str) -> None:
    """A file that ends before its st_size (sysfs; or one truncated while its
    extents are copied) is copied as far as it could be read, and reported --
    before, the sparse path padded it with zeros up to st_size, exit 0."""
    pseudo = _pseudo_file()
    want = pseudo.read_bytes()
    stats, msgs = copy_api([pseudo], tmp_path / "copy", backend=backend,
                           data_path=data_path)
    assert stats.exit_code == 0, msgs
    assert (tmp_path / "copy").read_bytes() == want
    assert stats.changed_during_copy == 1, msgs
    assert any("changed size" in m for m in msgs), msgs


def _fsize_limit() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (MIB, MIB))


_NO_TMPFILE = """
import signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
import pyuring.copy.engine as e
e.O_TMPFILE = 0  # as on NFS, SMB, vfat: temporary names
"""


@pytest.mark.parametrize("data_path", ["auto", "ring"])
def test_no_temporary_name_left_after_write_errors(tmp_path: Path, backend: str,
                                                   data_path: str) -> None:
    """Without O_TMPFILE every file is written under a temporary name; files that
    fail (EFBIG past RLIMIT_FSIZE) must not leave theirs behind, also in
    directories that are finished right after."""
    src = tmp_path / "src"
    for d in "abc":
        write_dir = src / d
        write_dir.mkdir(parents=True)
        write(write_dir / "big", os.urandom(3 * MIB))
        write(write_dir / "small", b"small")
    fix_times(src)
    r = run_cli(["-a", "--backend", backend, "--data-path", data_path, f"{src}/",
                 str(tmp_path / "dst")], prelude=_NO_TMPFILE, preexec_fn=_fsize_limit)
    assert r.returncode in (11, 23), r
    assert "Traceback" not in r.stderr
    assert not tmp_names(tmp_path / "dst"), tmp_names(tmp_path / "dst")
    for d in "abc":
        assert (tmp_path / "dst" / d / "small").read_bytes() == b"small"
        assert not (tmp_path / "dst" / d / "big").exists()


def test_fsync_on_the_ring_data_path(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write(src / "big", os.urandom(SMALL_FILE_MAX * 3))
    write(src / "small", b"s")
    fix_times(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, data_path="ring",
                           fsync=True)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst")
    # the large file's fsync (the small one's is part of its publishing chain)
    assert stats.direct_syscalls.get("fsync", 0) == 1, stats.direct_syscalls


@requires_root
def test_xfs_sparse_file_whose_data_is_its_last_block(tmp_path: Path, backend: str) -> None:
    """XFS to the same XFS: the data was copied (cloned) past the end of the
    file and the truncate to its size came after, which left the copy with up
    to 32 times the source's blocks and data where the source has a hole.
    Now the size is set first: the copy has the source's blocks and holes."""
    with loop_fs(tmp_path, "xfs") as xfs:
        src = xfs / "src"
        src.mkdir()
        sizes = (20_000, 131_071, 200_000, 1_000_001)
        for n in sizes:
            fd = os.open(src / f"tail{n}", os.O_CREAT | os.O_WRONLY, 0o644)
            os.pwrite(fd, b"T" * 10, n - 10)
            os.close(fd)
        fix_times(src)
        stats, msgs = copy_api(src, xfs / "dst", backend=backend)
        assert msgs == [] and stats.exit_code == 0
        assert_same_tree(src, xfs / "dst")
        os.sync()
        for n in sizes:
            a, b = src / f"tail{n}", xfs / "dst" / f"tail{n}"
            assert os.stat(b).st_blocks == os.stat(a).st_blocks, n
            with open(a, "rb") as fa, open(b, "rb") as fb:
                assert os.lseek(fb.fileno(), 0, os.SEEK_DATA) == \
                    os.lseek(fa.fileno(), 0, os.SEEK_DATA), n
