"""Error mapping: a failed operation raises the OSError subclass of its errno,
naming the entry (its path below the root) in ``.filename`` and the message.
Both backends; EACCES/EPERM as an unprivileged user in a subprocess."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple, Type

import pytest

from pyuring import DirectoryFd
from pyuring.dirfd import RENAME_NOREPLACE

from .conftest import IS_ROOT
from .test_dirfd_support import open_root


@pytest.fixture
def tree(tmp_path: Path, backend: str) -> Iterator[Tuple[Path, DirectoryFd, DirectoryFd]]:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "inner").write_bytes(b"")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_bytes(b"")
    (tmp_path / "file").write_bytes(b"content")
    os.symlink("dir", tmp_path / "link")
    os.symlink("nowhere", tmp_path / "dangling")
    with open_root(tmp_path, backend) as d, d.open_dir("dir") as sub:
        yield tmp_path, d, sub


Case = Tuple[str, Callable[[DirectoryFd, DirectoryFd], object], Type[OSError], int, str]

CASES: List[Case] = [
    # ENOENT
    ("statx", lambda d, s: d.statx("missing"), FileNotFoundError, errno.ENOENT, "missing"),
    ("open_dir", lambda d, s: d.open_dir("missing"), FileNotFoundError, errno.ENOENT,
     "missing"),
    ("open_file", lambda d, s: d.open_file("missing"), FileNotFoundError, errno.ENOENT,
     "missing"),
    ("open_file_sub", lambda d, s: s.open_file("nothing"), FileNotFoundError, errno.ENOENT,
     "dir/nothing"),
    ("unlink", lambda d, s: d.unlink("missing"), FileNotFoundError, errno.ENOENT, "missing"),
    ("rmdir", lambda d, s: d.rmdir("missing"), FileNotFoundError, errno.ENOENT, "missing"),
    ("readlink", lambda d, s: d.readlink("missing"), FileNotFoundError, errno.ENOENT,
     "missing"),
    ("chmod", lambda d, s: d.chmod("missing", 0o600), FileNotFoundError, errno.ENOENT,
     "missing"),
    ("utime", lambda d, s: d.utime("missing", 0, 0), FileNotFoundError, errno.ENOENT,
     "missing"),
    ("getxattr", lambda d, s: d.getxattr("missing", "user.a"), FileNotFoundError,
     errno.ENOENT, "missing"),
    ("rename", lambda d, s: d.rename("missing", s, "x"), FileNotFoundError, errno.ENOENT,
     "missing"),
    ("link", lambda d, s: d.link("missing", s, "x"), FileNotFoundError, errno.ENOENT,
     "missing"),
    # EEXIST
    ("mkdir", lambda d, s: d.mkdir("file"), FileExistsError, errno.EEXIST, "file"),
    ("mkdir_dir", lambda d, s: d.mkdir("dir"), FileExistsError, errno.EEXIST, "dir"),
    ("symlink", lambda d, s: d.symlink("x", "link"), FileExistsError, errno.EEXIST, "link"),
    ("mkfifo", lambda d, s: d.mkfifo("file"), FileExistsError, errno.EEXIST, "file"),
    ("open_excl", lambda d, s: d.open_file("file", os.O_CREAT | os.O_EXCL | os.O_WRONLY),
     FileExistsError, errno.EEXIST, "file"),
    ("link_dst", lambda d, s: d.link("file", s, "inner"), FileExistsError, errno.EEXIST,
     "dir/inner"),
    ("rename_noreplace", lambda d, s: d.rename("file", s, "inner", RENAME_NOREPLACE),
     FileExistsError, errno.EEXIST, "dir/inner"),
    # ENOTDIR
    ("open_dir_file", lambda d, s: d.open_dir("file"), NotADirectoryError, errno.ENOTDIR,
     "file"),
    ("rmdir_file", lambda d, s: d.rmdir("file"), NotADirectoryError, errno.ENOTDIR, "file"),
    ("rename_dir_over_file", lambda d, s: d.rename("full", d, "file"), NotADirectoryError,
     errno.ENOTDIR, "full"),
    # ELOOP
    ("open_dir_link", lambda d, s: d.open_dir("link"), OSError, errno.ELOOP, "link"),
    ("open_file_link", lambda d, s: d.open_file("link"), OSError, errno.ELOOP, "link"),
    ("open_file_dangling_creat",
     lambda d, s: d.open_file("dangling", os.O_CREAT | os.O_WRONLY), OSError, errno.ELOOP,
     "dangling"),
    ("statx_follow_dangling", lambda d, s: d.statx("dangling", follow=True),
     FileNotFoundError, errno.ENOENT, "dangling"),
    # others
    ("unlink_dir", lambda d, s: d.unlink("dir"), IsADirectoryError, errno.EISDIR, "dir"),
    ("rmdir_full", lambda d, s: d.rmdir("full"), OSError, errno.ENOTEMPTY, "full"),
    ("readlink_file", lambda d, s: d.readlink("file"), OSError, errno.EINVAL, "file"),
    ("chmod_link", lambda d, s: d.chmod("link", 0o600), OSError, errno.EOPNOTSUPP, "link"),
    ("getxattr_none", lambda d, s: d.getxattr("file", "user.none"), OSError, errno.ENODATA,
     "file"),
    ("getxattr_self", lambda d, s: s.getxattr(None, "user.none"), OSError, errno.ENODATA,
     "dir"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_error_mapping(tree: Tuple[Path, DirectoryFd, DirectoryFd], case: Case) -> None:
    tmp, d, sub = tree
    op, call, cls, err, shown = case
    before = sorted(os.listdir(tmp)), sorted(os.listdir(tmp / "dir"))
    with pytest.raises(OSError) as info:
        call(d, sub)
    exc = info.value
    assert type(exc) is cls or (cls is OSError and isinstance(exc, OSError)), (op, exc)
    assert exc.errno == err, (op, exc)
    names = f"{exc.filename} {exc.filename2}"
    assert os.path.join(str(tmp), shown) in names, (op, exc.filename, exc.filename2)
    assert shown.rsplit("/", 1)[-1] in str(exc)
    assert os.strerror(err) in str(exc)
    assert (sorted(os.listdir(tmp)), sorted(os.listdir(tmp / "dir"))) == before


def test_statx_many_errors_are_values(tree: Tuple[Path, DirectoryFd, DirectoryFd]) -> None:
    _, d, _ = tree
    got = d.statx_many(["file", "missing", "dangling"], follow=True)
    assert not isinstance(got[0], OSError) and got[0].size == 7
    for value, name in ((got[1], "missing"), (got[2], "dangling")):
        assert isinstance(value, FileNotFoundError)
        assert value.errno == errno.ENOENT
        assert value.filename is not None and name in str(value.filename)


def test_non_utf8_name_in_error(tree: Tuple[Path, DirectoryFd, DirectoryFd]) -> None:
    _, d, _ = tree
    with pytest.raises(FileNotFoundError) as info:
        d.statx(b"\xff\xfe missing")
    assert info.value.filename is not None
    assert os.fsencode(str(info.value.filename)).endswith(b"/\xff\xfe missing")


# --------------------------------------------------------------------------------------
# EACCES / EPERM as an unprivileged user
# --------------------------------------------------------------------------------------

_CHILD = textwrap.dedent(r"""
    import errno, json, os, sys
    sys.path.insert(0, sys.argv[3])
    import pyuring, pyuring.dirfd, pyuring.executor, pyuring.ring, pyuring.probe  # noqa
    from pyuring import DirectoryFd, UringUnavailable
    top, backend = sys.argv[1], sys.argv[2]
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    out = []
    def attempt(op, fn):
        try:
            fn()
            out.append([op, None, None, None])
        except OSError as exc:
            out.append([op, type(exc).__name__, exc.errno, exc.filename])
    try:
        d = DirectoryFd.open(top, backend=backend)
    except UringUnavailable as exc:
        print(json.dumps({"skip": str(exc)}))
        sys.exit(0)
    attempt("open_root", lambda: DirectoryFd.open(os.path.join(top, "private"),
                                                  backend=backend).close())
    attempt("open_dir", lambda: d.open_dir("private").close())
    attempt("open_file", lambda: os.close(d.open_file("secret")))
    attempt("open_file_write", lambda: os.close(d.open_file("file", os.O_WRONLY)))
    attempt("create", lambda: os.close(d.open_file("new", os.O_CREAT | os.O_WRONLY)))
    attempt("mkdir", lambda: d.mkdir("newdir"))
    attempt("symlink", lambda: d.symlink("x", "newlink"))
    attempt("mkfifo", lambda: d.mkfifo("newfifo"))
    attempt("unlink", lambda: d.unlink("file"))
    attempt("rename", lambda: d.rename("file", d, "file2"))
    attempt("chmod", lambda: d.chmod("file", 0o777))
    attempt("utime", lambda: d.utime("file", 0, 0))
    attempt("chown", lambda: d.chown("file", 65534, 65534))
    attempt("setxattr", lambda: d.setxattr("file", "user.x", b"1"))
    attempt("statx_ok", lambda: d.statx("secret"))
    attempt("readable_file", lambda: os.close(d.open_file("file")))
    # our own file that we may write but not read: xattrs by name, not by fd
    attempt("setxattr_own_unreadable", lambda: d.setxattr("mine", "user.mine", b"ok"))
    d.close()
    print(json.dumps({"results": out}))
