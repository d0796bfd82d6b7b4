"""Helpers shared by the copy engine's tests (``test_copy_*.py``); no tests here.

* ``run_cli``: the CLI as users run it -- ``python -m pyuring.copy`` in a child
  process with PYTHONPATH at the repository -- optionally inside a seccomp
  filter that blocks io_uring_setup, or with privileges dropped to nobody.
* ``copy_api``: the in-process API (``Copier``) with a collected report.
* tree building: files, times set last (atime in the future so that reading a
  source never moves it under relatime), sockets, ACLs as raw xattrs.
* mounts: a tmpfs or ramfs under ``tmp_path`` (root only), unmounted after.
* ``run_hooked``: a copy in a child process that runs an action on a source
  entry between the engine's statx of it and its use -- the deterministic way to
  race "a file grew / vanished / became a file" against the engine (in a child,
  so that an engine that hangs on it fails the test instead of blocking it).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import stat
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import pytest

from pyuring import _abi as A
from pyuring.copy import Copier, CopyStats, Options
from pyuring.dirfd import DirEntry

from .conftest import BACKENDS as BACKENDS
from .conftest import IS_ROOT
from .conftest import check_backend as check_backend

REPO = Path(__file__).resolve().parent.parent
TMP_MARK = b".pyuring-tmp-"
#: A generous guard against a hung child: every copy here takes well under a
#: second or two; a child still running after this long is stuck.
HANG_GUARD = 120.0
SMALL_FILE_MAX = Options().small_file_max

PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


# --------------------------------------------------------------------------------------
# running the CLI
# --------------------------------------------------------------------------------------
def cli_env(**extra: str) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env.pop("PYURING_BACKEND", None)
    env.pop("PYURING_DEBUG", None)
    env.update(extra)
    return env


class Result:
    """A finished child: exit code, stdout and stderr (decoded, surrogateescape)."""

    def __init__(self, returncode: int, stdout: bytes, stderr: bytes) -> None:
        self.returncode = returncode
        self.stdout_bytes = stdout
        self.stdout = stdout.decode("utf-8", "surrogateescape")
        self.stderr = stderr.decode("utf-8", "surrogateescape")

    @property
    def err_lines(self) -> List[str]:
        """stderr lines, without argparse's "try --help" hint."""
        return [ln for ln in self.stderr.splitlines()
                if ln.strip() and "--help'" not in ln]

    def json(self) -> Dict[str, Any]:
        """The --json statistics line of stdout."""
        for line in reversed(self.stdout.splitlines()):
            if line.startswith("{"):
                value = json.loads(line)
                assert isinstance(value, dict)
                return value
        raise AssertionError(f"no JSON line in stdout: {self.stdout!r}")

    def __repr__(self) -> str:
        return (f"Result(rc={self.returncode}, stdout={self.stdout[-2000:]!r}, "
                f"stderr={self.stderr[-2000:]!r})")


def _python_prefix(prelude: str) -> List[str]:
    """argv that runs ``prelude`` and then ``python -m pyuring.copy`` with the rest."""
    code = prelude + textwrap.dedent("""
        import runpy, sys
        sys.argv[0] = "pyuring-copy"
        runpy.run_module("pyuring.copy", run_name="__main__", alter_sys=True)
    """)
    return [sys.executable, "-c", code]


