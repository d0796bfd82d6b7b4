"""One io-wq worker more when the ring's thread keeps waiting on the workers.

By default a copy caps its thread's io-wq at one worker less than its CPUs
(``api.io_worker_cap``): from a warm page cache the workers need only CPU, and
more of them than the CPU the ring's thread leaves over preempt that thread
(~20 % slower with two workers on two CPUs, docs/benchmarks.md).  That is right
while the thread is what limits the copy.  When the workers are -- new
page-cache pages slow to touch (on a VM whose host took back the free memory),
metadata that has to be read from a disk first -- the thread sleeps in
``io_uring_enter`` and its CPU idles: one more worker is then what uses it.

The measure is how much of each window of >= 15 ms the thread spent neither
running (``time.thread_time_ns()``) nor waiting to run (its run-queue time
from ``/proc/thread-self/schedstat``): preemption is not waiting on the
workers.  Three windows in a row with the thread asleep for more than 40 % of
the time raise the cap by one, never above the CPUs or the limits the thread
had before the copy.  A copy's first moments (its first windows) sleep while
the first completions come back even on a fast machine: one window is not
enough.

The raise is for the rest of the copy: io-wq does not stop a running worker
when its limit is lowered (a worker leaves after 5 s without work), so a cap
taken back would only look smaller.  Other sleeps of the thread count too --
the GIL held by another thread of the program, waits for ``--copy-threads``
jobs -- and may raise the cap to no use; that costs an idle kernel thread.
Where ``/proc`` is not mounted, or a read fails, the cap stays as it is.
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
#: the share of a window the thread slept for it to count ...
ASLEEP_ABOVE = 0.40
#: ... in this many windows in a row, for one worker more
WINDOWS = 3


class SchedStat:
    """The calling thread's CPU time (``time.thread_time_ns()``: schedstat's
    own figure is only brought up to date at a tick or a switch) and its
    run-queue time from ``/proc/thread-self/schedstat``, re-read through one fd."""

    def __init__(self) -> None:
        self.fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            self()
        except BaseException:
            self.close()
            raise

    def __call__(self) -> Tuple[int, int]:
        fields = os.pread(self.fd, 80, 0).split()
        return time.thread_time_ns(), int(fields[1])

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class WorkerGovernor:
    """Raises the io-wq cap of the calling thread's ring from ``cap`` to ``top``
    (both kinds of worker alike) once :func:`tick`, called after each wait for
    completions, finds the thread asleep through ``WINDOWS`` windows."""

    def __init__(self, ring: Any, cap: Tuple[int, int], top: Tuple[int, int], read: Reader,
                 clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self.ring = ring
        self.top = top
        self.now = cap  # the limits in force
        self.raised = 0  # 1 once the cap went up
        self.done = False  # raised, or unable to measure: nothing more to do
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
        try:
            return cls(ring, cap, (top[0], top[1]), read)
        except BaseException:
            read.close()
            raise

    def tick(self) -> None:
        if self.done:
            return
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
            self.done = True  # (the cap stays where it is)
            return
        asleep = (span - (cpu - self._cpu) - (rq - self._rq)) / span
        self._t, self._cpu, self._rq = t, cpu, rq
        if asleep <= ASLEEP_ABOVE:
            self._streak = 0
            return
        self._streak += 1
        if self._streak < WINDOWS:
            return
        self.done = True
        try:
            self.ring.register_iowq_max_workers(*self.top)
        except OSError:
            return  # (the copy goes on with the limits in force)
        self.now = self.top
        self.raised = 1

    def close(self) -> None:
        close = getattr(self._read, "close", None)
        if close is not None:
            close()
