"""Archive copy with rsync's semantics on io_uring: ``python -m pyuring.copy SRC DST -a``.

Python API::

    from pyuring.copy import copytree, Options
    stats = copytree("src", "dst")                 # like rsync -a src/ dst
    stats = copytree("src", "dst", hard_links=True, xattrs=True, acls=True)
    print(stats.summary(), stats.exit_code)
"""

from __future__ import annotations

from .. import _lazy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List

    from .api import Copier, CopyError, copytree
    from .options import Options
    from .stats import CopyStats

#: imported on first use (PEP 562), as in the parent package: ``python -m
#: pyuring.copy`` runs this file before __main__, and the engine's imports
#: belong under the command line's Ctrl-C handling there
_LAZY = {"Copier": "api", "CopyError": "api", "copytree": "api", "Options": "options",
         "CopyStats": "stats"}


def __getattr__(name: str) -> Any:
    return _lazy(__name__, _LAZY, globals(), name)


def __dir__() -> List[str]:
    return sorted({*globals(), *_LAZY})

__all__ = ["Copier", "CopyError", "CopyStats", "Options", "copytree"]
