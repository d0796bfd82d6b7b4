"""``python -m pyuring.copy SRC... DST -a`` (and the ``pyuring-copy`` script)."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn


def run() -> NoReturn:
    """Run the command line, then leave without the interpreter's teardown.

    After a copy there is nothing left that the kernel does not clean up at
    exit (every fd, the ring, its direct descriptors), while the teardown --
    freeing module dicts, the engine's objects -- costs ~10 ms after a copy of
    5,000 files: a quarter of the interpreter's own start-up.  Only buffered
    output needs flushing first.
    """
    # Until the command line sets its own handlers, SIGTERM and SIGHUP end
    # the start as Ctrl-C does: exit 20 with a line, as they do later
    try:
        sigs: Any = __import__("_signal")  # (as in api.py: not the enum-making module)
    except ImportError:  # pragma: no cover - not CPython
        import signal as sigs
    for sig in (sigs.SIGTERM, sigs.SIGHUP):
        if sigs.getsignal(sig) == sigs.SIG_DFL:
            sigs.signal(sig, sigs.default_int_handler)
    try:
        from .cli import EXIT_OUTPUT, main
    except (KeyboardInterrupt, MemoryError) as exc:  # (nothing begun, nothing to undo)
        stop = isinstance(exc, KeyboardInterrupt)
        try:
            os.write(2, b"pyuring-copy: interrupted\n" if stop else
                     b"pyuring-copy: out of memory while starting\n")
        except OSError:
            pass
        os._exit(20 if stop else 22)
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe: the output is lost either way
            code = code or EXIT_OUTPUT
    os._exit(code)


if __name__ == "__main__":
    run()