def run_cli(args: Sequence[PathArg], *, cwd: Optional[PathArg] = None,
            env: Optional[Dict[str, str]] = None, prelude: Optional[str] = None,
            timeout: float = HANG_GUARD,
            preexec_fn: Optional[Callable[[], None]] = None) -> Result:
    """Run ``python -m pyuring.copy ARGS`` (after ``prelude`` code, if given)."""
    argv: List[Union[str, bytes]] = []
    if prelude is None:
        argv += [sys.executable, "-m", "pyuring.copy"]
    else:
        argv += _python_prefix(prelude)
    argv += [os.fsencode(a) if not isinstance(a, str) else a for a in args]
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env or cli_env(), stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=timeout, preexec_fn=preexec_fn)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"pyuring-copy hung: still running after {timeout:.0f} s "
                             f"(args {list(args)!r}); stderr so far: {exc.stderr!r}") from None
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_clean_failure(r: Result, code: int, *needles: str) -> None:
    """No traceback, the exit code, one message line naming each needle."""
    assert "Traceback" not in r.stderr, r
    assert r.returncode == code, r
    lines = r.err_lines
    assert len(lines) == 1, f"expected one message line, got {lines!r}"
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"


#: seccomp: make io_uring_setup fail with errno ERR (x86-64 and aarch64).
SECCOMP_PRELUDE = textwrap.dedent("""
    import ctypes, platform, struct
    def _block_io_uring(err):
        arch = {"x86_64": (0xC000003E, 317), "aarch64": (0xC00000B7, 277)}[platform.machine()]
        audit_arch, nr_seccomp = arch
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        def stmt(code, k):
            return struct.pack("=HBBI", code, 0, 0, k)
        def jeq(k, jt, jf):
            return struct.pack("=HBBI", 0x15, jt, jf, k)  # BPF_JMP|BPF_JEQ|BPF_K
        ld_abs, ret = 0x20, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_RET|BPF_K
        allow, errno_ret = 0x7FFF0000, 0x00050000
        prog = b"".join([
            stmt(ld_abs, 4),              # seccomp_data.arch
            jeq(audit_arch, 1, 0),
            stmt(ret, allow),             # another ABI: not ours to filter
            stmt(ld_abs, 0),              # seccomp_data.nr
            jeq(425, 0, 1),               # io_uring_setup
            stmt(ret, errno_ret | err),
            stmt(ret, allow),
        ])
        buf = ctypes.create_string_buffer(prog, len(prog))
        class SockFprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
        fprog = SockFprog(len(prog) // 8, ctypes.addressof(buf))
        libc.syscall.restype = ctypes.c_long
        # seccomp(SECCOMP_SET_MODE_FILTER, 0, &fprog)
        if libc.syscall(ctypes.c_long(nr_seccomp), ctypes.c_long(1), ctypes.c_long(0),
                        ctypes.byref(fprog)) != 0:
            raise OSError(ctypes.get_errno(), "seccomp(SECCOMP_SET_MODE_FILTER)")
    _block_io_uring(ERR)
""")


def seccomp_prelude(err: int) -> str:
    return SECCOMP_PRELUDE.replace("ERR", str(err))


def seccomp_available() -> bool:
    import platform

    return sys.platform.startswith("linux") and platform.machine() in ("x86_64", "aarch64")


#: Drop to nobody (65534) after importing everything, then run the CLI: the
#: interpreter and the repository may live where nobody cannot read (/root), so
#: nothing may be imported or looked up after the switch.
UNPRIV_PRELUDE = textwrap.dedent("""
    import argparse, gettext, importlib, json, locale, os, pkgutil, resource, sys
    import pyuring
    for _m in pkgutil.walk_packages(pyuring.__path__, "pyuring."):
        if not _m.name.endswith("__main__"):
            importlib.import_module(_m.name)
    from pyuring.copy.cli import build_parser, main
    build_parser().format_help()
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    assert os.geteuid() == 65534
    sys.exit(main(sys.argv[1:]))
""")


def nobodys_tree(tmp_path: Path) -> Tuple[Path, Path]:
    """``work/src/f`` (4 bytes, the xattr user.a) owned by nobody (65534), for
    a copy run as nobody (UNPRIV_PRELUDE) into ``work/dst``: (src, dst)."""
    work = tmp_path / "work"
    src = work / "src"
    src.mkdir(parents=True)
    write(src / "f", b"data", 0o644)
    os.setxattr(src / "f", "user.a", b"1")
    for p in (work, src, src / "f"):
        os.chown(p, 65534, 65534)
    return src, work / "dst"


