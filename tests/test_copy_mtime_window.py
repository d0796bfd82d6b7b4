"""When a destination's mtime counts as its source's: ``Options.same_mtime``,
rsync's ``--modify-window`` / ``-@``.

By default the quick check wants the same nanosecond, but a destination file
system that keeps coarser times holds the source's time cut to its precision;
without allowing for that, every re-run onto ext3, ext4 with 128-byte inodes,
exFAT or SMB copied every file again and set every time again.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyuring.copy import Options
from pyuring.copy.args import parse_common
from pyuring.copy.cli import options_from
from pyuring.copy.helpparser import parse

from .conftest import requires_root
from .test_copy_support import (
    copy_api,
    fix_times,
    loop_fs,
    mounted,
    run_cli,
    set_times,
    write,
)

SECOND = 10**9
#: 2020-09-13 12:26:40.123456789 (before 2038: ext4's 128-byte inodes end there)
T = 1_600_000_000_123_456_789


def _kept_digits(ns: int) -> str:
    """The decimal fraction of a second that a time spells out, trailing
    zeros dropped: what a file system of that precision kept."""
    return f"{ns % SECOND:09d}".rstrip("0")


#: where file systems clamp times (measured: ext4 -I 128 and XFS without bigtime,
#: ext4, XFS bigtime; and all of them below)
LIMITS = [2**31 - 1, 15_032_385_535, 16_299_260_424]


def _default_oracle(src: int, dst: int) -> bool:
    """The same second, and the source's fraction starts with the digits the
    destination's fraction has (its time is the source's cut to them); or a
    source time beyond a limit a file system clamps to, found as that limit."""
    if dst in [x * SECOND for x in LIMITS] and src > dst:
        return True
    if dst == -(2**31) * SECOND and src < dst:
        return True
    return src // SECOND == dst // SECOND and \
        f"{src % SECOND:09d}".startswith(_kept_digits(dst))


times = st.integers(min_value=-(2**40) * SECOND, max_value=2**40 * SECOND)


@settings(max_examples=500, deadline=None)
@given(times, st.integers(min_value=0, max_value=9), st.integers(min_value=-3, max_value=3))
def test_a_destination_time_cut_to_any_decimal_precision_is_the_same(
        src: int, digits: int, nudge: int) -> None:
    unit = 10 ** (9 - digits)  # what a file system keeping `digits` decimals stores
    dst = src - src % unit + nudge
    assert Options().same_mtime(src, dst) == _default_oracle(src, dst), (src, dst)
    assert Options().same_mtime(src, src - src % unit)


@settings(max_examples=500, deadline=None)
@given(times, times)
def test_unrelated_times_agree_with_the_oracle(src: int, dst: int) -> None:
    assert Options().same_mtime(src, dst) == _default_oracle(src, dst)


@settings(max_examples=300, deadline=None)
@given(times, st.sampled_from([*LIMITS, -(2**31)]), st.integers(min_value=-2, max_value=2))
def test_times_near_a_clamping_limit_agree_with_the_oracle(src: int, limit: int,
                                                          nudge: int) -> None:
    dst = limit * SECOND + nudge
    assert Options().same_mtime(src, dst) == _default_oracle(src, dst), (src, dst)


@pytest.mark.parametrize("src, dst, same", [
    (T, T, True),
    (T, T - T % SECOND, True),  # whole seconds (ext3, ext4 -I 128)
    (T, T - T % 10**7, True),  # exFAT's 10 ms
    (T, T - T % 100, True),  # NTFS's and SMB's 100 ns
    (T, T - T % 100 + 100, False),  # later than the source: not a cut of it
    (T, T + SECOND - T % SECOND, False),  # the next whole second
    (T - T % SECOND, T, False),  # a whole-second source, a finer destination
    (T, T - 1, False),  # ...789 against ...788: one nanosecond apart
    (-SECOND // 2, -SECOND, True),  # 1969: the second before the epoch, cut
])
def test_default_examples(src: int, dst: int, same: bool) -> None:
    assert Options().same_mtime(src, dst) is same


@pytest.mark.parametrize("window, src, dst, same", [
    (0, T, T - T % SECOND, True),
    (0, T, T - T % SECOND + 1, True),  # rsync's default: nanoseconds do not count
    (0, T, T + SECOND, False),
    (1, T, T + SECOND - T % SECOND, True),  # FAT: 2-second times
    (1, T, T - SECOND, True),
    (1, T, T + 2 * SECOND, False),
    (0, -SECOND // 2, -SECOND, True),
    (0, -SECOND // 2, 0, False),
    (5, T, T - 5 * SECOND, True),
    (5, T, T - 6 * SECOND, False),
])
def test_a_window_compares_whole_seconds_as_rsync(window: int, src: int, dst: int,
                                                 same: bool) -> None:
    assert Options(modify_window=window).same_mtime(src, dst) is same
    assert Options(modify_window=window).same_mtime(dst, src) is same  # symmetric


@pytest.mark.parametrize("argv, window", [
    (["-a", "s", "d"], -1),
    (["--modify-window=1", "s", "d"], 1),
    (["--modify-window", "2", "s", "d"], 2),
    (["--modify-window", "-1", "s", "d"], -1),
    (["-@1", "s", "d"], 1),
    (["-a@0", "s", "d"], 0),
    (["-@", "-1", "s", "d"], -1),
    (["-@=3", "s", "d"], 3),
    (["s", "d", "-@", "4"], 4),
])
def test_the_window_on_the_command_line(argv: List[str], window: int) -> None:
    ns = parse(argv)
    assert options_from(ns).modify_window == window
    assert ns.paths == ["s", "d"]
    quick = parse_common(argv)  # (or None: argparse decides)
    assert quick is None or vars(quick) == vars(ns)


@pytest.mark.parametrize("arg", ["--modify-window=x", "-@", "-@1.5", "--modify-window="])
def test_a_bad_window_is_a_usage_error(arg: str) -> None:
    r = run_cli([arg, "s", "d"])
    assert r.returncode == 1 and r.stdout == "", r
    assert r.err_lines and "modify-window" in r.err_lines[0], r


def _same_size_other_data(src: Path, dst: Path, dst_mtime: int) -> None:
    """A destination file the quick check can only tell apart by its time."""
    write(src, b"new data")
    set_times(src, T)
    write(dst, b"old data")
    set_times(dst, dst_mtime)


@pytest.mark.parametrize("window, dst_mtime, copied", [
    (-1, T - SECOND, True),  # another second
    (0, T - SECOND, True),
    (1, T - SECOND, False),  # within a FAT-sized window: the data is trusted
    (-1, T - T % SECOND + 1, True),  # the same second, another nanosecond
    (0, T - T % SECOND + 1, False),  # rsync's default: the same second is enough
    (-1, T - T % SECOND, False),  # a whole-second destination of this source
])
def test_what_the_window_copies(tmp_path: Path, backend: str, window: int, dst_mtime: int,
                                copied: bool) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    _same_size_other_data(tmp_path / "src" / "f", tmp_path / "dst" / "f", dst_mtime)
    set_times(tmp_path / "src", T)
    set_times(tmp_path / "dst", T)
    itemized: List[str] = []
    stats, msgs = copy_api(tmp_path / "src", tmp_path / "dst", backend=backend,
                           modify_window=window, verbose=1, itemized=itemized)
    assert msgs == [] and stats.errors == 0
    assert (stats.transferred, stats.unchanged) == ((1, 0) if copied else (0, 1))
    data = (tmp_path / "dst" / "f").read_bytes()
    assert data == (b"new data" if copied else b"old data")
    st_dst = os.stat(tmp_path / "dst" / "f")
    # a copied file gets the source's time; a trusted one keeps its own (rsync)
    assert st_dst.st_mtime_ns == (T if copied else dst_mtime)
    assert [ln.split()[0] for ln in itemized] == ([">f..t......"] if copied else [])


def _ctimes(root: Path) -> Dict[str, int]:
    out = {".": os.lstat(root).st_ctime_ns}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, root)] = os.lstat(p).st_ctime_ns
    return out


@requires_root
def test_a_whole_second_destination_is_current_on_a_rerun(tmp_path: Path,
                                                          backend: str) -> None:
    """ext4 with 128-byte inodes keeps whole seconds: the copy's times lose
    their fraction.  The re-run finds every entry current: nothing copied,
    no itemized line, no time set again (no ctime moves) -- and a change to
    another second is still seen."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(12):
        write(src / ("sub" if i % 3 else "") / f"f{i}", b"d" * (i * 311 % 5000))
    os.symlink("f0", src / "link")
    os.mkfifo(src / "sub" / "fifo")
    fix_times(src, T)
    with loop_fs(tmp_path, "ext4", "64M", ["-I", "128"]) as fs:
        dst = fs / "dst"
        r = run_cli(["-a", "--backend", backend, f"{src}/", str(dst)])
        assert r.returncode == 0 and r.err_lines == [], r
        if os.stat(dst / "f0").st_mtime_ns != T - T % SECOND:
            pytest.skip("this ext4 keeps nanoseconds even with 128-byte inodes")
        assert os.lstat(dst / "link").st_mtime_ns == T - T % SECOND
        before = _ctimes(dst)
        r = run_cli(["-a", "-v", "--backend", backend, f"{src}/", str(dst)])
        assert r.returncode == 0 and r.err_lines == [], r
        assert [ln for ln in r.stdout.splitlines() if not ln.startswith("sent ")] == [], r
        stats, msgs = copy_api(src, dst, backend=backend)
        assert msgs == [] and (stats.transferred, stats.unchanged) == (0, 14)  # (+ link, FIFO)
        assert _ctimes(dst) == before
        # the same size, a second later: copied again
        write(src / "f0", b"")
        set_times(src / "f0", T + SECOND)
        set_times(src, T)
        r = run_cli(["-a", "-v", "--backend", backend, f"{src}/", str(dst)])
        assert r.returncode == 0 and r.err_lines == [], r
        assert [ln for ln in r.stdout.splitlines() if not ln.startswith("sent ")] \
            == [">f..t...... f0"], r
        assert stat.S_ISREG(os.lstat(dst / "f0").st_mode)
        assert os.stat(dst / "f0").st_mtime_ns == T + SECOND - T % SECOND


