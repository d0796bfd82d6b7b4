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
    copy_api,
    fix_times,
    run_cli,
    traversable,
    write,
)
from .treecompare import assert_same_tree

NOBODY = 65534


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


# --------------------------------------------------------------------------------------
# found by a review of the above (2026-12-03); each failed before its fix
# --------------------------------------------------------------------------------------
_UNPRIV_FIFO_CHILD = """
import json, os, signal, sys
import pyuring.copy.api as api
from tests.test_copy_support import RACE_ACTIONS, UNPRIV_PRELUDE, install_statx_hook
spec = json.loads(sys.argv[1])
install_statx_hook(api, os.fsencode(spec["src"]), {b"victim": RACE_ACTIONS["to_fifo"]})
sys.argv[1:] = ["-rt", "--backend", spec["backend"], spec["src"] + "/", spec["dst"]]
exec(UNPRIV_PRELUDE)
"""


@requires_root
def test_a_stopped_copy_gives_opened_up_directories_their_mode_back(
        tmp_path: Path, backend: str) -> None:
    """SIGINT while an open waits on a FIFO: on the ring the operations in flight
    are given up after the grace period; the destination directory the copy
    opened up (0500, ours) still gets its mode back."""
    import json
    import signal
    import subprocess
    import sys
    import time

    from .test_copy_support import REPO, cli_env

    work = tmp_path / "work"
    src, dst = work / "src", work / "dst"
    src.mkdir(parents=True)
    for i in range(10):
        write(src / f"f{i}", b"x" * i)
    write(src / "victim", b"soon a fifo")
    dst.mkdir()
    _give_to_nobody(work)
    os.chmod(dst, 0o500)
    spec = {"src": str(src), "dst": str(dst), "backend": backend}
    with traversable(work):
        p = subprocess.Popen([sys.executable, "-c", _UNPRIV_FIFO_CHILD, json.dumps(spec)],
                             env=cli_env(), cwd=str(REPO), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 20
            while not stat.S_ISFIFO(_lmode(src / "victim")):
                assert time.monotonic() < deadline, "the race never fired"
                assert p.poll() is None, p.communicate()
                time.sleep(0.02)
            time.sleep(0.5)
            p.send_signal(signal.SIGINT)
            _out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert p.returncode == 20, err
    assert _mode(dst) == 0o500


def _lmode(p: Path) -> int:
    try:
        return os.lstat(p).st_mode
    except FileNotFoundError:
        return 0


@requires_root
def test_non_root_AX_on_read_only_files_sets_acl_after_the_xattrs(tmp_path: Path,
                                                                  backend: str) -> None:
    """An access ACL written first would take u+w away before the user.* xattrs
    (a read-only file): the first copy and the re-run both write it last."""
    from .test_copy_support import acl_blob

    work = tmp_path / "work"
    src, dst = work / "src", work / "dst"
    src.mkdir(parents=True)
    write(src / "ro", b"read-only, with an ACL", 0o444)
    # (the ACL first: listxattr then names it first, here as with the reviewer)
    _xattr_or_skip(src / "ro", "system.posix_acl_access", acl_blob(0o444, users=[(1000, 4)]))
    os.setxattr(src / "ro", "user.x", b"one")
    _give_to_nobody(work)
    fix_times(src)
    _as_nobody(work, "-aXA", "--backend", backend, f"{src}/", str(dst))
    assert os.getxattr(dst / "ro", "user.x") == b"one"
    os.setxattr(src / "ro", "user.x", b"two")
    os.setxattr(src / "ro", "system.posix_acl_access", acl_blob(0o444, users=[(1001, 4)]))
    fix_times(src)
    _as_nobody(work, "-aXA", "--backend", backend, f"{src}/", str(dst))
    assert os.getxattr(dst / "ro", "user.x") == b"two"
    assert_same_tree(src, dst, atime=False)


@requires_root
def test_non_root_rerun_of_several_sources_into_a_read_only_destination(
        tmp_path: Path, backend: str) -> None:
    """`-rt a/ b DST`: the first root gives DST its mode back when it is done;
    the second writes into it again (DST is opened up for each root)."""
    work = tmp_path / "work"
    (work / "a").mkdir(parents=True)
    (work / "b").mkdir()
    write(work / "a" / "fa", b"a")
    write(work / "b" / "fb", b"b")
    (work / "dst").mkdir()
    _give_to_nobody(work)
    os.chmod(work / "dst", 0o500)
    _as_nobody(work, "-rt", "--backend", backend, f"{work / 'a'}/", str(work / "b"),
               str(work / "dst"))
    assert (work / "dst" / "fa").read_bytes() == b"a"
    assert (work / "dst" / "b" / "fb").read_bytes() == b"b"
    assert _mode(work / "dst") == 0o500


def _nofile_128() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))


