from __future__ import annotations

import os

from pyuring import Ring

from .conftest import requires_uring


@requires_uring
def test_nop_roundtrip_and_counters() -> None:
    with Ring(8) as ring:
        for i in range(20):  # more than the SQ holds: the ring must submit by itself
            ring.prep_nop(user_data=i + 1)
        got: list[int] = []
        while len(got) < 20:
            got.extend(c.user_data for c in ring.wait_cqes(1))
        assert sorted(got) == list(range(1, 21))
        st = ring.stats
        assert st.sqes_by_op == {"NOP": 20}
        assert st.completions == 20


@requires_uring
def test_read_matches_os(tmp_path: os.PathLike[str]) -> None:
    p = os.path.join(str(tmp_path), "f")
    data = os.urandom(10000)
    with open(p, "wb") as f:
        f.write(data)
    fd = os.open(p, os.O_RDONLY)
    try:
        with Ring(8) as ring:
            buf = bytearray(4096)
            ring.prep_read(fd, buf, 4096, 5000, user_data=3)
            cqe = ring.wait_cqe()
            assert cqe.check() == 4096
            assert bytes(buf) == os.pread(fd, 4096, 5000)
    finally:
        os.close(fd)


@requires_uring
def test_get_user_data_hands_out_distinct_tokens_never_0_or_reserved() -> None:
    with Ring(8) as ring:
        tokens = [ring.get_user_data() for _ in range(1000)]
        assert len(set(tokens)) == 1000
        assert 0 not in tokens and 2**64 - 1 not in tokens
        ring._next_user_data = 2**64 - 2  # the last token before the reserved value
        assert ring.get_user_data() == 2**64 - 2
        assert ring.get_user_data() == 1  # wraps, skipping 2**64-1 and 0


def test_the_package_lists_every_public_name() -> None:
    """Ring and BufferRing are imported on first use (start-up of a copy), yet
    they are in dir() (help(), completion), __all__ and ``import *``."""
    import subprocess
    import sys

    code = ("import pyuring, pydoc, sys\n"
            "assert 'pyuring.ops' not in sys.modules\n"
            "assert {'Ring', 'BufferRing'} <= set(dir(pyuring))\n"
            "text = pydoc.plain(pydoc.render_doc(pyuring))\n"
            "assert 'class Ring(' in text and 'class BufferRing' in text, text[:2000]\n"
            "ns = {}\n"
            "exec('from pyuring import *', ns)\n"
            "assert set(pyuring.__all__) <= set(ns)\n"
            "assert ns['Ring'] is pyuring.ring.Ring\n"
            "print('ok')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr
