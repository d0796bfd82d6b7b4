"""The data of large and sparse files: ``copy_file_range`` in background threads.

io_uring has no opcode for ``copy_file_range``, and a copy of a large file
takes long enough (~0.3 s per GiB here) to stall every small file in flight
if the main thread made the call itself.  So with the io_uring backend the
data of large files is copied by a few worker threads: the syscall releases
the GIL, the main thread keeps the ring busy meanwhile, and several large
files copy on several cores at once.  One file is never split between threads:
ext4 takes the inode lock for every write, and two halves of one file copied
at once measured no faster than one stream.

A worker owns a task's two fds from ``submit`` until it reports back; the main
thread must not close or reuse them in between.  Reports come back through a
pipe that the engine keeps a READ armed on, so a finished copy wakes the
ring's wait like any other completion.  The synchronous backend runs the same
``DataCopy`` inline.
"""

from __future__ import annotations

import collections
import errno
import os

from .._mem import Buffer

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading  # imported when a pool starts: most copies never need it
    from typing import Any, Callable, Deque, Dict, List, Optional

#: errors after which a file's copy_file_range is given up for pread/pwrite
#: (another filesystem, a file the call does not support): for that file only,
#: as the next may be on another pair of filesystems (ENOSYS: for this copier,
#: one per worker thread, or the run's inline one)
_RANGE_FALLBACK = {errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM, errno.EBADF}
#: bytes per copy_file_range call: a stop request is seen between two calls
#: (32 MiB: under a second even on slow disks, well within the stop's grace)
STEP = 32 << 20
#: bytes per pread/pwrite of the fallback
CHUNK = 1 << 20


class SrcError(OSError):
    """A read-side failure inside a data copy (as opposed to a write-side one)."""


class Stopped(Exception):
    """The copy was asked to stop between two steps."""


class DataTask:
    """One file's data: copy from ``src`` to ``dst`` at equal offsets."""

    __slots__ = ("counts", "done", "dst", "error", "fsync", "orphaned", "size", "sparse",
                 "src", "src_side", "stopped", "total")

    def __init__(self, src: int, dst: int, size: int, sparse: bool, fsync: bool,
                 done: Callable[[DataTask], None]) -> None:
        self.src = src
        self.dst = dst
        self.size = size
        self.sparse = sparse
        self.fsync = fsync
        self.done = done
        self.total = 0
        self.error = 0  # errno of a failure
        self.src_side = False  # the failure was reading the source
        self.stopped = False
        self.orphaned = False  # given up by the engine: the worker closes the fds
        self.counts: Dict[str, int] = {}


class DataCopy:
    """copy_file_range, falling back to pread/pwrite; SEEK_DATA/SEEK_HOLE for sparse files.

    One per thread: it owns a fallback buffer and counts its own syscalls.
    """

    def __init__(self, use_range: bool, stop: Callable[[], bool]) -> None:
        self.use_range = use_range  # False: never (asked for, or a kernel without it)
        self.file_range = use_range  # for the file being copied
        self.stop = stop
        self.buf: Optional[bytearray] = None

    def run(self, task: DataTask) -> None:
        """Fill in task.total, or task.error / src_side / stopped."""
        counts: Dict[str, int] = collections.defaultdict(int)
        task.counts = counts
        self.file_range = self.use_range
        try:
            if task.sparse:
                task.total = self._sparse(counts, task.src, task.dst, task.size)
            else:
                task.total = self._range(counts, task.src, task.dst, 0)
            if task.fsync:
                counts["fsync"] += 1
                os.fsync(task.dst)
        except Stopped:
            task.stopped = True
            task.error = errno.EINTR
        except SrcError as exc:
            task.error = exc.errno or errno.EIO
            task.src_side = True
        except OSError as exc:
            task.error = exc.errno or errno.EIO

    def _range(self, counts: Dict[str, int], src: int, dst: int, off: int,
               end: int = -1) -> int:
        """Copy [off, end) -- to EOF when end is -1 -- at the same offsets; bytes copied."""
        total = 0
        while end < 0 or off < end:
            if self.stop():
                raise Stopped()
            want = STEP if end < 0 else min(end - off, STEP)
            if self.file_range:
                try:
                    counts["copy_file_range"] += 1
                    n = os.copy_file_range(src, dst, want, off, off)
                except OSError as exc:
                    if exc.errno == errno.ENOSYS:
                        self.use_range = False
                    elif exc.errno not in _RANGE_FALLBACK:
                        raise
                    self.file_range = False
                    continue
            else:
                n = self._chunk(counts, src, dst, off, min(want, CHUNK))
            if n == 0:
                break
            off += n
            total += n
        return total

    def _chunk(self, counts: Dict[str, int], src: int, dst: int, off: int, want: int) -> int:
        buf = self.buf
        if buf is None:
            buf = self.buf = bytearray(CHUNK)
        view = memoryview(buf)[:want]
        try:
            counts["pread64"] += 1
            n = os.preadv(src, [view], off)
        except OSError as exc:
            raise SrcError(exc.errno, exc.strerror) from None
        done = 0
        while done < n:
            counts["pwrite64"] += 1
            done += os.pwrite(dst, view[done:n], off + done)
        return n

    def _sparse(self, counts: Dict[str, int], src: int, dst: int, size: int) -> int:
        """Copy only the data extents; the holes stay holes."""
        off = 0
        final = -1
        # The size first: data copied past the end of the file makes XFS
        # preallocate (speculatively, or in the CoW fork when the range is
        # cloned), and those blocks stay after the final truncate -- up to 32
        # times the source's for a file whose only data is its last block.
        counts["ftruncate"] += 1
        os.ftruncate(dst, size)
        while True:
            try:
                counts["lseek"] += 1
                data = os.lseek(src, off, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    break  # no data after off
                raise SrcError(exc.errno, exc.strerror) from None
            try:
                counts["lseek"] += 1
                hole = os.lseek(src, data, os.SEEK_HOLE)
            except OSError as exc:
                raise SrcError(exc.errno, exc.strerror) from None
            got = self._range(counts, src, dst, data, hole)
            if got < hole - data:
                # the data ended before the extent did: a file truncated meanwhile,
                # or a pseudo-file (sysfs: st_size 4096, a few bytes of text, no
                # blocks) -- the copy ends where the reading did, never padded
                # out with zeros to a size that was not read
                final = data + got
                break
            off = hole
        if final < 0:
            # no data past off: a trailing hole up to the size now, or a file
            # truncated meanwhile (the copy then ends where the source does, and
            # the engine reports that the size changed)
            try:
                counts["fstat"] += 1
                final = os.fstat(src).st_size
            except OSError as exc:
                raise SrcError(exc.errno, exc.strerror) from None
        if final != size:
            counts["ftruncate"] += 1
            os.ftruncate(dst, final)
        return final


class BulkPool:
    """Worker threads for DataTasks, started one by one as large files turn up.

    ``arm`` is called with the pipe's read end and a callback whenever a READ
    must be (re)armed on it; the engine issues that READ on its executor.
    """

    def __init__(self, threads: int,
                 arm: Callable[[int, Buffer, Callable[[int], None]], None]) -> None:
        import threading

        self._thread_class = threading.Thread
        self.max_threads = threads
        self._arm = arm
        self._threads: List[threading.Thread] = []
        self._idle = 0
        self._queue: Deque[Optional[DataTask]] = collections.deque()
        self._cv = threading.Condition()
        self._done: Deque[DataTask] = collections.deque()
        self._rfd, self._wfd = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self._wfd, False)
        self._wake_buf = Buffer(64)
        self._armed = False
        self._closed = False
        self.stopping = False
        self.outstanding: List[DataTask] = []  # submitted, not yet handed back
        self.peak = 0  # most tasks copying at once (for the tests and --stats)
        self._running = 0

    def submit(self, task: DataTask) -> bool:
        """Hand ``task`` to a worker; False if there is none and none can start
        (a low ``ulimit -u``): the caller copies it itself."""
        with self._cv:
            if not self._idle and len(self._threads) < self.max_threads:
                t = self._thread_class(target=self._work, name="pyuring-copy-data", daemon=True)
                try:
                    t.start()
                except RuntimeError:  # ("can't start new thread")
                    self.max_threads = len(self._threads)
                else:
                    self._threads.append(t)
            if not self._threads:
                return False
            self._queue.append(task)
            self._cv.notify()
        self.outstanding.append(task)
        self._rearm()
        return True

    def _rearm(self) -> None:
        if not self._armed and self.outstanding:
            self._armed = True
            self._arm(self._rfd, self._wake_buf, self._on_wake)

    def _on_wake(self, res: int) -> None:
        """The pipe READ completed: hand finished tasks back (main thread)."""
        self._armed = False
        while True:
            with self._cv:
                if not self._done:
                    break
                task = self._done.popleft()
            self.outstanding.remove(task)
            task.done(task)
        self._rearm()

    def _work(self) -> None:
        copier = DataCopy(True, lambda: self.stopping)
        while True:
            with self._cv:
                while not self._queue:
                    self._idle += 1
                    self._cv.wait()
                    self._idle -= 1
                task = self._queue.popleft()
                if task is None:
                    return
                self._running += 1
                self.peak = max(self.peak, self._running)
            try:
                copier.run(task)
            except Exception:  # (a bug) report a failed copy rather than hang the engine
                task.error = errno.EIO
            with self._cv:
                self._running -= 1
                if task.orphaned:
                    _close_quietly(task.src, task.dst)
                    continue
                self._done.append(task)
                if not self._closed:
                    task.counts["write"] = task.counts.get("write", 0) + 1  # (the wake-up)
                    try:
                        os.write(self._wfd, b"\0")
                    except BlockingIOError:
                        pass  # the pipe is full of wake-ups already: one is enough

    def poke(self) -> None:
        """Wake the engine's wait (the READ armed on the pipe); from any thread.

        A stop requested from another thread (not by a signal, which would
        interrupt io_uring_enter) must not wait for a large copy to end.
        """
        with self._cv:  # (an RLock: also safe from a signal handler in the main thread)
            if not self._closed:
                try:
                    os.write(self._wfd, b"\0")
                except BlockingIOError:
                    pass

    def abandon(self) -> None:
        """The engine gives up waiting: workers close their tasks' fds themselves."""
        with self._cv:
            self.stopping = True
            for task in self.outstanding:
                task.orphaned = True
            for task in self._done:
                _close_quietly(task.src, task.dst)
            self._done.clear()
        self.outstanding = []

    def close(self) -> None:
        """End of the copy (nothing outstanding, or abandoned): end the threads, free the pipe."""
        with self._cv:
            if self._closed:
                return
            self._closed = True  # from here on no worker writes to the pipe
            for _ in self._threads:
                self._queue.append(None)
            self._cv.notify_all()
        if self._armed:
            # a READ given up in flight still holds the pipe (its own reference)
            # and may yet write into the buffer: keep that alive
            from ..executor import _abandoned

            _abandoned.append(self._wake_buf)
        os.close(self._rfd)
        os.close(self._wfd)


def _close_quietly(*fds: Any) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
