"""Re-runs: rsync's quick check (size + mtime), atomic replacement, type changes.

A second run over an unchanged tree must copy nothing and touch no file; a
changed file is re-copied and published under its name as a new inode (never
rewritten in place); -I copies everything; attribute-only changes are applied
without copying data.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from pyuring.copy import Options

from .conftest import IS_ROOT, requires_root
from .test_copy_support import (
    TMP_MARK,
    archive_all,
    build_mixed_tree,
    cli_env,
    copy_api,
    fix_times,
    linked_specials,
    one_file_tree,
    run_cli,
    set_times,
    tmp_names,
    write,
)
from .treecompare import assert_same_tree, changes_between, snapshot


def _non_dirs(root: Path) -> int:
    n = 0
    for _dirpath, dirs, files in os.walk(root):
        n += len(files) + sum(os.path.islink(os.path.join(_dirpath, d)) for d in dirs)
    return n


def _first_copy(src: Path, dst: Path, backend: str) -> None:
    stats, msgs = copy_api(src, dst, backend=backend, opts=archive_all())
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, dst)


def _copied_twice(src: Path, dst: Path, backend: str) -> Path:
    """-aHAX of src (its times fixed first), then a re-run that must change
    no file: nothing sent or linked, no inode or ctime moved."""
    fix_times(src)
    _first_copy(src, dst, backend)
    before = snapshot(dst)
    stats, msgs = copy_api(src, dst, backend=backend, opts=archive_all())
    assert stats.exit_code == 0, msgs
    assert stats.transferred == stats.hardlinks == 0
    assert changes_between(before, snapshot(dst), dirs=False) == []
    return dst


def test_second_run_copies_nothing_and_touches_no_file(tmp_path: Path, backend: str) -> None:
    src = build_mixed_tree(tmp_path / "src")
    dst = tmp_path / "dst"
    _first_copy(src, dst, backend)
    before = snapshot(dst)
    r = run_cli(["-aHAX", "--json", "--backend", backend, f"{src}/", str(dst)])
    assert r.returncode == 0, r
    stats = r.json()
    assert stats["transferred"] == 0
    assert stats["bytes_transferred"] == 0
    assert stats["unchanged"] == _non_dirs(src)
    assert stats["hardlinks"] == 0
    assert stats["errors"] == 0
    assert stats["exit_code"] == 0
    assert changes_between(before, snapshot(dst), dirs=False) == []
    assert_same_tree(src, dst)


def test_second_run_touches_no_directory(tmp_path: Path, backend: str) -> None:
    src = build_mixed_tree(tmp_path / "src")
    dst = tmp_path / "dst"
    _first_copy(src, dst, backend)
    before = snapshot(dst)
    stats, msgs = copy_api(src, dst, backend=backend, opts=archive_all())
    assert stats.exit_code == 0, msgs
    assert changes_between(before, snapshot(dst)) == []


def test_changed_files_are_recopied_and_replaced_atomically(tmp_path: Path,
                                                            backend: str) -> None:
    src = build_mixed_tree(tmp_path / "src")
    dst = tmp_path / "dst"
    _first_copy(src, dst, backend)
    # one file changes size, one only its mtime (same size, new content), one both
    # on the large path
    write(src / "small", b"shorter now")
    old_one = (dst / "one").read_bytes()
    write(src / "one", b"2")
    write(src / "big", os.urandom((3 << 20) + 1))
    set_times(src / "small", 1_600_000_000_123_456_789)
    set_times(src / "one", -1_500_000_000)
    set_times(src / "big", 1_600_000_000_123_456_789)
    before = snapshot(dst)
    held = {n: os.open(dst / n, os.O_RDONLY) for n in ("small", "one", "big")}
    try:
        stats, msgs = copy_api(src, dst, backend=backend, opts=archive_all())
        assert stats.exit_code == 0, msgs
        assert stats.transferred == 3
        assert stats.bytes_transferred == len(b"shorter now") + 1 + (3 << 20) + 1
        # the old inodes still hold the old data: nothing was rewritten in place
        assert os.pread(held["one"], 10, 0) == old_one
        assert os.fstat(held["small"]).st_size == 5000
        assert os.fstat(held["big"]).st_size == 3 << 20
        for n in held:
            assert os.lstat(dst / n).st_ino != os.fstat(held[n]).st_ino, n
    finally:
        for fd in held.values():
            os.close(fd)
    assert_same_tree(src, dst)
    after = snapshot(dst)
    changed = {c.split(": ", 1)[1] for c in changes_between(before, after)
               if c.startswith("inode changed")}
    assert changed == {"small", "one", "big"}
    assert tmp_names(dst) == []


def test_ignore_times_copies_every_file(tmp_path: Path, backend: str) -> None:
    src = build_mixed_tree(tmp_path / "src")
    dst = tmp_path / "dst"
    _first_copy(src, dst, backend)
    before = snapshot(dst)
    r = run_cli(["-aHAX", "-I", "--json", "--backend", backend, f"{src}/", str(dst)])
    assert r.returncode == 0, r
    stats = r.json()
    regular = [rel for rel, e in before.items() if stat.S_ISREG(e.st.st_mode)]
    # every regular file is written again; the hard-linked pair as one file plus a link
    assert stats["transferred"] + stats["hardlinks"] == len(regular)
    # -I is about files' data (rsync): symlinks and special files are kept
    others = [rel for rel, e in before.items()
              if not stat.S_ISREG(e.st.st_mode) and not stat.S_ISDIR(e.st.st_mode)]
    assert others and stats["unchanged"] == len(others)
    after = snapshot(dst)
    for rel in regular:
        assert after[rel].st.st_ino != before[rel].st.st_ino, rel
    for rel in others:
        assert after[rel].st.st_ino == before[rel].st.st_ino, rel
    assert_same_tree(src, dst)


def test_same_size_and_mtime_is_not_recopied(tmp_path: Path, backend: str) -> None:
    """rsync's quick check: a destination file with the source's size and mtime is
    taken as current even when its bytes differ (until -I)."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "f", b"original")
    fix_times(src)
    dst = tmp_path / "dst"
    _first_copy(src, dst, backend)
    st = os.lstat(dst / "f")
    write(dst / "f", b"ORIGINAL")  # same size
    os.utime(dst / "f", ns=(st.st_atime_ns, st.st_mtime_ns))
    stats, msgs = copy_api(src, dst, backend=backend)
    assert stats.exit_code == 0, msgs
    assert stats.transferred == 0
    assert stats.unchanged == 1
    assert (dst / "f").read_bytes() == b"ORIGINAL"
    stats, msgs = copy_api(src, dst, backend=backend, ignore_times=True)
    assert stats.exit_code == 0, msgs
    assert stats.transferred == 1
    assert (dst / "f").read_bytes() == b"original"


def test_permission_change_applied_without_copying(tmp_path: Path, backend: str) -> None:
    src = build_mixed_tree(tmp_path / "src")
    dst = tmp_path / "dst"
    _first_copy(src, dst, backend)
    os.chmod(src / "small", 0o600)
    os.chmod(src / "one", 0o4711)
    os.chmod(src / "d1" / "d2", 0o700)
    if IS_ROOT:
        os.chown(src / "big", 1234, 5678)
        os.chmod(src / "big", 0o600)
    before = snapshot(dst)
    stats, msgs = copy_api(src, dst, backend=backend, opts=archive_all())
    assert stats.exit_code == 0, msgs
    assert stats.transferred == 0
    assert stats.bytes_transferred == 0
    assert_same_tree(src, dst)
    after = snapshot(dst)
    for n in ("small", "one", "big"):
        assert after[n.encode()].st.st_ino == before[n.encode()].st.st_ino, n
    assert stat.S_IMODE(os.lstat(dst / "one").st_mode) == 0o4711
    assert stat.S_IMODE(os.lstat(dst / "d1" / "d2").st_mode) == 0o700


def test_xattr_change_applied_on_rerun(tmp_path: Path, backend: str) -> None:
    src = one_file_tree(tmp_path / "src", b"f", user_old=b"1")
    dst = tmp_path / "dst"
    _first_copy(src, dst, backend)
    os.setxattr(src / "f", "user.new", b"2")
    os.removexattr(src / "f", "user.old")
    stats, msgs = copy_api(src, dst, backend=backend, opts=archive_all())
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, dst)


