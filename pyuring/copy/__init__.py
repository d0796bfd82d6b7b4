"""Archive copy with rsync's semantics on io_uring: ``python -m pyuring.copy SRC DST -a``.

Python API::

    from pyuring.copy import copytree, Options
    stats = copytree("src", "dst")                 # like rsync -a src/ dst
    stats = copytree("src", "dst", hard_links=True, xattrs=True, acls=True)
    print(stats.summary(), stats.exit_code)
"""

from __future__ import annotations

from .api import Copier, CopyError, copytree
from .options import Options
from .stats import CopyStats

__all__ = ["Copier", "CopyError", "CopyStats", "Options", "copytree"]
