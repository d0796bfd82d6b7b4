"""The argparse parser of the command line: ``--help``, ``--version``, and every
command line that :func:`.args.parse_common` leaves to it (with argparse's
error messages).  Imported only then: argparse is a tenth of the start-up."""

from __future__ import annotations

import argparse
import os
import sys

from .args import OPTIONS, PROG, io_workers_value, usage_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, NoReturn

DESCRIPTION = """\
Copy files and directory trees like rsync -a / cp -a, on io_uring.

SRC/ (trailing slash) copies the contents of SRC into DST; SRC without the
slash copies SRC itself into DST (as DST/SRC).  A single file may be copied to
a new file name.  DST is created if missing.  Options may come before, between
or after the paths; after -- every argument is a path.

Every file is written under a temporary identity and appears under its final
name only when complete.  Below SRC and DST nothing is opened by path: symlinks
and renames raced in by someone else cannot redirect the copy outside them.
Where io_uring is not available (old kernel, seccomp, io_uring_disabled) the
same copy runs on plain system calls with identical results."""

EPILOG = """\
exit status (as rsync):
  0   success
  1   syntax or usage error
  3   DST cannot take the sources (a file where a directory is needed, a
      missing directory for a single file)
  11  error in file I/O: data could not be written, or the destination is
      full or read-only (the copy stops; a read-only mount below DST only
      fails what goes there: 23)
  13  the copy went on, but its output could not be written (-v, --stats,
      --json into a full disk, a closed pipe, a closed stdout)
  20  interrupted (SIGINT, SIGTERM, SIGHUP); no partial file is left
  22  out of memory (e.g. the buffers --small-file-max asks for)
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
    imports shutil (bz2, lzma, ...) and asks for the terminal's size each time.
    This parser finds the width once."""

    _width = 0

    def _get_formatter(self) -> argparse.HelpFormatter:
        if not self._width:
            self._width = _columns() - 2
        return argparse.RawDescriptionHelpFormatter(prog=self.prog, width=self._width)

    def error(self, message: str) -> NoReturn:
        usage_error(message)


def _io_workers(text: str) -> int:
    try:
        return io_workers_value(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = _Parser(prog=PROG, description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("paths", nargs="*", metavar="SRC... DST", help="sources, then destination")
    groups: Dict[str, Any] = {}
    for opt in OPTIONS:
        g = groups.get(opt.group)
        if g is None:
            g = groups[opt.group] = p.add_argument_group(opt.group)
        shown = opt.help or argparse.SUPPRESS
        if opt.kind == "flag":
            g.add_argument(*opt.flags, dest=opt.dest, action="store_true", help=shown)
        elif opt.kind == "count":
            g.add_argument(*opt.flags, dest=opt.dest, action="count", default=opt.default,
                           help=shown)
        elif opt.kind == "choice":
            g.add_argument(*opt.flags, dest=opt.dest, choices=opt.choices,
                           default=opt.default, help=shown)
        else:
            convert: Callable[[str], int] = (
                _io_workers if opt.convert is io_workers_value else opt.convert or int)
            g.add_argument(*opt.flags, dest=opt.dest, type=convert, default=opt.default,
                           metavar=opt.metavar, help=shown)
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return p


_SHORT = {flag[1] for opt in OPTIONS for flag in opt.flags
          if flag[1] != "-" and opt.kind in ("flag", "count")} | {"h"}
#: short options that take a value, attached (-@1, -a@-1) or as the next argument
_SHORT_VALUE = {flag[1] for opt in OPTIONS for flag in opt.flags
                if flag[1] != "-" and opt.kind not in ("flag", "count")}
_SHORT_ANY = _SHORT | _SHORT_VALUE


def _bad_cluster(arg: str) -> bool:
    """A cluster of short options with something else in it (-ax), where the
    value of one that takes a value (-@-1) is not something else."""
    if arg[:1] != "-" or arg[1:2] not in _SHORT_ANY:
        return False
    for ch in arg[1:]:
        if ch in _SHORT_VALUE:
            return False
        if ch not in _SHORT:
            return True
    return False


def parse(argv: List[str]) -> argparse.Namespace:
    """The whole command line by argparse; options may follow paths (rsync),
    and every argument after the first ``--`` is a path (parse_intermixed_args
    would drop the ``--`` and read what follows as options again)."""
    rest: List[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, rest = argv[:cut], argv[cut + 1:]
    for arg in argv:
        # Refused here, the same on every Python: a cluster of short options
        # with something else in it (3.13.0's argparse turns the tail of "-a b"
        # into a path "- b", and shows help for "-hx"; 3.9's raises IndexError
        # on "-a="), and "--" as an option's value (3.9-3.12 store [] for
        # "--queue-depth=--")
        if _bad_cluster(arg) \
                or (arg[:2] == "--" and arg.endswith("=--")):
            usage_error(f"unrecognized arguments: {arg}")
    ns = build_parser().parse_intermixed_args(argv)
    ns.paths.extend(rest)
    return ns