def test_file_became_directory(tmp_path: Path, backend: str) -> None:
    src = build_mixed_tree(tmp_path / "src")
    dst = tmp_path / "dst"
    _first_copy(src, dst, backend)
    os.unlink(src / "small")
    (src / "small").mkdir()
    write(src / "small" / "inside", b"now a directory")
    os.unlink(src / "rel-link")
    (src / "rel-link").mkdir()
    for p in ("small/inside", "small", "rel-link"):
        set_times(src / p, 1_000_000_000_000_000_000)
    stats, msgs = copy_api(src, dst, backend=backend, opts=archive_all())
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, dst)


def test_directory_became_file(tmp_path: Path, backend: str) -> None:
    """As rsync without --force/--delete: a non-empty destination directory is not
    deleted to make way for a file; that entry fails (exit 23), the rest is copied."""
    src = build_mixed_tree(tmp_path / "src")
    dst = tmp_path / "dst"
    _first_copy(src, dst, backend)
    shutil.rmtree(src / "d1" / "d2" / "d3")
    write(src / "d1" / "d2" / "d3", b"now a file")
    write(src / "new-file", b"new")
    set_times(src / "d1" / "d2" / "d3", 1_000_000_000_000_000_000)
    set_times(src / "new-file", 1_000_000_000_000_000_000)
    stats, msgs = copy_api(src, dst, backend=backend, opts=archive_all())
    assert stats.exit_code == 23, msgs
    assert len(msgs) == 1 and "d1/d2/d3" in msgs[0], msgs
    assert (dst / "d1" / "d2" / "d3" / "f").read_bytes() == b"in d3"  # nothing lost
    assert (dst / "new-file").read_bytes() == b"new"


def test_empty_directory_replaced_by_file(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write(src / "x", b"file")
    fix_times(src)
    dst = tmp_path / "dst"
    (dst / "x").mkdir(parents=True)
    stats, msgs = copy_api(src, dst, backend=backend)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, dst, xattrs=False)


def test_symlink_changes(tmp_path: Path, backend: str) -> None:
    src = build_mixed_tree(tmp_path / "src")
    dst = tmp_path / "dst"
    _first_copy(src, dst, backend)
    os.unlink(src / "rel-link")
    os.symlink("d1/d2/f", src / "rel-link")  # new target
    os.unlink(src / "dangling")
    write(src / "dangling", b"now a file")  # symlink -> file
    os.unlink(src / "one")
    os.symlink("small", src / "one")  # file -> symlink
    for p in ("rel-link", "dangling", "one"):
        set_times(src / p, 1_000_000_000_000_000_000)
    stats, msgs = copy_api(src, dst, backend=backend, opts=archive_all())
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, dst)
    assert tmp_names(dst) == []


def test_hard_links_on_rerun(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    write(src / "a" / "f", b"linked")
    os.link(src / "a" / "f", src / "g")
    write(src / "h", b"soon linked")
    dst = _copied_twice(src, tmp_path / "dst", backend)
    # a new name joins the group; another file becomes part of it
    os.link(src / "a" / "f", src / "a" / "third")
    os.unlink(src / "h")
    os.link(src / "g", src / "h")
    set_times(src / "a", 1_000_000_000_000_000_000)
    stats, msgs = copy_api(src, dst, backend=backend, opts=archive_all())
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, dst)
    assert os.lstat(dst / "h").st_nlink == 4


def _new_names_tree(src: Path, groups: int) -> None:
    """Files in x/ and y/, each of them also linked under a second name to
    come: half of the groups get it in x/, half in y/ (so that, whichever of
    the two the walk meets first, some groups meet their new name first)."""
    for sub in ("x", "y"):
        (src / sub).mkdir(parents=True)
    for i in range(groups):
        write(src / ("x" if i % 2 else "y") / f"old{i:02d}", b"%d" % i * (100 + 500 * i))


def _add_new_names(src: Path, groups: int) -> None:
    for i in range(groups):
        os.link(src / ("x" if i % 2 else "y") / f"old{i:02d}",
                src / ("y" if i % 2 else "x") / f"new{i:02d}")
    for sub in ("x", "y"):
        set_times(src / sub, 1_000_000_000_000_000_000)


