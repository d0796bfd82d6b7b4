"""Source directories others may write to: a name swapped between a file's statx
and its open must not give one file's data another's mode.

Where only the copy's user or root can rename a directory's entries, statx by
name then open by name see one file, and small files take the packed chain.
Anywhere else (``Engine.others_may_write``) the opened file's own statx is
compared with the first (through the ring).  A directory's attributes come
from the opened directory everywhere: a mount going away can swap one with no
rename at all.  The swaps are made by ``install_statx_hook`` right after the
engine's statx of the name (a directory's: right before its open), as an
attacker's rename would land.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, List

import pytest

import pyuring.copy.api as api
import pyuring.copy.engine as engine_mod
from pyuring.copy import Options
from pyuring.copy.engine import Engine
from pyuring.executor import make_executor
from pyuring.metadata import Metadata

from .conftest import IS_ROOT, requires_root
from .test_copy_support import (
    UNPRIV_PRELUDE,
    copy_api,
    install_statx_hook,
    listing_without_d_type,
    mounted,
    nobodys_tree,
    run_cli,
    traversable,
    write,
)

SECRET = b"the secret " * 10
PUBLIC = b"anyone may read this " * 10
BIG = 300 * 1024  # above small_file_max: the large-file way


@pytest.mark.parametrize("uid, mode, euid, expect", [
    (1000, 0o755, 1000, False),  # our own, 0755
    (0, 0o755, 1000, False),  # root's
    (0, 0o755, 0, False),
    (1000, 0o700, 0, True),  # a user's, and root copies: its owner can rename in it
    (1000, 0o775, 1000, True),  # group-writable
    (1000, 0o757, 1000, True),  # other-writable
    (0, 0o1777, 1000, True),  # sticky: not relied on
    (0, 0o1777, 0, True),
])
def test_others_may_write(uid: int, mode: int, euid: int, expect: bool) -> None:
    eng = SimpleNamespace(euid=euid)
    md = Metadata(stat.S_IFDIR | mode, uid, 0, 2, 1, 1, 0, 0, 0, 4096, 0, 0, 0, None, 0, 0, 0)
    assert Engine.others_may_write(eng, md) is expect  # type: ignore[arg-type]


def _swap(src: Path, a: str, b: str) -> Callable[[bytes], None]:
    """rename(b -> a) with a moved away first: the name a now holds b's inode."""
    def act(_path: bytes) -> None:
        os.rename(src / a, src / (a + ".moved"))
        os.rename(src / b, src / a)
    return act


