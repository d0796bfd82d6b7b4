"""The re-run's quick check decided on raw statx bytes (``engine._unchanged``,
called by ``Engine._on_probed``).

An entry whose source and destination statx both arrive (``Executor.statx_many``,
a batch of entries at a time) goes one of two ways:
a regular file whose destination has its size, mtime, mode and ids (and, with
-H, one name only) ends there, before any Metadata is built; everything else
is parsed and dispatched.  These tests hold the short way to the long one
(``Engine.quick_skip`` off): the same destination, the same counters and the
same SQEs and syscalls, for each difference the short way must not overlook.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Tuple

import pytest

import pyuring.copy.engine as engine_mod
from pyuring import _abi as A
from pyuring.copy import Options
from pyuring.copy.stats import CopyStats
from pyuring.metadata import STATX_WANTED, Metadata

from .conftest import IS_ROOT
from .test_copy_support import copy_api, fix_times, set_times, write
from .treecompare import assert_same_tree, diff_trees

MTIME = 1_600_000_000_123_456_789
#: stats that depend on timing, not on what was done
_TIMING = {"elapsed", "enters", "completions", "sqes_per_enter"}


def _build(src: Path) -> None:
    src.mkdir()
    for name in ("same", "mode", "uid", "gid", "mtime_ns", "size", "to_link", "to_dir",
                 "setuid"):
        write(src / name, name.encode() * 3, 0o640)
    os.chmod(src / "setuid", 0o4755)
    write(src / "h1", b"hard", 0o644)
    os.link(src / "h1", src / "h2")
    (src / "sub").mkdir()
    write(src / "sub" / "deep", b"deep", 0o600)
    os.symlink("same", src / "sym")
    fix_times(src, MTIME)


def _mutate(dst: Path) -> None:
    """One difference per name (each of which the short way must see)."""
    os.chmod(dst / "mode", 0o600)
    if IS_ROOT:
        os.chown(dst / "uid", 4321, -1, follow_symlinks=False)
        os.chown(dst / "gid", -1, 4321, follow_symlinks=False)
    set_times(dst / "mtime_ns", MTIME + 1)
    os.truncate(dst / "size", 2)
    set_times(dst / "size", MTIME)
    os.unlink(dst / "to_link")
    os.symlink("x" * len(b"to_link" * 3), dst / "to_link")  # same size, not a file
    set_times(dst / "to_link", MTIME)
    os.unlink(dst / "to_dir")
    (dst / "to_dir").mkdir()
    os.link(dst / "same", dst / "same_other_name")  # a destination nlink of 2


def _stats(stats: Any) -> Dict[str, Any]:
    out = {k: v for k, v in stats.as_dict().items() if k not in _TIMING}
    # (how many getdents64 calls a listing takes depends on when it is read)
    out["direct_syscalls"] = {k: v for k, v in out["direct_syscalls"].items()
                              if k != "getdents64"}
    return out


def _rerun(src: Path, dst: Path, backend: str, quick: bool, opts: Options,
           monkeypatch: pytest.MonkeyPatch) -> Tuple[Dict[str, Any], List[str], List[str]]:
    real_init = engine_mod.Engine.__init__

    def init(self: Any, *a: Any, **k: Any) -> None:
        real_init(self, *a, **k)
        if not quick:
            self.quick_skip = False

    with monkeypatch.context() as m:
        m.setattr(engine_mod.Engine, "__init__", init)
        itemized: List[str] = []
        stats, msgs = copy_api(src, dst, backend=backend, opts=opts, itemized=itemized)
    return _stats(stats), msgs, itemized


OPTIONS = {
    "-a": lambda: Options.archive(),
    "-aH": lambda: Options.archive(hard_links=True),
    "-rlt": lambda: Options(recursive=True, links=True, times=True),
    "-an -v": lambda: Options.archive(dry_run=True, verbose=1),
}


@pytest.mark.parametrize("flags", list(OPTIONS))
def test_short_way_ends_where_the_long_way_ends(tmp_path: Path, backend: str, flags: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    _build(src)
    results = []
    for quick in (False, True):
        dst = tmp_path / f"dst_{quick}"
        stats, msgs = copy_api(src, dst, backend=backend, opts=OPTIONS["-aH"]())
        assert stats.exit_code == 0, msgs
        _mutate(dst)
        results.append(_rerun(src, dst, backend, quick, OPTIONS[flags](), monkeypatch))
    (long_stats, long_msgs, long_items), (short_stats, short_msgs, short_items) = results
    assert short_stats == long_stats
    assert short_msgs == long_msgs
    assert sorted(short_items) == sorted(long_items)  # (in the order they completed)
    # (a dry run leaves the times the mutations gave, at two different moments)
    assert diff_trees(tmp_path / "dst_False", tmp_path / "dst_True", atime=False,
                      times=flags != "-an -v") == []
    if flags == "-aH":  # (-a: h1 and h2 are two files; the extra name is not deleted)
        os.unlink(tmp_path / "dst_True" / "same_other_name")
        set_times(tmp_path / "dst_True", MTIME)
        assert_same_tree(src, tmp_path / "dst_True", atime=False)
    if flags != "-an -v":
        # the short way really ran: every file with nothing to do ended there
        assert short_stats["unchanged"] >= 2


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> List[int]:
    calls = [0]
    real = engine_mod._from_statx

    def counting(*a: Any) -> Any:
        calls[0] += 1
        return real(*a)

    monkeypatch.setattr(engine_mod, "_from_statx", counting)
    return calls


def test_a_no_change_rerun_parses_no_regular_file(tmp_path: Path, backend: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the symlink's pair of statx results is parsed from a batch on an
    unchanged tree (a directory's come one at a time: its opened fd's and its
    destination's); with -I every entry but the directory is."""
    src = tmp_path / "src"
    _build(src)
    dst = tmp_path / "dst"
    stats, msgs = copy_api(src, dst, backend=backend, opts=Options.archive())
    assert stats.exit_code == 0, msgs
    calls = _count_parses(monkeypatch)
    stats, msgs = copy_api(src, dst, backend=backend, opts=Options.archive())
    # (the symlink, unchanged too, is counted with the files)
    assert stats.exit_code == 0 and stats.unchanged - 1 == stats.regular_files == 12, msgs
    # the root's own statx is not an entry's, nor sub's: sym, two results
    assert calls[0] == 2
    calls[0] = 0
    stats, msgs = copy_api(src, dst, backend=backend, opts=Options.archive(ignore_times=True))
    assert stats.exit_code == 0 and stats.transferred == 12, msgs
    assert calls[0] == 2 * 13


