#!/usr/bin/env python3
"""Syscalls per file of ``python -m pyuring.copy -a``, and of its peers, measured with strace.

What it does
    Builds a tree (or takes SRC): nested directories, small regular files of
    0..``--size`` KiB (about 1 % of them empty), symlinks and hard links.  Runs
    the copy under ``strace -f`` and prints, per regular file of the tree:

    * every syscall and the count of each syscall name,
    * ``io_uring_enter`` calls, and SQEs per enter from the ring's own counters
      (the ``--json`` statistics of the copy: sqes, enters, sqes_by_op,
      direct_syscalls),
    * ``IORING_OP_STATX`` SQEs (statx through the ring) against direct
      stat-family syscalls (stat, lstat, fstat, newfstatat, statx, ...),
    * a classification of every file-related syscall: *fd-based* (an fd
      only, or a dirfd with an empty name and ``AT_EMPTY_PATH``),
      *dirfd-based* (a real directory fd and a relative name) or *path-based*
      (``AT_FDCWD`` with a name, an absolute path, or a path-only syscall such
      as ``stat`` or ``open``).  Path-based calls are listed with their
      arguments; those touching SRC or DST (the roots themselves or anything
      below them) are the ones the budget forbids.

    With ``--compare`` the same runs for ``cp -a``, ``rsync -a``,
    ``tar -C SRC -cf - . | tar -C DST -xf -`` and ``shutil.copytree`` (in a
    child Python), side by side in one table.

Counting window
    By default (``--from-getdents``) counting starts at the first
    ``getdents64`` on a directory of SRC (strace ``-y`` shows the fd's path),
    so interpreter and program start-up, argument checks and the opening of
    the two roots are excluded; everything after it, up to the exit, is
    counted.  ``--no-from-getdents`` counts the whole run.  ``--paths P ...``
    restricts the counts to syscalls whose path arguments (or the paths of
    their fd arguments) lie under one of the given paths.

The ring's counters against strace
    The copy reports ``enters`` (every ``io_uring_enter`` its ring made,
    retries after EINTR included) and ``sqes``.  strace sees the same calls:
    the number of ``io_uring_enter`` lines over the whole run equals
    ``enters`` (a probe ring never enters), and the sum of their return
    values (SQEs consumed by the kernel) equals ``sqes``.  Both are shown in
    the output ("agreement" section); a mismatch is flagged.

Budget (``--budget``; exit status 1 when a line is exceeded)
    For ``pyuring -a`` and ``pyuring -aH`` (io_uring backend): 0 path-based
    syscalls touching SRC or DST; 0 direct stat-family syscalls; exactly one
    STATX SQE per entry; at most 2.0 syscalls per regular file; at least 32
    SQEs per io_uring_enter.  For ``pyuring -a --backend sync``: 0
    path-based syscalls touching SRC or DST.

Usage (from a checkout; the script puts the checkout on the child's PYTHONPATH)::

    python scripts/syscall_analysis.py                       # generated tree, pyuring only
    python scripts/syscall_analysis.py --files 5000 --compare
    python scripts/syscall_analysis.py SRC DST --compare --json
    python scripts/syscall_analysis.py --budget              # CI-style check

DST must not exist or be empty; with several tools each writes ``DST/<tool>``.
Needs strace (``apt-get install strace``); ``--compare`` also uses rsync and
installs it with apt-get when missing and running as root.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import json
import os
import platform
import random
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Counter, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent

# ======================================================================================
# strace output: lines -> records
# ======================================================================================

_PID_RE = re.compile(r"^(?:\[pid\s+(\d+)\]|(\d+))\s+")
_NAME_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\(")
_UNFINISHED_RE = re.compile(r"\s?<unfinished \.\.\.>\s*$")
_RESUMED_RE = re.compile(r"^<\.\.\. ([A-Za-z_][A-Za-z0-9_]*) resumed>\s?")
_FD_RE = re.compile(r"^(-?\d+|AT_FDCWD)(?:<(.*)>)?(?:\(deleted\))?$", re.S)
_RET_RE = re.compile(r"^=\s+(-?\d+|0x[0-9a-fA-F]+|\?)"
                     r"(?:<(.*?)>(?:\(deleted\))?)?(?:\s+(E[A-Z0-9]+))?")
_PROC_FD_RE = re.compile(rb"^/proc/(?:self|thread-self|\d+)/fd/(\d+)$")

AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000

_ESCAPES = {"n": 10, "t": 9, "r": 13, "v": 11, "f": 12, "a": 7, "b": 8, "e": 27,
            "\\": 92, '"': 34, "'": 39, "?": 63}


def unescape(s: str) -> bytes:
    """Decode a string body as strace prints it (C escapes, \\ooo octal, \\xNN hex).

    Characters strace left as they are (printable ASCII, or UTF-8 it passed
    through) are encoded back with UTF-8 / surrogateescape.
    """
    if "\\" not in s:
        return s.encode("utf-8", "surrogateescape")
    out = bytearray()
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c != "\\" or i + 1 >= n:
            out += c.encode("utf-8", "surrogateescape")
            i += 1
            continue
        e = s[i + 1]
        if e in "01234567":
            j = i + 1
            while j < n and j < i + 4 and s[j] in "01234567":
                j += 1
            out.append(int(s[i + 1:j], 8) & 0xFF)
            i = j
        elif e == "x" and i + 3 < n + 1 and re.match(r"[0-9a-fA-F]{2}", s[i + 2:i + 4]):
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        elif e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
        else:
            out += e.encode("utf-8", "surrogateescape")
            i += 2
    return bytes(out)


_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"(?:\.\.\.)?', re.S)
_DECORATION_RE = re.compile(r"(?:[^\\>]|\\.)*>", re.S)
# what matters when splitting arguments: strings, comments, brackets, commas, '<'
_TOKEN_RE = re.compile(r'"(?:[^"\\]|\\.)*"(?:\.\.\.)?|/\*.*?\*/|[()\[\]{},<]', re.S)


def _skip_string(s: str, i: int) -> int:
    """s[i] is '"': index just past the closing quote (and a '...' truncation mark)."""
    m = _STRING_RE.match(s, i)
    return m.end() if m else len(s)


def _is_decoration_start(s: str, i: int) -> bool:
    """Is the '<' at s[i] the start of an fd decoration (strace -y), as in 3</a/b>?"""
    if i == 0:
        return False
    prev = s[i - 1]
    return prev.isdigit() or s.endswith("AT_FDCWD", 0, i)


def split_call(text: str) -> Optional[Tuple[str, List[str], str]]:
    """``name(arg, ...) = ret ...`` -> (name, args, text after the closing parenthesis).

    Quotes, brackets, braces, ``/* comments */`` and fd decorations are
    respected when splitting arguments at commas.
    """
    m = _NAME_RE.match(text)
    if not m:
        return None
    name = m.group(1)
    i = m.end()
    depth = 0
    args: List[str] = []
    start = i
    search = _TOKEN_RE.search
    while True:
        t = search(text, i)
        if t is None:
            return None  # no closing parenthesis: a truncated line
        j = t.start()
        c = text[j]
        if c == '"' or c == "/":
            i = t.end()
        elif c == "<":
            if _is_decoration_start(text, j):
                d = _DECORATION_RE.match(text, j + 1)
                i = d.end() if d else len(text)
            else:
                i = j + 1
        elif c in "([{":
            depth += 1
            i = j + 1
        elif c in ")]}":
            if depth == 0:
                last = text[start:j].strip()
                if last or args:
                    args.append(last)
                return name, args, text[j + 1:].strip()
            depth -= 1
            i = j + 1
        else:  # ','
            if depth == 0:
                args.append(text[start:j].strip())
                start = j + 1
            i = j + 1


@dataclasses.dataclass
class Record:
    """One complete syscall as strace printed it."""

    lineno: int
    pid: int
    name: str
    args: List[str]
    ret_text: str
    ret: Optional[int]  # None for '?' (the task exited inside the call)
    ret_path: Optional[bytes]  # strace -y decoration of a returned fd
    error: Optional[str]  # "ENOENT" ...

    @property
    def text(self) -> str:
        return f"{self.name}({', '.join(self.args)}) {self.ret_text}".rstrip()


def _record(lineno: int, pid: int, text: str) -> Optional[Record]:
    parts = split_call(text)
    if parts is None:
        return None
    name, args, rest = parts
    ret: Optional[int] = None
    ret_path: Optional[bytes] = None
    error: Optional[str] = None
    m = _RET_RE.match(rest)
    if m:
        val = m.group(1)
        if val != "?":
            ret = int(val, 16) if val.startswith("0x") else int(val)
        if m.group(2) is not None:
            ret_path = unescape(m.group(2))
        error = m.group(3)
    return Record(lineno, pid, name, args, rest, ret, ret_path, error)


def parse_strace(lines: Iterable[str], problems: Optional[List[str]] = None,
                 ) -> Iterator[Record]:
    """Records from strace ``-f -o FILE`` output, ``<unfinished ...>`` parts joined.

    Lines that are not syscalls (``+++ exited``, ``--- SIGCHLD``, strace's
    own messages) are skipped.  A call left unfinished when its task died is
    yielded at the end with ``ret`` None.  Lines that cannot be parsed are
    appended to ``problems`` (when given).
    """
    pending: Dict[int, Tuple[int, str]] = {}
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip("\n")
        if not line:
            continue
        m = _PID_RE.match(line)
        if m:
            pid = int(m.group(1) or m.group(2))
            body = line[m.end():]
        else:
            pid = 0
            body = line
        if body.startswith(("+++", "---", "strace:")):
            continue
        r = _RESUMED_RE.match(body)
        if r:
            first = pending.pop(pid, None)
            rest = body[r.end():]
            if first is None:
                # the start was never seen (attached mid-call): keep what we can
                first = (lineno, r.group(1) + "(")
            body = first[1] + rest
            lineno = first[0]
        if _UNFINISHED_RE.search(body):
            pending[pid] = (lineno, _UNFINISHED_RE.sub("", body))
            continue
        rec = _record(lineno, pid, body)
        if rec is not None:
            yield rec
        elif problems is not None:
            problems.append(f"{lineno}: {line[:200]}")
    for pid, (lineno, body) in pending.items():
        rec = _record(lineno, pid, body + ") = ?")
        if rec is not None:
            yield rec


# ======================================================================================
# which arguments of which syscalls are fds and paths
# ======================================================================================

# role tuples:  ("fd", i)  ("path", i)  ("at", dirfd_i, path_i, flags_i or -1)
Role = Tuple[Any, ...]

_FD0 = (("fd", 0),)
_PATH0 = (("path", 0),)
_AT01 = (("at", 0, 1, -1),)

SIGNATURES: Dict[str, Tuple[Role, ...]] = {}
for _n in ("read", "write", "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev",
           "preadv2", "pwritev2", "close", "fstat", "fstat64", "oldfstat", "fstatfs",
           "fstatfs64", "fchmod", "fchown", "fchown32", "fsync", "fdatasync", "ftruncate",
           "ftruncate64", "fallocate", "lseek", "_llseek", "getdents", "getdents64",
           "fgetxattr", "fsetxattr", "flistxattr", "fremovexattr", "ioctl", "fcntl",
           "fcntl64", "dup", "dup2", "dup3", "fchdir", "fadvise64", "fadvise64_64",
           "readahead", "flock", "syncfs", "sync_file_range", "io_uring_enter",
           "io_uring_register", "getdents", "ftruncate", "fsetxattr", "fgetxattr",
           "close_range", "fanotify_init", "inotify_rm_watch", "recvmsg", "sendmsg",
           "recvfrom", "sendto", "accept", "accept4", "connect", "bind", "listen",
           "getsockname", "getpeername", "setsockopt", "getsockopt", "shutdown"):
    SIGNATURES[_n] = _FD0
for _n in ("open", "creat", "stat", "stat64", "lstat", "lstat64", "oldstat", "oldlstat",
           "access", "chdir", "chroot", "mkdir", "rmdir", "unlink", "readlink", "chmod",
           "chown", "chown32", "lchown", "lchown32", "truncate", "truncate64", "utime",
           "utimes", "mknod", "statfs", "statfs64", "getxattr", "lgetxattr", "setxattr",
           "lsetxattr", "listxattr", "llistxattr", "removexattr", "lremovexattr", "execve",
           "uselib", "acct", "swapon", "swapoff", "umount2", "umount"):
    SIGNATURES[_n] = _PATH0
for _n in ("openat", "openat2", "open_tree", "name_to_handle_at", "faccessat", "faccessat2",
           "fchmodat", "futimesat", "mkdirat", "mknodat", "unlinkat", "readlinkat"):
    SIGNATURES[_n] = _AT01
SIGNATURES.update({
    "newfstatat": (("at", 0, 1, 3),),
    "fstatat64": (("at", 0, 1, 3),),
    "statx": (("at", 0, 1, 2),),
    "fchmodat2": (("at", 0, 1, 3),),
    "fchownat": (("at", 0, 1, 4),),
    "utimensat": (("at", 0, 1, 3),),
    "execveat": (("at", 0, 1, 4),),
    "getxattrat": (("at", 0, 1, 2),),
    "setxattrat": (("at", 0, 1, 2),),
    "listxattrat": (("at", 0, 1, 2),),
    "removexattrat": (("at", 0, 1, 2),),
    "file_getattr": (("at", 0, 1, 4),),
    "file_setattr": (("at", 0, 1, 4),),
    "rename": (("path", 0), ("path", 1)),
    "link": (("path", 0), ("path", 1)),
    "symlink": (("path", 1),),  # the target is content, not a lookup
    "symlinkat": (("at", 1, 2, -1),),
    "linkat": (("at", 0, 1, 4), ("at", 2, 3, -1)),
    "renameat": (("at", 0, 1, -1), ("at", 2, 3, -1)),
    "renameat2": (("at", 0, 1, -1), ("at", 2, 3, -1)),
    "inotify_add_watch": (("fd", 0), ("path", 1)),
    "fanotify_mark": (("fd", 0), ("at", 3, 4, -1)),
    "mount": (("path", 0), ("path", 1)),
    "pivot_root": (("path", 0), ("path", 1)),
    "mmap": (("fd", 4),),
    "mmap2": (("fd", 4),),
    "sendfile": (("fd", 0), ("fd", 1)),
    "sendfile64": (("fd", 0), ("fd", 1)),
    "copy_file_range": (("fd", 0), ("fd", 2)),
    "splice": (("fd", 0), ("fd", 2)),
    "tee": (("fd", 0), ("fd", 1)),
    "epoll_ctl": (("fd", 0), ("fd", 2)),
    "open_by_handle_at": (("fd", 0),),
})

#: the direct stat-family syscalls (statx through the ring is IORING_OP_STATX, not these)
STAT_FAMILY = frozenset({"stat", "stat64", "lstat", "lstat64", "fstat", "fstat64", "oldstat",
                         "oldlstat", "oldfstat", "newfstatat", "fstatat64", "statx"})


#: pyuring's direct_syscalls names -> the syscalls strace may show for them
#: (glibc implements fstat with newfstatat(fd, "", AT_EMPTY_PATH); os.preadv
#: may be preadv2)
STRACE_NAMES: Dict[str, Tuple[str, ...]] = {
    "fstat": ("fstat", "newfstatat", "fstatat64", "statx"),
    "pread64": ("pread64", "preadv", "preadv2"),
    "pwrite64": ("pwrite64", "pwritev", "pwritev2"),
    "unlinkat": ("unlinkat", "unlink"),
    "renameat": ("renameat", "renameat2", "rename"),
    "linkat": ("linkat", "link"),
}


def strace_count(by_name: Counter[str], name: str) -> int:
    """How many calls strace saw for one of pyuring's direct_syscalls names."""
    return sum(by_name.get(n, 0) for n in STRACE_NAMES.get(name, (name,)))


