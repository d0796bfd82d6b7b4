"""What a copy keeps: the destination compared with the source attribute by attribute.

Every test runs on both backends (io_uring and plain syscalls), in-process
through ``Copier`` (the CLI's own entry point below argument parsing).  Source
times are set after all writes, atimes in the future, so that neither the copy
nor the comparison moves them.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from pyuring.copy import Options, api
from pyuring.executor import make_executor

from .conftest import IS_ROOT, requires_root
from .test_copy_support import (
    RACE_ACTIONS,
    SMALL_FILE_MAX,
    UNPRIV_PRELUDE,
    acl_blob,
    archive_all,
    build_mixed_tree,
    copy_api,
    fix_times,
    install_statx_hook,
    linked_specials,
    make_socket,
    make_sparse,
    run_cli,
    set_times,
    traversable,
    write,
)
from .treecompare import assert_same_tree, diff_trees, snapshot

# --------------------------------------------------------------------------------------
# regular files
# --------------------------------------------------------------------------------------
SIZES = [0, 1, 2, 4095, 4096, 4097, SMALL_FILE_MAX - 1, SMALL_FILE_MAX, SMALL_FILE_MAX + 1,
         (3 << 20) + 17]


@pytest.mark.parametrize("data_path", ["auto", "ring", "copy_file_range"])
def test_regular_files_byte_identical(tmp_path: Path, backend: str, data_path: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for size in SIZES:
        write(src / f"f{size}", os.urandom(size))
    # content that a buggy offset would betray: every 4 KiB block differs
    write(src / "blocks", b"".join(i.to_bytes(4, "big") * 1024 for i in range(300)))
    fix_times(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, data_path=data_path)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst")
    assert stats.regular_files == len(SIZES) + 1
    assert stats.transferred == len(SIZES) + 1
    total = sum(SIZES) + 300 * 4096
    assert stats.bytes_total == total
    assert stats.bytes_transferred == total
    assert stats.errors == stats.vanished == stats.changed_during_copy == 0


def test_mixed_tree_aHAX(tmp_path: Path, backend: str) -> None:
    src = build_mixed_tree(tmp_path / "src")
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, opts=archive_all())
    assert stats.exit_code == 0, msgs
    assert msgs == []
    assert_same_tree(src, tmp_path / "dst")
    assert stats.hardlinks == 1
    assert stats.symlinks == 3
    assert stats.specials == 2


def test_small_file_max_option(tmp_path: Path, backend: str) -> None:
    """The small/large boundary moves with small_file_max; contents stay exact."""
    src = tmp_path / "src"
    src.mkdir()
    for size in (4095, 4096, 4097, 10000):
        write(src / f"f{size}", os.urandom(size))
    fix_times(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, small_file_max=4096)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst")


# --------------------------------------------------------------------------------------
# modes, owners, times
# --------------------------------------------------------------------------------------
FILE_MODES = [0o644, 0o600, 0o755, 0o700, 0o444, 0o777, 0o4755, 0o2755, 0o6755,
              0o4711, 0o2711, 0o1755, 0o7777]
DIR_MODES = [0o755, 0o700, 0o1777, 0o2775, 0o3777, 0o555, 0o500]
if IS_ROOT:  # entries their owner cannot read: only root copies them
    FILE_MODES += [0o000, 0o200, 0o111]
    DIR_MODES += [0o311, 0o000]


def test_modes_including_special_bits(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for m in FILE_MODES:
        write(src / f"f{m:o}", b"x" * (m % 7), m)
    for m in DIR_MODES:
        d = src / f"d{m:o}"
        d.mkdir()
        write(d / "inside", b"content")
        os.chmod(d, m)
    fix_times(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst")
    for m in FILE_MODES:
        assert stat.S_IMODE(os.lstat(tmp_path / "dst" / f"f{m:o}").st_mode) == m
    for m in DIR_MODES:
        assert stat.S_IMODE(os.lstat(tmp_path / "dst" / f"d{m:o}").st_mode) == m


@requires_root
def test_owner_and_group_as_root(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    write(src / "plain", b"p")
    write(src / "suid", b"s", 0o6755)
    write(src / "sub" / "f", b"f")
    write(src / "gid-only", b"g")
    os.mkfifo(src / "fifo")
    os.symlink("plain", src / "link")
    for name, (uid, gid) in {"plain": (1234, 5678), "suid": (1234, 5678), "sub": (4321, 8765),
                             "sub/f": (65534, 65534), "fifo": (1234, 0),
                             "gid-only": (0, 5678)}.items():
        os.chown(src / name, uid, gid)
    os.lchown(src / "link", 2222, 3333)
    os.chmod(src / "suid", 0o6755)  # chown cleared the bits
    fix_times(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst")
    st = os.lstat(tmp_path / "dst" / "suid")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o6755)
    st = os.lstat(tmp_path / "dst" / "link")
    assert (st.st_uid, st.st_gid) == (2222, 3333)


TIMES = {
    b"pre1970": -1_500_000_001,  # 1969-12-14, 999999999 ns
    b"epoch": 0,
    b"one-ns": 1,
    b"far-future": 4_102_444_800_123_456_789,  # 2100
    b"y2038": 2_147_483_648_000_000_001,
    b"recent": 1_700_000_000_987_654_321,
}


def test_times_to_the_nanosecond(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    special: Dict[bytes, int] = {}
    for name, t in TIMES.items():
        n = name.decode()
        write(src / n, n.encode())
        (src / f"dir-{n}").mkdir()
        write(src / f"dir-{n}" / "f", b"x")
        os.symlink(n, src / f"link-{n}")
        special[name] = t
        special[b"dir-" + name] = t
        special[b"link-" + name] = t
    special[b"."] = -86_400_000_000_001
    fix_times(src, special=special)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst")
    for name, t in TIMES.items():
        for prefix in (b"", b"dir-", b"link-"):
            p = os.path.join(os.fsencode(tmp_path / "dst"), prefix + name)
            assert os.lstat(p).st_mtime_ns == t, (p, t)


# --------------------------------------------------------------------------------------
# symlinks, hard links, special files
# --------------------------------------------------------------------------------------
def test_symlinks_copied_as_symlinks(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    (src / "dir").mkdir(parents=True)
    write(src / "target", b"t")
    os.symlink("target", src / "relative")
    os.symlink("../target", src / "dir" / "up")
    os.symlink(str(src / "target"), src / "absolute")
    os.symlink("does/not/exist", src / "dangling")
    os.symlink("dir", src / "to-dir")
    os.symlink("self", src / "self")  # a loop
    os.symlink("x" * 4000, src / "long-target")
    os.symlink(b"\xff\xfe-not-utf8", os.fsencode(src / "binary-target"))
    fix_times(src, special={b"relative": -5_000_000_007, b"dangling": 3_000_000_000_000_000_001})
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst")
    assert os.path.islink(tmp_path / "dst" / "to-dir")
    assert os.readlink(tmp_path / "dst" / "absolute") == str(src / "target")
    assert stats.symlinks == 8


def _hardlink_tree(src: Path) -> None:
    (src / "a" / "b").mkdir(parents=True)
    (src / "c").mkdir()
    write(src / "a" / "first", b"group of four")
    for p in ("a/b/second", "c/third", "fourth"):
        os.link(src / "a" / "first", src / p)
    write(src / "pair1", os.urandom(SMALL_FILE_MAX + 5))  # a large-path group
    os.link(src / "pair1", src / "c" / "pair2")
    write(src / "empty1")
    os.link(src / "empty1", src / "a" / "empty2")
    write(src / "lonely", b"its other name is outside the tree")
    os.link(src / "lonely", src.parent / "outside-link")
    write(src / "single", b"no links")
    fix_times(src)


def test_hard_links_preserved_with_H(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    _hardlink_tree(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, hard_links=True)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst")
    dst = tmp_path / "dst"
    first = os.lstat(dst / "a" / "first")
    assert first.st_nlink == 4
    for p in ("a/b/second", "c/third", "fourth"):
        assert os.lstat(dst / p).st_ino == first.st_ino
    assert os.lstat(dst / "pair1").st_ino == os.lstat(dst / "c" / "pair2").st_ino
    assert os.lstat(dst / "lonely").st_nlink == 1
    assert stats.hardlinks == 5
    assert stats.transferred == 5  # first, pair1, empty1, lonely, single


def test_hard_links_without_H_are_separate_files(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    _hardlink_tree(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst", hardlinks=False)
    inos = set()
    for dirpath, _dirs, files in os.walk(tmp_path / "dst"):
        for n in files:
            st = os.lstat(os.path.join(dirpath, n))
            assert st.st_nlink == 1, n
            inos.add(st.st_ino)
    assert len(inos) == 10
    assert stats.hardlinks == 0


def test_hard_linked_fifos_and_symlinks_with_H(tmp_path: Path, backend: str) -> None:
    src = linked_specials(tmp_path / "src")
    fix_times(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, hard_links=True)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst")


def test_hard_links_across_source_arguments(tmp_path: Path, backend: str) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write(tmp_path / "a" / "f", b"one inode, two sources")
    os.link(tmp_path / "a" / "f", tmp_path / "b" / "g")
    fix_times(tmp_path / "a")
    fix_times(tmp_path / "b")
    dst = tmp_path / "dst"
    stats, msgs = copy_api([str(tmp_path / "a"), str(tmp_path / "b")], dst, backend=backend,
                           hard_links=True)
    assert stats.exit_code == 0, msgs
    assert os.lstat(dst / "a" / "f").st_ino == os.lstat(dst / "b" / "g").st_ino


def test_fifos_and_sockets_with_specials(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    os.mkfifo(src / "fifo", 0o640)
    os.mkfifo(src / "sub" / "fifo2", 0o600)
    make_socket(src / "sock")
    make_socket(src / "sub" / "sock2")
    os.chmod(src / "sock", 0o700)
    fix_times(src, special={b"fifo": -7_000_000_001})
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "dst" / "fifo").st_mode)
    assert stat.S_ISSOCK(os.lstat(tmp_path / "dst" / "sub" / "sock2").st_mode)
    assert stats.specials == 4


@requires_root
def test_device_nodes_as_root(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    os.mknod(src / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(src / "big-numbers", 0o600 | stat.S_IFCHR, os.makedev(4095, 1048575))
    os.mknod(src / "loop", 0o660 | stat.S_IFBLK, os.makedev(7, 0))
    os.chown(src / "loop", 0, 6)
    fix_times(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst")
    assert os.lstat(tmp_path / "dst" / "big-numbers").st_rdev == os.makedev(4095, 1048575)
    assert stat.S_ISBLK(os.lstat(tmp_path / "dst" / "loop").st_mode)


@requires_root
def test_setuid_special_files_owned_by_others(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "fifo")
    os.mknod(src / "dev", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    for name, mode in (("fifo", 0o4755), ("dev", 0o2640)):
        os.chown(src / name, 1234, 5678)
        os.chmod(src / name, mode)
    fix_times(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst")


# --------------------------------------------------------------------------------------
# xattrs and ACLs
# --------------------------------------------------------------------------------------
def _xattr_tree(src: Path) -> None:
    (src / "dir").mkdir(parents=True)
    write(src / "file", b"data")
    write(src / "big", os.urandom(SMALL_FILE_MAX * 2))
    write(src / "dir" / "inner", b"inner")
    write(src / "plain", b"no xattrs")
    os.symlink("file", src / "link")
    os.mkfifo(src / "fifo")
    os.setxattr(src / "file", "user.text", b"hello")
    os.setxattr(src / "file", "user.binary", bytes(range(256)))
    os.setxattr(src / "file", "user.empty", b"")
    os.setxattr(src / "big", "user.large", os.urandom(3000))
    os.setxattr(src / "dir", "user.on-dir", b"d")
    os.setxattr(src / "dir" / "inner", "user.inner", b"i")
    if IS_ROOT:
        os.setxattr(src / "file", "trusted.t", b"trusted value")
        os.setxattr(src / "dir", "trusted.d", b"td")
        os.setxattr(src / "link", "trusted.on-link", b"l", follow_symlinks=False)
    fix_times(src)


def test_xattrs_with_X(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    _xattr_tree(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True)
    assert stats.exit_code == 0, msgs
    assert msgs == []
    assert_same_tree(src, tmp_path / "dst")
    assert os.getxattr(tmp_path / "dst" / "file", "user.binary") == bytes(range(256))
    if IS_ROOT:
        assert os.getxattr(tmp_path / "dst" / "link", "trusted.on-link",
                           follow_symlinks=False) == b"l"


def test_X_on_a_file_that_grows_during_the_copy(tmp_path: Path, backend: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The small path's source fd (kept for the xattrs) is closed when the file turns
    out to have grown and is copied the large way instead: no fd is left open."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "victim", b"v" * 100)
    os.setxattr(src / "victim", "user.v", b"kept")
    for i in range(5):
        write(src / f"other{i}", b"o" * i)
    fix_times(src)
    monkeypatch.setattr(api, "make_executor", make_executor)  # (restored after)
    fired = install_statx_hook(api, os.fsencode(src), {b"victim": RACE_ACTIONS["grow"]})
    before = sorted(os.listdir("/proc/self/fd"))
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True)
    assert fired == [b"victim"]
    assert sorted(os.listdir("/proc/self/fd")) == before
    assert stats.exit_code == 0, msgs
    assert stats.changed_during_copy == 1  # reported; copied to its new end
    assert (tmp_path / "dst" / "victim").read_bytes() == (src / "victim").read_bytes()
    assert os.getxattr(tmp_path / "dst" / "victim", "user.v") == b"kept"


@requires_root
def test_xattrs_on_special_files_with_X(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "fifo")
    make_socket(src / "sock")
    os.mknod(src / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    for name in ("fifo", "sock", "null"):
        os.setxattr(src / name, "trusted.on-special", name.encode())
    fix_times(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst")


def test_no_xattrs_without_X(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    _xattr_tree(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst", xattrs=False)
    snap = snapshot(tmp_path / "dst")
    assert {rel: e.xattrs for rel, e in snap.items() if e.xattrs} == {}


needs_setfacl = pytest.mark.skipif(shutil.which("setfacl") is None or
                                   shutil.which("getfacl") is None,
                                   reason="needs setfacl/getfacl (package acl)")


def _acl_tree(src: Path) -> None:
    (src / "dir" / "sub").mkdir(parents=True)
    write(src / "file", b"acl'd")
    write(src / "dir" / "sub" / "f", b"f")
    write(src / "plain", b"plain")
    subprocess.run(["setfacl", "-m", "u:1234:rwx,g:5678:r,m::rwx", str(src / "file")],
                   check=True)
    subprocess.run(["setfacl", "-m", "u:1234:rx", str(src / "dir")], check=True)
    subprocess.run(["setfacl", "-d", "-m", "u:1234:rx,g:5678:rwx", str(src / "dir")],
                   check=True)
    subprocess.run(["setfacl", "-d", "-m", "u:4321:r", str(src / "dir" / "sub")], check=True)
    fix_times(src)


def _getfacl(root: Path) -> str:
    r = subprocess.run(["getfacl", "-R", "-p", "."], cwd=root, capture_output=True, text=True,
                       check=True)
    return r.stdout


@needs_setfacl
def test_acls_with_A(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    _acl_tree(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, acls=True)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst")
    assert _getfacl(src) == _getfacl(tmp_path / "dst")
    assert "default:user:1234:r-x" in _getfacl(tmp_path / "dst")


@needs_setfacl
def test_acls_not_copied_by_X_alone(tmp_path: Path, backend: str) -> None:
    """As in rsync, -X leaves the system.posix_acl_* attributes to -A."""
    src = tmp_path / "src"
    _acl_tree(src)
    os.setxattr(src / "file", "user.kept", b"yes")
    fix_times(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, xattrs=True)
    assert stats.exit_code == 0, msgs
    dst = tmp_path / "dst"
    assert os.getxattr(dst / "file", "user.kept") == b"yes"
    for p in (dst / "file", dst / "dir"):
        names = os.listxattr(p)
        assert not [n for n in names if n.startswith("system.posix_acl")], (p, names)
    # the permission bits still follow the source's mode (owner/mask/other)
    assert os.lstat(dst / "file").st_mode == os.lstat(src / "file").st_mode


def test_acls_as_raw_xattrs_with_A(tmp_path: Path, backend: str) -> None:
    """ACLs set without setfacl (the kernel's binary format), on files and dirs."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    write(src / "f", b"x", 0o640)
    os.setxattr(src / "f", "system.posix_acl_access", acl_blob(0o640, users=[(1234, 6)]))
    os.setxattr(src / "d", "system.posix_acl_default", acl_blob(0o750, groups=[(5678, 5)]))
    fix_times(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, acls=True)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst")


# --------------------------------------------------------------------------------------
# sparse files, directories
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("data_path", ["auto", "ring"])
def test_sparse_files_keep_their_holes(tmp_path: Path, backend: str, data_path: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    make_sparse(src / "scattered", 64 << 20,
                [(0, b"head"), ((1 << 20) + 5, b"x" * 10000), (40 << 20, b"mid"),
                 ((64 << 20) - 3, b"end")])
    make_sparse(src / "all-hole", 10 << 20, [])
    make_sparse(src / "trailing-hole", 32 << 20, [(0, os.urandom(100_000))])
    make_sparse(src / "small-sparse", 100_000, [(90_000, b"tail")])
    fix_times(src)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, data_path=data_path)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst")
    for name in ("scattered", "all-hole", "trailing-hole"):
        s, d = os.lstat(src / name), os.lstat(tmp_path / "dst" / name)
        assert d.st_size == s.st_size
        assert d.st_blocks <= s.st_blocks + 64, (name, s.st_blocks, d.st_blocks)


def test_empty_and_nested_directories(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    (src / "a" / "b" / "c" / "d" / "e").mkdir(parents=True)
    (src / "empty").mkdir()
    (src / "x" / "empty-too").mkdir(parents=True)
    fix_times(src, special={b"a/b/c": 123_456_789_987_654_321, b"empty": -1})
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst")
    assert stats.dirs == 8


def test_readonly_directories_copy_and_keep_mode_and_mtime(tmp_path: Path,
                                                           backend: str) -> None:
    src = tmp_path / "src"
    (src / "ro" / "deeper").mkdir(parents=True)
    write(src / "ro" / "f", b"file in a read-only dir", 0o444)
    write(src / "ro" / "deeper" / "g", b"g")
    os.chmod(src / "ro" / "deeper", 0o500)
    os.chmod(src / "ro", 0o555)
    fix_times(src, special={b"ro": 1_111_111_111_222_222_222})
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst")
    st = os.lstat(tmp_path / "dst" / "ro")
    assert stat.S_IMODE(st.st_mode) == 0o555
    assert st.st_mtime_ns == 1_111_111_111_222_222_222


@requires_root
def test_readonly_directories_as_non_root(tmp_path: Path, backend: str) -> None:
    """Without root's override a 0555 directory can only be filled before its mode is set."""
    work = tmp_path / "work"
    src = work / "src"
    (src / "ro" / "sub").mkdir(parents=True)
    write(src / "ro" / "f", b"f", 0o444)
    write(src / "ro" / "sub" / "g", b"g", 0o400)
    for dirpath, dirs, files in os.walk(work):
        for n in [dirpath, *[os.path.join(dirpath, x) for x in dirs + files]]:
            os.chown(n, 65534, 65534)
    os.chmod(src / "ro" / "sub", 0o500)
    os.chmod(src / "ro", 0o555)
    fix_times(src, special={b"ro": 1_000_000_000_000_000_001})
    with traversable(work):
        r = run_cli(["-a", "--backend", backend, f"{src}/", str(work / "dst")],
                    prelude=UNPRIV_PRELUDE, cwd="/")
    assert r.returncode == 0, r
    assert "Traceback" not in r.stderr
    assert_same_tree(src, work / "dst")


# --------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------
ODD_NAMES = [b"\xff\xfe", b"caf\xc3\xa9", b"caf\xe9-latin1", b"a\nb", b"tab\there",
             b" leading space", b"trailing space ", b"-n", b"--help", b"...", b"*?[",
             b"n" * 255, b"\x01\x02\x7f", b"back\\slash", b"quote\"'"]


def test_odd_names(tmp_path: Path, backend: str) -> None:
    src = os.fsencode(tmp_path / "src")
    os.mkdir(src)
    for i, n in enumerate(ODD_NAMES):
        write(os.path.join(src, n), n * (i % 3))
    os.mkdir(os.path.join(src, b"\xfe-dir"))
    write(os.path.join(src, b"\xfe-dir", b"m" * 255), b"deep long name")
    os.symlink(b"\xff\xfe", os.path.join(src, b"\xe9-link"))
    os.mkfifo(os.path.join(src, b"fifo\nname"))
    fix_times(src)
    dst = os.fsencode(tmp_path / "dst")
    stats, msgs = copy_api(src, dst, backend=backend)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, dst)
    assert sorted(os.listdir(dst)) == sorted(os.listdir(src))


# --------------------------------------------------------------------------------------
# what SRC and DST mean (rsync's trailing-slash rule)
# --------------------------------------------------------------------------------------
@pytest.fixture
def small_src(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    write(src / "a", b"a")
    write(src / "sub" / "b", b"b")
    fix_times(src, special={b".": 999_999_999_000_000_001})
    return src


def test_trailing_slash_copies_contents(tmp_path: Path, backend: str, small_src: Path) -> None:
    dst = tmp_path / "dst"
    stats, msgs = copy_api([f"{small_src}/"], dst, backend=backend)
    assert stats.exit_code == 0, msgs
    assert sorted(os.listdir(dst)) == ["a", "sub"]
    assert_same_tree(small_src, dst)


def test_no_slash_copies_the_directory_into_new_dst(tmp_path: Path, backend: str,
                                                     small_src: Path) -> None:
    dst = tmp_path / "dst"
    stats, msgs = copy_api([str(small_src)], dst, backend=backend)
    assert stats.exit_code == 0, msgs
    assert os.listdir(dst) == ["src"]
    assert_same_tree(small_src, dst / "src")


def test_no_slash_copies_the_directory_into_existing_dst(tmp_path: Path, backend: str,
                                                          small_src: Path) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    write(dst / "keep", b"already here")
    stats, msgs = copy_api([str(small_src)], dst, backend=backend)
    assert stats.exit_code == 0, msgs
    assert sorted(os.listdir(dst)) == ["keep", "src"]
    assert (dst / "keep").read_bytes() == b"already here"
    assert_same_tree(small_src, dst / "src")


def test_single_file_to_a_new_name(tmp_path: Path, backend: str, small_src: Path) -> None:
    stats, msgs = copy_api([str(small_src / "a")], tmp_path / "renamed", backend=backend)
    assert stats.exit_code == 0, msgs
    assert (tmp_path / "renamed").read_bytes() == b"a"
    s, d = os.lstat(small_src / "a"), os.lstat(tmp_path / "renamed")
    assert (d.st_mode, d.st_mtime_ns) == (s.st_mode, s.st_mtime_ns)


def test_single_file_replaces_an_existing_file(tmp_path: Path, backend: str,
                                               small_src: Path) -> None:
    write(tmp_path / "old", b"old content, longer")
    stats, msgs = copy_api([str(small_src / "a")], tmp_path / "old", backend=backend)
    assert stats.exit_code == 0, msgs
    assert (tmp_path / "old").read_bytes() == b"a"


def test_single_file_into_existing_dir(tmp_path: Path, backend: str, small_src: Path) -> None:
    (tmp_path / "into").mkdir()
    stats, msgs = copy_api([str(small_src / "sub" / "b")], tmp_path / "into", backend=backend)
    assert stats.exit_code == 0, msgs
    assert os.listdir(tmp_path / "into") == ["b"]
    assert (tmp_path / "into" / "b").read_bytes() == b"b"


def test_multiple_sources_into_a_dir(tmp_path: Path, backend: str, small_src: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    write(other / "o1", b"o1")
    write(tmp_path / "loose", b"loose file")
    os.symlink("loose", tmp_path / "loose-link")
    fix_times(other)
    dst = tmp_path / "dst"
    stats, msgs = copy_api([str(small_src), f"{other}/", str(tmp_path / "loose"),
                            str(tmp_path / "loose-link")], dst, backend=backend)
    assert stats.exit_code == 0, msgs
    assert sorted(os.listdir(dst)) == ["loose", "loose-link", "o1", "src"]
    assert_same_tree(small_src, dst / "src")
    assert os.readlink(dst / "loose-link") == "loose"


def test_symlink_root_with_trailing_slash_is_followed(tmp_path: Path, backend: str,
                                                      small_src: Path) -> None:
    os.symlink(small_src, tmp_path / "via-link")
    stats, msgs = copy_api([f"{tmp_path / 'via-link'}/"], tmp_path / "dst", backend=backend)
    assert stats.exit_code == 0, msgs
    assert_same_tree(small_src, tmp_path / "dst")


def test_symlink_root_without_slash_is_copied_as_symlink(tmp_path: Path, backend: str,
                                                         small_src: Path) -> None:
    """... into an existing directory; to a new name (DST itself), as rsync and
    cp make it, when DST does not exist."""
    os.symlink(small_src, tmp_path / "via-link")
    (tmp_path / "dst").mkdir()
    stats, msgs = copy_api([str(tmp_path / "via-link")], tmp_path / "dst", backend=backend)
    assert stats.exit_code == 0, msgs
    assert os.readlink(tmp_path / "dst" / "via-link") == str(small_src)
    stats, msgs = copy_api([str(tmp_path / "via-link")], tmp_path / "new", backend=backend)
    assert stats.exit_code == 0, msgs
    assert os.readlink(tmp_path / "new") == str(small_src)


@pytest.mark.parametrize("bad", [{"queue_depth": 8.5}, {"queue_depth": "8"},
                                 {"queue_depth": None}, {"io_workers": "auto"},
                                 {"hard_links": "yes"}, {"backend": 1},
                                 {"max_files_in_flight": True}])
def test_api_options_of_the_wrong_type_are_a_copy_error(tmp_path: Path,
                                                        bad: Dict[str, object]) -> None:
    """Before, 8.5 got through validate() to a ctypes.ArgumentError deep in the
    ring's setup, and "8" or None to a TypeError from a comparison."""
    from pyuring.copy import Copier, CopyError, copytree

    (tmp_path / "src").mkdir()
    write(tmp_path / "src" / "f", b"x")
    with pytest.raises(CopyError) as err:
        copytree(tmp_path / "src", tmp_path / "dst", **bad)  # type: ignore[arg-type]
    assert next(iter(bad)) in str(err.value) and err.value.exit_code == 1
    with pytest.raises(CopyError):
        Copier(Options.archive(**bad), print).run([tmp_path / "src"], tmp_path / "dst2")
    assert not (tmp_path / "dst").exists() and not (tmp_path / "dst2").exists()


def test_api_leaves_the_callers_options_alone(tmp_path: Path, backend: str) -> None:
    """copytree(options=o, dry_run=True) does not turn o into a dry run for the
    next call; Copier.run takes one path as one source, not as its letters."""
    from pyuring.copy import Copier, copytree

    src = tmp_path / "src"
    src.mkdir()
    write(src / "f", b"x")
    o = Options.archive(backend=backend)
    before = o.as_dict()
    copytree(src, tmp_path / "dry", options=o, dry_run=True, verbose=1)
    assert o.as_dict() == before and not (tmp_path / "dry").exists()
    stats = copytree(src, tmp_path / "real", options=o)
    assert stats.exit_code == 0 and (tmp_path / "real" / "f").read_bytes() == b"x"
    msgs: List[str] = []
    stats = Copier(o, msgs.append).run(str(src / "f"), str(tmp_path / "one"))
    assert stats.exit_code == 0 and msgs == []
    assert (tmp_path / "one").read_bytes() == b"x"


def test_copytree_api(tmp_path: Path, backend: str) -> None:
    """copytree(src, dst, **options) -> CopyStats, shaped like shutil.copytree."""
    from pyuring.copy import CopyError, CopyStats, copytree

    src = build_mixed_tree(tmp_path / "src", big=1 << 20)
    msgs: List[str] = []
    stats = copytree(src, tmp_path / "dst", backend=backend, hard_links=True, xattrs=True,
                     acls=True, report=msgs.append)
    assert isinstance(stats, CopyStats)
    assert stats.exit_code == 0 and msgs == []
    assert_same_tree(src, tmp_path / "dst")
    # the trailing-slash rule does not apply: copytree always copies the contents
    stats = copytree(str(src), str(tmp_path / "dst2"), options=Options.archive(backend=backend))
    assert sorted(os.listdir(tmp_path / "dst2")) == sorted(os.listdir(src))
    with pytest.raises(TypeError):
        copytree(src, tmp_path / "dst3", no_such_option=True)
    with pytest.raises(CopyError) as err:
        copytree(src, src / "d1" / "inner", backend=backend)
    assert err.value.exit_code == 1 and "inside" in str(err.value)
    with pytest.raises(CopyError):
        copytree(src, tmp_path / "dst4", backend="fast")
    assert not (src / "d1" / "inner").exists() and not (tmp_path / "dst4").exists()


def test_existing_destination_root_takes_the_source_root_attributes(tmp_path: Path,
                                                                    backend: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write(src / "f", b"f")
    os.chmod(src, 0o751)
    fix_times(src, special={b".": 1_234_567_890_000_000_123})
    dst = tmp_path / "dst"
    dst.mkdir(mode=0o700)
    os.utime(dst, ns=(0, 0))
    stats, msgs = copy_api(src, dst, backend=backend)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, dst)


@requires_root
def test_setgid_destination_without_g(tmp_path: Path, backend: str) -> None:
    """Without -g new entries take the group the kernel gives them (a setgid
    directory's), not the source's and not the copier's."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    write(src / "f", b"f")
    write(src / "sub" / "g", b"g")
    for p in (src / "f", src / "sub" / "g", src / "sub"):
        os.chown(p, 0, 1111)
    fix_times(src)
    dst = tmp_path / "dst"
    dst.mkdir()
    os.chown(dst, 0, 5678)
    os.chmod(dst, 0o2775)
    stats, msgs = copy_api(src, dst, backend=backend, opts=Options.archive(group=False))
    assert stats.exit_code == 0, msgs
    for p in (dst / "f", dst / "sub", dst / "sub" / "g"):
        assert os.lstat(p).st_gid == 5678, p


# --------------------------------------------------------------------------------------
# what the flags select
# --------------------------------------------------------------------------------------
def test_recursive_alone_keeps_data_but_not_metadata(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    write(src / "f", b"data", 0o4751)
    write(src / "d" / "g", b"gg", 0o600)
    os.symlink("f", src / "link")
    os.mkfifo(src / "fifo")
    if IS_ROOT:
        os.chown(src / "d" / "g", 1234, 5678)
    fix_times(src, special={b"f": 1_000_000_000_000_000_000})
    umask = os.umask(0o022)
    os.umask(umask)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend,
                           opts=Options(recursive=True))
    dst = tmp_path / "dst"
    assert stats.exit_code == 0, msgs
    assert (dst / "f").read_bytes() == b"data"
    assert (dst / "d" / "g").read_bytes() == b"gg"
    st = os.lstat(dst / "f")
    assert stat.S_IMODE(st.st_mode) == 0o751 & ~umask
    assert st.st_mtime_ns != 1_000_000_000_000_000_000
    if IS_ROOT:
        assert os.lstat(dst / "d" / "g").st_uid == 0
    assert sorted(os.listdir(dst)) == ["d", "f"]
    assert stats.skipped == 2
    assert any("link" in m and "skipping" in m for m in msgs), msgs
    assert any("fifo" in m and "skipping" in m for m in msgs), msgs


def test_archive_equals_rlptgoD(tmp_path: Path, backend: str) -> None:
    src = build_mixed_tree(tmp_path / "src")
    spelled = Options(recursive=True, links=True, perms=True, times=True, group=True,
                      owner=True, devices=True, specials=True)
    s1, m1 = copy_api(src, tmp_path / "a", backend=backend, opts=Options.archive())
    s2, m2 = copy_api(src, tmp_path / "b", backend=backend, opts=spelled)
    assert s1.exit_code == s2.exit_code == 0, (m1, m2)
    assert diff_trees(tmp_path / "a", tmp_path / "b", hardlinks=False) == []


def test_links_and_specials_skipped_without_l_and_D(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write(src / "f", b"f")
    os.symlink("f", src / "link")
    os.mkfifo(src / "fifo")
    make_socket(src / "sock")
    fix_times(src)
    opts = Options(recursive=True, perms=True, times=True)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, opts=opts)
    assert stats.exit_code == 0, msgs
    assert os.listdir(tmp_path / "dst") == ["f"]
    assert stats.skipped == 3
    for name in ("link", "fifo", "sock"):
        assert sum(f'"{name}"' in m for m in msgs) == 1, msgs


@requires_root
def test_devices_need_devices_flag(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    os.mknod(src / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mkfifo(src / "fifo")
    fix_times(src)
    opts = Options.archive(devices=False)  # --no-devices: specials only
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, opts=opts)
    assert stats.exit_code == 0, msgs
    assert os.listdir(tmp_path / "dst") == ["fifo"]
    assert any('"null"' in m for m in msgs), msgs


def test_times_flag_off_leaves_new_mtimes(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write(src / "f", b"f")
    set_times(src / "f", 1_000_000_000)
    opts = Options.archive(times=False)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend, opts=opts)
    assert stats.exit_code == 0, msgs
    assert os.lstat(tmp_path / "dst" / "f").st_mtime_ns != 1_000_000_000
