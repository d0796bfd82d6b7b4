"""The command line's options, declared once, and a parser for the usual case.

argparse costs every copy ~5 ms of start-up (its import, gettext's catalogue
lookups with their stat() calls, ~45 add_argument calls, its regexes) -- a
tenth of the interpreter's own start.  Most command lines are a few known
flags and paths, so :func:`parse_common` reads those from the table below and
gives up (returns None) on anything else: ``--help``, ``--version``,
abbreviated long options, unknown or malformed options, values that look like
options.  argparse then parses the whole line (:mod:`.helpparser`), with its
messages and exit status.  tests/test_copy_args.py checks on generated command
lines that both parsers agree wherever the quick one answers.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, NoReturn, Optional, Sequence, Tuple

PROG = "pyuring-copy"


def usage_error(message: str) -> NoReturn:
    """Exit status 1 with the message, as argparse's errors (and rsync's)."""
    try:
        sys.stderr.write(f"{PROG}: {message}\n{PROG}: try '{PROG} --help'\n")
    except (AttributeError, OSError, ValueError):
        pass  # (no stderr, or a broken one: the exit status still says it)
    raise SystemExit(1)


def number(text: str) -> int:
    """A decimal count as rsync reads one: ASCII digits, an optional minus.
    (int() would also take "1_000", " 7" and digits of other scripts.)"""
    body = text[1:] if text[:1] == "-" else text
    if not (body.isascii() and body.isdigit()):
        raise ValueError(f"not a number: {text!r}")
    return int(text)


def io_workers_value(text: str) -> int:
    """``--io-workers N|auto``; ValueError with argparse's message otherwise."""
    if text == "auto":
        return -1
    try:
        value = number(text)
    except ValueError:
        raise ValueError(f"not a number or auto: {text!r}") from None
    if value < 0:
        raise ValueError(f"must not be negative: {text!r}")
    return value


class Opt:
    """One option: its spellings, where it goes, and how argparse shows it."""

    __slots__ = ("choices", "convert", "default", "dest", "flags", "group", "help", "kind",
                 "metavar")

    def __init__(self, flags: Tuple[str, ...], dest: str, kind: str, group: str, help: str,
                 default: object = False, choices: Tuple[str, ...] = (),
                 convert: Optional[Callable[[str], int]] = None, metavar: str = "") -> None:
        self.flags = flags
        self.dest = dest
        self.kind = kind  # "flag" (store_true), "count", "choice", "value"
        self.default = default
        self.help = help  # "" hides the option from --help
        self.group = group
        self.choices = choices
        self.convert = convert
        self.metavar = metavar


KEEP = "what to keep (-a is -rlptgoD)"
BEHAVIOUR = "behaviour"
OUTPUT = "output"
ENGINE = "engine"

_NEGATABLE = ("recursive", "links", "perms", "times", "group", "owner", "devices",
              "specials", "hard-links", "xattrs", "acls")