""")

#: op -> (exception class, errno), or None when the call must succeed
EXPECTED = {
    "open_root": ("PermissionError", errno.EACCES),
    "open_dir": ("PermissionError", errno.EACCES),
    "open_file": ("PermissionError", errno.EACCES),
    "open_file_write": ("PermissionError", errno.EACCES),
    "create": ("PermissionError", errno.EACCES),
    "mkdir": ("PermissionError", errno.EACCES),
    "symlink": ("PermissionError", errno.EACCES),
    "mkfifo": ("PermissionError", errno.EACCES),
    "unlink": ("PermissionError", errno.EACCES),
    "rename": ("PermissionError", errno.EACCES),
    "chmod": ("PermissionError", errno.EPERM),
    "utime": ("PermissionError", errno.EPERM),
    "chown": ("PermissionError", errno.EPERM),
    "setxattr": ("PermissionError", errno.EACCES),
    "statx_ok": None,
    "readable_file": None,
    "setxattr_own_unreadable": None,
}
NAMES = {"open_root": "private", "open_dir": "private", "open_file": "secret",
         "open_file_write": "file", "create": "new", "mkdir": "newdir", "symlink": "newlink",
         "mkfifo": "newfifo", "unlink": "file", "rename": "file", "chmod": "file",
         "utime": "file", "chown": "file", "setxattr": "file"}


@pytest.fixture
def shared_tree() -> Iterator[str]:
    """A tree an unprivileged user can reach (pytest's tmp_path is 0700)."""
    top = tempfile.mkdtemp(prefix="pyuring-eacces-")
    try:
        os.chmod(top, 0o755)
        os.mkdir(os.path.join(top, "private"), 0o700)
        with open(os.path.join(top, "secret"), "wb") as f:
            f.write(b"secret")
        os.chmod(os.path.join(top, "secret"), 0o600)
        with open(os.path.join(top, "file"), "wb") as f:
            f.write(b"file")
        os.chmod(os.path.join(top, "file"), 0o644)
        mine = os.path.join(top, "mine")
        open(mine, "wb").close()
        if IS_ROOT:
            os.chown(mine, 65534, 65534)
        os.chmod(mine, 0o200)
        yield top
    finally:
        shutil.rmtree(top)


def test_permission_errors(shared_tree: str, backend: str) -> None:
    if not IS_ROOT:
        st = os.stat(shared_tree)
        if st.st_uid == os.geteuid():
            pytest.skip("needs root to drop privileges (this user owns the test tree)")
    repo = str(Path(__file__).resolve().parent.parent)
    before = {n: os.lstat(os.path.join(shared_tree, n)) for n in os.listdir(shared_tree)}
    proc = subprocess.run([sys.executable, "-c", _CHILD, shared_tree, backend, repo],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    if "skip" in report:
        pytest.skip(f"io_uring unavailable to the unprivileged user: {report['skip']}")
    results = {op: (cls, err, filename) for op, cls, err, filename in report["results"]}
    assert set(results) == set(EXPECTED)
    for op, want in EXPECTED.items():
        cls, err, filename = results[op]
        if want is None:
            assert cls is None, (op, results[op])
            continue
        assert (cls, err) == want, (op, results[op])
        name: Optional[str] = filename
        assert name is not None and name.endswith("/" + NAMES[op]), (op, filename)
    # nothing was changed by the failed calls
    after = {n: os.lstat(os.path.join(shared_tree, n)) for n in os.listdir(shared_tree)}
    assert sorted(after) == sorted(before)
    for n, st in before.items():
        if n == "mine":
            continue  # its xattr changed its ctime
        assert (after[n].st_mode, after[n].st_uid, after[n].st_mtime_ns) == (
            st.st_mode, st.st_uid, st.st_mtime_ns), n
    assert stat.S_IMODE(after["file"].st_mode) == 0o644
    assert os.getxattr(os.path.join(shared_tree, "mine"), "user.mine") == b"ok"