def _statx_bytes(**fields: int) -> bytes:
    values = dict.fromkeys(A.STATX_FIELDS, 0)
    values.update({"stx_mask": STATX_WANTED, "stx_nlink": 1, "stx_mode": 0o100644,
                   "stx_size": 10, "stx_mtime.tv_sec": 1_600_000_000,
                   "stx_mtime.tv_nsec": 5})
    values.update({k.replace("__", "."): v for k, v in fields.items()})
    return A.STATX.pack(*(values[f] for f in A.STATX_FIELDS))


@pytest.mark.parametrize("dst_fields, short", [
    ({}, True),
    ({"stx_mask": STATX_WANTED & ~A.STATX_MTIME}, False),  # mtime not reported
    ({"stx_mask": STATX_WANTED & ~A.STATX_SIZE}, False),
    ({"stx_mtime__tv_nsec": 6}, False),
    ({"stx_mtime__tv_nsec": 0}, True),  # a whole-second destination's copy (same_mtime)
    ({"stx_mtime__tv_sec": 1_600_000_001}, False),
    ({"stx_size": 11}, False),
    ({"stx_mode": 0o100600}, False),
    ({"stx_uid": 1}, False),
    ({"stx_gid": 1}, False),
    ({"stx_nlink": 3}, True),  # (the destination's other names are not the copy's concern)
    ({"stx_ino": 99, "stx_blocks": 8, "stx_atime__tv_sec": 7, "stx_ctime__tv_sec": 8}, True),
])
@pytest.mark.parametrize("src_nlink, hard_links", [(1, False), (2, False), (2, True)])
def test_which_statx_fields_decide(dst_fields: Dict[str, int], short: bool, src_nlink: int,
                                   hard_links: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Engine._on_probed on hand-made statx bytes: the short way only when every
    field the quick check and the attribute fixes look at is reported and the
    same."""
    ended: List[str] = []
    jobs: List[Any] = []

    def dispatch(job: Any) -> None:
        ended.append("long")
        jobs.append(job)

    d = SimpleNamespace(pending=1, listing_done=False)
    eng = SimpleNamespace(
        quick_skip=True, copies_xattrs=False, opts=Options(hard_links=hard_links),
        stats=CopyStats(), active=1, maybe_finish_dir=lambda d: None, dispatch=dispatch,
    )
    calls = _count_parses(monkeypatch)
    src = _statx_bytes(stx_nlink=src_nlink)
    dst = _statx_bytes(**dst_fields)
    engine_mod.Engine._on_probed(eng, d, [b"f"], [b"f"], [8],  # type: ignore[arg-type]
                                 [0, 0], [src, dst], [0, 0])
    if d.pending == 0 and eng.active == 0:
        ended.append("short")
    expect_short = short and not (hard_links and src_nlink > 1)
    assert ended == ["short" if expect_short else "long"]
    if expect_short:
        assert (eng.stats.unchanged, eng.stats.regular_files, eng.stats.bytes_total) == (1, 1, 10)
        assert calls[0] == 0  # no Metadata was built
    else:
        assert eng.stats.unchanged == 0
        [job] = jobs
        assert job.meta == Metadata.from_statx(src) and job.dmeta == Metadata.from_statx(dst)

