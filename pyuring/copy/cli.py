"""``pyuring-copy`` / ``python -m pyuring.copy``: the command line."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any, List, NoReturn, Optional, Sequence

from ..errors import UringUnavailable
from .api import Copier, CopyError
from .options import Options
from .stats import CopyStats

PROG = "pyuring-copy"

DESCRIPTION = """\
Copy files and directory trees like rsync -a / cp -a, on io_uring.

SRC/ (trailing slash) copies the contents of SRC into DST; SRC without the
slash copies SRC itself into DST (as DST/SRC).  A single file may be copied to
a new file name.  DST is created if missing.

Every file is written under a temporary identity and appears under its final
name only when complete.  Below SRC and DST nothing is opened by path: symlinks
and renames raced in by someone else cannot redirect the copy outside them.
Where io_uring is not available (old kernel, seccomp, io_uring_disabled) the
same copy runs on plain system calls with identical results."""

EPILOG = """\
exit status (as rsync):
  0   success
  1   syntax or usage error
  11  error in file I/O (e.g. no space left on the destination)
  20  interrupted (SIGINT, SIGTERM, SIGHUP); no partial file is left
  23  partial transfer: some entries could not be copied (see the messages)
  24  partial transfer: some source files vanished during the copy

examples:
  python -m pyuring.copy -a src/ backup/        # mirror the contents of src
  python -m pyuring.copy -aHAX --stats /etc /srv/etc-copy
  python -m pyuring.copy -a --json src/ dst/    # machine-readable statistics"""


def _columns() -> int:
    """The terminal's width as shutil.get_terminal_size() finds it (COLUMNS, then
    stdout's size, then 80), without importing shutil."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class _Parser(argparse.ArgumentParser):
    """argparse makes a help formatter for every add_argument, and the stock one
    imports shutil (bz2, lzma, ...) and asks for the terminal's size each time:
    every copy's start-up paid for that.  This parser finds the width once."""

    _width = 0

    def _get_formatter(self) -> argparse.HelpFormatter:
        if not self._width:
            self._width = _columns() - 2
        return argparse.RawDescriptionHelpFormatter(prog=self.prog, width=self._width)

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{PROG}: {message}\n{PROG}: try '{PROG} --help'\n")
        raise SystemExit(1)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("paths", nargs="*", metavar="SRC... DST", help="sources, then destination")
    g = p.add_argument_group("what to keep (-a is -rlptgoD)")
    g.add_argument("-a", "--archive", action="store_true", help="archive mode: -rlptgoD")
    g.add_argument("-r", "--recursive", action="store_true", help="recurse into directories")
    g.add_argument("-l", "--links", action="store_true", help="copy symlinks as symlinks")
    g.add_argument("-p", "--perms", action="store_true",
                   help="keep permissions (incl. setuid, setgid, sticky)")
    g.add_argument("-t", "--times", action="store_true",
                   help="keep modification and access times (nanoseconds)")
    g.add_argument("-g", "--group", action="store_true", help="keep group")
    g.add_argument("-o", "--owner", action="store_true", help="keep owner (as root)")
    g.add_argument("-D", dest="dev_spec", action="store_true", help="same as --devices --specials")
    g.add_argument("--devices", action="store_true", help="keep device files (as root)")
    g.add_argument("--specials", action="store_true", help="keep FIFOs and sockets")
    g.add_argument("-H", "--hard-links", action="store_true", help="keep hard links")
    g.add_argument("-X", "--xattrs", action="store_true", help="keep extended attributes")
    g.add_argument("-A", "--acls", action="store_true", help="keep POSIX ACLs (implies -p)")
    g.add_argument("--numeric-ids", action="store_true",
                   help="owners by number (always so for a local copy)")
    for name in ("recursive", "links", "perms", "times", "group", "owner", "devices",
                 "specials", "hard-links", "xattrs", "acls"):
        g.add_argument(f"--no-{name}", dest=f"no_{name.replace('-', '_')}", action="store_true",
                       help=argparse.SUPPRESS)
    b = p.add_argument_group("behaviour")
    b.add_argument("-n", "--dry-run", action="store_true", help="show what would be done")
    b.add_argument("-I", "--ignore-times", action="store_true",
                   help="copy every file, not only those whose size or mtime differ")
    b.add_argument("--fsync", action="store_true", help="fsync each file before publishing it")
    o = p.add_argument_group("output")
    o.add_argument("-v", "--verbose", action="count", default=0,
                   help="one itemized line per change (rsync -i style)")
    o.add_argument("-q", "--quiet", action="store_true", help="no messages but errors")
    o.add_argument("--progress", action="store_true",
                   help="live progress line on a terminal (files, bytes, rate, ETA)")
    o.add_argument("--stats", action="store_true",
                   help="print a summary with io_uring figures at the end")
    o.add_argument("--json", action="store_true", help="print the statistics as JSON")
    e = p.add_argument_group("engine")
    e.add_argument("--backend", choices=("auto", "uring", "sync"), default="auto",
                   help="io_uring, plain syscalls, or io_uring when available (default)")
    e.add_argument("--queue-depth", type=int, default=256, metavar="N",
                   help="io_uring submission queue entries (default 256)")
    e.add_argument("--max-files-in-flight", type=int, default=128, metavar="N",
                   help="entries being copied at once (default 128)")
    e.add_argument("--data-path", choices=("auto", "ring", "copy_file_range"), default="auto",
                   help="how files above --small-file-max are copied (default: copy_file_range)")
    e.add_argument("--small-file-max", type=int, default=128 * 1024, metavar="BYTES",
                   help="files up to this size are read and written in one operation each")
    e.add_argument("--copy-threads", type=int, default=4, metavar="N",
                   help="threads copying the data of larger files (copy_file_range) while "
                        "the ring goes on with the rest (default 4; 0: in turn)")
    e.add_argument("--io-workers", type=_io_workers, default=-1, metavar="N|auto",
                   help="at most N kernel io-wq threads of each kind run the ring's blocking "
                        "operations (default auto: one less than the usable CPUs, at least "
                        "1; no cap with --fsync or on FUSE, NFS, SMB, Ceph, Lustre and "
                        "other network file systems; 0: leave the thread's limits)")
    p.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    return p