@pytest.mark.parametrize("dry", [False, True], ids=["real", "dry-run"])
def test_a_new_name_of_a_copied_file_is_linked_to_its_copy(tmp_path: Path, backend: str,
                                                          dry: bool) -> None:
    """-H: a file copied before gets a second name.  Whichever name the walk
    meets first, the new one is linked to the existing copy and no data is
    sent -- as rsync, which has its whole file list before it starts.  Before,
    a new name met first was copied again and the old one relinked to it."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    _new_names_tree(src, 24)
    fix_times(src)
    _first_copy(src, dst, backend)
    inodes = {p.name: os.lstat(p).st_ino for p in dst.glob("*/old*")}
    _add_new_names(src, 24)
    lines: List[str] = []
    stats, msgs = copy_api(src, dst, backend=backend, opts=archive_all(dry_run=dry),
                           itemized=lines)
    assert stats.exit_code == 0, msgs
    assert stats.transferred == 0 and stats.bytes_transferred == 0, stats
    assert stats.hardlinks == 24 and stats.unchanged == 24, stats
    links = sorted(ln for ln in lines if ln.startswith("hf"))
    want = sorted(f"hf+++++++++ {'y' if i % 2 else 'x'}/new{i:02d} => "
                  f"{'x' if i % 2 else 'y'}/old{i:02d}" for i in range(24))
    assert links == want, lines
    assert not [ln for ln in lines if ln.startswith(">f")], lines
    if dry:
        assert not list(dst.glob("*/new*"))
        return
    for i in range(24):
        old = dst / ("x" if i % 2 else "y") / f"old{i:02d}"
        new = dst / ("y" if i % 2 else "x") / f"new{i:02d}"
        assert os.lstat(old).st_ino == inodes[old.name] == os.lstat(new).st_ino, i
    assert_same_tree(src, dst)


def test_new_names_with_no_copy_to_link_to(tmp_path: Path, backend: str) -> None:
    """-H into an existing destination: groups of new names only (every name
    seen, or names outside the tree), and more of them than may wait at once
    (the cap: a quarter of the files in flight), are each sent once."""
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside"
    src.mkdir()
    write(src / "keep", b"already there")
    fix_times(src)
    _first_copy(src, dst, backend)
    for sub in (src / "a", src / "b", src / "l", outside):
        sub.mkdir()
    for i in range(40):
        write(src / "a" / f"f{i:02d}", b"%d" % i * 300)
        os.link(src / "a" / f"f{i:02d}", src / "b" / f"g{i:02d}")
        if i % 3 == 0:
            os.link(src / "a" / f"f{i:02d}", src / "b" / f"h{i:02d}")
        if i % 4 == 0:
            os.link(src / "a" / f"f{i:02d}", outside / f"o{i:02d}")
    for i in range(10):  # (groups whose other name is outside only)
        write(src / "l" / f"lone{i}", b"lone %d" % i)
        os.link(src / "l" / f"lone{i}", outside / f"lone{i}")
    for part in ("a", "b", "l"):  # (not the root: keep's times stay as copied)
        fix_times(src / part)
    for files in (0, 8):
        opts = archive_all()
        if files:
            opts.max_files_in_flight = files
        stats, msgs = copy_api(src, dst, backend=backend, opts=opts)
        assert stats.exit_code == 0, msgs
        if not files:
            assert stats.transferred == 50 and stats.hardlinks == 54, stats
        else:  # (nothing left to do)
            assert stats.transferred == stats.hardlinks == 0, stats
        assert_same_tree(src, dst)
        for i in range(40):
            assert os.lstat(dst / "a" / f"f{i:02d}").st_ino == \
                os.lstat(dst / "b" / f"g{i:02d}").st_ino
    shutil.rmtree(dst / "a")
    shutil.rmtree(dst / "b")
    os.utime(dst, ns=(os.lstat(src).st_atime_ns, os.lstat(src).st_mtime_ns))
    stats, msgs = copy_api(src, dst, backend=backend, opts=archive_all(),
                           max_files_in_flight=8)
    assert stats.exit_code == 0 and stats.transferred == 40, (stats, msgs)
    assert_same_tree(src, dst)


@pytest.mark.parametrize("flags", [["-aHAX"], ["-a"]], ids=["aHAX", "a"])
def test_a_no_change_rerun_leaves_the_copys_atimes(tmp_path: Path, backend: str,
                                                   flags: List[str]) -> None:
    """Under relatime the first read of an entry whose atime is a day old (or
    not after its mtime) moves it.  A re-run lists every destination
    directory: with O_NOATIME now, the atimes the copy gave them stay (before,
    only where the mount was noatime).  (A symlink's target is read and
    compared, as rsync does, which may move its atime: not checked here.)"""
    if "noatime" in _mount_options(tmp_path):
        pytest.skip("the file system is mounted noatime: nothing to see")
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d" / "e").mkdir(parents=True)
    write(src / "d" / "f", b"x")
    os.symlink("f", src / "d" / "l")
    os.symlink("e", src / "d" / "le")
    old = 978_307_200_000_000_000  # 2001-01-01
    for p in (src / "d" / "e", src / "d" / "f", src / "d" / "l", src / "d" / "le",
              src / "d", src):
        os.utime(p, ns=(old + 123, old), follow_symlinks=False)
    assert run_cli([*flags, "--backend", backend, f"{src}/", str(dst)]).returncode == 0
    names = ("", "d", "d/e", "d/f")
    # (lstat only: a snapshot reads the links' targets, which moves their atimes)
    before = {rel: os.lstat(dst / rel) for rel in names}
    r = run_cli([*flags, "-v", "--backend", backend, f"{src}/", str(dst)])
    assert r.returncode == 0 and r.err_lines == [] and r.stdout.splitlines()[:-1] == [], r
    for rel in names:
        now = os.lstat(dst / rel)
        assert now.st_atime_ns == old + 123, rel
        assert (now.st_mtime_ns, now.st_ctime_ns) == \
            (before[rel].st_mtime_ns, before[rel].st_ctime_ns), rel


@requires_root
@pytest.mark.skipif(shutil.which("capsh") is None, reason="needs capsh (libcap2-bin)")
def test_o_noatime_refused_for_every_directory_is_retried(tmp_path: Path,
                                                          backend: str) -> None:
    """Root without CAP_FOWNER may not open another user's directory with
    O_NOATIME (EPERM): every such open in flight is made again without it.
    (A first version retried only the first one to fail; the other
    directories failed with "Operation not permitted": found by a review.)"""
    src, dst = tmp_path / "src", tmp_path / "dst"
    for i in range(20):
        (src / f"d{i}").mkdir(parents=True)
        write(src / f"d{i}" / "f", b"x")
    fix_times(src)
    assert run_cli(["-a", "--backend", backend, f"{src}/", str(dst)]).returncode == 0
    for p in (src, dst):
        subprocess.run(["chown", "-R", "1234:1234", str(p)], check=True)
    argv = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "pyuring.copy", "-a",
                                              "--backend", backend, f"{src}/", str(dst)])
    r = subprocess.run(["capsh", "--drop=cap_fowner", "--", "-c", argv],
                       capture_output=True, text=True, env=cli_env())
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert_same_tree(src, dst)


def _mount_options(path: Path) -> str:
    best = ""
    opts = ""
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            mnt = fields[1].replace("\\040", " ")
            if str(path.resolve()).startswith(mnt.rstrip("/") + "/") and len(mnt) > len(best):
                best, opts = mnt, fields[3]
    return opts


def _ended_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_stale_temporary_names_are_removed(tmp_path: Path, backend: str) -> None:
    src = build_mixed_tree(tmp_path / "src")
    dst = tmp_path / "dst"
    _first_copy(src, dst, backend)
    pid = _ended_pid()
    for d in (dst, dst / "d1" / "d2"):
        write(d / f".small{TMP_MARK.decode()}{pid}-1", b"left by a killed run")
    os.symlink("x", dst / "d1" / f".l{TMP_MARK.decode()}{pid}-2")
    gone = sorted([f"*deleting   .small{TMP_MARK.decode()}{pid}-1",
                   f"*deleting   d1/d2/.small{TMP_MARK.decode()}{pid}-1",
                   f"*deleting   d1/.l{TMP_MARK.decode()}{pid}-2"])
    for dry in (True, False):  # (-n lists what the run does)
        lines: List[str] = []
        stats, msgs = copy_api(src, dst, backend=backend, opts=archive_all(dry_run=dry),
                               itemized=lines)
        assert stats.exit_code == 0, msgs
        assert sorted(ln for ln in lines if ln.startswith("*deleting")) == gone, lines
        assert len(tmp_names(dst)) == (3 if dry else 0)
    assert_same_tree(src, dst)


def test_temporary_names_of_a_running_copy_are_left_alone(tmp_path: Path,
                                                          backend: str) -> None:
    """Another copy into the same directory, running now, still needs its
    names (before, a re-run removed every name shaped like one)."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "f", b"data")
    dst = tmp_path / "dst"
    copy_api(src, dst, backend=backend)
    other = subprocess.Popen(["sleep", "60"])
    try:
        live = f".g{TMP_MARK.decode()}{other.pid}-7"
        write(dst / live, b"being written by the other copy")
        ended = f".h{TMP_MARK.decode()}{_ended_pid()}-1"
        write(dst / ended, b"left by a killed run")
        write(src / "f", b"changed")
        stats, msgs = copy_api(src, dst, backend=backend)
        assert stats.exit_code == 0 and stats.transferred == 1, msgs
        assert (dst / live).read_bytes() == b"being written by the other copy"
        assert not (dst / ended).exists()
    finally:
        other.kill()
        other.wait()