@contextlib.contextmanager
def traversable(path: Path) -> Iterator[None]:
    """Let others through ``path`` and its ancestors (pytest makes them 0700)."""
    changed: List[Tuple[Path, int]] = []
    p = path.resolve()
    try:
        while p != p.parent:
            mode = stat.S_IMODE(p.stat().st_mode)
            if mode & 0o001 == 0:
                changed.append((p, mode))
                p.chmod(mode | 0o011)
            p = p.parent
        yield
    finally:
        for q, mode in changed:
            q.chmod(mode)


# --------------------------------------------------------------------------------------
# the API in-process
# --------------------------------------------------------------------------------------
def copy_api(sources: Union[PathArg, Sequence[PathArg]], dst: PathArg, *,
             backend: str, opts: Optional[Options] = None,
             itemized: Optional[List[str]] = None, **kw: Any) -> Tuple[CopyStats, List[str]]:
    """Copier(opts).run(sources, dst): stats and the reported messages.

    A single source given as a path copies its *contents* (a trailing slash is
    added), like copytree; a list is passed to Copier.run as is.
    """
    o = opts if opts is not None else Options.archive()
    o.backend = backend
    for k, v in kw.items():
        assert hasattr(o, k), k
        setattr(o, k, v)
    assert o.validate() is None, o.validate()
    msgs: List[str] = []
    if isinstance(sources, (str, bytes, os.PathLike)):
        s = os.fsencode(sources)
        srcs: List[bytes] = [s if s.endswith(b"/") else s + b"/"]
    else:
        srcs = [os.fsencode(x) for x in sources]
    c = Copier(o, msgs.append, itemized.append if itemized is not None else None)
    stats = c.run(srcs, os.fsencode(dst))
    return stats, msgs


def archive_all(**kw: Any) -> Options:
    """The options of ``-aHAX``."""
    return Options.archive(hard_links=True, xattrs=True, acls=True, **kw)


# --------------------------------------------------------------------------------------
# building trees
# --------------------------------------------------------------------------------------
def future_atime() -> int:
    """An atime after the ctime any entry gets now: reads will not move it (relatime)."""
    return time.time_ns() + 3600 * 10**9


def write(path: PathArg, data: bytes = b"", mode: Optional[int] = None) -> None:
    with open(os.fsencode(path), "wb") as f:
        f.write(data)
    if mode is not None:
        os.chmod(os.fsencode(path), mode)


def set_times(path: PathArg, mtime_ns: int, atime_ns: Optional[int] = None) -> None:
    at = atime_ns if atime_ns is not None else max(future_atime(), mtime_ns + 1)
    os.utime(os.fsencode(path), ns=(at, mtime_ns), follow_symlinks=False)


def fix_times(root: PathArg, mtime_ns: int = 1_600_000_000_123_456_789,
              special: Optional[Dict[bytes, int]] = None) -> None:
    """Give every entry below root (and root) its final times, deepest first.

    mtime is ``mtime_ns`` (or ``special[relpath]``); atime lies in the future
    so that the copy's reads leave it where it is.
    """
    top = os.fsencode(root)
    special = special or {}
    entries: List[Tuple[int, bytes, bytes]] = []
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, top)
            entries.append((rel.count(b"/"), rel, full))
    entries.sort(reverse=True)
    for _depth, rel, full in entries:
        set_times(full, special.get(rel, mtime_ns))
    set_times(top, special.get(b".", mtime_ns))


