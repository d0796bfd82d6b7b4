"""Re-runs onto an existing destination: cases a review found wrong
(2026-12-03); each test failed before its fix."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any, List

import pytest

from pyuring import _syscall
from pyuring.copy import Copier, Options

from .test_copy_support import copy_api, fix_times, write


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
    first = os.listdir(src)[0]
    assert any(line == f"hf+++++++++ {second} => {first}" for line in items), items
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


def test_hard_linked_symlinks_retargeted(tmp_path: Path, backend: str) -> None:
    """Both names of a hard-linked symlink point elsewhere on the re-run: both
    are updated (the first name is re-created; the second must not be taken as
    unchanged because it is the first's *old* inode)."""
    src = tmp_path / "src"
    src.mkdir()
    os.symlink("A", src / "l1")
    os.link(src / "l1", src / "l2", follow_symlinks=False)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, hard_links=True)
    assert stats.exit_code == 0, msgs
    for n in ("l1", "l2"):
        os.unlink(src / n)
    os.symlink("B", src / "l1")
    os.link(src / "l1", src / "l2", follow_symlinks=False)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, hard_links=True)
    assert stats.exit_code == 0, msgs
    dst = tmp_path / "dst"
    assert os.readlink(dst / "l1") == os.readlink(dst / "l2") == "B"
    assert os.lstat(dst / "l1").st_ino == os.lstat(dst / "l2").st_ino


def test_skipped_entries_leave_a_directory_of_their_name(tmp_path: Path,
                                                         backend: str) -> None:
    """-r without -l/-D: a symlink or FIFO is skipped, and an (empty) directory of
    that name in the destination is not removed for it, as with rsync -r."""
    src = tmp_path / "src"
    src.mkdir()
    os.symlink("t", src / "x")
    os.mkfifo(src / "p")
    for n in ("x", "p"):
        (tmp_path / "dst" / n).mkdir(parents=True)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend,
                           opts=Options(recursive=True))
    assert stats.skipped == 2, msgs
    assert (tmp_path / "dst" / "x").is_dir() and (tmp_path / "dst" / "p").is_dir()


def test_capability_survives_an_owner_change(tmp_path: Path, backend: str) -> None:
    """-X re-run of an unchanged file whose owner changed: the chown comes before
    the xattrs (a chown clears security.capability)."""
    import struct

    cap = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)  # cap_net_bind_service
    src = tmp_path / "src"
    src.mkdir()
    write(src / "f", b"x")
    fix_times(src)
    try:
        os.setxattr(src / "f", "security.capability", cap)
    except OSError as exc:
        pytest.skip(f"cannot set file capabilities here: {exc}")
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True)
    assert stats.exit_code == 0, msgs
    os.chown(src / "f", 1234, 1234)
    os.setxattr(src / "f", "security.capability", cap)  # (the chown cleared it)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True)
    assert stats.exit_code == 0, msgs
    assert os.stat(tmp_path / "dst" / "f").st_uid == 1234
    assert os.getxattr(tmp_path / "dst" / "f", "security.capability") == cap


def test_a_special_file_that_cannot_be_made_leaves_the_old_entry(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The destination has a regular file where the source now has a FIFO, and
    the node cannot be made (EPERM, as a device for a non-root user): the old
    file stays -- it is replaced only by a node that exists."""
    from pyuring.copy import api
    from pyuring.executor import make_executor

    src = tmp_path / "src"
    src.mkdir()
    write(src / "n", b"old contents")
    fix_times(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert stats.exit_code == 0, msgs
    os.unlink(src / "n")
    os.mkfifo(src / "n")

    def make(*a: Any, **kw: Any) -> Any:
        ex = make_executor(*a, **kw)

        def refuse(*_a: Any, **_k: Any) -> None:
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))

        ex.mknodat = refuse  # type: ignore[method-assign]
        return ex

    monkeypatch.setattr(api, "make_executor", make)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert stats.exit_code == 23 and len(msgs) == 1, msgs
    assert (tmp_path / "dst" / "n").read_bytes() == b"old contents"
    assert sorted(os.listdir(tmp_path / "dst")) == ["n"]  # (no temporary name left)
    monkeypatch.undo()
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)  # now it can
    assert stats.exit_code == 0, msgs
    assert stat.S_ISFIFO(os.lstat(tmp_path / "dst" / "n").st_mode)


def test_unchanged_fifo_gets_its_new_mode_owner_and_times(tmp_path: Path,
                                                          backend: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "p", 0o600)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert stats.exit_code == 0, msgs
    os.chmod(src / "p", 0o644)
    os.chown(src / "p", 1234, 1234)
    os.utime(src / "p", ns=(10**18, 10**18))
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert stats.exit_code == 0, msgs
    s, d = os.lstat(src / "p"), os.lstat(tmp_path / "dst" / "p")
    assert (d.st_mode, d.st_uid, d.st_gid, d.st_mtime_ns) == \
        (s.st_mode, s.st_uid, s.st_gid, s.st_mtime_ns)


def test_a_file_vanishing_during_the_unchanged_xattr_sync(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """-X re-run: an unchanged file removed from the source between its statx and
    the xattr sync is a vanished file (exit 24), not an error (23)."""
    from pyuring.copy import api
    from pyuring.executor import make_executor

    from .test_copy_support import RACE_ACTIONS, install_statx_hook

    src = tmp_path / "src"
    src.mkdir()
    write(src / "v", b"x")
    write(src / "w", b"y")
    fix_times(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True)
    assert stats.exit_code == 0, msgs
    monkeypatch.setattr(api, "make_executor", make_executor)  # (restored after)
    fired = install_statx_hook(api, os.fsencode(src), {b"v": RACE_ACTIONS["vanish"]})
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True)
    assert fired == [b"v"]
    assert stats.exit_code == 24 and stats.vanished == 1 and stats.errors == 0, msgs
