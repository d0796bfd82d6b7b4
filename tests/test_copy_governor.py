"""The io-wq cap raised when the ring's thread keeps waiting (``pyuring/copy/governor.py``).

With ``--io-workers auto`` a copy starts at one worker less than its CPUs and
goes one higher, for the rest of the copy, once the ring's thread has slept
through three windows in a row: decided from the thread's CPU and run-queue
time per window.  These tests drive the
decisions with a fake clock and schedstat, read real schedstat figures, and
read the kernel's limits back during and after real copies.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyuring.copy import Options, api, governor
from pyuring.copy.governor import ASLEEP_ABOVE, WINDOW_NS, WINDOWS, SchedStat, WorkerGovernor

from .test_copy_support import check_backend, copy_api, run_cli
from .test_copy_workers import _thread_limits, _tree
from .treecompare import assert_same_tree

MS = 1_000_000


class FakeRing:
    def __init__(self, fail: bool = False) -> None:
        self.calls: List[Tuple[int, int]] = []
        self.fail = fail

    def register_iowq_max_workers(self, bounded: int, unbounded: int) -> Tuple[int, int]:
        if self.fail:
            raise OSError(22, "refused")
        self.calls.append((bounded, unbounded))
        return (0, 0)


class FakeThread:
    """A clock and a schedstat the test moves window by window."""

    def __init__(self) -> None:
        self.t = 0
        self.cpu = 0
        self.rq = 0

    def clock(self) -> int:
        return self.t

    def read(self) -> Tuple[int, int]:
        return self.cpu, self.rq

    def window(self, gov: WorkerGovernor, asleep: float, queued: float = 0.0,
               span: int = 20 * MS) -> None:
        """One window of ``span`` ns in which the thread slept ``asleep`` of the
        time and waited on a run queue ``queued`` of it; 8 loop turns."""
        self.t += span
        self.rq += int(span * queued)
        self.cpu += span - int(span * asleep) - int(span * queued)
        for _ in range(8):
            gov.tick()


def _gov(ring: FakeRing, th: FakeThread, base: Tuple[int, int] = (1, 1),
         top: Tuple[int, int] = (2, 2)) -> WorkerGovernor:
    return WorkerGovernor(ring, base, top, th.read, th.clock)


def test_three_sleepy_windows_raise_the_cap_for_the_rest_of_the_copy() -> None:
    ring, th = FakeRing(), FakeThread()
    gov = _gov(ring, th)
    th.window(gov, 0.6)
    th.window(gov, 0.6)
    assert ring.calls == [] and gov.now == (1, 1)  # (a copy's start sleeps too)
    th.window(gov, 0.6)
    assert ring.calls == [(2, 2)] and gov.now == (2, 2) and gov.raised == 1
    for asleep in (0.0, 0.9, 0.9, 0.9, 0.0):
        th.window(gov, asleep)
    # (never lowered: io-wq would not stop the running worker anyway)
    assert ring.calls == [(2, 2)] and gov.done


def test_a_busy_window_breaks_the_streak() -> None:
    ring, th = FakeRing(), FakeThread()
    gov = _gov(ring, th)
    for asleep in (0.6, 0.6, 0.3, 0.6, 0.6, ASLEEP_ABOVE, 0.6, 0.6):
        th.window(gov, asleep)
    assert ring.calls == [] and gov.raised == 0
    th.window(gov, 0.6)
    assert ring.calls == [(2, 2)]


def test_preemption_is_not_sleep() -> None:
    """The thread runnable but waiting for a CPU is not waiting on the workers."""
    ring, th = FakeRing(), FakeThread()
    gov = _gov(ring, th)
    for _ in range(6):
        th.window(gov, 0.05, queued=0.6)  # (only 35 % on a CPU, yet never asleep)
    assert ring.calls == [] and gov.now == (1, 1)


def test_windows_are_long_enough_and_looked_at_every_eighth_turn() -> None:
    ring, th = FakeRing(), FakeThread()
    reads: List[int] = []

    def counting() -> Tuple[int, int]:
        reads.append(th.t)
        return th.cpu, th.rq

    gov = WorkerGovernor(ring, (1, 1), (2, 2), counting, th.clock)
    reads.clear()  # (the one at the start)
    th.t = WINDOW_NS - 1
    for _ in range(8):
        gov.tick()
    assert reads == []  # (the eighth turn looked: too short a window)
    th.t = WINDOW_NS
    for _ in range(7):
        gov.tick()
    assert reads == []  # (not an eighth turn)
    gov.tick()
    assert reads == [WINDOW_NS]


def test_a_refused_change_keeps_the_limits_in_force() -> None:
    ring, th = FakeRing(fail=True), FakeThread()
    gov = _gov(ring, th)
    for _ in range(5):
        th.window(gov, 0.9)
    assert gov.now == (1, 1) and gov.raised == 0 and gov.done


def test_a_failed_read_ends_the_governing() -> None:
    ring, th = FakeRing(), FakeThread()
    gov = _gov(ring, th)
    th.window(gov, 0.9)
    th.window(gov, 0.9)

    def broken() -> Tuple[int, int]:
        raise OSError(5, "gone")

    gov._read = broken
    th.window(gov, 0.9)
    assert gov.done
    gov._read = th.read
    for _ in range(4):
        th.window(gov, 0.9)
    assert ring.calls == [] and gov.now == (1, 1)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)), max_size=40))
def test_the_cap_follows_the_rule_for_any_windows(windows: List[Tuple[float, float]]) -> None:
    """A model of the rule: up once, at the end of the first WINDOWS windows in
    a row asleep over ASLEEP_ABOVE; never down."""
    ring, th = FakeRing(), FakeThread()
    gov = _gov(ring, th, (1, 1), (2, 2))
    streak, raised_at = 0, -1
    for i, (asleep, queued) in enumerate(windows):
        queued = min(queued, 1.0 - asleep)
        th.window(gov, asleep, queued)
        measured = int(20 * MS * asleep) / (20 * MS)  # (what the governor sees, in ns)
        if raised_at < 0:
            streak = streak + 1 if measured > ASLEEP_ABOVE else 0
            if streak == WINDOWS:
                raised_at = i
        assert gov.now == ((2, 2) if raised_at >= 0 else (1, 1))
    assert ring.calls == ([(2, 2)] if raised_at >= 0 else [])


@pytest.mark.parametrize("cap, before, cpus, top", [
    ((1, 1), (8, 96362), 2, (2, 2)),
    ((3, 3), (8, 96362), 4, (4, 4)),
    ((1, 1), (8, 96362), 1, None),      # (one CPU: nothing to raise into)
    ((1, 2), (1, 2), 4, None),          # (the program's own limit of 1 stays)
    ((2, 2), (3, 2), 4, (3, 2)),        # (raised only up to the program's limits)
    ((1, 1), (0, 0), 2, (2, 2)),        # (0: no limit known)
])
def test_where_the_cap_may_go(cap: Tuple[int, int], before: Tuple[int, int], cpus: int,
                              top: Optional[Tuple[int, int]]) -> None:
    gov = WorkerGovernor.start(FakeRing(), cap, before, cpus)
    try:
        assert (gov.top if gov is not None else None) == top
    finally:
        if gov is not None:
            gov.close()


def test_a_governor_that_cannot_start_closes_its_schedstat(
        monkeypatch: pytest.MonkeyPatch) -> None:
    made: List[AlwaysAsleep] = []

    class Failing(AlwaysAsleep):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

        def __call__(self) -> Tuple[int, int]:
            raise KeyboardInterrupt  # (in __init__'s first read)

    monkeypatch.setattr(governor, "SchedStat", Failing)
    with pytest.raises(KeyboardInterrupt):
        WorkerGovernor.start(FakeRing(), (1, 1), (8, 8), 2)
    assert [m.closed for m in made] == [True]


def test_schedstat_tells_running_from_sleeping() -> None:
    try:
        read = SchedStat()
    except OSError as exc:
        pytest.skip(f"no /proc/thread-self/schedstat here: {exc}")
    try:
        cpu0, rq0 = read()
        t0 = time.perf_counter_ns()
        end = time.thread_time() + 0.05
        while time.thread_time() < end:
            pass
        cpu1, _ = read()
        assert cpu1 - cpu0 >= 40 * MS
        for _ in range(5):  # (the exact figure: schedstat's own lags up to a tick)
            end = time.perf_counter() + 0.003  # (no CPU clock read: it would update it)
            while time.perf_counter() < end:
                pass
            cpu, _ = read()
            assert 0 <= time.thread_time_ns() - cpu < MS // 2
        time.sleep(0.1)
        cpu2, rq2 = read()
        assert cpu2 - cpu1 < 20 * MS  # (asleep: no CPU time)
        assert rq2 >= rq0
        assert time.perf_counter_ns() - t0 >= (cpu2 - cpu0)
    finally:
        read.close()
    assert read.fd == -1


@pytest.fixture()
def uring() -> str:
    return check_backend("uring")


class AlwaysAsleep:
    """A schedstat of a thread that never runs: every window is all sleep."""

    instances: List[AlwaysAsleep] = []

    def __init__(self) -> None:
        self.closed = False
        AlwaysAsleep.instances.append(self)

    def __call__(self) -> Tuple[int, int]:
        return 0, 0

    def close(self) -> None:
        self.closed = True


def _spy_raises(monkeypatch: pytest.MonkeyPatch) -> List[Tuple[int, int]]:
    """The kernel's limits of the copying thread, read right after each change
    the governor makes."""
    seen: List[Tuple[int, int]] = []
    real_tick = WorkerGovernor.tick

    def tick(self: WorkerGovernor) -> None:
        before = self.now
        real_tick(self)
        if self.now != before:
            seen.append(self.ring.register_iowq_max_workers(0, 0))

    monkeypatch.setattr(WorkerGovernor, "tick", tick)
    return seen


def test_a_copy_whose_thread_waits_gets_one_worker_more_and_gives_it_back_after(
        tmp_path: Path, uring: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(governor, "SchedStat", AlwaysAsleep)
    monkeypatch.setattr(governor, "WINDOW_NS", 0)
    monkeypatch.setattr(api, "usable_cpus", lambda: 2)
    AlwaysAsleep.instances.clear()
    seen = _spy_raises(monkeypatch)
    before = _thread_limits()
    if before[0] < 2:
        pytest.skip(f"this thread's io-wq is limited to {before} already")
    src = _tree(tmp_path / "src", 600)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=uring, queue_depth=16)
    assert stats.exit_code == 0, msgs
    assert_same_tree(src, tmp_path / "dst")
    assert seen == [(2, 2)]  # (the kernel's limits once raised; never lowered again)
    assert stats.io_workers == 1 and stats.io_workers_top == 2
    assert stats.io_workers_raised == 1
    assert [s.closed for s in AlwaysAsleep.instances] == [True]
    assert _thread_limits() == before


def test_the_limits_come_back_when_the_end_of_a_raised_copy_fails(
        tmp_path: Path, uring: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyboardInterrupt (the Python API's Ctrl-C) in the bookkeeping after
    the run still gives the thread its limits back."""
    monkeypatch.setattr(governor, "SchedStat", AlwaysAsleep)
    monkeypatch.setattr(governor, "WINDOW_NS", 0)
    monkeypatch.setattr(api, "usable_cpus", lambda: 2)
    seen = _spy_raises(monkeypatch)
    before = _thread_limits()
    if before[0] < 2:
        pytest.skip(f"this thread's io-wq is limited to {before} already")

    def interrupted(self: Any, ex: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(api.Copier, "_collect", interrupted)
    src = _tree(tmp_path / "src", 300)
    with pytest.raises(KeyboardInterrupt):
        copy_api(src, tmp_path / "dst", backend=uring, queue_depth=16)
    assert seen == [(2, 2)]
    assert _thread_limits() == before


def test_a_busy_thread_keeps_the_cap(tmp_path: Path, uring: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    reads: List[int] = []

    class AlwaysBusy(AlwaysAsleep):
        def __call__(self) -> Tuple[int, int]:
            t = time.perf_counter_ns()  # (all of the time on a CPU)
            reads.append(t)
            return t, 0

    monkeypatch.setattr(governor, "SchedStat", AlwaysBusy)
    monkeypatch.setattr(governor, "WINDOW_NS", 0)
    monkeypatch.setattr(api, "usable_cpus", lambda: 2)
    seen = _spy_raises(monkeypatch)
    src = _tree(tmp_path / "src", 300)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=uring, queue_depth=16)
    assert stats.exit_code == 0, msgs
    assert len(reads) >= 1 + WINDOWS  # (it was there, and it looked)
    assert stats.io_workers_top == 2
    assert seen == [] and stats.io_workers_raised == 0


@pytest.mark.parametrize("kw", [{"io_workers": 1}, {"io_workers": 0}, {"fsync": True}],
                         ids=["fixed", "none", "fsync"])
def test_no_governor_where_the_cap_is_not_auto(tmp_path: Path, uring: str,
                                               monkeypatch: pytest.MonkeyPatch,
                                               kw: Any) -> None:
    monkeypatch.setattr(governor, "SchedStat", AlwaysAsleep)
    monkeypatch.setattr(governor, "WINDOW_NS", 0)
    monkeypatch.setattr(api, "usable_cpus", lambda: 2)
    AlwaysAsleep.instances.clear()
    seen = _spy_raises(monkeypatch)
    src = _tree(tmp_path / "src", 200)
    stats, msgs = copy_api(src, tmp_path / "dst", backend=uring, queue_depth=16, **kw)
    assert stats.exit_code == 0, msgs
    assert seen == [] and AlwaysAsleep.instances == []
    assert stats.io_workers_top == 0


def test_the_sync_backend_has_no_governor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    monkeypatch.setattr(governor, "SchedStat", AlwaysAsleep)
    AlwaysAsleep.instances.clear()
    src = _tree(tmp_path / "src", 30)
    stats, msgs = copy_api(src, tmp_path / "dst", backend="sync")
    assert stats.exit_code == 0, msgs
    assert AlwaysAsleep.instances == [] and stats.io_workers_top == 0


def test_stats_and_json_tell_the_raised_cap(tmp_path: Path, uring: str) -> None:
    src = _tree(tmp_path / "src", 20)
    r = run_cli(["-a", "--stats", f"{src}/", str(tmp_path / "dst")])
    assert r.returncode == 0, r
    cap = api.io_worker_cap(Options.archive())
    top = min(cap + 1, api.usable_cpus())
    if top > cap and os.path.exists("/proc/thread-self/schedstat"):
        # (20 files: over before three windows could pass)
        assert (f"io-wq workers: at most {cap} of each kind ({top} had the ring's thread "
                f"kept waiting on them)") in r.stdout
    j = run_cli(["-a", "--json", f"{src}/", str(tmp_path / "dst2")]).json()
    assert j["io_workers"] == cap
    assert j["io_workers_top"] in (0, top) and j["io_workers_raised"] == 0


def test_stats_of_a_raised_cap() -> None:
    from pyuring.copy.stats import CopyStats

    st = CopyStats()
    st.backend, st.io_workers, st.io_workers_top, st.io_workers_raised = "uring", 1, 2, 1
    assert ("io-wq workers: at most 1 of each kind, then 2 (the ring's thread kept waiting "
            "on them)") in st.summary()
    st.io_workers_top = st.io_workers_raised = 0
    assert "io-wq workers: at most 1 of each kind\n" in st.summary()