@requires_root
@pytest.mark.parametrize("fs", [("ext4", ("-I", "128")), ("ext4", ()), ("xfs", ())],
                         ids=["ext4-128", "ext4", "xfs"])
def test_times_beyond_the_destinations_range_count_as_the_same(
        tmp_path: Path, backend: str, fs: Tuple[str, Tuple[str, ...]]) -> None:
    """A time the destination cannot hold is clamped to its limit (2038 on
    ext4 with 128-byte inodes, 2446 with 256, 2486 on XFS bigtime, 1901 below):
    that limit counts as the source's time, so a re-run copies nothing again
    (before: every run sent the file again and set the times of its links and
    directories)."""
    with mounted("tmpfs", tmp_path / "t") as t:  # (64-bit times: nothing clamped)
        _beyond_the_range(t / "src", tmp_path, backend, fs)


def _beyond_the_range(src: Path, tmp_path: Path, backend: str,
                      fs: Tuple[str, Tuple[str, ...]]) -> None:
    (src / "d").mkdir(parents=True)
    write(src / "d" / "late", b"from the future")
    write(src / "d" / "early", b"from the past")
    os.symlink("late", src / "d" / "l")
    late, early = 20_000_000_000 * SECOND, -3_000_000_000 * SECOND  # (2603, 1874)
    os.utime(src / "d" / "late", ns=(late, late))
    os.utime(src / "d" / "early", ns=(early, early))
    os.utime(src / "d" / "l", ns=(late, late), follow_symlinks=False)
    os.utime(src / "d", ns=(late, late))
    assert os.lstat(src / "d" / "late").st_mtime_ns == late
    with loop_fs(tmp_path, fs[0], "400M", fs[1]) as mnt:
        dst = mnt / "dst"
        stats, msgs = copy_api(src, dst, backend=backend)
        assert stats.exit_code == 0 and stats.transferred == 2, msgs
        assert os.lstat(dst / "d" / "late").st_mtime_ns < late  # (clamped)
        lines: List[str] = []
        stats, msgs = copy_api(src, dst, backend=backend, itemized=lines)
        assert stats.exit_code == 0 and stats.transferred == 0, msgs
        assert stats.unchanged == 3 and lines == [], lines
