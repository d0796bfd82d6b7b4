"""``pyuring-copy`` / ``python -m pyuring.copy``: the command line."""

from __future__ import annotations

import errno
import os
import sys
import time

from ..errors import UringUnavailable
from .api import Copier, CopyError, _signal
from .args import PROG, parse_common, usage_error
from .options import Options
from .stats import CopyStats

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, Sequence, Tuple


def build_parser() -> Any:
    """The argparse parser (``--help``, ``--version``, unusual command lines)."""
    from .helpparser import build_parser

    return build_parser()


def parse_args(argv: Sequence[str]) -> Any:
    """The parsed command line: the quick parser for ordinary lines, argparse
    for the rest (it prints help, version and errors, and exits)."""
    ns = parse_common(argv)
    if ns is not None:
        return ns
    if list(argv) == ["--version"]:  # (what argparse prints, without its ~10 ms)
        from .. import __version__

        out = _Output(sys.stdout)
        out.write(f"{PROG} {__version__}\n")
        out.flush()
        raise SystemExit(0 if out.error is None else EXIT_OUTPUT)
    from .helpparser import parse

    return parse(list(argv))


def options_from(ns: Any) -> Options:
    opts = Options.archive() if ns.archive else Options()
    for flag in ("recursive", "links", "perms", "times", "group", "owner", "hard_links",
                 "xattrs", "acls", "dry_run", "ignore_times", "fsync", "numeric_ids",
                 "quiet", "progress"):
        if getattr(ns, flag):
            setattr(opts, flag, True)
    if ns.dev_spec:
        opts.devices = opts.specials = True
    if ns.devices:
        opts.devices = True
    if ns.specials:
        opts.specials = True
    for flag in ("recursive", "links", "perms", "times", "group", "owner", "devices",
                 "specials", "hard_links", "xattrs", "acls"):
        if getattr(ns, f"no_{flag}"):
            setattr(opts, flag, False)
    opts.verbose = ns.verbose
    opts.backend = ns.backend
    opts.queue_depth = ns.queue_depth
    opts.max_files_in_flight = ns.max_files_in_flight
    opts.data_path = ns.data_path
    opts.small_file_max = ns.small_file_max
    opts.copy_threads = ns.copy_threads
    opts.io_workers = ns.io_workers
    opts.modify_window = ns.modify_window
    return opts


class _Progress:
    """One overwritten line on a terminal: files, bytes, rate, ETA."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.t0 = time.monotonic()
        self.shown = 0  # the length of the line on the terminal (0: none)

    def __call__(self, st: CopyStats) -> None:
        dt = max(time.monotonic() - self.t0, 1e-6)
        rate = st.bytes_transferred / dt
        left = max(st.bytes_total - st.bytes_transferred, 0)
        # (the total is known once the walk has seen every entry: before, the
        # bytes left are only those of the files in flight, an ETA of 0 s)
        eta = f"{left / rate:5.0f}s" if rate > 0 and left and st.walk_done else "   --"
        line = (f"{st.files:>9,} files  {st.bytes_transferred / 1e6:>10,.1f} MB  "
                f"{rate / 1e6:>8,.1f} MB/s  ETA {eta}")
        self.stream.write("\r" + line)
        self.stream.flush()
        self.shown = len(line)

    def clear(self) -> None:
        """Blank the line before another line goes to the terminal (-v's, a
        message); the next update draws it again below that."""
        if self.shown:
            self.stream.write("\r" + " " * self.shown + "\r")
            self.stream.flush()
            self.shown = 0

    def done(self) -> None:
        if self.shown:  # (a line blanked by clear() needs no newline: none is left)
            self.stream.write("\n")
            self.stream.flush()


def _more_fds() -> None:
    """Every directory being copied holds two fds (source and destination)
    until its contents are done, so a tree 500 levels deep needs 1,000 more
    than the files in flight; and -H keeps an fd of each hard-link group's
    first copy until the group's last name is seen -- with names outside the
    tree (snapshots), to the end of the copy.  Raise the soft RLIMIT_NOFILE to
    the hard limit, as a process that needs many fds should (this one never
    uses select()).  CLI only: a library must not change its caller's limits."""
    import resource

    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = hard if hard != resource.RLIM_INFINITY else 1 << 20
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (OSError, ValueError):
        pass  # (the old limit stays; fd_budget works within it)


class _Output:
    """A standard stream for the run's own lines.  A write that fails (a full
    disk, a pipe whose reader left, a closed stdout) must not stop a copy
    half-way, nor -- raised inside the engine's callback -- derail it: as cp
    does, the copy goes on, the output stops, and the first failure is told
    once at the end (:func:`_main`)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.error: Optional[OSError] = None
        self.writing = False  # in a write or flush (a signal handler asks: _Stuck)

    def write(self, text: str) -> None:
        self._do(lambda: self.stream.write(text))

    def flush(self) -> None:
        if self.stream is not None:  # (nothing was written to a missing one)
            self._do(lambda: self.stream.flush())

    def _do(self, act: Callable[[], object]) -> None:
        if self.error is not None:
            return
        try:
            if self.stream is None:  # (Python found the fd closed at start-up)
                raise OSError(errno.EBADF, os.strerror(errno.EBADF))
            # (set and cleared inside the try: a _Stuck raised anywhere
            # between is caught here, never in the engine's callback)
            self.writing = True
            try:
                act()
            finally:
                self.writing = False
        except _Stuck:
            self.error = OSError(errno.EINTR, "the reader stopped reading")
            self._let_go()
        except OSError as exc:
            self.error = exc
        except ValueError:  # (the stream object was closed)
            self.error = OSError(errno.EBADF, os.strerror(errno.EBADF))

    def stuck(self) -> bool:
        """Does the write under way stay blocked -- its fd takes nothing for a
        second?  (A reader that is slow but reads is waited for: only a
        reader that stopped costs the output.)"""
        try:
            import select

            poller = select.poll()
            poller.register(self.stream.fileno(), select.POLLOUT)
            return not poller.poll(1000)
        except (OSError, ValueError, AttributeError):
            return True

    def _let_go(self) -> None:
        """/dev/null in place of the stream's fd -- and of stdout's or
        stderr's where it is the same pipe or terminal (2>&1): what their
        buffers still hold goes nowhere, instead of blocking the exit."""
        try:
            fd = self.stream.fileno()
            st = os.fstat(fd)
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                for other in (1, 2):
                    if other != fd:
                        o = os.fstat(other)
                        if (o.st_dev, o.st_ino) != (st.st_dev, st.st_ino):
                            continue
                    os.dup2(null, other)
            finally:
                os.close(null)
        except (OSError, ValueError, AttributeError):
            pass


class _Stuck(Exception):
    """Raised by the signal handler while an _Output write blocks (a pipe whose
    reader stopped reading, a terminal held by Ctrl-S): the retried write
    (PEP 475) would block again and SIGINT would never end the copy."""


#: rsync's "errors with program diagnostics": the copy may be whole, its report is not.
EXIT_OUTPUT = 13


def _fill_std_fds() -> None:
    """A standard fd closed by the caller (``>&-``) would be the number the
    next open() gets: a destination file, into which a message or a stray
    library print would then go.  Put /dev/null there first.  (Python leaves
    sys.stdout None for a closed fd 1: the check costs nothing otherwise.)"""
    for fd, stream in ((0, sys.stdin), (1, sys.stdout), (2, sys.stderr)):
        if stream is not None:
            continue
        try:
            os.fstat(fd)
        except OSError:
            try:
                got = os.open(os.devnull, os.O_RDWR)
            except OSError:
                return
            if got != fd:  # (a lower fd was free after all)
                os.close(got)


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        _fill_std_fds()
        return _main(argv)
    except KeyboardInterrupt:
        _Output(sys.stderr).write(f"{PROG}: interrupted\n")
        return 20
    except BrokenPipeError:
        return 1
    except Exception as exc:  # never a traceback for users; PYURING_DEBUG=1 shows it
        if os.environ.get("PYURING_DEBUG"):
            raise
        return _failed(exc)


def _failed(exc: Exception) -> int:
    """A failure outside any one file's copy (the engine reports those per
    file, and goes on): a resource limit is said in a line with rsync's exit
    code; anything else is a bug of ours."""
    no = exc.errno if isinstance(exc, OSError) else None
    if isinstance(exc, MemoryError) or no == errno.ENOMEM:
        _Output(sys.stderr).write(f"{PROG}: out of memory\n")
        return 22
    if no in (errno.EMFILE, errno.ENFILE):
        limit = ""
        try:
            import resource

            limit = f" (ulimit -n is {resource.getrlimit(resource.RLIMIT_NOFILE)[0]})"
        except (ImportError, OSError):
            pass
        _Output(sys.stderr).write(f"{PROG}: cannot go on: {os.strerror(no)} ({no}){limit}\n")
        return 11
    _Output(sys.stderr).write(f"{PROG}: internal error: {type(exc).__name__}: {exc} "
                              f"(set PYURING_DEBUG=1 for details)\n")
    return 1


def _main(argv: Optional[Sequence[str]]) -> int:
    sys.stdout, sys.stderr = _whole_writes(sys.stdout), _whole_writes(sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        # names are escaped (text.show), but a terminal may still not take
        # every character: never die on output
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    ns = parse_args(sys.argv[1:] if argv is None else argv)
    paths: List[str] = ns.paths
    if len(paths) < 2:
        usage_error("need at least one SRC and a DST" if paths else "missing SRC and DST")
    if "" in paths:  # (as rsync: "" is no path, not the current directory)
        usage_error("empty destination argument (use \".\")" if paths[-1] == ""
                    else "empty source argument")
    opts = options_from(ns)
    # json only when asked for (start-up time), and before the copy starts (no
    # imports -- no stat() of module files -- in the middle of a copy)
    json_module: Any = __import__("json") if ns.json else None
    problem = opts.validate()
    if problem:
        usage_error(problem)

    out, err = _Output(sys.stdout), _Output(sys.stderr)
    # --json: stdout holds the JSON alone (a script parses it); the lines for
    # people (-v, --stats, "sent ...") go to stderr
    human = err if ns.json else out
    progress = _Progress(err) if opts.progress and _isatty(sys.stderr) else None
    # (-v lines to the terminal that shows the progress line: it is blanked first)
    blank = progress.clear if progress is not None and (
        human is err or _isatty(sys.stdout)) else None

    def report(msg: str) -> None:
        if progress is not None:
            progress.clear()
        err.write(f"{PROG}: {msg}\n")

    def itemize(line: str) -> None:
        if blank is not None:
            blank()
        human.write(line + "\n")

    _more_fds()
    copier = Copier(opts, report, itemize if opts.verbose and not opts.quiet else None)
    if progress is not None:
        copier.on_progress = progress

    def on_signal(signum: int, frame: Any) -> None:
        copier.interrupt()
        for o in (out, err):
            if o.writing and o.stuck():
                raise _Stuck

    old = {}
    for sig in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP):
        try:
            old[sig] = _signal.signal(sig, on_signal)
        except (ValueError, OSError):
            pass
    # (kept until the last line is out: a signal while a report blocks on a
    # reader that stopped reading must end that write too)
    try:
        stats = copier.stats
        failure: Optional[Tuple[str, int]] = None  # (a copy that could not start)
        try:
            stats = copier.run([os.fsencode(p) for p in paths[:-1]], os.fsencode(paths[-1]))
        except CopyError as exc:
            failure = (str(exc), exc.exit_code)
        except UringUnavailable as exc:
            failure = (f"--backend uring: io_uring is not available here: "
                       f"{exc.strerror or exc} (use --backend auto or sync)", 1)
        finally:
            if progress is not None:
                progress.done()
        if failure is not None:
            report(failure[0])
            if ns.json:  # (a script reading the JSON gets an answer either way)
                out.write(json_module.dumps({**stats.as_dict(), "error": failure[0],
                                             "exit_code": failure[1]}, sort_keys=True) + "\n")
            return _finish(out, report, failure[1])
        if stats.interrupted:
            report("interrupted: stopped cleanly, no partial file left (exit 20)")
        if opts.verbose and stats.backend_note and not opts.quiet:
            report(f"{stats.backend_note}; used the synchronous backend")
        if opts.verbose and not opts.quiet:
            human.write(f"sent {stats.bytes_transferred:,} bytes in {stats.transferred:,} "
                        f"files; backend {stats.backend or 'none (nothing to copy)'}\n")
        if ns.stats:
            human.write(stats.summary() + "\n")
        if ns.json:
            out.write(json_module.dumps(stats.as_dict(), sort_keys=True) + "\n")
        return _finish(out, report, stats.exit_code)
    finally:
        for sig, handler in old.items():
            _signal.signal(sig, handler)


def _finish(out: _Output, report: Callable[[str], None], code: int) -> int:
    """The exit status, once stdout has had everything: a failed write to it
    is told here, once."""
    out.flush()
    if out.error is None:
        return code
    no = out.error.errno or errno.EIO
    went_on = "" if code == 20 else "; the copy itself went on"
    report(f"cannot write to standard output: {out.error.strerror or os.strerror(no)} "
           f"({no}){went_on}")
    return code or EXIT_OUTPUT


def _whole_writes(stream: Any) -> Any:
    """``stream``, or -- where it writes straight to its fd (python -u,
    PYTHONUNBUFFERED, common in containers) -- the same fd with a buffer
    between: a text stream over an unbuffered one drops what a partial
    write(2) left unwritten, and writes to a terminal or pipe that is full
    are cut short whenever an io_uring completion's task work interrupts
    them (a trial lost the newlines of 4 of 1,000 -v lines).  Line-buffered,
    as unbuffered output is meant to be seen at once."""
    from io import BufferedWriter, FileIO, TextIOWrapper

    raw = getattr(stream, "buffer", None)
    if not isinstance(raw, FileIO) or raw.closed:
        return stream
    try:
        fileio = FileIO(raw.fileno(), "wb", closefd=False)
    except (OSError, ValueError):
        return stream
    return TextIOWrapper(BufferedWriter(fileio), encoding=stream.encoding,
                         errors=stream.errors, line_buffering=True)


def _isatty(stream: Any) -> bool:
    try:
        return stream is not None and bool(stream.isatty())
    except (OSError, ValueError):
        return False
