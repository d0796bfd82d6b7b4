"""DirectoryFd.entries(): getdents64 streaming, on both backends."""

from __future__ import annotations

import ctypes
import os
import shutil
import stat
import tempfile
import tracemalloc
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyuring import DirEntry, _syscall
from pyuring import _abi as A
from pyuring.dirfd import dirent_names, parse_dirents, unique_entries

from .test_dirfd_support import leaked_fds, open_fds, open_root

DT_OF = {
    stat.S_IFREG: A.DT_REG, stat.S_IFDIR: A.DT_DIR, stat.S_IFLNK: A.DT_LNK,
    stat.S_IFIFO: A.DT_FIFO, stat.S_IFSOCK: A.DT_SOCK, stat.S_IFCHR: A.DT_CHR,
    stat.S_IFBLK: A.DT_BLK,
}


def test_entries_match_listdir(tmp_path: Path, backend: str) -> None:
    d = os.fsencode(tmp_path)
    names = [b"file", b"\xff\xfe name", b"L" * 255, b" \n\t", b".hidden", b"..x", b"...",
             b"dir", b"link", b"fifo"]
    for n in names[:7]:
        open(os.path.join(d, n), "wb").close()
    os.mkdir(os.path.join(d, b"dir"))
    os.symlink(b"file", os.path.join(d, b"link"))
    os.mkfifo(os.path.join(d, b"fifo"))
    with open_root(d, backend) as root:
        got = list(root.entries())
        assert all(isinstance(e, DirEntry) and isinstance(e.name, bytes) for e in got)
        assert sorted(e.name for e in got) == sorted(os.listdir(d)) == sorted(names)
        assert b"." not in [e.name for e in got] and b".." not in [e.name for e in got]
        for e in got:
            st = os.lstat(os.path.join(d, e.name))
            assert e.ino == st.st_ino, e
            assert e.d_type == DT_OF[stat.S_IFMT(st.st_mode)], e
            assert e.is_dir() == stat.S_ISDIR(st.st_mode)
        # twice in a row, and after a partial iteration: the same entries again
        assert sorted(root.entries()) == sorted(got)
        it = root.entries()
        next(it)
        del it
        assert sorted(root.entries()) == sorted(got)
        assert sorted(root.listdir()) == sorted(names)


