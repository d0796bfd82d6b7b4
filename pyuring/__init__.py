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

from ._core import Completion, RingStats
from ._mem import Buffer
from .dirfd import DirectoryFd, DirEntry, InvalidName
from .errors import OpcodeUnsupported, RingForkedError, UringError, UringUnavailable
from .metadata import Metadata
from .probe import Probe, probe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List

    from .ring import BufferRing, Ring


def __getattr__(name: str) -> Any:
    # Ring and BufferRing are imported on first use (PEP 562): a copy writes its
    # SQEs itself and never needs Ring's prep_* method of every opcode (ops.py,
    # ~0.6 ms of each ``python -m pyuring.copy``, which loads this package).
    if name in ("Ring", "BufferRing"):
        from . import ring

        return getattr(ring, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> List[str]:
    return sorted([*globals(), "BufferRing", "Ring"])  # (help() and completion ask dir())


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