def test_source_names_that_look_temporary_survive_reruns(tmp_path: Path,
                                                         backend: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write(src / "report.pyuring-tmp-draft", b"a user's file")
    write(src / "other", b"o")
    fix_times(src)
    dst = tmp_path / "dst"
    for _ in range(2):
        stats, msgs = copy_api(src, dst, backend=backend)
        assert stats.exit_code == 0, msgs
        assert_same_tree(src, dst)


def test_rerun_keeps_destination_only_entries(tmp_path: Path, backend: str) -> None:
    """No --delete: files that exist only in the destination stay."""
    src = build_mixed_tree(tmp_path / "src")
    dst = tmp_path / "dst"
    _first_copy(src, dst, backend)
    write(dst / "extra", b"mine")
    (dst / "d1" / "extra-dir").mkdir()
    stats, msgs = copy_api(src, dst, backend=backend, opts=archive_all())
    assert stats.exit_code == 0, msgs
    assert (dst / "extra").read_bytes() == b"mine"
    assert (dst / "d1" / "extra-dir").is_dir()
    assert_same_tree(src, dst, ignore={b"extra", b"d1/extra-dir"}, times=False)


def test_rerun_after_mtime_only_touch_rewrites_data(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write(src / "f", os.urandom(10_000))
    fix_times(src)
    dst = tmp_path / "dst"
    _first_copy(src, dst, backend)
    set_times(src / "f", 1_234_567_890_123_456_789)
    ino = os.lstat(dst / "f").st_ino
    stats, msgs = copy_api(src, dst, backend=backend)
    assert stats.exit_code == 0, msgs
    assert stats.transferred == 1
    assert os.lstat(dst / "f").st_ino != ino
    assert os.lstat(dst / "f").st_mtime_ns == 1_234_567_890_123_456_789


@requires_root
def test_owner_change_on_rerun(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write(src / "f", b"f", 0o6755)
    os.symlink("f", src / "l")
    fix_times(src)
    dst = tmp_path / "dst"
    _first_copy(src, dst, backend)
    os.chown(src / "f", 1234, 5678)
    os.chmod(src / "f", 0o6755)
    os.lchown(src / "l", 1234, 5678)
    inos: Dict[str, int] = {n: os.lstat(dst / n).st_ino for n in ("f", "l")}
    stats, msgs = copy_api(src, dst, backend=backend, opts=Options.archive())
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, dst)
    assert os.lstat(dst / "f").st_ino == inos["f"]
    st = os.lstat(dst / "f")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o6755)


def _specials(src: Path) -> None:
    src.mkdir()
    write(src / "f", b"x")
    os.symlink("f", src / "sl")
    os.mkfifo(src / "fifo")
    os.mknod(src / "chr", 0o644 | stat.S_IFCHR, os.makedev(1, 7))
    fix_times(src)


@requires_root
@pytest.mark.parametrize("private", [True, False])
def test_owner_of_unchanged_symlinks_and_specials_brought_back(tmp_path: Path,
                                                               backend: str,
                                                               private: bool) -> None:
    """Root's symlink, FIFO and device, whose copies another user came to own: a
    re-run gives them back root's ids (before, only when the source's ids were
    not the copying user's own: the copies stayed 5:5, and each run itemized
    the change again), in a destination directory only root may change (owner
    set by name) and in one others may (through an O_PATH fd)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    _specials(src)
    assert copy_api(src, dst, backend=backend)[0].exit_code == 0
    for name in ("f", "sl", "fifo", "chr"):
        os.chown(dst / name, 5, 5, follow_symlinks=False)
    if not private:
        os.chmod(dst, 0o777)
        os.chmod(src, 0o777)
    stats, msgs = copy_api(src, dst, backend=backend)
    assert stats.exit_code == 0, msgs
    for name in ("f", "sl", "fifo", "chr"):
        st = os.lstat(dst / name)
        assert (st.st_uid, st.st_gid) == (0, 0), name
    items: List[str] = []
    stats, msgs = copy_api(src, dst, backend=backend, itemized=items)
    assert stats.exit_code == 0 and items == [], (items, msgs)


@requires_root
def test_new_entries_in_a_setgid_directory_get_the_source_group(tmp_path: Path,
                                                                backend: str) -> None:
    """Created in a setgid directory of group 5, new symlinks and special files
    take that group from the kernel; the copy gives them the source's, 0, as
    rsync and cp do (before, they kept 5)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    _specials(src)
    dst.mkdir()
    os.chown(dst, 0, 5)
    os.chmod(dst, 0o2775)
    stats, msgs = copy_api([str(src)], dst, backend=backend)
    assert stats.exit_code == 0, msgs
    for name in ("f", "sl", "fifo", "chr"):
        st = os.lstat(dst / "src" / name)
        assert (st.st_uid, st.st_gid) == (0, 0), name


def test_hard_linked_symlinks_and_fifos_keep_their_times_on_rerun(tmp_path: Path,
                                                                  backend: str) -> None:
    """-H opens an existing hard-linked symlink or FIFO again for its group;
    its times are set only when they differ (before, every re-run set them,
    moving the ctime)."""
    src = linked_specials(tmp_path / "src")
    dst = _copied_twice(src, tmp_path / "dst", backend)
    # a new mtime on the source: set on the copies (one inode each)
    set_times(src / "fifo", 1_500_000_000_000_000_001)
    set_times(src / "link", 1_500_000_000_000_000_002)
    set_times(src, 1_600_000_000_123_456_789)
    stats, msgs = copy_api(src, dst, backend=backend, opts=archive_all())
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, dst)
    assert os.lstat(dst / "fifo2").st_mtime_ns == 1_500_000_000_000_000_001
    assert os.lstat(dst / "link2").st_mtime_ns == 1_500_000_000_000_000_002


@pytest.mark.parametrize("pid", ["own", "4294967296", "99999999999999999999"])
def test_leftovers_of_an_own_or_impossible_pid_are_removed(tmp_path: Path, backend: str,
                                                           pid: str) -> None:
    """A leftover carrying this process's PID but made before it started (a
    killed copy that had the same PID: PID 1 in each new container), or a PID
    no process can have: removed, and the copy's own names never meet it.
    (Found by review: the first kept such a name for ever, and with the
    per-copy count each run made that very name again and failed with
    EEXIST; the second ended the copy with OverflowError.)"""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "a", b"data")
    dst = tmp_path / "dst"
    dst.mkdir()
    number = str(os.getpid()) if pid == "own" else pid
    for n in (1, 2):
        write(dst / f".a{TMP_MARK.decode()}{number}-{n}", b"left by a killed run")
    for _ in range(2):  # (two copies in one process)
        stats, msgs = copy_api(src, dst, backend=backend, opts=Options.archive(
            ignore_times=True))
        assert stats.exit_code == 0 and msgs == [], msgs
        assert tmp_names(dst) == []
        assert (dst / "a").read_bytes() == b"data"
