"""Source directories others may write to: a name swapped between a file's statx
and its open must not give one file's data another's mode.

Where only the copy's user or root can rename a directory's entries, statx by
name then open by name see one file, and small files take the packed chain.
Anywhere else (``Engine.others_may_write``) the opened file's own statx is
compared with the first (through the ring), and a directory's attributes come
from the opened directory.  The swaps are made by ``install_statx_hook`` right
after the engine's statx of the name, as an attacker's rename would land.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, List

import pytest

import pyuring.copy.api as api
from pyuring.copy import Options
from pyuring.copy.engine import Engine
from pyuring.executor import make_executor
from pyuring.metadata import Metadata

from .test_copy_support import BACKENDS, check_backend, copy_api, install_statx_hook, write

SECRET = b"the secret " * 10
PUBLIC = b"anyone may read this " * 10
BIG = 300 * 1024  # above small_file_max: the large-file way


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return check_backend(str(request.param))


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
    dst = tmp_path / "dst"
    r = _copy_with_swap(src, dst, backend, monkeypatch,
                        {b"public": _swap(src, "public", "secret")})
    assert r.fired == [b"public"]
    assert _leaks(dst) == ["public: 0o100644"]


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


def test_a_swapped_directory_gets_the_opened_ones_attributes(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "pub").mkdir(0o755)
    (src / "priv").mkdir(0o700)
    write(src / "priv" / "inside", SECRET, 0o600)
    os.chmod(src / "pub", 0o755)
    os.chmod(src / "priv", 0o700)
    os.chmod(src, 0o777)
    dst = tmp_path / "dst"
    r = _copy_with_swap(src, dst, backend, monkeypatch, {b"pub": _swap(src, "pub", "priv")})
    assert r.fired == [b"pub"]
    # the directory copied as "pub" is priv's, and so is its mode
    assert (dst / "pub" / "inside").read_bytes() == SECRET
    assert stat.S_IMODE(os.stat(dst / "pub").st_mode) == 0o700