def make_socket(path: PathArg) -> None:
    """A socket file (bound AF_UNIX socket, closed) at path, however long the path."""
    p = os.fsencode(path)
    dfd = os.open(os.path.dirname(p) or b".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.bind(os.fsencode(f"/proc/self/fd/{dfd}/") + os.path.basename(p))
        finally:
            s.close()
    finally:
        os.close(dfd)


def make_sparse(path: PathArg, size: int, chunks: Sequence[Tuple[int, bytes]]) -> None:
    with open(os.fsencode(path), "wb") as f:
        f.truncate(size)
        for off, data in chunks:
            f.seek(off)
            f.write(data)


# POSIX ACLs as the kernel stores them in system.posix_acl_{access,default}
ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER = 1, 2, 4, 8, 16, 32
_ACL_UNDEFINED = 0xFFFFFFFF


def one_file_tree(src: Path, data: bytes, **xattrs: bytes) -> Path:
    """``src``/f holding ``data`` with the given xattrs (``user_k=...`` is
    ``user.k``), times fixed; returns ``src``."""
    src.mkdir()
    write(src / "f", data)
    for key, value in xattrs.items():
        os.setxattr(src / "f", key.replace("_", ".", 1), value)
    fix_times(src)
    return src


def linked_specials(src: Path) -> Path:
    """src with a FIFO and a symlink, each with a second hard-linked name
    (fifo, fifo2; link, link2)."""
    src.mkdir()
    os.mkfifo(src / "fifo")
    os.link(src / "fifo", src / "fifo2")
    os.symlink("target", src / "link")
    os.link(src / "link", src / "link2", follow_symlinks=False)
    return src


def acl_blob(mode: int, users: Sequence[Tuple[int, int]] = (),
             groups: Sequence[Tuple[int, int]] = ()) -> bytes:
    """An ACL: owner/group/other from ``mode``, plus named (id, perm) entries."""
    ents = [(ACL_USER_OBJ, (mode >> 6) & 7, _ACL_UNDEFINED)]
    ents += [(ACL_USER, p, u) for u, p in sorted(users)]
    ents += [(ACL_GROUP_OBJ, (mode >> 3) & 7, _ACL_UNDEFINED)]
    ents += [(ACL_GROUP, p, g) for g, p in sorted(groups)]
    if users or groups:
        ents += [(ACL_MASK, 7, _ACL_UNDEFINED)]
    ents += [(ACL_OTHER, mode & 7, _ACL_UNDEFINED)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, i) for t, p, i in ents)


# --------------------------------------------------------------------------------------
# mounts (root only)
# --------------------------------------------------------------------------------------
@contextlib.contextmanager
def mounted(fstype: str, where: Path, options: str = "",
            bind: Optional[Path] = None, source: Optional[Path] = None) -> Iterator[Path]:
    """Mount a fresh ``fstype`` (tmpfs, ramfs; or what ``source`` holds) at
    ``where`` -- or, with ``bind``, that directory once more there; skip if
    that is impossible."""
    if not IS_ROOT or shutil.which("mount") is None:
        pytest.skip(f"mounting a {fstype} needs root and mount(8)")
    where.mkdir(parents=True, exist_ok=True)
    cmd = ["mount", "-t", fstype] + (["-o", options] if options else []) + \
        [str(source) if source is not None else fstype, str(where)]
    if bind is not None:
        cmd = ["mount", "--bind", str(bind), str(where)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a {fstype} here: {r.stderr.strip()}")
    try:
        yield where
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(where)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)  # a child that was just killed may still hold it
        else:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