OPTIONS: Tuple[Opt, ...] = (
    Opt(("-a", "--archive"), "archive", "flag", KEEP, "archive mode: -rlptgoD"),
    Opt(("-r", "--recursive"), "recursive", "flag", KEEP, "recurse into directories"),
    Opt(("-l", "--links"), "links", "flag", KEEP, "copy symlinks as symlinks"),
    Opt(("-p", "--perms"), "perms", "flag", KEEP,
        "keep permissions (incl. setuid, setgid, sticky)"),
    Opt(("-t", "--times"), "times", "flag", KEEP,
        "keep modification and access times (nanoseconds)"),
    Opt(("-g", "--group"), "group", "flag", KEEP, "keep group"),
    Opt(("-o", "--owner"), "owner", "flag", KEEP, "keep owner (as root)"),
    Opt(("-D",), "dev_spec", "flag", KEEP, "same as --devices --specials"),
    Opt(("--devices",), "devices", "flag", KEEP,
        "keep device files (root only: others skip them, as rsync)"),
    Opt(("--specials",), "specials", "flag", KEEP, "keep FIFOs and sockets"),
    Opt(("-H", "--hard-links"), "hard_links", "flag", KEEP, "keep hard links"),
    Opt(("-X", "--xattrs"), "xattrs", "flag", KEEP, "keep extended attributes"),
    Opt(("-A", "--acls"), "acls", "flag", KEEP, "keep POSIX ACLs (implies -p)"),
    Opt(("--numeric-ids",), "numeric_ids", "flag", KEEP,
        "owners by number (always so for a local copy)"),
    *(Opt((f"--no-{name}",), f"no_{name.replace('-', '_')}", "flag", KEEP, "")
      for name in _NEGATABLE),
    Opt(("-n", "--dry-run"), "dry_run", "flag", BEHAVIOUR, "show what would be done"),
    Opt(("-I", "--ignore-times"), "ignore_times", "flag", BEHAVIOUR,
        "copy every file, not only those whose size or mtime differ"),
    Opt(("-@", "--modify-window"), "modify_window", "value", BEHAVIOUR,
        "mtimes at most NUM seconds apart are the same (1 for FAT); default -1: the same "
        "nanosecond, or the source's time cut to the destination file system's precision",
        default=-1, convert=number, metavar="NUM"),
    Opt(("--fsync",), "fsync", "flag", BEHAVIOUR, "fsync each file before publishing it"),
    Opt(("-v", "--verbose"), "verbose", "count", OUTPUT,
        "one itemized line per change (rsync -i style)", default=0),
    Opt(("-q", "--quiet"), "quiet", "flag", OUTPUT, "no messages but errors"),
    Opt(("--progress",), "progress", "flag", OUTPUT,
        "live progress line on a terminal (files, bytes, rate, ETA)"),
    Opt(("--stats",), "stats", "flag", OUTPUT,
        "print a summary with io_uring figures at the end"),
    Opt(("--json",), "json", "flag", OUTPUT,
        "print the statistics as JSON on stdout, alone (-v, --stats lines go to "
        "stderr; with \"error\" when the copy cannot start)"),
    Opt(("--backend",), "backend", "choice", ENGINE,
        "io_uring, plain syscalls, or io_uring when available (default)",
        default="auto", choices=("auto", "uring", "sync")),
    Opt(("--queue-depth",), "queue_depth", "value", ENGINE,
        "io_uring submission queue entries (default 256)", default=256, convert=number,
        metavar="N"),
    Opt(("--max-files-in-flight",), "max_files_in_flight", "value", ENGINE,
        "entries being copied at once (default 128)", default=128, convert=number, metavar="N"),
    Opt(("--data-path",), "data_path", "choice", ENGINE,
        "how files above --small-file-max are copied (default auto: copy_file_range, "
        "the fastest measured; ring: READ -> WRITE chains; sparse files always extent by "
        "extent)",
        default="auto", choices=("auto", "ring", "copy_file_range")),
    Opt(("--small-file-max",), "small_file_max", "value", ENGINE,
        "files up to this size are read and written in one operation each "
        "(default 131072, at most 64 MiB)",
        default=128 * 1024, convert=number, metavar="BYTES"),
    Opt(("--copy-threads",), "copy_threads", "value", ENGINE,
        "threads copying the data of larger files (copy_file_range) while the ring goes "
        "on with the rest (default 4; 0: in turn)", default=4, convert=number, metavar="N"),
    Opt(("--io-workers",), "io_workers", "value", ENGINE,
        "at most N kernel io-wq threads of each kind run the ring's blocking operations "
        "(default auto: one less than the usable CPUs, at least 1, and one more once "
        "the ring's thread keeps waiting on them; no cap with --fsync "
        "or on FUSE, NFS, SMB, Ceph, Lustre and other network file systems; 0: leave "
        "the thread's limits)", default=-1, convert=io_workers_value, metavar="N|auto"),
)

_BY_FLAG: Dict[str, Opt] = {flag: opt for opt in OPTIONS for flag in opt.flags}


def defaults() -> Dict[str, Any]:
    return {opt.dest: opt.default for opt in OPTIONS}


def parse_common(argv: Sequence[str]) -> Optional[SimpleNamespace]:
    """The options and paths of an ordinary command line (options may come
    before, between or after the paths, as with rsync), or None where argparse
    must decide -- including every line it would reject."""
    values = defaults()
    paths: List[str] = []
    args = iter(argv)
    for arg in args:
        if arg[:1] != "-" or arg == "-":
            paths.append(arg)
            continue
        if arg == "--":  # every argument after it is a path
            paths.extend(args)
            break
        if arg[:2] == "--":
            name, eq, value = arg.partition("=")
            opt = _BY_FLAG.get(name)
            if opt is None:
                return None
            if opt.kind in ("flag", "count"):
                if eq:
                    return None
                _set(values, opt)
                continue
            if not eq:
                value = next(args, "-")
                if value[:1] == "-":
                    return None
            if opt.kind == "choice":
                if value not in opt.choices:
                    return None
                values[opt.dest] = value
            else:
                assert opt.convert is not None
                try:
                    values[opt.dest] = opt.convert(value)
                except ValueError:
                    return None
            continue
        for ch in arg[1:]:
            opt = _BY_FLAG.get("-" + ch)
            if opt is None or opt.kind not in ("flag", "count"):
                return None
            _set(values, opt)
    values["paths"] = paths
    return SimpleNamespace(**values)


def _set(values: Dict[str, Any], opt: Opt) -> None:
    if opt.kind == "count":
        values[opt.dest] += 1
    else:
        values[opt.dest] = True
