"""pyuring: io_uring for Python in pure Python (ctypes + mmap, no compiled code).

Layers, each usable on its own:

* :class:`Ring` -- the kernel's io_uring: every opcode as ``prep_*``, submit,
  wait, completions, registration, probing.
* :class:`DirectoryFd` -- TOCTOU-safe directory handles: every operation is
  relative to an open directory fd and a single name component.
* :mod:`pyuring.copy` -- an archive copy engine and the
  ``python -m pyuring.copy SRC DST -a`` command line.

Importing this package never fails on a platform without io_uring; using a
Ring there raises :class:`UringUnavailable`.
"""

from __future__ import annotations

import sys as _sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List

    from ._core import Completion, RingStats
    from ._mem import Buffer
    from .dirfd import DirectoryFd, DirEntry, InvalidName
    from .errors import OpcodeUnsupported, RingForkedError, UringError, UringUnavailable
    from .metadata import Metadata
    from .probe import Probe, probe
    from .ring import BufferRing, Ring

#: where each public name lives.  They are imported on first use (PEP 562):
#: ``python -m pyuring.copy`` loads this package before the command line's
#: own code runs, and a Ctrl-C during imports made here would end it with
#: Python's traceback; the copy imports what it needs under its own handler.
#: A copy also never needs Ring's prep_* method of every opcode (ops.py).
_LAZY = {
    "Completion": "_core", "RingStats": "_core", "Buffer": "_mem",
    "DirectoryFd": "dirfd", "DirEntry": "dirfd", "InvalidName": "dirfd",
    "OpcodeUnsupported": "errors", "RingForkedError": "errors", "UringError": "errors",
    "UringUnavailable": "errors", "Metadata": "metadata", "Probe": "probe",
    "probe": "probe", "BufferRing": "ring", "Ring": "ring",
}


def _lazy(package: str, table: Dict[str, str], namespace: Dict[str, Any], name: str) -> Any:
    """A package's module ``__getattr__``: ``name`` from the submodule ``table``
    says, kept in the package's ``namespace`` (later lookups do not come here)."""
    where = table.get(name)
    if where is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(__import__(f"{package}.{where}", fromlist=[name]), name)
    namespace[name] = value
    return value


def __getattr__(name: str) -> Any:
    return _lazy(__name__, _LAZY, globals(), name)


def __dir__() -> List[str]:
    return sorted({*globals(), *_LAZY})  # (help() and completion ask dir())


class _Package(type(_sys)):  # type: ignore[misc]
    """The first import of the submodule ``pyuring.probe`` sets this package's
    attribute ``probe`` to that module; the name is the function's."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name != "probe" or not isinstance(value, type(_sys)):
            super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


__version__ = "0.1.0"

__all__ = [
    "Buffer",
    "BufferRing",
    "Completion",
    "DirEntry",
    "DirectoryFd",
    "InvalidName",
    "Metadata",
    "OpcodeUnsupported",
    "Probe",
    "Ring",
    "RingForkedError",
    "RingStats",
    "UringError",
    "UringUnavailable",
    "__version__",
    "probe",
]