def test_entries_empty_and_subdir(tmp_path: Path, backend: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a").write_bytes(b"")
    with open_root(tmp_path, backend) as root:
        with root.open_dir("empty") as e:
            assert list(e.entries()) == []
            assert list(e.entries()) == []
        with root.open_dir("sub") as s:
            assert [x.name for x in s.entries()] == [b"a"]


def test_entries_sees_changes_between_calls(tmp_path: Path, backend: str) -> None:
    with open_root(tmp_path, backend) as root:
        assert list(root.entries()) == []
        (tmp_path / "new").write_bytes(b"")
        assert [e.name for e in root.entries()] == [b"new"]
        os.unlink(tmp_path / "new")
        assert list(root.entries()) == []


def _fill(d: str, count: int, prefix: str = "") -> None:
    for i in range(count):
        os.close(os.open(os.path.join(d, f"{prefix}{i:07d}"),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))


def test_entries_20000(tmp_path: Path, backend: str) -> None:
    _fill(str(tmp_path), 20_000, "entry-with-a-longish-name-")
    os.mkdir(tmp_path / "a-directory")
    with open_root(tmp_path, backend) as root:
        got = list(root.entries())
    assert len(got) == 20_001
    want = {os.fsencode(e.name): e.inode() for e in os.scandir(os.fsencode(tmp_path))}
    assert {e.name: e.ino for e in got} == want
    assert [e.name for e in got if e.d_type == A.DT_DIR] == [b"a-directory"]
    assert all(e.d_type == A.DT_REG for e in got if e.name != b"a-directory")


@pytest.fixture(scope="module")
def huge_dir() -> Iterator[str]:
    """200,000 empty files, on tmpfs when there is one (fast to create and remove)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    d = tempfile.mkdtemp(prefix="pyuring-huge-", dir=base)
    try:
        _fill(d, 200_000)
        yield d
    finally:
        shutil.rmtree(d)


@pytest.mark.slow
def test_entries_memory_is_bounded(huge_dir: str, backend: str) -> None:
    with open_root(huge_dir, backend) as root:
        count = 0
        tracemalloc.start()
        try:
            for e in root.entries():
                count += 1
                assert e.d_type == A.DT_REG
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert count == 200_000
    # a 64 KiB getdents buffer and its decoded copy, not 200,000 names
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes while streaming 200,000 entries"


def test_overlapping_iterations(tmp_path: Path, backend: str) -> None:
    """listdir() inside a loop over entries() (and nested loops) see everything."""
    _fill(str(tmp_path), 5000, "a-name-long-enough-to-need-several-getdents-calls-")
    want = sorted(os.listdir(os.fsencode(tmp_path)))
    before = open_fds()
    with open_root(tmp_path, backend) as root:
        it = root.entries()
        first = next(it)
        assert sorted(root.listdir()) == want
        assert sorted([first.name, *(e.name for e in it)]) == want
        outer = 0
        for e in root.entries():
            if outer % 1000 == 0:
                assert sorted(x.name for x in root.entries()) == want
            outer += 1
            del e
        assert outer == 5000
        # an abandoned iteration does not disturb the next ones
        it2 = root.entries()
        next(it2)
        assert sorted(root.listdir()) == want
        del it2
        assert sorted(root.listdir()) == want
    assert leaked_fds(before) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=255).filter(
    lambda n: b"/" not in n and b"\0" not in n and n not in (b".", b"..")),
    max_size=300, unique=True))
def test_dirent_names_reads_what_parse_dirents_reads(names: List[bytes]) -> None:
    """The names-only parser (a re-run's destination listing) against the full
    one, on getdents64 answers of small buffers: many records, each buffer
    ending at a record's end, . and .. among them."""
    with tempfile.TemporaryDirectory() as tmp:
        d = os.fsencode(tmp)
        for n in names:
            open(os.path.join(d, n), "wb").close()
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        buf = ctypes.create_string_buffer(1024)
        seen: List[bytes] = []
        try:
            while True:
                got = _syscall.getdents64(fd, buf, 1024)
                if got <= 0:
                    break
                data = buf.raw[:got]
                full = [e.name for e in parse_dirents(data, got)]
                quick = dirent_names(data, got)
                assert [x for x in quick if x not in (b".", b"..")] == full
                seen += quick
        finally:
            os.close(fd)
        assert sorted(seen) == sorted([b".", b"..", *names])


def _answer(names: List[bytes], first: bool) -> Tuple[bytes, int]:
    """A getdents64 answer holding ``names`` (and . and .. when ``first``)."""
    recs = []
    for i, name in enumerate([b".", b"..", *names] if first else names):
        reclen = (19 + len(name) + 1 + 7) // 8 * 8
        recs.append(A.DIRENT64_HEADER.pack(i + 1, i + 1, reclen, A.DT_REG)
                    + name.ljust(reclen - 19, b"\0"))
    data = b"".join(recs)
    return data, len(data)



@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"b", b"c", b"dd", b"e" * 200, b".x"]), max_size=40),
       st.integers(min_value=1, max_value=9))
def test_unique_entries_gives_each_name_once_in_first_order(names: List[bytes],
                                                            per: int) -> None:
    """A name that comes again in a later answer (an entry made again between
    two getdents64 calls) is left out; the order is the first answer's.  (One
    answer never repeats a name: the kernel holds the directory's lock.)"""
    chunks = [list(dict.fromkeys(names[at:at + per])) for at in range(0, len(names), per)]
    answers = [_answer(c, first=i == 0) for i, c in enumerate(chunks)]
    got = [e.name for e in unique_entries(iter(answers))]
    assert got == list(dict.fromkeys(n for c in chunks for n in c))
