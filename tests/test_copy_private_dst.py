"""Symlinks' owner and times by name where nobody else can swap them.

In a destination directory that only the copy's user and root may change
(``DirTask.dst_private``: one the copy made, or found owned by either without
group/other write, in a parent that is so too), a symlink the copy has just
made is still its own: fchownat and utimensat name it.  Anywhere else the
symlink is opened ``O_PATH`` and its target read back before anything is
changed through that fd, so that a name swapped in the meantime is refused.
The counts of direct readlinkat calls tell the two ways apart: one per symlink
(the source's) by name, two (the source's and the check's) through the fd.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest

from pyuring.copy.engine import DirTask, Engine

from .conftest import IS_ROOT, requires_root
from .test_copy_support import copy_api, write

N = 6
LINK_NS = (1_500_000_000_111_111_111, 1_400_000_000_222_222_222)  # (atime, mtime)


def _links(d: Path, n: int = N) -> List[Path]:
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = d / f"l{i}"
        os.symlink(f"../target-{i}", p)
        if IS_ROOT and i % 2:
            os.chown(p, 1000 + i, 2000 + i, follow_symlinks=False)
        os.utime(p, ns=(LINK_NS[0] + i, LINK_NS[1] + i), follow_symlinks=False)
        out.append(p)
    return out


def _same_links(src: Path, dst: Path) -> None:
    n = 0
    for dirpath, _dirs, files in os.walk(src):
        for f in files:
            s = os.lstat(os.path.join(dirpath, f))
            p = os.path.join(dst, os.path.relpath(dirpath, src), f)
            d = os.lstat(p)
            assert os.path.islink(p)
            assert os.readlink(p) == os.readlink(os.path.join(dirpath, f))
            # (not atime: reading the source's target may have updated its own)
            assert d.st_mtime_ns == s.st_mtime_ns, p
            if IS_ROOT:
                assert (d.st_uid, d.st_gid) == (s.st_uid, s.st_gid), p
            n += 1
    assert n


def _readlinks(stats: Any) -> int:
    return int(stats.direct_syscalls.get("readlinkat", 0))


@pytest.mark.parametrize("xattrs", [False, True])
def test_a_new_destination_gets_its_symlinks_metadata_by_name(tmp_path: Path, backend: str,
                                                               xattrs: bool) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _links(src)
    _links(src / "sub")
    stats, msgs = copy_api(src, dst, backend=backend, xattrs=xattrs, acls=xattrs)
    assert msgs == [] and stats.errors == 0
    _same_links(src, dst)
    assert _readlinks(stats) == 2 * N  # the sources' only: no check of what was made
    assert stats.direct_syscalls.get("utimensat", 0) >= 2 * N


def test_a_world_writable_destination_checks_each_symlink(tmp_path: Path,
                                                          backend: str) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _links(src)
    _links(src / "sub")  # a new subdirectory of a shared one is not trusted either
    dst.mkdir()
    os.chmod(dst, 0o777)
    stats, msgs = copy_api(src, dst, backend=backend)
    assert msgs == [] and stats.errors == 0
    _same_links(src, dst)
    assert _readlinks(stats) == 4 * N


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o1777])
def test_an_existing_shared_subdirectory_checks_its_symlinks_only(tmp_path: Path,
                                                                  backend: str,
                                                                  mode: int) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _links(src)
    _links(src / "shared")
    _links(src / "shared" / "below")  # made by the copy, in a directory others may change
    _links(src / "mine")
    (dst / "shared").mkdir(parents=True)
    (dst / "mine").mkdir()
    os.chmod(dst / "shared", mode)
    stats, msgs = copy_api(src, dst, backend=backend, perms=False, times=True)
    assert msgs == [] and stats.errors == 0
    _same_links(src, dst)
    # root and mine: by name (N each); shared and shared/below: checked (2N each)
    assert _readlinks(stats) == 2 * N + 4 * N


@requires_root
def test_a_destination_another_user_owns_checks_each_symlink(tmp_path: Path,
                                                             backend: str) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _links(src)
    dst.mkdir()
    os.chown(dst, 1000, 1000)  # its owner may rename entries whatever its mode
    stats, msgs = copy_api(src, dst, backend=backend)
    assert msgs == [] and stats.errors == 0
    _same_links(src, dst)
    assert _readlinks(stats) == 2 * N


def test_a_rerun_fixes_times_and_replaces_targets_by_name(tmp_path: Path,
                                                          backend: str) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    links = _links(src)
    copy_api(src, dst, backend=backend)
    os.utime(links[0], ns=(LINK_NS[0] - 5, LINK_NS[1] - 5), follow_symlinks=False)
    os.unlink(links[1])
    os.symlink("elsewhere", links[1])  # replaced: a temporary name, renamed over
    os.utime(links[1], ns=LINK_NS, follow_symlinks=False)
    stats, msgs = copy_api(src, dst, backend=backend)
    assert msgs == [] and stats.errors == 0
    _same_links(src, dst)
    assert os.readlink(dst / "l1") == "elsewhere"
    assert sorted(os.listdir(dst)) == sorted(p.name for p in links)  # no temporary left
    # every symlink: the source's and the destination's target; none read back again
    assert _readlinks(stats) == 2 * N


def test_a_symlink_swapped_in_a_shared_destination_is_left_alone(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where others may rename entries, the name is checked before anything is
    changed: a file linked in its place keeps its owner and times."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    _links(src, 1)
    dst.mkdir()
    os.chmod(dst, 0o777)
    victim = tmp_path / "victim"
    write(victim, b"not yours")
    os.utime(victim, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = os.stat(victim)
    original = Engine._on_symlinked

    def swap_then_go_on(self: Engine, job: Any, target: bytes, idx: int, res: int) -> None:
        if res >= 0:
            os.unlink(dst / "l0")
            os.link(victim, dst / "l0")
        original(self, job, target, idx, res)

    monkeypatch.setattr(Engine, "_on_symlinked", swap_then_go_on)
    stats, msgs = copy_api(src, dst, backend=backend)
    after = os.stat(victim)
    assert (after.st_mtime_ns, after.st_atime_ns, after.st_uid, after.st_gid) == \
        (before.st_mtime_ns, before.st_atime_ns, before.st_uid, before.st_gid)
    assert stats.errors == 1
    assert any("cannot set attributes" in m and "l0" in m for m in msgs), msgs


def test_dst_private_follows_the_parent(tmp_path: Path, backend: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The decision itself, for each directory of a copy into a destination
    whose root is private and has one shared subdirectory."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    for rel in ("a/b", "s/t", "m"):
        (src / rel).mkdir(parents=True)
    (dst / "s").mkdir(parents=True)
    os.chmod(dst / "s", 0o777)
    (dst / "m").mkdir()
    real_init = DirTask.__init__
    tasks: List[DirTask] = []

    def init(self: DirTask, *args: Any, **kw: Any) -> None:
        real_init(self, *args, **kw)
        tasks.append(self)

    monkeypatch.setattr(DirTask, "__init__", init)
    copy_api(src, dst, backend=backend)
    seen: Dict[bytes, bool] = {t.rel: t.dst_private for t in tasks}
    assert seen == {b"": True, b"a": True, b"a/b": True, b"s": False, b"s/t": False,
                    b"m": True}


def _mounted_tmpfs(where: Path, opts: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "pyuring-test", str(where)],
                   check=True)


@requires_root
def test_a_mount_gone_between_statx_and_open_is_judged_by_the_opened_directory(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mount over a user's own destination directory (a FUSE mount reporting
    root's 0755, say) that goes away between the copy's statx of the name and
    its open: the opened directory is the user's, and its symlinks are checked.
    (Found by review: by the statx, the user's swap of a symlink for a hard link
    to another's file gave that file the symlink's owner and times.)"""
    src, dst = tmp_path / "src", tmp_path / "dst"
    os.chmod(tmp_path, 0o755)
    _links(src / "x", 1)
    (dst / "x").mkdir(parents=True)
    os.chown(dst / "x", 1000, 1000)
    victim = tmp_path / "victim"
    write(victim, b"not yours")
    os.chown(victim, 2000, 2000)
    os.utime(victim, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    _mounted_tmpfs(dst / "x", "mode=0755,uid=0,gid=0")
    step, made = Engine._dst_dir_step, Engine._on_symlinked

    def dst_dir_step(self: Engine, job: Any, idx: int) -> None:
        if job.dst_name == b"x" and os.path.ismount(dst / "x"):
            subprocess.run(["umount", "-l", str(dst / "x")], check=True)
        step(self, job, idx)

    def on_symlinked(self: Engine, job: Any, target: bytes, idx: int, res: int) -> None:
        if res >= 0 and job.parent.rel == b"x":
            os.unlink(dst / "x" / "l0")  # (the owner of x may: as root here, the same)
            os.link(victim, dst / "x" / "l0")
        made(self, job, target, idx, res)

    monkeypatch.setattr(Engine, "_dst_dir_step", dst_dir_step)
    monkeypatch.setattr(Engine, "_on_symlinked", on_symlinked)
    try:
        stats, msgs = copy_api(src, dst, backend=backend)
    finally:
        if os.path.ismount(dst / "x"):
            subprocess.run(["umount", "-l", str(dst / "x")], check=False)
    after = os.stat(victim)
    assert (after.st_uid, after.st_gid, after.st_mtime_ns) == \
        (2000, 2000, 1_000_000_000_000_000_000)
    assert stats.errors == 1 and any("cannot set attributes" in m for m in msgs), msgs


@requires_root
def test_a_mount_point_below_the_destination_checks_its_symlinks(tmp_path: Path,
                                                                 backend: str) -> None:
    """Another file system mounted below (root's, 0755): its names are not
    judged by the parent's; its symlinks are checked."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    _links(src)
    _links(src / "m")
    (dst / "m").mkdir(parents=True)
    _mounted_tmpfs(dst / "m", "mode=0755,uid=0,gid=0")
    try:
        stats, msgs = copy_api(src, dst, backend=backend)
        assert msgs == [] and stats.errors == 0
        _same_links(src, dst)
        assert _readlinks(stats) == N + 2 * N  # the root's by name, m's checked
    finally:
        subprocess.run(["umount", "-l", str(dst / "m")], check=False)


def test_a_destination_on_a_network_or_fuse_file_system_checks_each_symlink(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """There the mode bits do not say who may rename (other clients, the
    server's ACLs, a FUSE daemon)."""
    from pyuring import _abi as A
    from pyuring import _syscall

    src, dst = tmp_path / "src", tmp_path / "dst"
    _links(src)
    monkeypatch.setattr(_syscall, "fstatfs_type", lambda fd: A.FUSE_SUPER_MAGIC)
    stats, msgs = copy_api(src, dst, backend=backend)
    assert msgs == [] and stats.errors == 0
    _same_links(src, dst)
    assert _readlinks(stats) == 2 * N
