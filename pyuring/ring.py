"""``Ring``: the public io_uring object.

``Ring`` is assembled from three parts so that each stays readable:
``_core.RingCore`` (setup, queues, submit/wait/reap), ``ops.Ops`` (a
``prep_*`` method per opcode) and ``register.Registrations``
(io_uring_register(2)).
"""

from __future__ import annotations

from ._core import FAST_FLAGS, Completion, RingStats
from .ops import Ops
from .probe import Probe, probe_ring_fd
from .register import BufferRing, Registrations

__all__ = ["FAST_FLAGS", "BufferRing", "Completion", "Ring", "RingStats"]


class Ring(Ops, Registrations):
    """An io_uring instance.

    One thread at a time: a Ring is not locked.  The ``prep_*`` calls write
    the shared SQ ring in place, and two threads preparing at once lose or
    duplicate requests; nothing detects that (the kernel refuses another
    thread only in io_uring_enter, and only for SINGLE_ISSUER rings, which
    ``fast=True`` asks for).  Use one Ring per thread, or a lock around it
    -- and ``close()`` may come from any thread.

    >>> with Ring(64) as ring:
    ...     ring.prep_nop(user_data=7)
    ...     ring.submit_and_wait(1)
    ...     ring.wait_cqe().user_data
    1
    7
    """

    def __enter__(self) -> Ring:
        return self

    def probe(self) -> Probe:
        """Opcodes supported by the kernel, probed through this ring."""
        return probe_ring_fd(self.fd)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self.fd}"
        return (f"<Ring {state} sq={getattr(self, 'sq_entries', 0)} "
                f"cq={getattr(self, 'cq_entries', 0)} flags={getattr(self, 'flags', 0):#x}>")
