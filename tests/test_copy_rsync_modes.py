"""Re-runs where rsync's rules for modes decide (each test failed before its fix):

- without -p an entry that exists keeps its permissions (rsync: "existing files,
  including updated files, retain their existing permissions");
- a non-root copy works inside an existing directory of its own that lacks u+wx
  (rsync adds them while it works there) and sets user.* xattrs on an unchanged
  read-only file of its own (rsync adds u+w for that);
- -X on a re-run changes only what differs (nothing on a no-change re-run) and
  brings symlinks' xattrs up to date too.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Iterator

import pytest

from .conftest import requires_root
from .test_copy_support import (
    UNPRIV_PRELUDE,
    check_backend,
    copy_api,
    fix_times,
    run_cli,
    traversable,
    write,
)
from .treecompare import assert_same_tree

NOBODY = 65534


@pytest.fixture(params=["uring", "sync"])
def backend(request: pytest.FixtureRequest) -> str:
    return check_backend(str(request.param))


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def _walk(root: Path) -> Iterator[Path]:
    yield root
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            yield Path(dirpath) / n


def _give_to_nobody(root: Path) -> None:
    for p in _walk(root):
        os.chown(p, NOBODY, NOBODY, follow_symlinks=False)


def _xattr_or_skip(p: Path, name: str, value: bytes, follow: bool = True) -> None:
    try:
        os.setxattr(p, name, value, follow_symlinks=follow)
    except OSError as exc:
        pytest.skip(f"no {name.split('.')[0]} xattrs here: {exc}")


def _as_nobody(work: Path, *args: str) -> None:
    with traversable(work):
        r = run_cli(list(args), prelude=UNPRIV_PRELUDE, cwd="/")
    assert "Traceback" not in r.stderr, r
    assert r.returncode == 0, r


# --------------------------------------------------------------------------------------
# without -p
# --------------------------------------------------------------------------------------
def test_without_p_existing_entries_keep_their_permissions(tmp_path: Path,
                                                           backend: str) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    (dst / "d").mkdir(parents=True)
    write(src / "updated", b"new contents", 0o755)
    write(dst / "updated", b"old", 0o600)
    write(src / "small-new", b"n", 0o640)
    write(src / "big-new", b"b" * (1 << 20), 0o751)
    write(src / "d" / "f", b"f", 0o444)
    os.chmod(src / "d", 0o755)
    os.chmod(dst / "d", 0o750)
    fix_times(src)
    stats, msgs = copy_api(src, dst, backend=backend, perms=False, owner=False, group=False)
    assert stats.exit_code == 0, msgs
    assert (dst / "updated").read_bytes() == b"new contents"
    assert _mode(dst / "updated") == 0o600  # kept, as rsync -rt keeps it
    assert _mode(dst / "d") == 0o750
    umask = os.umask(0)
    os.umask(umask)
    assert _mode(dst / "small-new") == 0o640 & ~umask  # new: the source's less the umask
    assert _mode(dst / "big-new") == 0o751 & ~umask
    assert _mode(dst / "d" / "f") == 0o444 & ~umask
    # with -p the source's modes win
    write(src / "updated", b"newer contents!", 0o755)
    stats, msgs = copy_api(src, dst, backend=backend)
    assert stats.exit_code == 0, msgs
    assert _mode(dst / "updated") == 0o755 and _mode(dst / "d") == 0o755


# --------------------------------------------------------------------------------------
# non-root re-runs
# --------------------------------------------------------------------------------------
@requires_root
@pytest.mark.parametrize("flags", ["-a", "-rlt"])
def test_non_root_rerun_into_read_only_directories(tmp_path: Path, backend: str,
                                                   flags: str) -> None:
    """The first run leaves 0555 / 0500 directories (the source's); the second
    adds entries to them and to the read-only destination root."""
    work = tmp_path / "work"
    src, dst = work / "src", work / "dst"
    (src / "ro" / "sub").mkdir(parents=True)
    write(src / "ro" / "f", b"f", 0o444)
    write(src / "ro" / "sub" / "g", b"g", 0o400)
    _give_to_nobody(work)
    os.chmod(src / "ro" / "sub", 0o500)
    os.chmod(src / "ro", 0o555)
    os.chmod(src, 0o555)
    fix_times(src, special={b"ro": 1_000_000_000_000_000_001})
    _as_nobody(work, flags, "--backend", backend, f"{src}/", str(dst))
    before = {p: _mode(dst / p) for p in ("", "ro", "ro/sub")}
    assert before == {"": 0o555, "ro": 0o555, "ro/sub": 0o500}
    for d in (src, src / "ro", src / "ro" / "sub"):
        os.chmod(d, 0o755)
        write(d / "new", b"added later " + os.fsencode(d.name), 0o644)
        os.chown(d / "new", NOBODY, NOBODY)
    os.mkdir(src / "ro" / "sub" / "newdir")
    os.chown(src / "ro" / "sub" / "newdir", NOBODY, NOBODY)
    os.chmod(src / "ro" / "sub", 0o500)
    os.chmod(src / "ro", 0o555)
    os.chmod(src, 0o555)
    fix_times(src, special={b"ro": 1_000_000_000_000_000_001})
    _as_nobody(work, flags, "--backend", backend, f"{src}/", str(dst))
    for rel in ("", "ro", "ro/sub"):
        assert (dst / rel / "new").read_bytes() == (src / rel / "new").read_bytes()
    assert {p: _mode(dst / p) for p in before} == before  # given back
    if flags == "-a":
        # (fix_times gave the unchanged files new atimes, which a quick check leaves)
        assert_same_tree(src, dst, atime=False)


@requires_root
def test_non_root_X_rerun_on_a_read_only_unchanged_file(tmp_path: Path,
                                                        backend: str) -> None:
    work = tmp_path / "work"
    src, dst = work / "src", work / "dst"
    src.mkdir(parents=True)
    write(src / "ro", b"read-only data", 0o444)
    _xattr_or_skip(src / "ro", "user.a", b"first")
    os.setxattr(src / "ro", "user.gone", b"to be removed")
    os.chmod(src / "ro", 0o444)
    _give_to_nobody(work)
    fix_times(src)
    _as_nobody(work, "-aX", "--backend", backend, f"{src}/", str(dst))
    os.setxattr(src / "ro", "user.a", b"second")
    os.removexattr(src / "ro", "user.gone")
    os.setxattr(src / "ro", "user.new", b"added")
    fix_times(src)  # (the data is unchanged: only the xattrs differ)
    _as_nobody(work, "-aX", "--backend", backend, f"{src}/", str(dst))
    assert sorted(os.listxattr(dst / "ro")) == ["user.a", "user.new"]
    assert os.getxattr(dst / "ro", "user.a") == b"second"
    assert _mode(dst / "ro") == 0o444
    assert_same_tree(src, dst, atime=False)


# --------------------------------------------------------------------------------------
# -X on re-runs
# --------------------------------------------------------------------------------------
def test_no_change_rerun_with_X_writes_no_xattr(tmp_path: Path, backend: str) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    for i in range(20):
        write(src / "d" / f"f{i}", b"x" * i)
        _xattr_or_skip(src / "d" / f"f{i}", "user.n", str(i).encode())
    os.setxattr(src / "d", "user.dir", b"on the directory")
    fix_times(src)
    stats, msgs = copy_api(src, dst, backend=backend, xattrs=True)
    assert stats.exit_code == 0, msgs
    ctimes = {p: os.lstat(p).st_ctime_ns for p in _walk(dst)}
    stats, msgs = copy_api(src, dst, backend=backend, xattrs=True)
    assert stats.exit_code == 0, msgs
    assert stats.unchanged == 20  # (directories are not counted)
    writes = {k: v for k, v in stats.direct_syscalls.items()
              if k in ("fsetxattr", "fremovexattr", "setxattrat", "removexattrat", "fchmod")}
    assert sum(writes.values()) == 0, writes
    assert {p: os.lstat(p).st_ctime_ns for p in _walk(dst)} == ctimes


@requires_root
def test_symlink_and_fifo_xattrs_follow_the_source_on_a_rerun(tmp_path: Path,
                                                              backend: str) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    os.symlink("target", src / "link")
    os.mkfifo(src / "fifo")
    _xattr_or_skip(src / "link", "trusted.a", b"1", follow=False)
    os.setxattr(src / "fifo", "trusted.f", b"1")
    fix_times(src)
    stats, msgs = copy_api(src, dst, backend=backend, xattrs=True)
    assert stats.exit_code == 0, msgs
    try:
        os.getxattr(dst / "link", "trusted.a", follow_symlinks=False)
    except OSError as exc:
        assert exc.errno == errno.ENODATA
        pytest.skip("symlink xattrs not copied: a kernel without *xattrat (6.13)")
    os.setxattr(src / "link", "trusted.a", b"2", follow_symlinks=False)
    os.setxattr(dst / "link", "trusted.extra", b"x", follow_symlinks=False)
    os.setxattr(src / "fifo", "trusted.f", b"2")
    os.setxattr(dst / "fifo", "trusted.extra", b"x")
    fix_times(src)
    stats, msgs = copy_api(src, dst, backend=backend, xattrs=True)
    assert stats.exit_code == 0, msgs
    assert stats.unchanged == 2
    assert sorted(os.listxattr(dst / "link", follow_symlinks=False)) == ["trusted.a"]
    assert os.getxattr(dst / "link", "trusted.a", follow_symlinks=False) == b"2"
    assert sorted(os.listxattr(dst / "fifo")) == ["trusted.f"]
    assert os.getxattr(dst / "fifo", "trusted.f") == b"2"
    assert_same_tree(src, dst, atime=False)