@contextlib.contextmanager
def loop_fs(tmp_path: Path, fstype: str, size: str = "320M",
            mkfs_args: Sequence[str] = ()) -> Iterator[Path]:
    """A fresh ``fstype`` (mkfs.<fstype> with ``mkfs_args``) in a sparse image
    file, loop-mounted under tmp_path; skip where mkfs, mount or the module
    are missing."""
    mkfs = shutil.which(f"mkfs.{fstype}")
    if mkfs is None:
        pytest.skip(f"mkfs.{fstype} is not installed")
    image = tmp_path / f"{fstype}.img"
    with open(image, "wb") as f:
        f.truncate(_size_bytes(size))
    r = subprocess.run([mkfs, "-q", *mkfs_args, str(image)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"mkfs.{fstype} failed: {r.stderr.strip()}")
    with mounted(fstype, tmp_path / f"{fstype}-mnt", "loop", source=image) as where:
        yield where
    image.unlink()


def _size_bytes(size: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(size[:-1]) * units[size[-1].upper()] if size[-1].isalpha() else int(size)


@contextlib.contextmanager
def scratch_fs(tmp_path: Path, name: str = "scratch", size: str = "4g") -> Iterator[Path]:
    """A tmpfs under tmp_path when root (fast, and gone at once afterwards), else a dir."""
    where = tmp_path / name
    if IS_ROOT and shutil.which("mount") is not None:
        where.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                           capture_output=True)
        if r.returncode == 0:
            try:
                yield where
            finally:
                subprocess.run(["umount", "-l", str(where)], capture_output=True)
            return
    where.mkdir(exist_ok=True)
    try:
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)


# --------------------------------------------------------------------------------------
# racing the engine deterministically
# --------------------------------------------------------------------------------------
def _grow(p: bytes) -> None:
    with open(p, "ab") as f:
        f.write(b"G" * (3 * 4096 + 7))


def _shrink(p: bytes) -> None:
    os.truncate(p, 10)


def _dir_to_file(p: bytes) -> None:
    shutil.rmtree(p)
    write(p, b"a file now")


def _file_to_dir(p: bytes) -> None:
    os.unlink(p)
    os.mkdir(p)
    write(os.path.join(p, b"inside"), b"in the new directory")


def _to_outside_link(p: bytes) -> None:
    # the victim becomes a symlink to "outside" next to the source directory
    outside = os.path.join(os.path.dirname(os.path.dirname(p)), b"outside")
    if os.path.isdir(p) and not os.path.islink(p):
        shutil.rmtree(p)
        os.symlink(outside, p)
    else:
        os.unlink(p)
        os.symlink(os.path.join(outside, b"canary"), p)


def _to_fifo(p: bytes) -> None:
    os.unlink(p)
    os.mkfifo(p)


def _link_to_file(p: bytes) -> None:
    os.unlink(p)
    write(p, b"a file now")


RACE_ACTIONS: Dict[str, Callable[[bytes], None]] = {
    "link_to_file": _link_to_file,
    "to_fifo": _to_fifo,
    "grow": _grow,
    "shrink": _shrink,
    "vanish": os.unlink,
    "dir_to_file": _dir_to_file,
    "file_to_dir": _file_to_dir,
    "to_outside_link": _to_outside_link,
}


def _is_dir_check(src_dir: bytes) -> Callable[[int], bool]:
    """Is a dirfd ``src_dir``'s directory (by inode)?"""
    src_ino = os.stat(src_dir).st_ino

    def is_src_dir(dfd: int) -> bool:
        try:
            return os.fstat(dfd).st_ino == src_ino
        except OSError:
            return False

    return is_src_dir


