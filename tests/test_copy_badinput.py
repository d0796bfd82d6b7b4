"""Bad input: every case ends with one clear line, the right exit code, no traceback,
and nothing that was already on disk lost.

Races ("a file grows while it is copied", "a directory becomes a file") are made
deterministic by running the action between the engine's statx of the entry and
its use (``run_hooked``); permission cases run the CLI as nobody.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import pytest

from .conftest import IS_ROOT, requires_root
from .test_copy_support import (
    UNPRIV_PRELUDE,
    Result,
    acl_blob,
    assert_clean_failure,
    build_mixed_tree,
    copy_api,
    fix_times,
    make_socket,
    mounted,
    regular_files,
    run_cli,
    run_hooked,
    traversable,
    write,
)
from .treecompare import assert_same_tree, changes_between, diff_trees, snapshot


@pytest.fixture
def src(tmp_path: Path) -> Path:
    s = tmp_path / "src"
    (s / "sub").mkdir(parents=True)
    write(s / "a", b"a")
    write(s / "sub" / "b", b"b")
    fix_times(s)
    return s


def _no_traceback(r: Result) -> None:
    assert "Traceback" not in r.stderr, r
    assert "internal error" not in r.stderr, r


# --------------------------------------------------------------------------------------
# arguments that cannot work
# --------------------------------------------------------------------------------------
def test_missing_source_others_still_copied(tmp_path: Path, src: Path, backend: str) -> None:
    dst = tmp_path / "dst"
    r = run_cli(["-a", "--backend", backend, str(tmp_path / "nope"), f"{src}/",
                 str(tmp_path / "also-missing/"), str(dst)])
    _no_traceback(r)
    assert r.returncode == 23, r
    assert len(r.err_lines) == 2, r
    assert all("No such file or directory" in ln for ln in r.err_lines), r
    assert "nope" in r.err_lines[0] and "also-missing" in r.err_lines[1]
    assert_same_tree(src, dst)


def test_only_missing_sources(tmp_path: Path, backend: str) -> None:
    r = run_cli(["-a", "--backend", backend, str(tmp_path / "nope"), str(tmp_path / "dst")])
    assert_clean_failure(r, 23, "nope")


@pytest.mark.parametrize("spell", ["slash", "no-slash", "deeper", "via-symlink",
                                   "via-bind-mount", "bind-mount-no-slash"])
def test_destination_inside_source(tmp_path: Path, src: Path, spell: str) -> None:
    with contextlib.ExitStack() as stack:
        if spell.startswith("bind-mount") or spell == "via-bind-mount":
            stack.enter_context(mounted("none", tmp_path / "bound", bind=src))
        before = snapshot(src)
        if spell == "slash":
            args = [f"{src}/", str(src / "sub" / "dst")]
        elif spell == "no-slash":
            args = [str(src), str(src / "dst")]
        elif spell == "deeper":
            args = [f"{src}/", str(src / "sub" / "x" / "y")]
            (src / "sub" / "x").mkdir()
            before = snapshot(src)
        elif spell == "via-symlink":
            os.symlink(src / "sub", tmp_path / "alias")
            args = [f"{src}/", str(tmp_path / "alias" / "dst")]
        elif spell == "via-bind-mount":  # (the same directory under another name)
            args = [f"{src}/", str(tmp_path / "bound" / "sub" / "dst")]
        else:
            args = [str(src), str(tmp_path / "bound" / "sub")]
        r = run_cli(["-a", *args])
        assert_clean_failure(r, 1, "inside")
        assert changes_between(before, snapshot(src)) == []


@pytest.mark.parametrize("spell", ["both-slash", "dst-no-slash", "dot", "via-symlink",
                                   "same-file", "via-bind-mount", "file-via-bind-mount",
                                   "into-parent-via-bind-mount"])
def test_source_is_destination(tmp_path: Path, src: Path, spell: str) -> None:
    os.symlink(src, tmp_path / "alias")
    bound = tmp_path / "bound"
    args = {"both-slash": [f"{src}/", f"{src}/"],
            "dst-no-slash": [f"{src}/", str(src)],
            "dot": [f"{src}/.", f"{src}/sub/.."],
            "via-symlink": [f"{src}/", f"{tmp_path / 'alias'}/"],
            "same-file": [str(src / "a"), str(tmp_path / "alias" / "a")],
            "via-bind-mount": [f"{src}/", f"{bound}/"],
            "file-via-bind-mount": [str(src / "a"), str(bound / "a")],
            # (src copied into the directory that holds it: onto itself)
            "into-parent-via-bind-mount": [str(src / "sub"), f"{bound}/"]}[spell]
    with contextlib.ExitStack() as stack:
        if "bind-mount" in spell:
            stack.enter_context(mounted("none", bound, bind=src))
        before = snapshot(src)
        r = run_cli(["-a", *args])
        assert_clean_failure(r, 1, "same")
        assert changes_between(before, snapshot(src)) == []


@pytest.mark.parametrize("slash", [False, True])
def test_symlink_source_judged_as_what_is_copied(tmp_path: Path, src: Path,
                                                 slash: bool) -> None:
    """Without a trailing slash a symlink SRC is copied as the link it is, so a
    link to an ancestor of DST is no nesting (rsync copies it); with one, the
    link is followed and the copy would land inside its own source."""
    os.symlink(src, tmp_path / "alias")
    r = run_cli(["-a", str(tmp_path / "alias") + ("/" if slash else ""),
                 str(src / "sub") + "/"])
    if slash:
        assert_clean_failure(r, 1, "inside")
        return
    _no_traceback(r)
    assert r.returncode == 0, r
    assert os.readlink(src / "sub" / "alias") == str(src)


@pytest.mark.parametrize("dst_kind", ["new", "file", "dir"])
def test_symlink_to_a_directory_as_source(tmp_path: Path, src: Path, backend: str,
                                          dst_kind: str) -> None:
    """``-a link-to-dir DST`` (no slash) copies the link: to the new name DST,
    over a file DST, into a directory DST -- as rsync and cp do.  Before, a new
    DST became a directory holding the link, and a file DST was refused."""
    os.symlink("src", tmp_path / "alias")
    dst = tmp_path / "dst"
    if dst_kind == "file":
        write(dst, b"old")
    elif dst_kind == "dir":
        dst.mkdir()
    r = run_cli(["-a", "--backend", backend, str(tmp_path / "alias"), str(dst)])
    _no_traceback(r)
    assert r.returncode == 0, r
    link = dst / "alias" if dst_kind == "dir" else dst
    assert os.readlink(link) == "src"
    if dst_kind == "dir":
        assert os.listdir(dst) == ["alias"]


@pytest.mark.parametrize("sources", [["dir/"], ["dir"], ["file1", "file2"]])
def test_destination_is_an_existing_file(tmp_path: Path, src: Path,
                                         sources: List[str]) -> None:
    write(tmp_path / "file1", b"1")
    write(tmp_path / "file2", b"2")
    write(tmp_path / "target", b"precious")
    paths = [str(src) + ("/" if s == "dir/" else "") if s.startswith("dir")
             else str(tmp_path / s) for s in sources]
    r = run_cli(["-a", *paths, str(tmp_path / "target")])
    _no_traceback(r)
    assert r.returncode == 3, r  # (rsync's "errors selecting input/output files, dirs")
    assert len(r.err_lines) == 1 and "target" in r.err_lines[0], r
    assert "not a directory" in r.err_lines[0]
    assert (tmp_path / "target").read_bytes() == b"precious"


@pytest.mark.parametrize("dst", ["missing-parent/deeper/dst", "n" * 256, "file/sub"])
def test_destination_that_cannot_be_created(tmp_path: Path, src: Path, dst: str) -> None:
    write(tmp_path / "file", b"keep")
    r = run_cli(["-a", f"{src}/", str(tmp_path / dst)])
    _no_traceback(r)
    assert r.returncode == (3 if dst == "file/sub" else 11), r  # (as rsync)
    assert len(r.err_lines) == 1 and "destination" in r.err_lines[0], r
    assert (tmp_path / "file").read_bytes() == b"keep"
    assert not (tmp_path / "missing-parent").exists()


@pytest.mark.parametrize("arg", ["src/a/", "dangling/", "loop/"])
def test_unusable_source_arguments(tmp_path: Path, src: Path, arg: str) -> None:
    os.symlink("nowhere", tmp_path / "dangling")
    os.symlink("loop", tmp_path / "loop")
    r = run_cli(["-a", arg.replace("src/", f"{src}/"), f"{src}/", str(tmp_path / "dst")],
                cwd=tmp_path)
    _no_traceback(r)
    assert r.returncode == 23, r
    assert len(r.err_lines) == 1, r
    assert "cannot stat" in r.err_lines[0]
    assert_same_tree(src, tmp_path / "dst")


def test_an_empty_source_argument_is_a_usage_error(tmp_path: Path, src: Path) -> None:
    """As rsync: "" names no file -- the whole command is refused (cp would
    copy the other sources and say ENOENT; a script's unset variable is more
    likely a mistake than a file that happens to be missing)."""
    r = run_cli(["-a", "", f"{src}/", str(tmp_path / "dst")], cwd=tmp_path)
    assert_clean_failure(r, 1, "empty source")
    assert not (tmp_path / "dst").exists()


# --------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [b"\xff\xfe-not-utf8", b"new\nline", b"x" * 255,
                                  b"-leading-dash", b"sp ace"],
                         ids=["non-utf8", "newline", "255-bytes", "dash", "space"])
def test_odd_source_and_destination_names(tmp_path: Path, backend: str, name: bytes) -> None:
    base = os.fsencode(tmp_path)
    s = os.path.join(base, name)
    os.mkdir(s)
    write(os.path.join(s, name), b"content named " + name)
    os.symlink(name, os.path.join(s, b"link"))
    fix_times(s)
    # SRC without slash: DST/<name> is created; then DST itself with the odd name
    r = run_cli(["-a", "--backend", backend, "--", s, os.path.join(base, b"dst")])
    _no_traceback(r)
    assert r.returncode == 0, r
    assert_same_tree(s, os.path.join(base, b"dst", name))
    other = os.path.join(base, name[:-5] + b".copy" if len(name) > 250 else name + b".copy")
    r = run_cli(["-a", "--backend", backend, "--", s + b"/", other])
    assert r.returncode == 0, r
    assert_same_tree(s, other)


def _deep_tree(root: Path, levels: int = 24, component: int = 200) -> int:
    """A tree whose deepest paths are far longer than PATH_MAX; returns that length."""
    root.mkdir()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    name = "d" * component
    try:
        for i in range(levels):
            f = os.open(f"file{i}", os.O_WRONLY | os.O_CREAT, 0o640, dir_fd=fd)
            os.write(f, b"level %d " % i * (i + 1))
            os.close(f)
            os.symlink("../" * min(i, 2) + f"file{max(i - 2, 0)}", f"link{i}", dir_fd=fd)
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        os.mkfifo("deepest-fifo", dir_fd=fd)
        f = os.open("deepest", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd)
        os.write(f, os.urandom(300_000))
        os.close(f)
        os.setxattr(f"/proc/self/fd/{fd}/deepest", "user.deep", b"yes")
    finally:
        os.close(fd)
    return len(str(root)) + levels * (component + 1) + len("/deepest")


def test_tree_deeper_than_path_max(tmp_path: Path, backend: str) -> None:
    src = tmp_path / "src"
    depth = _deep_tree(src)
    assert depth > 4096
    entries = _set_deep_times(src)
    r = run_cli(["-aHX", "--json", "--backend", backend, f"{src}/", str(tmp_path / "dst")])
    _no_traceback(r)
    assert r.returncode == 0, r
    assert r.stderr == ""
    assert r.json()["files"] == entries
    assert_same_tree(src, tmp_path / "dst")


def _set_deep_times(root: Path) -> int:
    """Times for every entry of a deep tree, through dir fds; returns the entry count."""
    count = 0
    at = time.time_ns() + 3600 * 10**9

    def visit(fd: int) -> None:
        nonlocal count
        for n in os.listdir(fd):
            count += 1
            st = os.stat(n, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                sub = os.open(n, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
                try:
                    visit(sub)
                finally:
                    os.close(sub)
            os.utime(n, ns=(at, 1_500_000_000_000_000_000 + count), dir_fd=fd,
                     follow_symlinks=False)

    top = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        visit(top)
    finally:
        os.close(top)
    return count


# --------------------------------------------------------------------------------------
# entry types the options leave out, symlink oddities
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kinds", ["file file", "file dir", "dir file", "dir dir"])
def test_two_sources_with_one_name(tmp_path: Path, backend: str, kinds: str) -> None:
    """``a/x b/x DST``: both would be DST/x.  Two directories are merged, as
    rsync merges them.  Otherwise one is kept -- the directory, else the first,
    as rsync keeps -- and the other refused with a message and exit 23 (rsync
    is silent about it, cp fails); before, the second silently replaced the
    first's copy, or (a directory onto the first's file) failed half-way.  The
    same file named twice is simply copied once."""
    for d, kind in zip("ab", kinds.split()):
        if kind == "dir":
            (tmp_path / d / "x").mkdir(parents=True)
            write(tmp_path / d / "x" / f"in-{d}", d.encode())
        else:
            (tmp_path / d).mkdir()
            write(tmp_path / d / "x", d.encode())
    dst = tmp_path / "dst"
    r = run_cli(["-a", "--backend", backend, str(tmp_path / "a" / "x"),
                 str(tmp_path / "b" / "x"), str(tmp_path / "a" / "x"), str(dst)])
    _no_traceback(r)
    assert os.listdir(dst) == ["x"]
    if kinds == "dir dir":
        assert r.returncode == 0 and r.err_lines == [], r
        assert sorted(os.listdir(dst / "x")) == ["in-a", "in-b"]
        return
    kept, dropped = ("b", "a") if kinds == "file dir" else ("a", "b")
    assert r.returncode == 23, r
    assert len(r.err_lines) == 1 and "same name" in r.err_lines[0], r
    assert f"not copying \"{tmp_path / dropped / 'x'}\"" in r.err_lines[0], r
    if (dst / "x").is_dir():
        assert os.listdir(dst / "x") == [f"in-{kept}"]
    else:
        assert (dst / "x").read_bytes() == kept.encode()


@pytest.mark.parametrize("slash", [True, False])
def test_without_r_no_directory_is_copied(tmp_path: Path, src: Path, backend: str,
                                          slash: bool) -> None:
    """As rsync: without -r a directory SRC is skipped with a message, ``SRC/``
    too (before, ``SRC/`` copied its top level, as rsync's -d would); a file
    SRC beside it is copied."""
    write(tmp_path / "file", b"f")
    r = run_cli(["-lptgo", "--backend", backend, str(src) + ("/" if slash else ""),
                 str(tmp_path / "file"), str(tmp_path / "dst")])
    _no_traceback(r)
    assert r.returncode == 0, r
    assert len(r.err_lines) == 1 and "skipping directory" in r.err_lines[0], r
    assert os.listdir(tmp_path / "dst") == ["file"]


def test_specials_without_D_are_skipped_with_a_message(tmp_path: Path, backend: str) -> None:
    s = tmp_path / "src"
    s.mkdir()
    write(s / "f", b"f")
    os.mkfifo(s / "fifo")
    make_socket(s / "sock")
    if IS_ROOT:
        os.mknod(s / "dev", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    fix_times(s)
    r = run_cli(["-rlpt", "--json", "--backend", backend, f"{s}/", str(tmp_path / "dst")])
    _no_traceback(r)
    assert r.returncode == 0, r
    skipped = ["fifo", "sock"] + (["dev"] if IS_ROOT else [])
    assert len(r.err_lines) == len(skipped), r
    for n in skipped:
        assert sum(f'"{n}"' in ln and "skipping" in ln for ln in r.err_lines) == 1, r
    assert os.listdir(tmp_path / "dst") == ["f"]
    assert r.json()["skipped"] == len(skipped)


def test_dangling_symlinks_and_loops(tmp_path: Path, backend: str) -> None:
    s = tmp_path / "src"
    (s / "d").mkdir(parents=True)
    os.symlink("nowhere", s / "dangling")
    os.symlink("self", s / "self")
    os.symlink("b", s / "a")
    os.symlink("a", s / "b")
    os.symlink("..", s / "d" / "up")  # a directory loop through a symlink
    os.symlink(".", s / "d" / "here")
    fix_times(s)
    r = run_cli(["-a", "--backend", backend, f"{s}/", str(tmp_path / "dst")])
    _no_traceback(r)
    assert r.returncode == 0, r
    assert r.stderr == ""
    assert_same_tree(s, tmp_path / "dst")
    # as roots: followed only with a trailing slash, and then they fail cleanly
    r = run_cli(["-a", "--backend", backend, str(s / "self"), str(s / "dangling"),
                 str(tmp_path / "roots")])
    assert r.returncode == 0, r
    assert os.readlink(tmp_path / "roots" / "self") == "self"
    r = run_cli(["-a", "--backend", backend, f"{s / 'a'}/", f"{s / 'dangling'}/",
                 str(tmp_path / "roots2")])
    _no_traceback(r)
    assert r.returncode == 23, r
    assert len(r.err_lines) == 2, r


# --------------------------------------------------------------------------------------
# the source changing under the copy
# --------------------------------------------------------------------------------------
def _race_tree(root: Path) -> None:
    root.mkdir()
    write(root / "grow-small", b"s" * 1000)
    write(root / "shrink-small", b"t" * 1000)
    write(root / "grow-big", os.urandom(1 << 20))
    write(root / "shrink-big", os.urandom(1 << 20))
    write(root / "bystander", b"untouched")
    (root / "victim-dir").mkdir()
    write(root / "victim-dir" / "x", b"x")
    write(root / "victim-file", b"v" * 100)
    fix_times(root)


@pytest.mark.parametrize("rerun", [False, True])
def test_a_name_listed_again_is_copied_once(tmp_path: Path, backend: str, rerun: bool,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory changed while it is listed can give a name again in a later
    getdents64 answer (an entry removed and made again: tmpfs hands it a new
    offset).  Before, the copy took such a name twice: "cannot create ...:
    File exists", exit 23 (the FIFO-swap trial of 2026-12-05).  Here every
    source answer comes twice."""
    from pyuring.copy.engine import Engine

    s = tmp_path / "src"
    s.mkdir()
    write(s / "f", b"data")
    os.mkfifo(s / "fifo")
    os.symlink("f", s / "link")
    (s / "d").mkdir()
    write(s / "d" / "g", b"more")
    fix_times(s)
    dst = tmp_path / "dst"
    if rerun:
        copy_api(s, dst, backend=backend)
        write(s / "f", b"changed")
    real = Engine._read_dirents

    def twice(self: Engine, d: Any, source: bool) -> Iterator[Tuple[bytes, int]]:
        answers = list(real(self, d, source))
        return iter(answers + answers if source else answers)

    monkeypatch.setattr(Engine, "_read_dirents", twice)
    stats, msgs = copy_api(s, dst, backend=backend)
    assert msgs == [] and stats.exit_code == 0, msgs
    assert stats.transferred == (1 if rerun else 2) and stats.files == 5, vars(stats)
    assert_same_tree(s, dst)


@pytest.mark.parametrize("data_path", ["auto", "ring"])
def test_files_growing_and_shrinking_during_the_copy(tmp_path: Path, backend: str,
                                                     data_path: str) -> None:
    s = tmp_path / "src"
    _race_tree(s)
    res = run_hooked(s, tmp_path / "dst", backend,
                     {"grow-small": "grow", "shrink-small": "shrink", "grow-big": "grow",
                      "shrink-big": "shrink"}, data_path=data_path)
    assert res["exit_code"] in (0, 23), res  # reported; rsync-like tools differ on the code
    assert res["stats"]["changed_during_copy"] == 4, res
    changed = [m for m in res["msgs"] if "changed size" in m]
    assert len(changed) == 4, res["msgs"]
    assert not [m for m in res["msgs"] if "changed size" not in m], res["msgs"]
    # each copy holds what was read: the file as it was after the change
    for name in ("grow-small", "shrink-small", "grow-big", "shrink-big"):
        assert (tmp_path / "dst" / name).read_bytes() == (s / name).read_bytes(), name
    assert (tmp_path / "dst" / "bystander").read_bytes() == b"untouched"
    # the destination keeps the mtime it read, so a re-run notices and completes the copy
    r = run_cli(["-a", "--backend", backend, f"{s}/", str(tmp_path / "dst")])
    assert r.returncode == 0, r
    assert_same_tree(s, tmp_path / "dst")


def test_source_file_vanishing_during_the_copy(tmp_path: Path, backend: str) -> None:
    s = tmp_path / "src"
    _race_tree(s)
    res = run_hooked(s, tmp_path / "dst", backend, {"victim-file": "vanish"})
    assert res["exit_code"] == 24, res
    assert len(res["msgs"]) == 1 and "vanished" in res["msgs"][0], res
    assert res["stats"]["vanished"] == 1
    assert not (tmp_path / "dst" / "victim-file").exists()
    assert_same_tree(s, tmp_path / "dst", root_meta=False)  # (the unlink moved src's mtime)


@pytest.mark.parametrize("action", ["vanish", "link_to_file"])
def test_a_symlink_gone_or_made_a_file_during_the_copy_has_vanished(
        tmp_path: Path, backend: str, action: str) -> None:
    """Between a symlink's statx and its readlink the name is removed, or a
    file takes its place: the symlink has vanished (exit 24, as rsync), not
    "cannot readlink" (exit 23, found by a trial)."""
    s = tmp_path / "src"
    s.mkdir()
    write(s / "bystander", b"untouched")
    os.symlink("bystander", s / "victim-link")
    fix_times(s)
    res = run_hooked(s, tmp_path / "dst", backend, {"victim-link": action})
    assert res["exit_code"] == 24, res
    assert res["msgs"] == ['file has vanished: "victim-link"'], res
    assert (tmp_path / "dst" / "bystander").read_bytes() == b"untouched"
    assert not os.path.lexists(tmp_path / "dst" / "victim-link")


@pytest.mark.parametrize("d_type", [True, False])
def test_directory_replaced_by_a_file_during_the_copy(tmp_path: Path, backend: str,
                                                      d_type: bool) -> None:
    s = tmp_path / "src"
    _race_tree(s)
    res = run_hooked(s, tmp_path / "dst", backend, {"victim-dir": "dir_to_file"}, d_type)
    dst = tmp_path / "dst"
    if d_type:
        # listed as a directory, a file by its open: copied as the file it is
        assert res["exit_code"] == 0 and res["msgs"] == [], res
        assert (dst / "victim-dir").read_bytes() == (s / "victim-dir").read_bytes()
    else:
        # a directory by its statx, a file by its open: the directory has
        # vanished from that name (exit 24; was 23)
        assert res["exit_code"] == 24, res
        assert res["msgs"] == ['directory has vanished: "victim-dir"'], res
    for name in ("grow-small", "grow-big", "bystander", "victim-file"):
        assert (dst / name).read_bytes() == (s / name).read_bytes()
    # whatever stands at victim-dir is no half-copied file
    v = dst / "victim-dir"
    assert not v.exists() or v.is_dir() or v.read_bytes() == (s / "victim-dir").read_bytes()
    # a re-run brings the new state over as far as rsync would (a dir is not replaced)
    run_cli(["-a", "--backend", backend, f"{s}/", str(dst)])
    assert (dst / "bystander").read_bytes() == b"untouched"


def test_file_replaced_by_a_directory_during_the_copy(tmp_path: Path, backend: str) -> None:
    s = tmp_path / "src"
    _race_tree(s)
    res = run_hooked(s, tmp_path / "dst", backend, {"victim-file": "file_to_dir"})
    assert res["exit_code"] == 24, res  # (its READ: EISDIR; was 23)
    assert len(res["msgs"]) == 1 and '"victim-file"' in res["msgs"][0], res
    v = tmp_path / "dst" / "victim-file"
    assert not v.is_file(), "a directory was copied as a file"
    assert (tmp_path / "dst" / "bystander").read_bytes() == b"untouched"


@pytest.mark.parametrize("victim", ["victim-file", "victim-dir"])
@pytest.mark.parametrize("d_type", [True, False])
def test_entry_swapped_for_a_symlink_to_outside(tmp_path: Path, backend: str,
                                                victim: str, d_type: bool) -> None:
    """The raced-in symlink is never followed: nothing from outside reaches DST."""
    outside = tmp_path / "outside"
    outside.mkdir()
    write(outside / "canary", b"OUTSIDE-SECRET")
    s = tmp_path / "src"
    _race_tree(s)
    res = run_hooked(s, tmp_path / "dst", backend, {victim: "to_outside_link"}, d_type)
    assert res["exit_code"] in (0, 24), res  # (a file's O_NOFOLLOW open: ELOOP; was 23)
    for rel, full in regular_files(tmp_path / "dst"):
        assert b"OUTSIDE-SECRET" not in Path(os.fsdecode(full)).read_bytes(), rel
    assert (outside / "canary").read_bytes() == b"OUTSIDE-SECRET"
    assert os.listdir(outside) == ["canary"]


def test_destination_symlinks_to_outside_are_replaced_not_followed(tmp_path: Path,
                                                                   backend: str) -> None:
    """A destination holding symlinks (to outside DST) where the source has a file and a
    directory: the copy replaces the symlinks and writes nothing outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    write(outside / "canary", b"CANARY")
    os.utime(outside / "canary", ns=(10**18, 10**18))
    s = tmp_path / "src"
    (s / "d").mkdir(parents=True)
    write(s / "f", b"source file")
    write(s / "d" / "canary", b"from the source")
    fix_times(s)
    dst = tmp_path / "dst"
    dst.mkdir()
    os.symlink(outside / "canary", dst / "f")
    os.symlink(outside, dst / "d")
    before = snapshot(outside)
    for opts in (["-a"], ["-a", "-I"]):
        r = run_cli([*opts, "--backend", backend, f"{s}/", str(dst)])
        _no_traceback(r)
        assert r.returncode == 0, r
        assert changes_between(before, snapshot(outside)) == []
        assert not os.path.islink(dst / "f") and not os.path.islink(dst / "d")
        assert_same_tree(s, dst)


# --------------------------------------------------------------------------------------
# permissions (as nobody)
# --------------------------------------------------------------------------------------
def _nobody_tree(work: Path) -> Path:
    s = work / "src"
    (s / "open-dir").mkdir(parents=True)
    (s / "closed-dir").mkdir()
    write(s / "readable", b"r", 0o644)
    write(s / "secret", b"only root reads this", 0o600)
    write(s / "secret-big", os.urandom(1 << 20), 0o600)
    write(s / "open-dir" / "f", b"f", 0o644)
    write(s / "closed-dir" / "hidden", b"h", 0o644)
    for dirpath, dirs, files in os.walk(work):
        for n in dirs + files:
            if n not in ("secret", "secret-big", "closed-dir"):
                os.chown(os.path.join(dirpath, n), 65534, 65534)
    os.chown(work, 65534, 65534)
    os.chmod(s / "closed-dir", 0o700)  # root's, so nobody cannot list it
    fix_times(s)
    return s


@requires_root
def test_unreadable_source_entries_as_non_root(tmp_path: Path, backend: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    s = _nobody_tree(work)
    dst = work / "dst"
    with traversable(work):
        r = run_cli(["-a", "--backend", backend, f"{s}/", str(dst)], prelude=UNPRIV_PRELUDE,
                    cwd="/", timeout=20)
    _no_traceback(r)
    assert r.returncode == 23, r
    lines = r.err_lines
    assert len(lines) == 3, r
    for name in ("secret", "secret-big", "closed-dir"):
        assert sum(f'"{name}"' in ln and "Permission denied" in ln for ln in lines) == 1, r
    # the documented shape: pyuring-copy: cannot open "a/b": Permission denied (13)
    for ln in lines:
        assert re.fullmatch(r'pyuring-copy: cannot [a-z ]+ "[^"]+": Permission denied \(13\)',
                            ln), ln
    assert (dst / "readable").read_bytes() == b"r"
    assert (dst / "open-dir" / "f").read_bytes() == b"f"
    assert not (dst / "secret").exists() and not (dst / "secret-big").exists()
    assert not (dst / "closed-dir" / "hidden").exists()
    # (made empty, with the source's mode and times, as cp and rsync give it;
    # before, 0700 and the time of the copy)
    got, want = os.lstat(dst / "closed-dir"), os.lstat(s / "closed-dir")
    assert (stat.S_IMODE(got.st_mode), got.st_mtime_ns) == \
        (stat.S_IMODE(want.st_mode), want.st_mtime_ns)


@requires_root
def test_unreadable_source_root_as_non_root(tmp_path: Path, backend: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    s = _nobody_tree(work)
    with traversable(work):
        r = run_cli(["-a", "--backend", backend, f"{s / 'closed-dir'}/", f"{s / 'open-dir'}/",
                     str(work / "dst")], prelude=UNPRIV_PRELUDE, cwd="/", timeout=20)
    _no_traceback(r)
    assert r.returncode == 23, r
    assert len(r.err_lines) == 1 and "closed-dir" in r.err_lines[0], r
    assert (work / "dst" / "f").read_bytes() == b"f"


@requires_root
def test_no_source_root_opens_leaves_no_destination(tmp_path: Path, backend: str) -> None:
    """Every SRC unreadable: the destination this run would have made for
    them is not left behind (empty, mode 0700); one that existed stays."""
    work = tmp_path / "work"
    work.mkdir()
    s = _nobody_tree(work)
    (work / "old").mkdir()
    os.chown(work / "old", 65534, 65534)
    with traversable(work):
        for dst in ("new", "old"):
            r = run_cli(["-a", "--backend", backend, f"{s / 'closed-dir'}/", str(work / dst)],
                        prelude=UNPRIV_PRELUDE, cwd="/", timeout=20)
            assert_clean_failure(r, 23, "closed-dir", "Permission denied")
    assert not (work / "new").exists()
    assert os.listdir(work / "old") == []


@requires_root
@pytest.mark.parametrize("into", ["file-path", "write-only-dir", "readable-dir"])
def test_entries_of_unlistable_directories_as_non_root(tmp_path: Path, backend: str,
                                                       into: str) -> None:
    """A directory nobody may list but may pass (0111) still yields the entries
    named in it, and a write-only one (0333) still takes new entries: rsync,
    working by path, copies both ways; the roots' parents are opened O_PATH."""
    work = tmp_path / "work"
    held = work / "held"
    (held / "sd").mkdir(parents=True)
    write(held / "f", b"file data", 0o640)
    os.setxattr(held / "f", "user.k", b"v")
    write(held / "sd" / "x", b"x")
    os.symlink("f", held / "l")
    os.mkfifo(held / "p", 0o600)
    fix_times(held)
    (work / "out").mkdir()
    for dirpath, dirs, files in os.walk(work):
        for n in [dirpath, *[os.path.join(dirpath, x) for x in dirs + files]]:
            os.lchown(n, 65534, 65534)
    if into == "file-path":
        sources, dst = [held / "f"], work / "out" / "copy"
    else:
        sources = [held / n for n in ("f", "l", "p", "sd")]
        dst = work / "out"
        if into == "write-only-dir":
            os.chmod(dst, 0o333)
            # (-A: what the new entries inherit must be taken off again -- the
            # engine has to see this ACL through the O_PATH fd)
            os.setxattr(dst, "system.posix_acl_default",
                        acl_blob(0o777, users=[(4321, 7)]))
    os.chmod(held, 0o111)
    try:
        with traversable(work):
            r = run_cli(["-aXA", "--backend", backend, *map(str, sources),
                         str(dst) + ("" if into == "file-path" else "/")],
                        prelude=UNPRIV_PRELUDE, cwd="/", timeout=20)
    finally:
        os.chmod(held, 0o755)
        os.chmod(work / "out", 0o755)
    _no_traceback(r)
    assert r.returncode == 0 and r.err_lines == [], r
    if into != "file-path":
        assert diff_trees(held, dst, root_meta=False) == []
        return
    assert dst.read_bytes() == b"file data"
    assert os.getxattr(dst, "user.k") == b"v"
    a, b = os.lstat(held / "f"), os.lstat(dst)
    assert (a.st_mode, a.st_uid, a.st_mtime_ns) == (b.st_mode, b.st_uid, b.st_mtime_ns)


@requires_root
def test_readonly_destination_directory_as_non_root(tmp_path: Path, backend: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    s = work / "src"
    (s / "ro").mkdir(parents=True)
    write(s / "ro" / "new", b"new file")
    write(s / "ro" / "existing", b"source version")
    write(s / "ok", b"ok")
    fix_times(s)
    dst = work / "dst"
    (dst / "ro").mkdir(parents=True)
    write(dst / "ro" / "existing", b"dst version, must survive")
    for dirpath, dirs, files in os.walk(work):
        for n in [dirpath, *[os.path.join(dirpath, x) for x in dirs + files]]:
            os.chown(n, 65534, 65534)
    # someone else's: a directory of its own a non-root copy opens up for the
    # time it works in there (as rsync does; tests/test_copy_rsync_modes.py)
    os.chown(dst / "ro", 1000, 1000)
    os.chmod(dst / "ro", 0o555)
    with traversable(work):
        r = run_cli(["-a", "--backend", backend, f"{s}/", str(dst)], prelude=UNPRIV_PRELUDE,
                    cwd="/", timeout=20)
    _no_traceback(r)
    assert r.returncode == 23, r
    assert r.err_lines and all("ro/" in ln or '"ro"' in ln for ln in r.err_lines), r
    assert any("Permission denied" in ln for ln in r.err_lines), r
    assert (dst / "ok").read_bytes() == b"ok"
    assert (dst / "ro" / "existing").read_bytes() == b"dst version, must survive"
    assert not (dst / "ro" / "new").exists()
    assert [n for n in os.listdir(dst / "ro") if n != "existing"] == []


# --------------------------------------------------------------------------------------
# a destination without xattr support
# --------------------------------------------------------------------------------------
@requires_root
def test_xattrs_to_a_filesystem_without_them(tmp_path: Path, backend: str) -> None:
    s = build_mixed_tree(tmp_path / "src", big=1 << 20)
    for name in ("small", "d1/f", "exact"):
        os.setxattr(s / name, "user.x", b"1")
    os.setxattr(s / "d1", "user.dir", b"d")
    fix_times(s)
    with mounted("ramfs", tmp_path / "mnt") as mnt:  # ramfs: no xattrs at all
        try:
            os.setxattr(mnt, "user.probe", b"1")
            pytest.skip("this ramfs supports xattrs")
        except OSError:
            pass
        r = run_cli(["-aHX", "--backend", backend, f"{s}/", str(mnt / "dst")])
        _no_traceback(r)
        assert r.returncode in (0, 23), r
        assert 1 <= len(r.err_lines) <= 2, r
        assert "xattr" in r.stderr.lower() or "extended attributes" in r.stderr.lower(), r
        assert diff_trees(s, mnt / "dst", xattrs=False) == []


@requires_root
def test_acls_to_a_filesystem_without_them(tmp_path: Path, backend: str) -> None:
    if shutil.which("setfacl") is None:
        pytest.skip("needs setfacl")
    s = tmp_path / "src"
    s.mkdir()
    write(s / "f", b"f")
    subprocess.run(["setfacl", "-m", "u:1234:r", str(s / "f")], check=True)
    fix_times(s)
    with mounted("ramfs", tmp_path / "mnt") as mnt:
        r = run_cli(["-aA", "--backend", backend, f"{s}/", str(mnt / "dst")])
        _no_traceback(r)
        assert r.returncode in (0, 23), r
        assert len(r.err_lines) == 1, r
        assert (mnt / "dst" / "f").read_bytes() == b"f"



# --------------------------------------------------------------------------------------
# found by the trial of 2026-12-06
# --------------------------------------------------------------------------------------
def test_a_symlink_source_to_the_destination_file_is_refused(tmp_path: Path) -> None:
    """``-a lf d/f`` where lf -> d/f would replace d/f by the link, whose data
    would then be gone (rsync does it; cp refuses, "are the same file").
    A new name for the link is fine."""
    (tmp_path / "d").mkdir()
    write(tmp_path / "d" / "f", b"only copy")
    os.symlink("d/f", tmp_path / "lf")
    r = run_cli(["-a", "lf", "d/f"], cwd=tmp_path)
    assert_clean_failure(r, 1, "is a symlink to the destination file")
    assert (tmp_path / "d" / "f").read_bytes() == b"only copy"
    assert not (tmp_path / "d" / "f").is_symlink()
    r = run_cli(["-a", "lf", "d/"], cwd=tmp_path)
    assert r.returncode == 0 and os.readlink(tmp_path / "d" / "lf") == "d/f", r


def test_a_single_file_into_a_missing_directory_is_exit_3(tmp_path: Path) -> None:
    write(tmp_path / "f", b"x")
    r = run_cli(["-a", "f", "nope/x"], cwd=tmp_path)
    assert_clean_failure(r, 3, "nope")  # (rsync: "change_dir#3 ... failed", exit 3)


@requires_root
def test_devices_are_skipped_without_root(tmp_path: Path) -> None:
    """Only root makes device nodes: as rsync, a copy by another user skips
    them (one line each) and exits 0, where it tried and failed (exit 23)."""
    work = tmp_path / "work"
    src = work / "src"
    src.mkdir(parents=True)
    write(src / "f", b"data", 0o644)
    os.mknod(src / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mkfifo(src / "fifo")
    for p in (work, src, src / "f", src / "fifo"):
        os.chown(p, 65534, 65534, follow_symlinks=False)
    dst = work / "dst"
    with traversable(work):
        r = run_cli(["-a", f"{src}/", str(dst)], prelude=UNPRIV_PRELUDE, cwd="/")
    _no_traceback(r)
    assert r.returncode == 0, r
    assert r.err_lines == ['pyuring-copy: skipping non-regular file "null"'], r
    assert sorted(os.listdir(dst)) == ["f", "fifo"]
    assert stat.S_ISFIFO(os.lstat(dst / "fifo").st_mode)