def parse_fd(arg: str) -> Tuple[Optional[int], Optional[bytes]]:
    """``3</a/b>`` -> (3, b"/a/b"); ``AT_FDCWD</cwd>`` / ``-100</cwd>`` -> (-100, b"/cwd")."""
    m = _FD_RE.match(arg.strip())
    if not m:
        return None, None
    v = m.group(1)
    fd = AT_FDCWD if v == "AT_FDCWD" else int(v)
    path = unescape(m.group(2)) if m.group(2) is not None else None
    return fd, path


def parse_path(arg: str) -> Optional[bytes]:
    """A string argument: ``"a\\nb"`` -> b"a\\nb"; NULL or an unreadable address -> None."""
    a = arg.strip()
    if not a.startswith('"'):
        return None
    end = _skip_string(a, 0)
    body = a[1:end - 1] if not a[:end].endswith("...") else a[1:end - 4]
    return unescape(body)


def parse_int(arg: str) -> int:
    """A flags argument: ``0x1000``, ``|0x100`` (strace -X raw), ``AT_EMPTY_PATH|...``."""
    value = 0
    for part in arg.strip().split("|"):
        part = part.strip()
        if not part:
            continue
        try:
            value |= int(part, 0)
        except ValueError:
            # symbolic flags (strace without -X raw): only AT_EMPTY_PATH matters here
            if part == "AT_EMPTY_PATH":
                value |= AT_EMPTY_PATH
    return value