def install_statx_hook(api: Any, src_dir: bytes,
                       actions: Dict[bytes, Callable[[bytes], None]],
                       dir_opened: bool = False) -> List[bytes]:
    """Make ``actions[name](path)`` run right after the engine's statx of the source
    entry ``name`` (directly in ``src_dir``) completed, before the engine acts on it;
    for a directory opened before any statx of it (listed with its d_type:
    Engine._start_dir_entry), right before that open is issued.  With
    ``dir_opened`` only as the open of the directory ``name`` is delivered: from
    then on a swap of the name must change nothing.

    The executor interface is wrapped (``chain`` callbacks, ``statx`` and
    ``statx_many``): the action runs when the statx result is delivered, so the
    engine holds the old metadata and then meets the changed entry.  Returns the list of names whose
    action ran, so a test can check that its race really happened.
    """
    fired: List[bytes] = []
    is_src_dir = _is_dir_check(src_dir)
    orig = api.make_executor

    def make(*a: Any, **k: Any) -> Any:
        ex = orig(*a, **k)
        orig_chain, orig_statx = ex.chain, ex.statx
        watch: Dict[int, bytes] = {}

        def chain(cb: Callable[[int, int, Any], None]) -> int:
            holder: List[int] = []

            def wrapped(idx: int, res: int, extra: Any) -> None:
                name = watch.pop(holder[0], None) if holder else None
                if name is not None and res >= 0 and name not in fired:
                    fired.append(name)
                    actions[name](os.path.join(src_dir, name))
                cb(idx, res, extra)

            cid = int(orig_chain(wrapped))
            holder.append(cid)
            return cid

        def statx(cid: int, idx: int, dfd: int, name: bytes, *a2: Any, **k2: Any) -> None:
            if name in actions and name not in fired and is_src_dir(dfd) and not dir_opened:
                watch[cid] = name
            orig_statx(cid, idx, dfd, name, *a2, **k2)

        orig_many = ex.statx_many

        def statx_many(cb: Callable[..., None], dfd_a: int, dfd_b: int,
                       names_a: List[bytes], *a2: Any) -> None:
            if any(n in actions for n in names_a) and is_src_dir(dfd_a) and not dir_opened:
                def wrapped(results: List[int], *rest: Any) -> None:
                    for k, name in enumerate(names_a):
                        if name in actions and results[2 * k] >= 0 and name not in fired:
                            fired.append(name)
                            actions[name](os.path.join(src_dir, name))
                    cb(results, *rest)

                orig_many(wrapped, dfd_a, dfd_b, names_a, *a2)
                return
            orig_many(cb, dfd_a, dfd_b, names_a, *a2)

        orig_open = ex.openat2

        def openat2(cid: int, idx: int, dfd: int, name: bytes, oflags: int,
                    *a2: Any, **k2: Any) -> None:
            if oflags & os.O_DIRECTORY and name in actions and name not in fired \
                    and is_src_dir(dfd):
                if dir_opened:
                    watch[cid] = name
                else:
                    fired.append(name)
                    actions[name](os.path.join(src_dir, name))
            orig_open(cid, idx, dfd, name, oflags, *a2, **k2)

        ex.chain, ex.statx, ex.statx_many, ex.openat2 = chain, statx, statx_many, openat2
        return ex

    api.make_executor = make
    return fired


def listing_without_d_type(engine: Any) -> Callable[[Any, int], List[DirEntry]]:
    """A stand-in for ``engine.parse_dirents`` whose entries have no d_type
    (DT_UNKNOWN), as some file systems list them: every entry is then judged
    by a statx of its name first."""
    orig = engine.parse_dirents

    def parse(data: Any, n: int) -> List[DirEntry]:
        return [e._replace(d_type=A.DT_UNKNOWN) for e in orig(data, n)]

    return parse


def hooked_copy(spec: Dict[str, Any]) -> Dict[str, Any]:
    """In a child: copy spec["src"]/ to spec["dst"] with RACE_ACTIONS on the named entries."""
    import pyuring.copy.api as api
    import pyuring.copy.engine as engine

    if not spec.get("d_type", True):
        engine.parse_dirents = listing_without_d_type(engine)  # type: ignore[attr-defined,assignment]
    src = os.fsencode(spec["src"])
    actions = {os.fsencode(n): RACE_ACTIONS[kind] for n, kind in spec["actions"].items()}
    fired = install_statx_hook(api, src, actions)
    opts = Options.archive(**spec.get("options", {}))
    opts.backend = spec["backend"]
    msgs: List[str] = []
    stats = Copier(opts, msgs.append).run([src + b"/"], os.fsencode(spec["dst"]))
    return {"exit_code": stats.exit_code, "msgs": msgs, "stats": stats.as_dict(),
            "fired": [os.fsdecode(n) for n in fired]}