@requires_root
def test_non_root_H_finds_first_copies_behind_directories_without_x(
        tmp_path: Path, backend: str) -> None:
    """No -p, existing destination directories 0600 (ours): the copy works in
    them opened up and gives 0600 back when each is done.  With fds let go
    (RLIMIT_NOFILE 128: 16 kept), finding a first copy again goes through such
    a directory: it is searched with u+x for the moment, every pair linked."""
    work = tmp_path / "work"
    src, dst = work / "src", work / "dst"
    (src / "a").mkdir(parents=True)
    (src / "z").mkdir()
    (work / "outside").mkdir()
    for i in range(40):
        write(src / "a" / f"f{i:02}", b"%d" % i)
        os.link(src / "a" / f"f{i:02}", src / "z" / f"f{i:02}")
        os.link(src / "a" / f"f{i:02}", work / "outside" / f"f{i:02}")
    (dst / "a").mkdir(parents=True)
    (dst / "z").mkdir()
    _give_to_nobody(work)
    os.chmod(dst / "a", 0o600)
    os.chmod(dst / "z", 0o600)
    with traversable(work):
        r = run_cli(["-rtH", "--backend", backend, f"{src}/", str(dst)],
                    prelude=UNPRIV_PRELUDE, cwd="/", preexec_fn=_nofile_128)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r
    assert _mode(dst / "a") == 0o600 and _mode(dst / "z") == 0o600
    os.chmod(dst / "a", 0o700)
    os.chmod(dst / "z", 0o700)
    for i in range(40):
        assert os.stat(dst / "a" / f"f{i:02}").st_ino == os.stat(dst / "z" / f"f{i:02}").st_ino


@requires_root
def test_without_p_a_replaced_device_keeps_its_mode_and_setuid_needs_its_owner(
        tmp_path: Path, backend: str) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    os.mknod(src / "dev", 0o644 | stat.S_IFCHR, os.makedev(1, 5))
    os.mknod(dst / "dev", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    write(src / "prog", b"new program", 0o755)
    write(dst / "prog", b"a user's setuid program", 0o4755)
    os.chown(dst / "prog", 1000, 1000)
    os.chmod(dst / "prog", 0o4755)
    write(src / "mine", b"new contents", 0o755)
    write(dst / "mine", b"root's own setuid program", 0o4750)
    write(src / "sgid", b"new contents", 0o755)
    write(dst / "sgid", b"setgid for group 50", 0o2755)
    os.chown(dst / "sgid", 0, 50)
    os.chmod(dst / "sgid", 0o2755)
    stats, msgs = copy_api(src, dst, backend=backend, perms=False, owner=False, group=False)
    assert stats.exit_code == 0, msgs
    st = os.lstat(dst / "dev")
    assert st.st_rdev == os.makedev(1, 5) and stat.S_IMODE(st.st_mode) == 0o600
    st = os.lstat(dst / "prog")
    assert (dst / "prog").read_bytes() == b"new program"
    # root's now: not setuid-root with the contents of whatever SRC had
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(dst / "mine").st_mode) == 0o4750  # same owner: kept
    st = os.lstat(dst / "sgid")  # root's group now: not setgid for it
    assert st.st_gid == 0 and stat.S_IMODE(st.st_mode) == 0o755


def test_A_implies_p(tmp_path: Path, backend: str) -> None:
    """rsync's -A implies -p: an existing entry takes the source's mode."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    write(src / "f", b"new", 0o640)
    write(dst / "f", b"old", 0o606)
    stats, msgs = copy_api(src, dst, backend=backend, perms=False, acls=True)
    assert stats.exit_code == 0, msgs
    assert _mode(dst / "f") == 0o640


def test_dry_run_of_several_sources_into_a_new_destination(tmp_path: Path,
                                                           backend: str) -> None:
    for n in ("s1", "s2"):
        (tmp_path / n).mkdir()
        write(tmp_path / n / f"in-{n}", b"x")
    r = run_cli(["-n", "-r", "--backend", backend, f"{tmp_path / 's1'}/",
                 f"{tmp_path / 's2'}/", str(tmp_path / "new")])
    assert r.returncode == 0 and r.stderr == "", r
    assert not (tmp_path / "new").exists()


@requires_root
def test_non_root_rerun_into_a_directory_of_its_own_without_read_permission(
        tmp_path: Path, backend: str) -> None:
    """rsync works in such a directory (it adds u+rwx); so does the copy, and the
    directory gets its mode (0300, kept without -p) back."""
    work = tmp_path / "work"
    src, dst = work / "src", work / "dst"
    (src / "d").mkdir(parents=True)
    write(src / "d" / "new", b"new")
    (dst / "d").mkdir(parents=True)
    write(dst / "d" / "old", b"old, not in the source")
    _give_to_nobody(work)
    os.chmod(dst / "d", 0o300)
    _as_nobody(work, "-rt", "--backend", backend, f"{src}/", str(dst))
    assert _mode(dst / "d") == 0o300
    os.chmod(dst / "d", 0o700)
    assert sorted(os.listdir(dst / "d")) == ["new", "old"]
    assert (dst / "d" / "new").read_bytes() == b"new"


@requires_root
def test_non_root_X_rerun_on_an_unchanged_file_of_its_own_without_read_permission(
        tmp_path: Path, backend: str) -> None:
    """rsync compares and sets the xattrs of such a file (mode 0000, ours); so
    does the copy, through u+rw for the moment, and the 0000 stays (no -p)."""
    work = tmp_path / "work"
    src, dst = work / "src", work / "dst"
    src.mkdir(parents=True)
    dst.mkdir()
    write(src / "f", b"same data")
    write(dst / "f", b"same data")
    _xattr_or_skip(src / "f", "user.x", b"new")
    os.setxattr(dst / "f", "user.x", b"old")
    os.setxattr(dst / "f", "user.gone", b"not in the source")
    fix_times(src)
    fix_times(dst)
    _give_to_nobody(work)
    os.chmod(dst / "f", 0o000)
    _as_nobody(work, "-rtX", "--backend", backend, f"{src}/", str(dst))
    assert _mode(dst / "f") == 0o000
    assert sorted(os.listxattr(dst / "f")) == ["user.x"]
    assert os.getxattr(dst / "f", "user.x") == b"new"
