"""What the running kernel's io_uring supports (IORING_REGISTER_PROBE)."""

from __future__ import annotations

import _thread
import errno

from . import _abi as A
from . import _syscall
from .errors import OpcodeUnsupported, UringError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import FrozenSet, Iterable, Optional, Union

_lock = _thread.allocate_lock()  # (threading would cost start-up)
_cached: Optional[Probe] = None


class Probe(frozenset[int]):  # (PEP 585: no typing at run time)
    """The set of supported opcode numbers; also answers ``"OPENAT2" in probe()``."""

    last_op: int

    def __new__(cls, ops: Iterable[int], last_op: int = -1) -> Probe:
        self = super().__new__(cls, ops)
        self.last_op = last_op
        return self

    def __contains__(self, op: object) -> bool:
        if isinstance(op, str):
            name = op.upper()
            name = name[len("IORING_OP_"):] if name.startswith("IORING_OP_") else name
            num = next((k for k, v in A.OP_NAMES.items() if v == name), None)
            return num is not None and super().__contains__(num)
        return super().__contains__(op)

    def supports(self, op: Union[int, str]) -> bool:
        """``op in probe`` for type checkers: an opcode number or name
        ("OPENAT2", "IORING_OP_OPENAT2", case-insensitive)."""
        return self.__contains__(op)

    @property
    def names(self) -> FrozenSet[str]:
        return frozenset(A.OP_NAMES.get(op, f"OP_{op}") for op in self)

    def require(self, op: Union[int, str]) -> None:
        """Raise OpcodeUnsupported unless ``op`` is supported."""
        if op not in self:
            name = op if isinstance(op, str) else A.OP_NAMES.get(op, str(op))
            raise OpcodeUnsupported(errno.EOPNOTSUPP,
                                    f"io_uring opcode {name} is not supported by this kernel")


def probe_ring_fd(fd: int) -> Probe:
    """Probe through an existing ring fd."""
    n = 256
    size = A.PROBE.size + n * A.PROBE_OP.size
    ctypes = _syscall.ctypes
    buf = ctypes.create_string_buffer(size)
    try:
        _syscall.io_uring_register(fd, A.IORING_REGISTER_PROBE, ctypes.addressof(buf), n)
    except OSError as exc:
        raise UringError(exc.errno or 0, f"IORING_REGISTER_PROBE: {exc.strerror}") from None
    raw = buf.raw
    last_op, ops_len = A.PROBE.unpack_from(raw)[:2]
    ops = []
    for i in range(ops_len):
        op, _resv, flags, _resv2 = A.PROBE_OP.unpack_from(raw, A.PROBE.size + i * A.PROBE_OP.size)
        if flags & A.IO_URING_OP_SUPPORTED:
            ops.append(op)
    return Probe(ops, last_op)


def probe(*, refresh: bool = False) -> Probe:
    """Supported opcodes of the running kernel (cached after the first call).

    Raises ``UringUnavailable`` where io_uring cannot be set up at all.
    """
    global _cached
    with _lock:
        if _cached is None or refresh:
            from .ring import Ring

            with Ring(2, fast=False) as ring:
                _cached = probe_ring_fd(ring.fd)
        return _cached