_HOOK_CHILD = """
import json, sys
from tests.test_copy_support import hooked_copy
print(json.dumps(hooked_copy(json.loads(sys.argv[1]))))
"""

#: a copy of a handful of files takes milliseconds; a hooked child still
#: running after this long is hung (and would stay so)
SMALL_COPY_GUARD = 20.0


def run_hooked(src: PathArg, dst: PathArg, backend: str, actions: Dict[str, str],
               d_type: bool = True, **options: Any) -> Dict[str, Any]:
    """Copy src/ to dst in a child process, racing RACE_ACTIONS[kind] against entries
    (listed without their d_type unless ``d_type``)."""
    spec = {"src": os.fsdecode(os.fsencode(src)), "dst": os.fsdecode(os.fsencode(dst)),
            "backend": backend, "actions": actions, "options": options, "d_type": d_type}
    try:
        p = subprocess.run([sys.executable, "-c", _HOOK_CHILD, json.dumps(spec)],
                           env=cli_env(), capture_output=True, timeout=SMALL_COPY_GUARD)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the copy hung (still running after {SMALL_COPY_GUARD:.0f} s "
                             f"on a tiny tree); actions {actions}") from None
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, f"hooked copy crashed: {err}"
    result = json.loads(p.stdout.decode().strip().splitlines()[-1])
    assert isinstance(result, dict)
    assert sorted(result["fired"]) == sorted(actions), \
        f"the race did not happen as planned: fired {result['fired']}"
    return result


def regular_files(root: PathArg) -> Iterator[Tuple[bytes, bytes]]:
    """(relative path, full path) of every regular file below root."""
    top = os.fsencode(root)
    for dirpath, _dirs, files in os.walk(top):
        for n in files:
            full = os.path.join(dirpath, n)
            if stat.S_ISREG(os.lstat(full).st_mode):
                yield os.path.relpath(full, top), full


def tmp_names(root: PathArg) -> List[bytes]:
    """Entries below root whose name carries the engine's temporary-name mark."""
    out = []
    for dirpath, dirs, files in os.walk(os.fsencode(root)):
        out += [os.path.join(dirpath, n) for n in dirs + files if TMP_MARK in n]
    return out


#: the mtimes build_mixed_tree gives (others get fix_times's default)
MIXED_TIMES = {b"one": -1_500_000_001, b"d1/d2/d3/f": 4_102_444_800_123_456_789}


def build_mixed_tree(root: Path, *, specials: bool = True, big: int = 3 << 20) -> Path:
    """A small tree of every common kind of entry, times fixed last; returns root."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1234)
    write(root / "empty")
    write(root / "one", b"1")
    write(root / "small", bytes(rng.getrandbits(8) for _ in range(5000)), 0o640)
    write(root / "exact", os.urandom(SMALL_FILE_MAX))
    write(root / "above", os.urandom(SMALL_FILE_MAX + 1))
    write(root / "big", os.urandom(big), 0o600)
    write(root / "suid", b"#!/bin/sh\n", 0o4755)
    (root / "d1" / "d2" / "d3").mkdir(parents=True)
    (root / "emptydir").mkdir()
    write(root / "d1" / "f", b"in d1")
    write(root / "d1" / "d2" / "f", b"in d2")
    write(root / "d1" / "d2" / "d3" / "f", b"in d3", 0o444)
    os.link(root / "d1" / "f", root / "d1" / "d2" / "hl")
    os.symlink("d1/f", root / "rel-link")
    os.symlink("/nonexistent/target", root / "dangling")
    os.symlink("d1", root / "dir-link")
    make_sparse(root / "sparse", 16 << 20, [(4096, b"data"), (9 << 20, b"more")])
    os.setxattr(root / "one", "user.tag", b"value")
    if specials:
        os.mkfifo(root / "fifo")
        make_socket(root / "sock")
    os.chmod(root / "d1" / "d2", 0o750)
    fix_times(root, special=MIXED_TIMES)
    return root
