"""Re-runs onto an existing destination: cases a review found wrong
(2026-12-03); each test failed before its fix."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any, List

import pytest

from pyuring import _syscall
from pyuring.copy import Copier, Options

from .test_copy_support import check_backend, copy_api, fix_times, write


@pytest.fixture(params=["uring", "sync"])
def backend(request: pytest.FixtureRequest) -> str:
    return check_backend(str(request.param))


def test_dry_run_rerun_of_a_large_hard_link_group(tmp_path: Path, backend: str) -> None:
    """The first name unchanged, in a dry run: the other 300 names must not wait
    for ever on a group that never becomes ready."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "a", b"x")
    for i in range(300):
        os.link(src / "a", src / f"n{i:03}")
    fix_times(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, hard_links=True)
    assert stats.exit_code == 0, msgs
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, hard_links=True,
                           dry_run=True)
    assert stats.exit_code == 0 and msgs == [], msgs
    assert stats.unchanged == 301


def test_dry_run_rerun_lists_a_missing_hard_link(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write(src / "a", b"x")
    os.link(src / "a", src / "b")
    fix_times(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, hard_links=True)
    assert stats.exit_code == 0, msgs
    second = os.listdir(src)[1]  # (walked after the first name of the group)
    os.unlink(tmp_path / "dst" / second)
    items: List[str] = []
    opts = Options.archive(hard_links=True, dry_run=True, backend=backend)
    stats = Copier(opts, items.append, items.append).run(
        [os.fsencode(src) + b"/"], os.fsencode(tmp_path / "dst"))
    assert stats.exit_code == 0, items
    assert any(line == f"hf+++++++++ {second}" for line in items), items
    assert not (tmp_path / "dst" / second).exists()


def test_dry_run_changes_nothing_on_an_unchanged_symlink(tmp_path: Path,
                                                         backend: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    os.symlink("T", src / "l")
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert stats.exit_code == 0, msgs
    os.utime(src / "l", ns=(10**18, 10**18), follow_symlinks=False)
    os.lchown(src / "l", 4321, 4321)
    before = os.lstat(tmp_path / "dst" / "l")
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, dry_run=True)
    after = os.lstat(tmp_path / "dst" / "l")
    assert stats.exit_code == 0, msgs
    assert (after.st_mtime_ns, after.st_uid) == (before.st_mtime_ns, before.st_uid)


def test_mode_fix_without_fchmodat2(tmp_path: Path, backend: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels before 6.6 have no fchmodat2: an unchanged file's new mode is set
    through the O_PATH fd's /proc/self/fd link instead of failing."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "f", b"x")
    os.chmod(src / "f", 0o600)
    fix_times(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert stats.exit_code == 0, msgs
    os.chmod(src / "f", 0o640)
    real = _syscall.raw

    def no_fchmodat2(name: str, *a: Any) -> int:
        if name == "fchmodat2":
            raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))
        return real(name, *a)

    monkeypatch.setattr(_syscall, "raw", no_fchmodat2)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert stats.exit_code == 0 and msgs == [], msgs
    assert os.stat(tmp_path / "dst" / "f").st_mode & 0o7777 == 0o640