def _norm(p: bytes) -> bytes:
    return os.path.normpath(p) if p else p


def _join(base: Optional[bytes], p: bytes) -> Optional[bytes]:
    if p.startswith(b"/"):
        return _norm(p)
    if base is None:
        return None
    return _norm(os.path.join(base, p))


def is_under(path: Optional[bytes], roots: Sequence[bytes]) -> bool:
    if path is None:
        return False
    return any(path == r or path.startswith(r.rstrip(b"/") + b"/") for r in roots)


@dataclasses.dataclass
class Classified:
    """A file-related syscall: its kind and every path it touches."""

    rec: Record
    kind: str  # "fd" | "dirfd" | "path"
    path_args: List[bytes]  # paths resolved from path-based arguments (absolute)
    touched: List[bytes]  # every path it touches: path args, dirfd+name, fds' paths


class Classifier:
    """Classifies records, following each task's cwd and fd paths (strace -y)."""

    def __init__(self, cwd: bytes) -> None:
        self.initial_cwd = cwd
        self.cwd: Dict[int, bytes] = {}
        self.fds: Dict[int, Dict[int, bytes]] = collections.defaultdict(dict)

    def _cwd(self, pid: int) -> bytes:
        return self.cwd.get(pid, self.initial_cwd)

    def _fd_path(self, pid: int, fd: int) -> Optional[bytes]:
        p = self.fds[pid].get(fd)
        if p is None:
            for table in self.fds.values():
                if fd in table:
                    return table[fd]
        return p

    def _note_fd(self, pid: int, arg: str) -> Tuple[Optional[int], Optional[bytes]]:
        fd, path = parse_fd(arg)
        if fd is not None and path is not None:
            if fd == AT_FDCWD:
                self.cwd[pid] = path
            elif fd >= 0:
                self.fds[pid][fd] = path
        return fd, path

    def classify(self, rec: Record) -> Optional[Classified]:
        pid = rec.pid
        if rec.name in ("clone", "clone3", "fork", "vfork") and rec.ret is not None \
                and rec.ret > 0:
            self.cwd[rec.ret] = self._cwd(pid)
            self.fds[rec.ret] = dict(self.fds[pid])
        if rec.ret_path is not None and rec.ret is not None and rec.ret >= 0:
            self.fds[pid][rec.ret] = rec.ret_path
        roles = SIGNATURES.get(rec.name)
        if roles is None:
            return None
        args = rec.args
        kinds: List[str] = []
        path_args: List[bytes] = []
        touched: List[bytes] = []
        for role in roles:
            if role[0] == "fd":
                i = role[1]
                if i >= len(args):
                    continue
                fd, path = self._note_fd(pid, args[i])
                if fd is None or fd < 0:
                    continue
                kinds.append("fd")
                p = path if path is not None else self._fd_path(pid, fd)
                if p is not None:
                    touched.append(p)
            elif role[0] == "path":
                i = role[1]
                if i >= len(args):
                    continue
                s = parse_path(args[i])
                if s is None:
                    continue
                kinds.append("path")
                full = _join(self._cwd(pid), s)
                if full is not None:
                    path_args.append(full)
                    touched.append(full)
                    touched.extend(self._magic(pid, full))
            else:
                _, di, pi, fi = role
                if max(di, pi) >= len(args):
                    continue
                fd, dpath = self._note_fd(pid, args[di])
                s = parse_path(args[pi])
                flags = parse_int(args[fi]) if 0 <= fi < len(args) else 0
                if s is None or (s == b"" and (flags & AT_EMPTY_PATH or fd is not None)):
                    # NULL or "" with AT_EMPTY_PATH: the call acts on the fd itself
                    if fd is None or fd < 0:
                        continue
                    kinds.append("fd")
                    p = dpath if dpath is not None else self._fd_path(pid, fd)
                    if p is not None:
                        touched.append(p)
                    continue
                if fd is None:
                    continue
                if s.startswith(b"/") or fd == AT_FDCWD:
                    kinds.append("path")
                    base = dpath if fd == AT_FDCWD and dpath is not None else self._cwd(pid)
                    full = _join(base, s)
                    if full is not None:
                        path_args.append(full)
                        touched.append(full)
                        touched.extend(self._magic(pid, full))
                else:
                    kinds.append("dirfd")
                    dbase = dpath if dpath is not None else self._fd_path(pid, fd)
                    full = _join(dbase, s)
                    if full is not None:
                        touched.append(full)
        if rec.name == "chdir" and rec.ret == 0 and path_args:
            self.cwd[pid] = path_args[0]
        elif rec.name == "fchdir" and rec.ret == 0 and touched:
            self.cwd[pid] = touched[0]
        if not kinds:
            return None
        kind = "path" if "path" in kinds else "dirfd" if "dirfd" in kinds else "fd"
        return Classified(rec, kind, path_args, touched)

    def _magic(self, pid: int, path: bytes) -> List[bytes]:
        """/proc/self/fd/N names whatever fd N is: count it as touching that file."""
        m = _PROC_FD_RE.match(path)
        if not m:
            return []
        p = self._fd_path(pid, int(m.group(1)))
        return [p] if p is not None else []