def _tree(tmp_path: Path, size: int, dir_mode: int) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    write(src / "public", PUBLIC * (size // len(PUBLIC) + 1), 0o644)
    write(src / "secret", SECRET * (size // len(SECRET) + 1), 0o600)
    os.chmod(src, dir_mode)
    return src


def _leaks(dst: Path) -> List[str]:
    """Files in dst with the secret's data and a mode that lets others read it."""
    out = []
    for name in os.listdir(dst):
        p = dst / name
        if p.is_file() and p.read_bytes().startswith(SECRET) and os.stat(p).st_mode & 0o077:
            out.append(f"{name}: {oct(os.stat(p).st_mode)}")
    return out


def _copy_with_swap(src: Path, dst: Path, backend: str, monkeypatch: pytest.MonkeyPatch,
                    actions: Dict[bytes, Callable[[bytes], None]],
                    **opts: Any) -> Any:
    monkeypatch.setattr(api, "make_executor", make_executor)  # (restored after)
    fired = install_statx_hook(api, os.fsencode(src), actions)
    stats, msgs = copy_api(src, dst, backend=backend, opts=Options.archive(**opts))
    return SimpleNamespace(stats=stats, msgs=msgs, fired=fired)


@pytest.mark.parametrize("size", [len(PUBLIC), BIG])
@pytest.mark.parametrize("opts", [{}, {"xattrs": True, "acls": True}])
def test_a_swapped_name_in_a_shared_directory_is_not_copied(
        tmp_path: Path, backend: str, size: int, opts: Dict[str, bool],
        monkeypatch: pytest.MonkeyPatch) -> None:
    src = _tree(tmp_path, size, 0o777)
    dst = tmp_path / "dst"
    r = _copy_with_swap(src, dst, backend, monkeypatch,
                        {b"public": _swap(src, "public", "secret")}, **opts)
    assert r.fired == [b"public"]
    assert _leaks(dst) == []
    assert not (dst / "public").exists()
    assert r.stats.vanished >= 1 and r.stats.exit_code == 24, r.msgs
    assert 'file has vanished: "public"' in r.msgs


def test_the_same_swap_where_only_we_could_make_it(tmp_path: Path, backend: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The hook does make the race happen: in a directory only this copy's user
    can change (0755, ours) nothing is checked -- nobody else can rename there --
    and the swapped name's data goes out with the first file's mode."""
    src = _tree(tmp_path, len(PUBLIC), 0o755)
    write(src / "secret", (SECRET * 4)[:os.path.getsize(src / "public")], 0o600)  # same size
    dst = tmp_path / "dst"
    r = _copy_with_swap(src, dst, backend, monkeypatch,
                        {b"public": _swap(src, "public", "secret")})
    assert r.fired == [b"public"]
    assert _leaks(dst) == ["public: 0o100644"]


@pytest.mark.parametrize("size, opts", [
    (len(PUBLIC), {}), (len(PUBLIC), {"xattrs": True}), (BIG, {}), (BIG, {"data_path": "ring"}),
])
def test_a_shorter_file_swapped_in_where_only_we_could_is_not_copied(
        tmp_path: Path, backend: str, size: int, opts: Dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same swap with a file shorter than the statx said: the short read
    makes the copy open the name again and compare (filecopy._recheck), so
    the other file has vanished from that name and is not copied."""
    src = _tree(tmp_path, size, 0o755)
    write(src / "secret", (SECRET * (size // len(SECRET)))[:size // 2], 0o600)
    dst = tmp_path / "dst"
    r = _copy_with_swap(src, dst, backend, monkeypatch,
                        {b"public": _swap(src, "public", "secret")}, **opts)
    assert r.fired == [b"public"]
    assert _leaks(dst) == [] and not (dst / "public").exists()
    assert r.stats.exit_code == 24 and r.stats.changed_during_copy == 0, r.msgs
    assert sorted(r.msgs) == ['file has vanished: "public"', 'file has vanished: "secret"']


def _fifo_for(src: Path, name: str, data: bytes, wrote: List[bytes]) -> Callable[[bytes], None]:
    """The name now holds a FIFO, and a writer writes ``data`` into it as soon
    as a reader has it open (the copy's read waits for one: rsync's open does)."""
    def act(_path: bytes) -> None:
        os.rename(src / name, src / (name + ".moved"))
        os.mkfifo(src / name, 0o644)

        def writer() -> None:
            for _ in range(300):
                try:
                    fd = os.open(src / name, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:  # (ENXIO: no reader yet)
                    time.sleep(0.02)
                    continue
                os.set_blocking(fd, True)
                wrote.append(data)
                try:
                    os.write(fd, data)  # (all of it, or until the reader is gone)
                except BrokenPipeError:
                    pass
                os.close(fd)
                return
        threading.Thread(target=writer, daemon=True).start()
    return act


@pytest.mark.parametrize("size, data_path", [(10, "auto"), (4000, "auto"), (BIG, "auto"),
                                             (BIG, "ring")])
@pytest.mark.parametrize("written", ["nothing", "less", "more"])
def test_a_fifo_swapped_in_is_not_copied_as_a_file(
        tmp_path: Path, backend: str, size: int, data_path: str, written: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """In a directory only we may change, a file swapped for a FIFO after its
    statx: the copy's open (io_uring's first, non-blocking try; open(2) once a
    writer comes) and read get what the writer wrote.  Before, that was
    published under the file's name, with its metadata and a "changed size"
    line (or failed with ESPIPE: pread, copy_file_range)."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "f", b"d" * size, 0o644)
    write(src / "other", b"o" * size, 0o644)
    dst = tmp_path / "dst"
    data = {"nothing": b"", "less": b"x" * (size // 2), "more": b"x" * (size + 7)}[written]
    wrote: List[bytes] = []
    r = _copy_with_swap(src, dst, backend, monkeypatch, {b"f": _fifo_for(src, "f", data, wrote)},
                        data_path=data_path)
    # (wrote stays empty where the copy's read failed before a writer came:
    # copy_file_range and pread refuse a pipe with ESPIPE)
    assert r.fired == [b"f"] and wrote in ([], [data]), r.msgs
    assert not (dst / "f").exists() and (dst / "other").read_bytes() == b"o" * size
    assert r.stats.exit_code == 24 and r.msgs == ['file has vanished: "f"'], r.msgs



def test_shared_directory_files_are_checked_through_the_ring(tmp_path: Path, backend: str
                                                             ) -> None:
    """Two statx per file there (by name, then of the opened fd), none as a
    direct syscall; one per file in a directory that is not shared."""
    for mode, per_file in ((0o755, 1), (0o777, 2)):
        src = tmp_path / f"src{mode:o}"
        src.mkdir()
        for i in range(20):
            write(src / f"f{i}", b"x" * (i + 1))
        os.chmod(src, mode)
        stats, msgs = copy_api(src, tmp_path / f"dst{mode:o}", backend=backend)
        assert stats.exit_code == 0, msgs
        assert stats.direct_syscalls.get("fstat", 0) == 0
        if backend == "uring":
            assert stats.sqes_by_op["STATX"] == 20 * per_file


def _no_d_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_mod, "parse_dirents", listing_without_d_type(engine_mod))


@pytest.mark.parametrize("parent_mode", [0o777, 0o755])
@pytest.mark.parametrize("d_type", [True, False])
def test_a_swapped_directory_gets_the_opened_ones_attributes(
        tmp_path: Path, backend: str, parent_mode: int, d_type: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Another directory under the name by the time it is opened -- renamed in
    by a writer of a shared parent, or, in a parent only we can change,
    uncovered by a mount going away -- is copied with its own mode, never
    with the listed one's (0755, which would show 0700 data to everyone)."""
    if not d_type:
        _no_d_type(monkeypatch)
    src = tmp_path / "src"
    src.mkdir()
    (src / "pub").mkdir(0o755)
    (src / "priv").mkdir(0o700)
    write(src / "priv" / "inside", SECRET, 0o600)
    os.chmod(src / "pub", 0o755)
    os.chmod(src / "priv", 0o700)
    os.chmod(src, parent_mode)
    dst = tmp_path / "dst"
    monkeypatch.setattr(api, "make_executor", make_executor)  # (restored after)
    fired = install_statx_hook(api, os.fsencode(src), {b"pub": _swap(src, "pub", "priv")})
    stats, msgs = copy_api(src, dst, backend=backend)
    assert fired == [b"pub"]
    # the directory copied as "pub" is priv's, and so is its mode
    assert (dst / "pub" / "inside").read_bytes() == SECRET
    assert stat.S_IMODE(os.stat(dst / "pub").st_mode) == 0o700
    assert stats.errors == 0, msgs  # ("priv" may have vanished: exit 24)


def test_a_source_on_a_network_or_fuse_file_system_is_shared(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mode bits do not say who may rename entries on NFS, SMB or FUSE (other
    clients, the server's ACLs, the daemon): there every directory is checked
    as a shared one -- the root, and a subdirectory on its device (not asked
    again) -- and the swap test_the_same_swap_where_only_we_could_make_it
    leaks with is not copied."""
    src = _tree(tmp_path, len(PUBLIC), 0o755)
    sub = src / "sub"
    sub.mkdir()
    write(sub / "public", PUBLIC, 0o644)
    write(sub / "secret", SECRET, 0o600)
    root_ino = os.stat(src).st_ino
    asked: List[int] = []

    def on_remote_fs(fd: int) -> bool:
        asked.append(os.fstat(fd).st_ino)
        return asked[-1] == root_ino

    monkeypatch.setattr(engine_mod, "_on_remote_fs", on_remote_fs)
    dst = tmp_path / "dst"
    monkeypatch.setattr(api, "make_executor", make_executor)  # (restored after)
    fired = install_statx_hook(api, os.fsencode(src), {b"public": _swap(src, "public", "secret")})
    fired_sub = install_statx_hook(api, os.fsencode(sub),
                                   {b"public": _swap(sub, "public", "secret")})
    stats, msgs = copy_api(src, dst, backend=backend)
    assert fired == fired_sub == [b"public"]
    assert _leaks(dst) == [] and _leaks(dst / "sub") == [] and stats.exit_code == 24, msgs
    # asked of the root only (sub is on its device), in the set-up
    assert asked.count(root_ino) == 1 and os.stat(sub).st_ino not in asked
    assert stats.direct_syscalls.get("fstatfs", 0) == 0


def test_a_mount_below_the_source_root_is_asked_again(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A subdirectory on another device than its parent may be on a network
    file system below a local root: it is asked (and its subdirectories on
    its device inherit the answer)."""
    src = tmp_path / "src"
    src.mkdir()
    with mounted("tmpfs", src / "mnt") as mnt:
        (mnt / "deeper").mkdir()
        write(mnt / "deeper" / "f", PUBLIC)
        asked: List[int] = []

        def on_remote_fs(fd: int) -> bool:
            asked.append(os.fstat(fd).st_ino)
            return False

        monkeypatch.setattr(engine_mod, "_on_remote_fs", on_remote_fs)
        stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
        assert stats.exit_code == 0, msgs
        assert os.stat(mnt).st_ino in asked
        assert os.stat(mnt / "deeper").st_ino not in asked
        assert stats.direct_syscalls["fstatfs"] == 1


@pytest.mark.parametrize("parent_mode", [0o777, 0o755])
@pytest.mark.parametrize("d_type", [True, False])
def test_a_directory_swapped_after_its_open_is_copied_as_opened(
        tmp_path: Path, backend: str, parent_mode: int, d_type: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Once open, the directory is that fd's: a swap of its name afterwards
    gives it neither the other one's contents (an open again by name) nor its
    attributes (a statx by name): "pub" stays pub, 0755, with pub's file."""
    if not d_type:
        _no_d_type(monkeypatch)
    src = tmp_path / "src"
    src.mkdir()
    for name, mode, data in (("pub", 0o755, PUBLIC), ("priv", 0o700, SECRET)):
        (src / name).mkdir()
        write(src / name / "inside", data, 0o644 if name == "pub" else 0o600)
        os.chmod(src / name, mode)
    os.chmod(src, parent_mode)
    dst = tmp_path / "dst"
    monkeypatch.setattr(api, "make_executor", make_executor)  # (restored after)
    fired = install_statx_hook(api, os.fsencode(src), {b"pub": _swap(src, "pub", "priv")},
                               dir_opened=True)
    stats, msgs = copy_api(src, dst, backend=backend)
    assert fired == [b"pub"]
    assert (dst / "pub" / "inside").read_bytes() == PUBLIC
    assert stat.S_IMODE(os.stat(dst / "pub").st_mode) == 0o755
    assert stats.errors == 0, msgs  # ("priv" may have vanished: exit 24)


@pytest.mark.parametrize("d_type", [True, False])
def test_one_statx_per_directory(tmp_path: Path, backend: str, d_type: bool,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory listed as one is opened, then its fd statx'd: one STATX
    for the source side, none by name.  Without d_type its name is statx'd
    first (to know it is a directory), then the opened one: one more."""
    if not d_type:
        _no_d_type(monkeypatch)
    src = tmp_path / "src"
    for i in range(6):
        (src / f"d{i}" / "sub").mkdir(parents=True)
        write(src / f"d{i}" / "sub" / "f", b"x" * i)
    for rerun in (False, True):
        stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
        assert stats.exit_code == 0 and stats.dirs == 12 and stats.files == 18, msgs
        assert stats.unchanged == (6 if rerun else 0)
        if backend == "uring":
            # (a re-run: each entry's destination too, by name)
            assert stats.sqes_by_op["STATX"] == 18 * (2 if rerun else 1) + (0 if d_type else 12)
            # each directory opened once on each side; a new file's O_TMPFILE
            # and source (not the empty d0/sub/f's; an unchanged one's neither)
            assert stats.sqes_by_op["OPENAT2"] == 12 * 2 + (0 if rerun else 6 + 5)


def _to_symlink(src: Path, name: str) -> Callable[[bytes], None]:
    def act(_path: bytes) -> None:
        os.rename(src / name, src / (name + ".moved"))
        os.symlink("elsewhere", src / name)
    return act


def _removed(src: Path, name: str) -> Callable[[bytes], None]:
    def act(_path: bytes) -> None:
        os.rename(src / name, tmp := src.parent / (name + ".gone"))
        assert tmp.is_dir()
    return act


def test_a_directory_swapped_for_a_symlink_before_its_open(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The open refuses it (O_NOFOLLOW, O_DIRECTORY); its statx by name then
    says what it is, and it is copied as that."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    write(src / "d" / "f", SECRET)
    dst = tmp_path / "dst"
    monkeypatch.setattr(api, "make_executor", make_executor)  # (restored after)
    fired = install_statx_hook(api, os.fsencode(src), {b"d": _to_symlink(src, "d")})
    stats, msgs = copy_api(src, dst, backend=backend)
    assert fired == [b"d"]
    assert os.readlink(dst / "d") == "elsewhere"
    assert stats.exit_code == 0 and stats.symlinks == 1 and stats.dirs == 0, msgs


def test_a_directory_gone_before_its_open_has_vanished(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    write(src / "d" / "f", SECRET)
    write(src / "kept", PUBLIC)
    dst = tmp_path / "dst"
    monkeypatch.setattr(api, "make_executor", make_executor)  # (restored after)
    fired = install_statx_hook(api, os.fsencode(src), {b"d": _removed(src, "d")})
    stats, msgs = copy_api(src, dst, backend=backend)
    assert fired == [b"d"]
    assert not (dst / "d").exists() and (dst / "kept").read_bytes() == PUBLIC
    assert stats.exit_code == 24 and stats.vanished == 1, msgs
    assert 'file has vanished: "d"' in msgs


def test_a_shared_subdirectory_is_checked_too(tmp_path: Path, backend: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared directory below one only we can change (DirTask.shared from
    the opened subdirectory's own statx)."""
    src = tmp_path / "src"
    sub = src / "sub"
    sub.mkdir(parents=True)
    write(sub / "public", PUBLIC, 0o644)
    write(sub / "secret", SECRET, 0o600)
    os.chmod(sub, 0o777)
    os.chmod(src, 0o755)
    monkeypatch.setattr(api, "make_executor", make_executor)  # (restored after)
    fired = install_statx_hook(api, os.fsencode(sub), {b"public": _swap(sub, "public", "secret")})
    stats, msgs = copy_api(src, tmp_path / "dst", backend=backend)
    assert fired == [b"public"]
    assert _leaks(tmp_path / "dst" / "sub") == [] and stats.exit_code == 24, msgs
    assert 'file has vanished: "sub/public"' in msgs


@requires_root
def test_a_directory_another_user_owns_is_shared(tmp_path: Path, backend: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """0755, but its owner (not the copy's user) can rename in it."""
    src = _tree(tmp_path, len(PUBLIC), 0o755)
    os.chown(src, 1000, 1000)
    os.chown(src / "public", 1000, 1000)
    r = _copy_with_swap(src, tmp_path / "dst", backend, monkeypatch,
                        {b"public": _swap(src, "public", "secret")})
    assert r.fired == [b"public"]
    assert _leaks(tmp_path / "dst") == [] and r.stats.exit_code == 24, r.msgs


def test_an_inode_number_handed_out_again_is_not_the_same_file(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The statx'd file is deleted and another takes its inode number (ext4
    reuses a freed one at once): its birth time tells them apart."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "public", PUBLIC, 0o644)
    os.chmod(src, 0o777)
    reused: List[bool] = []

    def act(_p: bytes) -> None:
        ino = os.stat(src / "public").st_ino
        os.unlink(src / "public")
        write(src / "new", SECRET, 0o600)
        reused.append(os.stat(src / "new").st_ino == ino)
        os.rename(src / "new", src / "public")

    r = _copy_with_swap(src, tmp_path / "dst", backend, monkeypatch, {b"public": act})
    assert r.fired == [b"public"]
    assert _leaks(tmp_path / "dst") == [], r.msgs
    if not reused[0]:
        pytest.skip("this file system did not hand the inode number out again")


@pytest.mark.parametrize("rerun", [False, True])
def test_hard_links_in_a_shared_directory(tmp_path: Path, backend: str, rerun: bool,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write(src / "a", PUBLIC, 0o644)
    os.link(src / "a", src / "b")
    write(src / "secret", SECRET, 0o600)
    os.chmod(src, 0o777)
    dst = tmp_path / "dst"
    if rerun:
        copy_api(src, dst, backend=backend, opts=Options.archive(hard_links=True))
        os.utime(src / "a", ns=(1, 1))  # changed: copied again
    r = _copy_with_swap(src, dst, backend, monkeypatch, {b"a": _swap(src, "a", "secret")},
                        hard_links=True)
    assert r.fired == [b"a"]
    assert _leaks(dst) == [], r.msgs


def _xattr_victim(src: Path) -> None:
    write(src / "victim", b"victim\n", 0o700)
    os.setxattr(src / "victim", "user.secret", b"victim-only")
    if IS_ROOT:  # (security.capability, as setcap writes it: cap_setuid+ep)
        os.setxattr(src / "victim", "security.capability",
                    bytes.fromhex("01000002" "80000000" "00000000" "00000000" "00000000"))


def test_an_unchanged_file_is_not_given_a_swapped_in_files_xattrs(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """-X re-run: the name of an unchanged file holds another file by the time
    its xattrs are compared."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "mine", b"attacker's program\n", 0o755)
    _xattr_victim(src)
    os.chmod(src, 0o777)
    dst = tmp_path / "dst"
    stats, msgs = copy_api(src, dst, backend=backend, opts=Options.archive(xattrs=True))
    assert stats.exit_code == 0 and os.listxattr(dst / "mine") == [], msgs
    r = _copy_with_swap(src, dst, backend, monkeypatch, {b"mine": _swap(src, "mine", "victim")},
                        xattrs=True)
    assert r.fired == [b"mine"]
    assert (dst / "mine").read_bytes() == b"attacker's program\n"
    assert os.listxattr(dst / "mine") == [], r.msgs


def test_an_empty_file_is_not_given_a_swapped_in_files_xattrs(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty file opens no source for its data: its xattrs are read from a
    second open, which must be the statx'd file too."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "empty", b"", 0o644)
    _xattr_victim(src)
    os.chmod(src, 0o777)
    r = _copy_with_swap(src, tmp_path / "dst", backend, monkeypatch,
                        {b"empty": _swap(src, "empty", "victim")}, xattrs=True)
    assert r.fired == [b"empty"]
    assert not (tmp_path / "dst" / "empty").exists(), r.msgs  # (not copied)
    assert 'file has vanished: "empty"' in r.msgs and r.stats.exit_code == 24


@requires_root
@pytest.mark.parametrize("xattrs", [False, True])
def test_a_rerun_does_not_give_old_data_a_swapped_in_files_owner(
        tmp_path: Path, backend: str, xattrs: bool) -> None:
    """No race at all: between two runs a writer of SRC renames root's setuid
    file onto a file of theirs with the same size and mtime.  The quick check
    calls it unchanged; the first run's data (theirs) must not become setuid
    root, nor get the other's xattrs: in a shared directory such a file is
    copied again."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "v", b"V" * 100, 0o4755)
    if xattrs:
        _xattr_victim(src)
        os.rename(src / "victim", src / "v")
        write(src / "v", b"V" * 100)
        os.chmod(src / "v", 0o755)
    write(src / "x", b"A" * 100, 0o755)
    os.chown(src / "x", 1000, 1000)
    st = os.stat(src / "v")
    os.utime(src / "x", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.chmod(src, 0o777)
    dst = tmp_path / "dst"
    opts = {"xattrs": xattrs}
    stats, msgs = copy_api(src, dst, backend=backend, opts=Options.archive(**opts))
    assert stats.exit_code == 0, msgs
    os.rename(src / "v", src / "x")
    stats, msgs = copy_api(src, dst, backend=backend, opts=Options.archive(**opts))
    assert stats.exit_code == 0, msgs
    d = os.stat(dst / "x")
    assert (dst / "x").read_bytes() == b"V" * 100  # copied again: the file now there
    assert (d.st_uid, stat.S_IMODE(d.st_mode)) == (os.stat(src / "x").st_uid,
                                                   stat.S_IMODE(os.stat(src / "x").st_mode))


def _inodes(root: Path) -> Dict[str, int]:
    return {n: os.lstat(root / n).st_ino for n in os.listdir(root)}


@pytest.mark.parametrize("flags", [{}, {"hard_links": True}, {"xattrs": True},
                                   {"acls": True}, {"hard_links": True, "xattrs": True,
                                                    "acls": True}])
def test_a_no_change_rerun_in_a_shared_directory_copies_nothing(
        tmp_path: Path, backend: str, flags: Dict[str, bool]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write(src / "plain", b"p" * 10, 0o644)
    write(src / "x", b"x" * 20, 0o600)
    os.setxattr(src / "x", "user.note", b"kept")
    write(src / "empty", b"", 0o640)
    os.setxattr(src / "empty", "user.note", b"kept too")
    os.link(src / "plain", src / "plain2")
    write(src / "setuid", b"s" * 5, 0o4755)
    os.chmod(src, 0o777)
    dst = tmp_path / "dst"
    stats, msgs = copy_api(src, dst, backend=backend, opts=Options.archive(**flags))
    assert stats.exit_code == 0, msgs
    before = _inodes(dst)
    stats, msgs = copy_api(src, dst, backend=backend, opts=Options.archive(**flags))
    assert (stats.exit_code, stats.transferred, stats.vanished, msgs) == (0, 0, 0, [])
    assert _inodes(dst) == before
    if (flags.get("xattrs") or flags.get("acls")) and not flags.get("hard_links"):
        # each file's two opens compare the xattrs once; nothing is synced after
        assert stats.direct_syscalls.get("openat", 0) == 2 * 5


@requires_root
def test_a_destination_without_xattrs_is_not_copied_again_and_again(
        tmp_path: Path, backend: str) -> None:
    """ramfs lists no xattrs and refuses to set any: nothing would change, so
    nothing is copied again, and the re-runs, which try to set nothing, exit 0
    (the first copy's lost xattr is its one error: exit 23)."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "f", b"data", 0o644)
    os.setxattr(src / "f", "user.a", b"1")
    os.chmod(src, 0o777)
    with mounted("ramfs", tmp_path / "ram") as ram:
        dst = ram / "dst"
        stats, msgs = copy_api(src, dst, backend=backend, opts=Options.archive(xattrs=True))
        assert stats.exit_code == 23 and any("not supported" in m for m in msgs), msgs
        before = _inodes(dst)
        for _ in range(2):
            stats, msgs = copy_api(src, dst, backend=backend,
                                   opts=Options.archive(xattrs=True))
            assert stats.exit_code == 0 and stats.transferred == 0, msgs
            assert _inodes(dst) == before


@requires_root
def test_a_non_root_rerun_reads_its_own_unreadable_copy(tmp_path: Path) -> None:
    """A destination file of ours without u+r (rsync reads it all the same):
    its xattrs are compared through a moment of u+rw, not taken for a change."""
    src, dst = nobodys_tree(tmp_path)
    work = src.parent
    os.chmod(src, 0o777)
    with traversable(work):
        r = run_cli(["-rtX", f"{src}/", str(dst)], prelude=UNPRIV_PRELUDE, cwd="/")
    assert r.returncode == 0, r
    os.chmod(dst / "f", 0o200)
    ino = os.stat(dst / "f").st_ino
    with traversable(work):
        r = run_cli(["-rtX", "-v", f"{src}/", str(dst)], prelude=UNPRIV_PRELUDE, cwd="/")
    assert r.returncode == 0 and "f" not in r.stdout.splitlines(), r
    assert os.stat(dst / "f").st_ino == ino
    assert stat.S_IMODE(os.stat(dst / "f").st_mode) == 0o200  # (given back)
