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