def _io_workers(text: str) -> int:
    if text == "auto":
        return -1
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or auto: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _version() -> str:
    from .. import __version__

    return __version__


def options_from(ns: argparse.Namespace) -> Options:
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
    return opts


class _Progress:
    """One overwritten line on a terminal: files, bytes, rate, ETA."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.t0 = time.monotonic()
        self.shown = False

    def __call__(self, st: CopyStats) -> None:
        dt = max(time.monotonic() - self.t0, 1e-6)
        rate = st.bytes_transferred / dt
        left = max(st.bytes_total - st.bytes_transferred, 0)
        eta = f"{left / rate:5.0f}s" if rate > 0 and left else "   --"
        line = (f"{st.files:>9,} files  {st.bytes_transferred / 1e6:>10,.1f} MB  "
                f"{rate / 1e6:>8,.1f} MB/s  ETA {eta}")
        self.stream.write("\r" + line)
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def _more_fds() -> None:
    """-H keeps an fd of each hard-link group's first copy until the group's last
    name is seen -- with names outside the tree (snapshots), to the end of the
    copy.  Raise the soft RLIMIT_NOFILE to the hard limit, as a process that
    needs many fds should (this one never uses select()).  CLI only: a library
    must not change its caller's limits."""
    import resource

    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = hard if hard != resource.RLIM_INFINITY else 1 << 20
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (OSError, ValueError):
        pass  # (the old limit stays; fd_budget works within it)


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 20
    except BrokenPipeError:
        return 1
    except Exception as exc:  # never a traceback for users; PYURING_DEBUG=1 shows it
        if os.environ.get("PYURING_DEBUG"):
            raise
        sys.stderr.write(f"{PROG}: internal error: {type(exc).__name__}: {exc} "
                         f"(set PYURING_DEBUG=1 for details)\n")
        return 1


def _main(argv: Optional[Sequence[str]]) -> int:
    for stream in (sys.stdout, sys.stderr):
        # names are escaped (text.show), but a terminal may still not take
        # every character: never die on output
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    parser = build_parser()
    ns = parser.parse_args(argv)
    paths: List[str] = ns.paths
    if len(paths) < 2:
        parser.error("need at least one SRC and a DST" if paths else "missing SRC and DST")
    opts = options_from(ns)
    # json only when asked for (start-up time), and before the copy starts (no
    # imports -- no stat() of module files -- in the middle of a copy)
    json_module: Any = __import__("json") if ns.json else None
    problem = opts.validate()
    if problem:
        parser.error(problem)

    def report(msg: str) -> None:
        sys.stderr.write(f"{PROG}: {msg}\n")

    def itemize(line: str) -> None:
        sys.stdout.write(line + "\n")

    if opts.hard_links:
        _more_fds()
    copier = Copier(opts, report, itemize if opts.verbose and not opts.quiet else None)
    progress = _Progress(sys.stderr) if opts.progress and sys.stderr.isatty() else None
    if progress is not None:
        copier.on_progress = progress

    def on_signal(signum: int, frame: Any) -> None:
        copier.interrupt()

    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            old[sig] = signal.signal(sig, on_signal)
        except (ValueError, OSError):
            pass
    try:
        stats = copier.run([os.fsencode(p) for p in paths[:-1]], os.fsencode(paths[-1]))
    except CopyError as exc:
        report(str(exc))
        return exc.exit_code
    except UringUnavailable as exc:
        report(f"--backend uring: io_uring is not available here: {exc.strerror or exc} "
               f"(use --backend auto or sync)")
        return 1
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if progress is not None:
            progress.done()
    if stats.interrupted:
        report("interrupted: stopped cleanly, no partial file left (exit 20)")
    if opts.verbose and stats.backend_note and not opts.quiet:
        report(f"{stats.backend_note}; used the synchronous backend")
    if opts.verbose and not opts.quiet:
        sys.stdout.write(f"sent {stats.bytes_transferred:,} bytes in {stats.transferred:,} "
                         f"files; backend {stats.backend}\n")
    if ns.stats:
        sys.stdout.write(stats.summary() + "\n")
    if ns.json:
        sys.stdout.write(json_module.dumps(stats.as_dict(), sort_keys=True) + "\n")
    return stats.exit_code