# ======================================================================================
# one traced run, analysed
# ======================================================================================

@dataclasses.dataclass
class Analysis:
    """Counts over the counting window of one traced run."""

    tool: str
    command: List[str]
    exit_code: int
    elapsed: float
    trace_file: str
    window: str  # how the counting window starts
    regular_files: int
    entries: int
    total: int = 0
    by_name: Counter[str] = dataclasses.field(default_factory=collections.Counter)
    whole_run_by_name: Counter[str] = dataclasses.field(default_factory=collections.Counter)
    kinds: Counter[str] = dataclasses.field(default_factory=collections.Counter)
    path_based: List[Tuple[str, List[str]]] = dataclasses.field(default_factory=list)
    path_based_in_tree: List[Tuple[str, List[str]]] = dataclasses.field(default_factory=list)
    path_based_elsewhere: List[Tuple[str, List[str]]] = dataclasses.field(default_factory=list)
    stat_family: List[Tuple[str, List[str]]] = dataclasses.field(default_factory=list)
    stat_family_in_tree: int = 0
    enter_calls_whole_run: int = 0
    enter_submitted_whole_run: int = 0
    ring: Dict[str, Any] = dataclasses.field(default_factory=dict)  # the copy's --json stats
    stdout_tail: str = ""
    stderr_tail: str = ""
    unparsed: List[str] = dataclasses.field(default_factory=list)  # trace lines not understood
    only_paths: List[bytes] = dataclasses.field(default_factory=list)  # --paths filter

    # -- per regular file ------------------------------------------------------------
    def per_file(self, n: float) -> float:
        return n / self.regular_files if self.regular_files else 0.0

    @property
    def stat_direct(self) -> int:
        return len(self.stat_family)

    @property
    def io_uring_enters(self) -> int:
        return self.by_name.get("io_uring_enter", 0)

    @property
    def sqes(self) -> int:
        return int(self.ring.get("sqes", 0) or 0)

    @property
    def ring_enters(self) -> int:
        return int(self.ring.get("enters", 0) or 0)

    @property
    def sqes_per_enter(self) -> float:
        return self.sqes / self.ring_enters if self.ring_enters else 0.0

    @property
    def statx_sqes(self) -> int:
        return int((self.ring.get("sqes_by_op") or {}).get("STATX", 0))

    def as_dict(self) -> Dict[str, Any]:
        n = self.regular_files
        return {
            "tool": self.tool,
            "command": self.command,
            "exit_code": self.exit_code,
            "elapsed_traced": round(self.elapsed, 3),
            "trace_file": self.trace_file,
            "window": self.window,
            "regular_files": n,
            "entries": self.entries,
            "syscalls": self.total,
            "syscalls_per_file": round(self.per_file(self.total), 4),
            "by_name": dict(self.by_name.most_common()),
            "by_name_per_file": {k: round(self.per_file(v), 4)
                                 for k, v in self.by_name.most_common()},
            "whole_run_by_name": dict(self.whole_run_by_name.most_common()),
            "kinds": dict(self.kinds),
            "kinds_per_file": {k: round(self.per_file(v), 4) for k, v in self.kinds.items()},
            "io_uring_enter": self.io_uring_enters,
            "io_uring_enter_whole_run": self.enter_calls_whole_run,
            "io_uring_enter_submitted_whole_run": self.enter_submitted_whole_run,
            "ring": self.ring,
            "sqes_per_enter": round(self.sqes_per_enter, 2),
            "statx_sqes": self.statx_sqes,
            "stat_family_direct": self.stat_direct,
            "stat_family_direct_in_tree": self.stat_family_in_tree,
            "stat_family_by_name": _by_name(self.stat_family),
            "stat_family_calls": _calls(self.stat_family),
            "path_based": len(self.path_based),
            "path_based_by_name": _by_name(self.path_based),
            "path_based_calls": _calls(self.path_based),
            "path_based_in_tree": len(self.path_based_in_tree),
            "path_based_in_tree_by_name": _by_name(self.path_based_in_tree),
            "path_based_in_tree_calls": _calls(self.path_based_in_tree),
            "unparsed_lines": len(self.unparsed),
            "unparsed_examples": self.unparsed[:5],
        }


JSON_CALLS_MAX = 50


def _by_name(items: Sequence[Tuple[str, List[str]]]) -> Dict[str, int]:
    return dict(collections.Counter(name for name, _ in items).most_common())


def _calls(items: Sequence[Tuple[str, List[str]]]) -> List[Dict[str, Any]]:
    """The first JSON_CALLS_MAX calls: syscall, arguments, and what it returned."""
    return [{"syscall": name, "args": args[:-1], "result": args[-1]}
            for name, args in items[:JSON_CALLS_MAX]]


