"""One io-wq worker more while the ring's thread waits on the workers.

By default a copy caps its thread's io-wq at one worker less than its CPUs
(``api.io_worker_cap``): from a warm page cache the workers need only CPU, and
more of them than the CPU the ring's thread leaves over preempt that thread.
That is right while the thread is what limits the copy.  When the workers are
-- new page-cache pages slow to touch (on a VM whose host took back the free
memory: ~3x, docs/benchmarks.md), metadata that has to be read first -- the
thread sleeps in ``io_uring_enter`` and its CPU idles: one more worker is then
what uses it.

The measure is how much of the last ~16 ms the thread spent neither running
nor waiting to run, from ``/proc/thread-self/schedstat`` (its CPU time and its
run-queue time, in ns): preemption by the workers does not count as waiting,
so a second worker that only takes the thread's CPU is taken back.  Two
windows in a row with the thread asleep for more than a third of the time raise
the cap by one (never above the CPUs or the thread's limits before the copy);
one window with it asleep for less than a sixth lowers it again.  Where
``/proc`` is not mounted the cap stays as it is.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional, Tuple

    #: () -> (CPU ns, run-queue ns) of the thread
    Reader = Callable[[], Tuple[int, int]]

#: a window is at least this long (and at least 8 of the loop's waits)
WINDOW_NS = 15_000_000
#: the share of a window the thread slept: above it (twice) one worker more ...
RAISE_ABOVE = 0.34
#: ... below it one less, down to the cap the copy started with
LOWER_BELOW = 0.17


class SchedStat:
    """The calling thread's CPU time and run-queue time (ns) from
    ``/proc/thread-self/schedstat``, re-read through one fd."""

    def __init__(self) -> None:
        self.fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            self()
        except BaseException:
            os.close(self.fd)
            raise

    def __call__(self) -> Tuple[int, int]:
        fields = os.pread(self.fd, 80, 0).split()
        return int(fields[0]), int(fields[1])

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class WorkerGovernor:
    """Moves the io-wq cap of the calling thread's ring between ``cap`` and
    ``top`` (both kinds of worker alike) as :func:`tick`, called after each
    wait for completions, finds the thread asleep or busy."""

    def __init__(self, ring: Any, cap: Tuple[int, int], top: Tuple[int, int], read: Reader,
                 clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self.ring = ring
        self.base = cap
        self.top = top
        self.now = cap  # the limits in force
        self.raised = 0  # how often the cap went up
        self._read = read
        self._clock = clock
        self._calls = 0
        self._streak = 0
        self._t = clock()
        self._cpu, self._rq = read()

    @classmethod
    def start(cls, ring: Any, cap: Tuple[int, int], before: Tuple[int, int],
              cpus: int) -> Optional[WorkerGovernor]:
        """A governor for a ring capped at ``cap`` whose thread had the limits
        ``before`` (0: none known); None when there is no room above the cap
        or no way to tell the thread's sleep."""
        top = tuple(min(c + 1, cpus, b) if b > 0 else min(c + 1, cpus)
                    for c, b in zip(cap, before))
        if top[0] <= cap[0]:
            return None
        try:
            read = SchedStat()
        except (OSError, ValueError, IndexError):
            return None  # (no /proc, or a kernel without schedstat)
        return cls(ring, cap, (top[0], top[1]), read)

    def tick(self) -> None:
        self._calls += 1
        if self._calls & 7:
            return
        t = self._clock()
        span = t - self._t
        if span < WINDOW_NS or span <= 0:
            return
        try:
            cpu, rq = self._read()
        except (OSError, ValueError, IndexError):
            return
        asleep = (span - (cpu - self._cpu) - (rq - self._rq)) / span
        self._t, self._cpu, self._rq = t, cpu, rq
        want = self.now
        if asleep > RAISE_ABOVE and self.now != self.top:
            self._streak += 1
            if self._streak >= 2:
                want = self.top
        else:
            self._streak = 0
            if asleep < LOWER_BELOW:
                want = self.base
        if want == self.now:
            return
        try:
            self.ring.register_iowq_max_workers(*want)
        except OSError:
            return  # (the copy goes on with the limits in force)
        if want == self.top:
            self.raised += 1
        self.now = want
        self._streak = 0

    def close(self) -> None:
        close = getattr(self._read, "close", None)
        if close is not None:
            close()