def analyse(records: Iterable[Record], *, tool: str, src: bytes, dst: bytes, cwd: bytes,
            regular_files: int, entries: int, from_getdents: bool = True,
            only_paths: Sequence[bytes] = (), command: Sequence[str] = (),
            exit_code: int = 0, elapsed: float = 0.0, trace_file: str = "",
            ring: Optional[Dict[str, Any]] = None) -> Analysis:
    """Count the records of one run (see the module docstring for the window)."""
    roots = _root_forms(src) + _root_forms(dst)
    src_roots = _root_forms(src)
    only = [_norm(os.path.abspath(p)) for p in only_paths]
    cls = Classifier(cwd)
    a = Analysis(tool, list(command), exit_code, elapsed, trace_file,
                 "first getdents64 of SRC" if from_getdents else "whole run",
                 regular_files, entries, ring=dict(ring or {}))
    a.only_paths = list(only)
    started = not from_getdents
    for rec in records:
        c = cls.classify(rec)  # always: it follows cwd and fd paths from the start
        a.whole_run_by_name[rec.name] += 1
        if rec.name == "io_uring_enter":
            a.enter_calls_whole_run += 1
            if rec.ret is not None and rec.ret > 0:
                a.enter_submitted_whole_run += rec.ret
        if not started:
            if rec.name not in ("getdents64", "getdents") or c is None \
                    or not any(is_under(p, src_roots) for p in c.touched):
                continue
            started = True
        if only and (c is None or not any(is_under(p, only) for p in c.touched)):
            continue
        a.total += 1
        a.by_name[rec.name] += 1
        if c is None:
            a.kinds["other"] += 1
            continue
        a.kinds[c.kind] += 1
        in_tree = any(is_under(p, roots) for p in c.touched)
        if c.kind == "path":
            item = (rec.name, [*rec.args, rec.ret_text])
            a.path_based.append(item)
            magic = _magic_targets(cls, rec, c)
            if any(is_under(p, roots) for p in c.path_args + magic):
                if magic:  # say where /proc/self/fd/N led
                    item = (rec.name, [*rec.args, rec.ret_text + "  # -> " +
                                       ", ".join(_show(m) for m in magic)])
                a.path_based_in_tree.append(item)
            else:
                a.path_based_elsewhere.append(item)
        if rec.name in STAT_FAMILY:
            a.stat_family.append((rec.name, [*rec.args, rec.ret_text]))
            if in_tree:
                a.stat_family_in_tree += 1
    if not started:
        a.window = "no getdents64 of SRC seen: nothing counted"
    return a


def _show(path: bytes) -> str:
    """A path for one line of output: control characters and bad UTF-8 escaped."""
    return repr(os.fsdecode(path))[1:-1]


def _magic_targets(cls: Classifier, rec: Record, c: Classified) -> List[bytes]:
    out: List[bytes] = []
    for p in c.path_args:
        out.extend(cls._magic(rec.pid, p))
    return out


def _root_forms(p: bytes) -> List[bytes]:
    forms = {_norm(os.path.abspath(p)), _norm(os.path.realpath(p))}
    return sorted(forms)


# ======================================================================================
# the tree
# ======================================================================================

@dataclasses.dataclass
class TreeInfo:
    regular_files: int  # regular-file names (hard-link names included)
    inodes: int  # distinct regular files
    dirs: int  # directories below the root
    symlinks: int
    hardlink_names: int  # names beyond the first of a multiply-linked file
    entries: int  # every name below the root
    bytes: int

    def as_dict(self) -> Dict[str, int]:
        return dataclasses.asdict(self)


def build_tree(root: Path, files: int = 2000, size_kib: int = 8, dirs: int = 0,
               seed: int = 5, symlink_ratio: float = 0.02,
               hardlink_ratio: float = 0.02, odd_names: bool = True) -> TreeInfo:
    """A deterministic tree: ``dirs`` nested directories (default files // 50),
    ``files`` regular files of 0..size_kib KiB (1 % empty), symlinks (some
    dangling, one to a directory), hard links (same and other directories)
    and, with ``odd_names``, one more directory of ten files (and a symlink)
    whose names need escaping (ODD_NAMES)."""
    rnd = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    ndirs = dirs if dirs > 0 else max(1, files // 50)
    dir_paths: List[Path] = [root]
    for i in range(ndirs):
        parent = rnd.choice(dir_paths[-8:] + dir_paths[:1]) if rnd.random() < 0.5 \
            else rnd.choice(dir_paths)
        d = parent / f"d{i:04d}"
        d.mkdir()
        dir_paths.append(d)
    created: List[Path] = []
    total = 0
    for i in range(files):
        d = rnd.choice(dir_paths)
        size = 0 if rnd.random() < 0.01 else rnd.randint(1, size_kib * 1024)
        p = d / f"f{i:05d}.dat"
        with open(p, "wb") as f:
            f.write(rnd.randbytes(size) if hasattr(rnd, "randbytes") else os.urandom(size))
        total += size
        created.append(p)
    nsym = int(files * symlink_ratio)
    for i in range(nsym):
        d = rnd.choice(dir_paths)
        target: str
        if i == 0 and len(dir_paths) > 1:
            target = os.path.relpath(dir_paths[1], d)
        elif i % 10 == 1:
            target = f"missing-{i}"
        else:
            target = os.path.relpath(rnd.choice(created), d)
        os.symlink(target, d / f"l{i:04d}")
    nlinks = int(files * hardlink_ratio)
    for i in range(nlinks):
        src = rnd.choice(created)
        d = src.parent if i % 2 else rnd.choice(dir_paths)
        os.link(src, d / f"h{i:04d}.dat")
    if odd_names:
        odd = os.path.join(os.fsencode(root), b"odd names <>")
        os.mkdir(odd)
        for i, name in enumerate(ODD_NAMES):
            with open(os.path.join(odd, name), "wb") as f:
                f.write(b"%d\n" % i)
            total += len(b"%d\n" % i)
        os.symlink(ODD_NAMES[1], os.path.join(odd, b"link \\ " + ODD_NAMES[2]))
    info = count_tree(root)
    info.bytes = total
    return info


#: names that test strace's escaping and the parser: quotes, backslash, newline,
#: '<' '>' (which strace -y escapes), commas and parentheses, bytes that are not UTF-8
ODD_NAMES = (b"a b", b'q"uote', b"new\nline", b"lt<gt>", b"\xff\xfe not utf-8",
             "\u00e9 \u00fc".encode(), b"back\\slash", b"comma, paren)(", b"tab\tx",
             b"|*c*| ~")


def count_tree(root: Path) -> TreeInfo:
    regular = dirs = syml = extra = entries = 0
    inodes: Dict[Tuple[int, int], int] = {}
    size = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            entries += 1
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISDIR(st.st_mode):
                dirs += 1
            elif stat.S_ISLNK(st.st_mode):
                syml += 1
            elif stat.S_ISREG(st.st_mode):
                regular += 1
                key = (st.st_dev, st.st_ino)
                if key in inodes:
                    extra += 1
                else:
                    size += st.st_size
                inodes[key] = inodes.get(key, 0) + 1
    return TreeInfo(regular, len(inodes), dirs, syml, extra, entries, size)


# ======================================================================================
# running the tools under strace
# ======================================================================================

_SHUTIL_CODE = "import shutil, sys; shutil.copytree(sys.argv[1], sys.argv[2], symlinks=True)"
_TAR_CODE = 'tar -C "$1" -cf - . | tar -C "$2" -xf -'

#: name -> (description, needs DST to exist beforehand)
TOOLS: Dict[str, Tuple[str, bool]] = {
    "pyuring": ("python -m pyuring.copy -a", False),
    "pyuring-H": ("python -m pyuring.copy -aH", False),
    "pyuring-sync": ("python -m pyuring.copy -a --backend sync", False),
    "cp": ("cp -a SRC/. DST", False),
    "rsync": ("rsync -a SRC/ DST/", False),
    "tar": ("tar -C SRC -cf - . | tar -C DST -xf -", True),
    "shutil": ("shutil.copytree(SRC, DST, symlinks=True)", False),
}
PEERS = ("cp", "rsync", "tar", "shutil")


def tool_argv(tool: str, src: str, dst: str) -> List[str]:
    py = sys.executable
    s = src.rstrip("/") or "/"
    if tool == "pyuring":
        return [py, "-m", "pyuring.copy", "-a", "--json", s + "/", dst]
    if tool == "pyuring-H":
        return [py, "-m", "pyuring.copy", "-aH", "--json", s + "/", dst]
    if tool == "pyuring-sync":
        return [py, "-m", "pyuring.copy", "-a", "--backend", "sync", "--json", s + "/", dst]
    if tool == "cp":
        return ["cp", "-a", s + "/.", dst]
    if tool == "rsync":
        return ["rsync", "-a", s + "/", dst.rstrip("/") + "/"]
    if tool == "tar":
        return ["sh", "-c", _TAR_CODE, "sh", s, dst]
    if tool == "shutil":
        return [py, "-c", _SHUTIL_CODE, s, dst]
    raise ValueError(f"unknown tool {tool!r}")


def tool_available(tool: str, install: bool = False) -> Optional[str]:
    """None when usable, else the reason it is not."""
    need = {"cp": "cp", "rsync": "rsync", "tar": "tar"}.get(tool)
    if need is None or shutil.which(need) is not None:
        return None
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-qq", need], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if shutil.which(need) is None:
            subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
            subprocess.run(["apt-get", "install", "-y", "-qq", need], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if shutil.which(need) is not None:
            return None
    return f"{need} is not installed"


_STRACE_OPTS: Optional[List[str]] = None


def strace_options() -> List[str]:
    """strace options for a parseable trace; -X raw only where this strace has it."""
    global _STRACE_OPTS
    if _STRACE_OPTS is None:
        opts = ["-f", "-qq", "-e", "trace=all", "-e", "signal=none", "-y", "-s", "256"]
        probe = subprocess.run(["strace", "-X", "raw", "-o", os.devnull, "true"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               check=False)
        if probe.returncode == 0:
            opts += ["-X", "raw"]
        _STRACE_OPTS = opts
    return list(_STRACE_OPTS)


def child_env(pythonpath: Optional[str] = None) -> Dict[str, str]:
    env = dict(os.environ)
    first = pythonpath if pythonpath is not None else str(REPO)
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = first + (os.pathsep + old if old else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no .pyc writes in the counts
    env.pop("PYURING_BACKEND", None)
    return env


def run_traced(tool: str, src: str, dst: str, workdir: str, *, tree: TreeInfo,
               from_getdents: bool = True, only_paths: Sequence[bytes] = (),
               pythonpath: Optional[str] = None, argv: Optional[List[str]] = None,
               ) -> Analysis:
    """Copy src into dst with ``tool`` under strace and analyse the trace."""
    cmd = argv if argv is not None else tool_argv(tool, src, dst)
    if TOOLS.get(tool, ("", False))[1]:
        os.makedirs(dst, exist_ok=True)
    trace = os.path.join(workdir, f"strace-{tool}.txt")
    full = ["strace", *strace_options(), "-o", trace, "--", *cmd]
    t0 = time.monotonic()
    proc = subprocess.run(full, cwd=workdir, env=child_env(pythonpath), capture_output=True,
                          check=False)
    elapsed = time.monotonic() - t0
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    ring: Dict[str, Any] = {}
    if tool.startswith("pyuring"):
        for line in reversed(out.splitlines()):
            if line.startswith("{"):
                try:
                    ring = json.loads(line)
                except ValueError:
                    pass
                break
    problems: List[str] = []
    if not os.path.exists(trace):
        # strace itself could not run (no ptrace permission, bad option, ...)
        with open(trace, "w", encoding="utf-8") as f:
            f.write("")
        err = f"strace wrote no trace (exit {proc.returncode}): {err}"
    with open(trace, encoding="utf-8", errors="surrogateescape") as f:
        a = analyse(parse_strace(f, problems), tool=tool, src=os.fsencode(src),
                    dst=os.fsencode(dst), cwd=os.fsencode(os.path.realpath(workdir)),
                    regular_files=tree.regular_files, entries=tree.entries,
                    from_getdents=from_getdents, only_paths=only_paths, command=cmd,
                    exit_code=proc.returncode, elapsed=elapsed, trace_file=trace, ring=ring)
    a.unparsed = problems
    a.stdout_tail = out[-2000:]
    a.stderr_tail = err[-2000:]
    return a


# ======================================================================================
# the budget
# ======================================================================================

BUDGET_SYSCALLS_PER_FILE = 2.0
BUDGET_SQES_PER_ENTER = 32.0


@dataclasses.dataclass
class BudgetLine:
    tool: str
    name: str
    ok: bool
    value: float
    limit: str
    message: str

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def _examples(items: Sequence[Tuple[str, List[str]]], k: int = 8) -> str:
    counts = collections.Counter(name for name, _ in items)
    head = ", ".join(f"{name} x{n}" for name, n in counts.most_common())
    lines = [f"    {name}({', '.join(args[:-1])}) {args[-1]}" for name, args in items[:k]]
    more = f"\n    ... {len(items) - k} more" if len(items) > k else ""
    return head + ("\n" + "\n".join(lines) if lines else "") + more


def check_path_based(a: Analysis) -> BudgetLine:
    bad = a.path_based_in_tree
    msg = (f"{a.tool}: {len(bad)} path-based syscalls (AT_FDCWD or absolute path) on SRC or "
           f"DST after the first getdents64" + (f": {_examples(bad)}" if bad else ""))
    return BudgetLine(a.tool, "path_based_in_tree", not bad, len(bad), "== 0", msg)


def check_stat_direct(a: Analysis) -> BudgetLine:
    bad = a.stat_family
    msg = (f"{a.tool}: {len(bad)} direct stat-family syscalls after the first getdents64 "
           f"({a.per_file(len(bad)):.4f} per regular file; {a.stat_family_in_tree} of them "
           f"on SRC/DST)" + (f": {_examples(bad)}" if bad else ""))
    return BudgetLine(a.tool, "stat_family_direct", not bad, a.per_file(len(bad)), "== 0", msg)


def check_statx_per_entry(a: Analysis) -> BudgetLine:
    n = a.statx_sqes
    msg = (f"{a.tool}: {n} IORING_OP_STATX SQEs for {a.entries} entries "
           f"(sqes_by_op: {a.ring.get('sqes_by_op')})")
    return BudgetLine(a.tool, "statx_per_entry", n == a.entries,
                      n / a.entries if a.entries else 0.0, "== 1.0", msg)


def check_syscalls_per_file(a: Analysis) -> BudgetLine:
    v = a.per_file(a.total)
    top = ", ".join(f"{k} {n} ({a.per_file(n):.3f}/file)" for k, n in a.by_name.most_common(8))
    msg = (f"{a.tool}: {a.total} syscalls for {a.regular_files} regular files = {v:.3f} per "
           f"file (budget {BUDGET_SYSCALLS_PER_FILE}); by syscall: {top}")
    return BudgetLine(a.tool, "syscalls_per_file", v <= BUDGET_SYSCALLS_PER_FILE, v,
                      f"<= {BUDGET_SYSCALLS_PER_FILE}", msg)


def check_sqes_per_enter(a: Analysis) -> BudgetLine:
    v = a.sqes_per_enter
    msg = (f"{a.tool}: {a.sqes} SQEs in {a.ring_enters} io_uring_enter calls = {v:.2f} SQEs "
           f"per enter (budget {BUDGET_SQES_PER_ENTER}); strace saw "
           f"{a.enter_calls_whole_run} io_uring_enter calls submitting "
           f"{a.enter_submitted_whole_run} SQEs")
    return BudgetLine(a.tool, "sqes_per_enter", v >= BUDGET_SQES_PER_ENTER, v,
                      f">= {BUDGET_SQES_PER_ENTER}", msg)


def check_budget(a: Analysis) -> List[BudgetLine]:
    """The issue's budget lines that apply to this run."""
    if a.tool == "pyuring-sync":
        return [check_path_based(a)]
    return [check_path_based(a), check_stat_direct(a), check_statx_per_entry(a),
            check_syscalls_per_file(a), check_sqes_per_enter(a)]


# ======================================================================================
# output
# ======================================================================================

def _fmt(v: float, digits: int = 2) -> str:
    if v == 0:
        return "0"
    if abs(v) < 0.5 * 10 ** -digits:
        return f"<{10 ** -digits:.{digits}f}"
    return f"{v:.{digits}f}"


def render_table(results: Sequence[Analysis], top: int = 30, counts: bool = False) -> str:
    """Side-by-side table, values per regular file (or absolute with ``counts``)."""
    cols = [a.tool for a in results]
    rows: List[Tuple[str, List[str]]] = []

    def per(a: Analysis, n: float) -> str:
        return str(int(n)) if counts else _fmt(a.per_file(n))

    rows.append(("regular files / entries", [f"{a.regular_files}/{a.entries}" for a in results]))
    rows.append(("exit status", [str(a.exit_code) for a in results]))
    rows.append(("syscalls", [per(a, a.total) for a in results]))
    rows.append(("  fd-based", [per(a, a.kinds.get("fd", 0)) for a in results]))
    rows.append(("  dirfd-based", [per(a, a.kinds.get("dirfd", 0)) for a in results]))
    rows.append(("  path-based", [per(a, a.kinds.get("path", 0)) for a in results]))
    rows.append(("    of them on SRC/DST", [per(a, len(a.path_based_in_tree)) for a in results]))
    rows.append(("  not file-related", [per(a, a.kinds.get("other", 0)) for a in results]))
    rows.append(("direct stat-family", [per(a, a.stat_direct) for a in results]))
    rows.append(("io_uring_enter", [per(a, a.io_uring_enters) for a in results]))
    rows.append(("STATX SQEs / entry", [
        _fmt(a.statx_sqes / a.entries) if a.ring and a.entries else "-" for a in results]))
    rows.append(("SQEs / io_uring_enter", [
        _fmt(a.sqes_per_enter, 1) if a.ring_enters else "-" for a in results]))
    rows.append(("SQEs (ring)", [per(a, a.sqes) if a.ring else "-" for a in results]))
    names: Counter[str] = collections.Counter()
    for a in results:
        for k, v in a.by_name.items():
            names[k] = max(names[k], round(a.per_file(v) * 1000))
    ordered = [k for k, _ in names.most_common()]
    shown, rest = ordered[:top], ordered[top:]
    rows.append(("-- by syscall --", ["" for _ in results]))
    for k in shown:
        rows.append((f"  {k}", [per(a, a.by_name.get(k, 0)) if a.by_name.get(k) else "."
                                for a in results]))
    if rest:
        rows.append((f"  ({len(rest)} others)", [
            per(a, sum(a.by_name.get(k, 0) for k in rest)) for a in results]))
    w0 = max(len(r[0]) for r in rows)
    widths = [max(len(c), *(len(r[1][i]) for r in rows)) for i, c in enumerate(cols)]
    title = "per regular file" if not counts else "counts"
    out = [f"{title:<{w0}}  " + "  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    out.append("-" * len(out[0]))
    for label, cells in rows:
        out.append(f"{label:<{w0}}  " + "  ".join(c.rjust(w) for c, w in zip(cells, widths)))
    return "\n".join(out)


def render_details(a: Analysis, limit: int = 20) -> str:
    out = [f"== {a.tool}: {' '.join(a.command)}",
           f"   exit {a.exit_code}, {a.elapsed:.2f} s under strace, window: {a.window}, "
           f"trace {a.trace_file}"]
    if a.ring:
        out.append(f"   ring counters: sqes {a.sqes}, enters {a.ring_enters} "
                   f"({a.sqes_per_enter:.1f} SQEs/enter), sqes_by_op {a.ring.get('sqes_by_op')}")
        out.append(f"   direct_syscalls (pyuring's own count): {a.ring.get('direct_syscalls')}")
        agree = a.enter_calls_whole_run == a.ring_enters
        out.append(f"   agreement: strace io_uring_enter {a.enter_calls_whole_run} (whole run; "
                   f"{a.io_uring_enters} in the window) vs ring enters {a.ring_enters}: "
                   f"{'equal' if agree else 'MISMATCH'}; SQEs consumed per strace "
                   f"{a.enter_submitted_whole_run} vs ring sqes {a.sqes}: "
                   f"{'equal' if a.enter_submitted_whole_run == a.sqes else 'MISMATCH'}")
        ds = {} if a.only_paths else a.ring.get("direct_syscalls") or {}
        diffs = []
        for k, v in sorted(ds.items()):
            seen = strace_count(a.by_name, k)
            if seen != v:
                diffs.append(f"{k}: pyuring {v} / strace {seen}")
        if diffs:
            out.append("   direct_syscalls vs strace (window): " + "; ".join(diffs))
        setup = {k: a.whole_run_by_name.get(k, 0)
                 for k in ("io_uring_setup", "io_uring_register", "io_uring_enter")}
        out.append(f"   io_uring syscalls over the whole run: {setup}")
    if a.unparsed:
        out.append(f"   {len(a.unparsed)} trace lines not understood, e.g. {a.unparsed[0]}")
    if a.exit_code != 0 and a.stderr_tail:
        out.append("   stderr: " + a.stderr_tail.strip().replace("\n", "\n           "))
    out.append(f"   path-based syscalls: {len(a.path_based)} "
               f"({len(a.path_based_in_tree)} on SRC/DST)")
    if a.path_based_in_tree:
        out.append("   on SRC/DST: " + _examples(a.path_based_in_tree, limit))
    others = a.path_based_elsewhere
    if others:
        out.append("   elsewhere: " + _examples(others, min(limit, 10)))
    out.append(f"   direct stat-family syscalls: {a.stat_direct} ({a.stat_family_in_tree} "
               "on SRC/DST)")
    if a.stat_family:
        out.append("   " + _examples(a.stat_family, min(limit, 10)))
    return "\n".join(out)


# ======================================================================================
# command line
# ======================================================================================

def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        description="Syscalls per regular file of pyuring.copy -a (and of cp/rsync/tar/shutil)"
                    ", measured with strace.",
        epilog="See docs/syscalls.md.")
    p.add_argument("operands", nargs="*", metavar="SRC DST",
                   help="source tree and destination (default: a generated tree, temp dirs)")
    p.add_argument("--files", type=int, default=2000, help="regular files to generate")
    p.add_argument("--size", type=int, default=8, metavar="KiB", help="max file size (KiB)")
    p.add_argument("--dirs", type=int, default=0, help="directories (default files // 50)")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--compare", action="store_true",
                   help="also cp -a, rsync -a, tar | tar, shutil.copytree, pyuring -aH and "
                        "--backend sync")
    p.add_argument("--tools", default="", help="comma-separated tools to run (of: "
                   + ", ".join(TOOLS) + ")")
    p.add_argument("--from-getdents", dest="from_getdents", action="store_true", default=True,
                   help="count from the first getdents64 of SRC (default)")
    p.add_argument("--no-from-getdents", dest="from_getdents", action="store_false",
                   help="count the whole run")
    p.add_argument("--paths", dest="only_paths", nargs="+", default=[], metavar="P",
                   help="only syscalls whose path arguments (or fds' paths) lie under P")
    p.add_argument("--budget", action="store_true",
                   help="check the syscall budget (runs pyuring -a, -aH and sync); exit 1 "
                        "when exceeded")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--counts", action="store_true", help="absolute counts, not per file")
    p.add_argument("--top", type=int, default=30, help="syscall rows in the table")
    p.add_argument("--workdir", default=None,
                   help="where traces, the generated tree and the copies go (default: a new "
                        "directory in /dev/shm, else in $TMPDIR; removed unless --keep)")
    p.add_argument("--keep", action="store_true", help="keep traces, tree and copies")
    ns = p.parse_args(argv)
    if len(ns.operands) > 2:
        p.error("at most SRC and DST")
    if shutil.which("strace") is None:
        print("syscall_analysis: strace is not installed (apt-get install strace)",
              file=sys.stderr)
        return 2
    tools: List[str] = ["pyuring"]
    if ns.tools:
        tools = [t.strip() for t in ns.tools.split(",") if t.strip()]
        for t in tools:
            if t not in TOOLS:
                p.error(f"unknown tool {t!r}")
    if ns.compare:
        tools += [t for t in ("pyuring-H", "pyuring-sync", *PEERS) if t not in tools]
    if ns.budget:
        tools += [t for t in ("pyuring", "pyuring-H", "pyuring-sync") if t not in tools]
    workdir = ns.workdir or tempfile.mkdtemp(prefix="syscall-analysis-", dir=_scratch_dir())
    os.makedirs(workdir, exist_ok=True)
    made_workdir = ns.workdir is None
    try:
        return _run(ns, tools, workdir)
    finally:
        if made_workdir and not ns.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(ns: argparse.Namespace, tools: List[str], workdir: str) -> int:
    if ns.operands:
        src = os.path.abspath(ns.operands[0])
        if not os.path.isdir(src):
            print(f"syscall_analysis: {src} is not a directory", file=sys.stderr)
            return 2
        tree = count_tree(Path(src))
    else:
        src = os.path.join(workdir, "src")
        tree = build_tree(Path(src), ns.files, ns.size, ns.dirs, ns.seed)
    dst_base = os.path.abspath(ns.operands[1]) if len(ns.operands) > 1 \
        else os.path.join(workdir, "dst")
    if os.path.exists(dst_base) and os.listdir(dst_base) and len(tools) == 1:
        print(f"syscall_analysis: {dst_base} is not empty", file=sys.stderr)
        return 2
    results: List[Analysis] = []
    skipped: Dict[str, str] = {}
    only = [os.fsencode(os.path.abspath(x)) for x in ns.only_paths]
    for t in tools:
        why = tool_available(t, install=ns.compare)
        if why:
            skipped[t] = why
            continue
        dst = dst_base if len(tools) == 1 else os.path.join(dst_base, t)
        if os.path.exists(dst) and os.listdir(dst):
            skipped[t] = f"{dst} is not empty"
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        results.append(run_traced(t, src, dst, workdir, tree=tree,
                                  from_getdents=ns.from_getdents, only_paths=only))
    budget: List[BudgetLine] = []
    if ns.budget:
        for a in results:
            if a.tool in ("pyuring", "pyuring-H", "pyuring-sync"):
                budget.extend(check_budget(a))
    failed = [b for b in budget if not b.ok]
    copy_failed = [a.tool for a in results if a.exit_code != 0]
    if ns.json:
        doc = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "host": {"kernel": platform.release(), "python": platform.python_version(),
                     "strace": _strace_version(), "cpus": os.cpu_count()},
            "src": src, "dst": dst_base, "tree": tree.as_dict(),
            "window": "first getdents64 of SRC" if ns.from_getdents else "whole run",
            "paths": [os.fsdecode(x) for x in only],
            "tools": {a.tool: a.as_dict() for a in results},
            "skipped": skipped,
            "budget": [b.as_dict() for b in budget],
            "budget_ok": not failed,
        }
        print(json.dumps(doc, indent=2, default=str))
    else:
        print(f"tree {src}: {tree.regular_files} regular files ({tree.inodes} inodes, "
              f"{tree.hardlink_names} extra hard-link names), {tree.dirs} dirs, "
              f"{tree.symlinks} symlinks, {tree.entries} entries, {tree.bytes:,} bytes")
        print(f"counting window: {'first getdents64 of SRC' if ns.from_getdents else 'whole run'}"
              + (f"; only paths under {', '.join(os.fsdecode(x) for x in only)}" if only else ""))
        print()
        if results:
            print(render_table(results, ns.top, ns.counts))
            print()
        for a in results:
            print(render_details(a))
            print()
        for t, why in skipped.items():
            print(f"skipped {t}: {why}")
        if budget:
            print("budget:")
            for b in budget:
                print(f"  [{'ok' if b.ok else 'EXCEEDED'}] {b.tool} {b.name} = "
                      f"{b.value:.3f} (budget {b.limit})")
                if not b.ok:
                    print("      " + b.message.replace("\n", "\n      "))
    if ns.keep:
        print(f"traces and copies kept in {workdir}", file=sys.stderr)
    if failed or (ns.budget and copy_failed):
        return 1
    return 0


def _scratch_dir() -> Optional[str]:
    """tmpfs (/dev/shm) when writable: no slow creates after mass deletes there, so
    SQEs per enter measure the engine, not the disk.  Else the default temp dir."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def _strace_version() -> str:
    try:
        out = subprocess.run(["strace", "-V"], stdout=subprocess.PIPE, check=False).stdout
    except OSError:
        return "?"
    return out.decode(errors="replace").splitlines()[0] if out else "?"


if __name__ == "__main__":
    sys.exit(main())
