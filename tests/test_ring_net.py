"""Ring conformance: networking opcodes on socketpairs and loopback TCP/UDP,
each compared with what the socket module does or sees.

liburing tests whose behaviour is ported here: socket, bind-listen, accept,
accept-multishot, connect, send-recv, sendmsg/recvmsg, send-zerocopy,
shutdown, poll, poll-mshot-update, poll-cancel, epoll, socket-rw,
uring_cmd socket ops.
"""

from __future__ import annotations

import array
import errno
import fcntl
import os
import select
import socket
import struct
import termios
from typing import Iterator, List, Tuple

import pytest

from pyuring import Ring
from pyuring import _abi as A
from pyuring.ops import EPOLL_EVENT

from .conftest import URING
from .test_ring_support import (
    by_ud,
    need,
    nothing_more,
    one,
    os_errno,
    parse_sockaddr_in,
    ring_fixture,
    run,
    sockaddr_in,
)

pytestmark = pytest.mark.skipif(not URING, reason="io_uring is unavailable here")
ring = ring_fixture()

POLLIN, POLLOUT, POLLHUP = select.POLLIN, select.POLLOUT, select.POLLHUP
# enum io_uring_socket_op (not in the installed header; values from upstream)
SOCKET_URING_OP_SIOCINQ = 0
SOCKET_URING_OP_SIOCOUTQ = 1
SOCKET_URING_OP_GETSOCKOPT = 2
SOCKET_URING_OP_SETSOCKOPT = 3


@pytest.fixture
def pair() -> Iterator[Tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def tcp(listener: socket.socket) -> Iterator[Tuple[socket.socket, socket.socket]]:
    """A connected loopback TCP pair (client, server side)."""
    c = socket.create_connection(listener.getsockname())
    s, _ = listener.accept()
    try:
        yield c, s
    finally:
        c.close()
        s.close()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        assert chunk
        out += chunk
    return out


# ---------------------------------------------------------------------------
# socket, bind, listen, accept, connect
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(("family", "stype"), [
    (socket.AF_INET, socket.SOCK_STREAM),
    (socket.AF_INET6, socket.SOCK_DGRAM),
    (socket.AF_UNIX, socket.SOCK_SEQPACKET),
])
def test_socket(ring: Ring, family: int, stype: int) -> None:
    ring.prep_socket(family, stype | socket.SOCK_CLOEXEC, 0)
    fd = one(ring).check()
    mine = socket.socket(fileno=fd)
    theirs = socket.socket(family, stype)
    try:
        def proto(sk: socket.socket) -> int:
            return sk.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)

        assert (mine.family, mine.type, proto(mine)) == \
            (theirs.family, theirs.type, proto(theirs))
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    finally:
        mine.close()
        theirs.close()
    ring.prep_socket(12345, socket.SOCK_STREAM, 0)
    res = one(ring).res
    assert res == -os_errno(lambda: socket.socket(12345, socket.SOCK_STREAM))
    assert res == -errno.EAFNOSUPPORT


def test_bind_listen_accept(ring: Ring) -> None:
    need("LISTEN")
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        ring.prep_bind(srv.fileno(), sockaddr_in("127.0.0.1", 0), user_data=1,
                       flags=A.IOSQE_IO_LINK)
        ring.prep_listen(srv.fileno(), 8, user_data=2)
        got = by_ud(run(ring, 2))
        assert got[1].res == 0 and got[2].res == 0
        host, port = srv.getsockname()
        assert host == "127.0.0.1" and port != 0
        # a second bind of the same port fails like socket.bind
        other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            ring.prep_bind(other.fileno(), sockaddr_in("127.0.0.1", port))
            res = one(ring).res
            assert res == -os_errno(lambda: other.bind(("127.0.0.1", port)))
            assert res == -errno.EADDRINUSE
        finally:
            other.close()
        client = socket.create_connection((host, port))
        try:
            addr = bytearray(16)
            addrlen = bytearray(struct.pack("=I", 16))
            ring.prep_accept(srv.fileno(), addr, addrlen, socket.SOCK_CLOEXEC)
            fd = one(ring).check()
            conn = socket.socket(fileno=fd)
            try:
                assert struct.unpack("=I", addrlen)[0] == 16
                assert parse_sockaddr_in(bytes(addr)) == client.getsockname()
                assert conn.getpeername() == client.getsockname()
                assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
                client.sendall(b"hi")
                assert conn.recv(10) == b"hi"
            finally:
                conn.close()
        finally:
            client.close()
    finally:
        srv.close()


def test_accept_errors_and_buffer_checks(ring: Ring) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        ring.prep_accept(s.fileno())  # not listening
        assert one(ring).res == -os_errno(s.accept) == -errno.EINVAL
        with pytest.raises(ValueError):  # *addrlen larger than addr
            ring.prep_accept(s.fileno(), bytearray(8), bytearray(struct.pack("=I", 16)))
        with pytest.raises(ValueError):
            ring.prep_accept(s.fileno(), bytearray(16), bytearray(2))
        assert ring.pending() == 0
    finally:
        s.close()


def test_accept_waits_for_a_connection(ring: Ring, listener: socket.socket) -> None:
    ring.prep_accept(listener.fileno(), user_data=4)
    ring.submit()
    nothing_more(ring)
    client = socket.create_connection(listener.getsockname())
    try:
        cqe = one(ring)
        assert cqe.user_data == 4 and cqe.res >= 0
        conn = socket.socket(fileno=cqe.res)
        assert conn.getpeername() == client.getsockname()
        conn.close()
    finally:
        client.close()


def test_multishot_accept(ring: Ring, listener: socket.socket) -> None:
    ring.prep_multishot_accept(listener.fileno(), user_data=7)
    ring.submit()
    clients = [socket.create_connection(listener.getsockname()) for _ in range(3)]
    try:
        cqes = run(ring, 3)
        assert all(c.user_data == 7 and c.res >= 0 and c.more for c in cqes)
        peers = []
        for c in cqes:
            conn = socket.socket(fileno=c.res)
            peers.append(conn.getpeername())
            conn.close()
        assert sorted(peers) == sorted(cl.getsockname() for cl in clients)
        assert ring.inflight() == 1
        ring.prep_cancel(7, user_data=8)
        got = by_ud(run(ring, 2))
        assert got[8].res == 0 and got[7].res == -errno.ECANCELED and not got[7].more
        assert ring.inflight() == 0
    finally:
        for cl in clients:
            cl.close()


def test_accept_direct(ring: Ring, listener: socket.socket) -> None:
    ring.register_files_sparse(4)
    clients = [socket.create_connection(listener.getsockname()) for _ in range(2)]
    try:
        ring.prep_accept_direct(listener.fileno(), None, None, 0, 3, user_data=1)
        assert one(ring).res == 0
        ring.prep_accept(listener.fileno(), multishot=True,
                         file_index=A.IORING_FILE_INDEX_ALLOC, user_data=2)
        c = one(ring)
        assert c.res == 0 and c.more  # the allocated slot: the first free one
        for slot, cl in ((3, clients[0]), (0, clients[1])):
            cl.sendall(b"via slot %d" % slot)
            buf = bytearray(32)
            ring.prep_recv(slot, buf, flags=A.IOSQE_FIXED_FILE, user_data=10 + slot)
            cqe = one(ring)
            assert bytes(buf[:cqe.res]) == b"via slot %d" % slot
        ring.prep_cancel(2)
        run(ring, 2)
    finally:
        for cl in clients:
            cl.close()


def test_connect(ring: Ring, listener: socket.socket) -> None:
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        host, port = listener.getsockname()
        ring.prep_connect(c.fileno(), sockaddr_in(host, port))
        assert one(ring).res == 0
        conn, peer = listener.accept()
        assert peer == c.getsockname()
        conn.close()
    finally:
        c.close()
    # a closed port: ECONNREFUSED, like connect_ex
    tmp = socket.socket()
    tmp.bind(("127.0.0.1", 0))
    dead = tmp.getsockname()
    tmp.close()
    c1, c2 = socket.socket(), socket.socket()
    try:
        ring.prep_connect(c1.fileno(), sockaddr_in(*dead))
        cqe = one(ring)
        assert cqe.res == -c2.connect_ex(dead) == -errno.ECONNREFUSED
        with pytest.raises(ConnectionRefusedError):
            cqe.check()
    finally:
        c1.close()
        c2.close()


# ---------------------------------------------------------------------------
# send / recv, sendmsg / recvmsg, zero copy, shutdown
# ---------------------------------------------------------------------------

def test_send_recv(ring: Ring, pair: Tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    ring.prep_send(a.fileno(), b"ring says hi")
    assert one(ring).res == 12
    assert b.recv(100) == b"ring says hi"
    buf = bytearray(100)
    ring.prep_recv(b.fileno(), buf, user_data=1)
    ring.submit()
    nothing_more(ring)  # waits for data
    a.sendall(b"socket says hi")
    assert one(ring).res == 14 and bytes(buf[:14]) == b"socket says hi"
    # MSG_PEEK leaves the data; MSG_WAITALL waits for all of it
    a.sendall(b"peek")
    ring.prep_recv(b.fileno(), buf, socket.MSG_PEEK, nbytes=4)
    assert one(ring).res == 4
    assert b.recv(4) == b"peek"
    ring.prep_recv(b.fileno(), buf, socket.MSG_WAITALL, nbytes=6)
    ring.submit()
    a.sendall(b"abc")
    nothing_more(ring)
    a.sendall(b"def")
    assert one(ring).res == 6 and bytes(buf[:6]) == b"abcdef"
    # a closed peer: recv returns 0, send fails with EPIPE (MSG_NOSIGNAL)
    a.close()
    ring.prep_recv(b.fileno(), buf)
    assert one(ring).res == 0
    ring.prep_send(b.fileno(), b"x", socket.MSG_NOSIGNAL)
    assert one(ring).res == -os_errno(lambda: b.send(b"x", socket.MSG_NOSIGNAL)) == -errno.EPIPE


def test_sendmsg_recvmsg_vectors(ring: Ring, pair: Tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    ring.prep_sendmsg(a.fileno(), [b"one-", b"two-", memoryview(b"three")])
    assert one(ring).res == 13
    assert _recv_exact(b, 13) == b"one-two-three"
    b.sendmsg([b"alpha", b"beta"])
    bufs = [bytearray(3), bytearray(10)]
    ring.prep_recvmsg(a.fileno(), bufs)
    assert one(ring).res == 9
    assert bytes(bufs[0]) + bytes(bufs[1][:6]) == b"alphabeta"


def test_udp_sendmsg_recvmsg_with_addresses(ring: Ring) -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        tx.bind(("127.0.0.1", 0))
        ring.prep_sendmsg(tx.fileno(), [b"datagram"], name=sockaddr_in(*rx.getsockname()))
        assert one(ring).res == 8
        data, sender = rx.recvfrom(100)
        assert data == b"datagram" and sender == tx.getsockname()
        tx.sendto(b"reply", rx.getsockname())
        name = bytearray(16)
        buf = bytearray(3)
        ring.prep_recvmsg(rx.fileno(), [buf], name=name)
        assert one(ring).res == 3  # truncated to the buffer, like recvmsg(2)
        assert bytes(buf) == b"rep"
        assert parse_sockaddr_in(bytes(name)) == tx.getsockname()
    finally:
        rx.close()
        tx.close()


def test_scm_rights_through_control_messages(ring: Ring,
                                             pair: Tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    r, w = os.pipe()
    try:
        cmsg = struct.pack("=Qii", 16 + 4, socket.SOL_SOCKET, socket.SCM_RIGHTS) + \
            struct.pack("=i", r) + bytes(4)
        ring.prep_sendmsg(a.fileno(), [b"fd"], control=cmsg)
        assert one(ring).res == 2
        msg, fds, _, _ = socket.recv_fds(b, 10, 1)
        assert msg == b"fd" and len(fds) == 1
        assert os.fstat(fds[0]).st_ino == os.fstat(r).st_ino
        os.close(fds[0])
        # and back, received by the ring
        socket.send_fds(b, [b"back"], [w])
        buf, control = bytearray(10), bytearray(24)
        ring.prep_recvmsg(a.fileno(), [buf], control=control)
        assert one(ring).res == 4 and bytes(buf[:4]) == b"back"
        length, level, kind = struct.unpack_from("=Qii", control)
        assert (length, level, kind) == (20, socket.SOL_SOCKET, socket.SCM_RIGHTS)
        got_fd, = struct.unpack_from("=i", control, 16)
        try:
            assert os.fstat(got_fd).st_ino == os.fstat(w).st_ino
        finally:
            os.close(got_fd)
    finally:
        os.close(r)
        os.close(w)


def test_send_zc(ring: Ring, tcp: Tuple[socket.socket, socket.socket]) -> None:
    c, s = tcp
    payload = os.urandom(64 * 1024)
    ring.prep_send_zc(c.fileno(), payload, 0, A.IORING_SEND_ZC_REPORT_USAGE, user_data=5)
    first = one(ring)
    assert first.user_data == 5 and first.res == len(payload)
    assert first.more and not first.flags & A.IORING_CQE_F_NOTIF
    assert ring.inflight() == 1  # the buffer stays pinned until the notification
    notif = one(ring)
    assert notif.user_data == 5 and notif.flags & A.IORING_CQE_F_NOTIF and not notif.more
    # loopback cannot really send zero-copy: the usage report says it copied
    assert notif.res & A.IORING_NOTIF_USAGE_ZC_COPIED
    assert ring.inflight() == 0
    assert _recv_exact(s, len(payload)) == payload


def test_sendmsg_zc(ring: Ring, tcp: Tuple[socket.socket, socket.socket]) -> None:
    c, s = tcp
    ring.prep_sendmsg_zc(c.fileno(), [b"zero", b"-copy"], user_data=6)
    cqes = run(ring, 2)
    assert cqes[0].res == 9 and cqes[0].more
    assert cqes[1].flags & A.IORING_CQE_F_NOTIF
    assert _recv_exact(s, 9) == b"zero-copy"


def test_shutdown(ring: Ring, pair: Tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    ring.prep_shutdown(a.fileno(), socket.SHUT_WR)
    assert one(ring).res == 0
    assert b.recv(10) == b""  # EOF
    b.sendall(b"still open this way")
    assert a.recv(100) == b"still open this way"
    with open(os.devnull, "rb") as f:
        ring.prep_shutdown(f.fileno(), socket.SHUT_RDWR)
        assert one(ring).res == -errno.ENOTSOCK


# ---------------------------------------------------------------------------
# poll, epoll
# ---------------------------------------------------------------------------

def test_poll_add(ring: Ring, pair: Tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    ring.prep_poll_add(b.fileno(), POLLIN, user_data=1)
    ring.prep_poll_add(b.fileno(), POLLOUT, user_data=2)  # writable at once
    assert [(c.user_data, c.res) for c in run(ring, 1)] == [(2, POLLOUT)]
    nothing_more(ring)
    a.sendall(b"wake")
    c = one(ring)
    assert (c.user_data, c.res) == (1, POLLIN)
    p = select.poll()
    p.register(b.fileno(), POLLIN)
    assert p.poll(0) == [(b.fileno(), POLLIN)]
    a.close()
    ring.prep_poll_add(b.fileno(), POLLIN | POLLHUP)
    res = one(ring).res
    p.modify(b.fileno(), POLLIN | POLLHUP)
    (_, revents), = p.poll(0)
    assert revents == POLLIN | POLLHUP
    assert res & revents == revents


def test_poll_multishot(ring: Ring, pair: Tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    ring.prep_poll_multishot(b.fileno(), POLLIN, user_data=3)
    ring.submit()
    for _ in range(3):
        a.sendall(b"x")
        c = one(ring)
        assert (c.user_data, c.res, c.more) == (3, POLLIN, True)
        assert b.recv(10) == b"x"
    assert ring.inflight() == 1
    ring.prep_poll_remove(3, user_data=4)
    got = by_ud(run(ring, 2))
    assert got[4].res == 0 and got[3].res == -errno.ECANCELED and not got[3].more
    ring.prep_poll_remove(3, user_data=5)
    assert one(ring).res == -errno.ENOENT
    assert ring.inflight() == 0


def test_poll_update(ring: Ring, pair: Tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    ring.prep_poll_add(b.fileno(), POLLIN, user_data=1)
    ring.submit()
    ring.prep_poll_update(1, 2, POLLIN,
                          A.IORING_POLL_UPDATE_EVENTS | A.IORING_POLL_UPDATE_USER_DATA,
                          user_data=10)
    assert one(ring).res == 0
    a.sendall(b"go")
    c = one(ring)
    assert (c.user_data, c.res) == (2, POLLIN)
    assert c.op_name == "POLL_ADD"  # the ring followed the new user_data
    assert ring.inflight() == 0
    ring.prep_poll_update(1, 3, 0, A.IORING_POLL_UPDATE_USER_DATA, user_data=11)
    assert one(ring).res == -errno.ENOENT  # 1 is gone (it became 2, which completed)
    ring.prep_poll_update(1, 3, POLLIN, A.IORING_POLL_UPDATE_USER_DATA, user_data=12)
    assert one(ring).res == -errno.EINVAL  # a mask without IORING_POLL_UPDATE_EVENTS


def test_epoll_ctl_and_wait(ring: Ring, pair: Tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    ep = select.epoll()
    try:
        ring.prep_epoll_ctl(ep.fileno(), b.fileno(), select.EPOLL_CTL_ADD if hasattr(
            select, "EPOLL_CTL_ADD") else 1, select.EPOLLIN, data=b.fileno())
        assert one(ring).res == 0
        ring.prep_epoll_ctl(ep.fileno(), b.fileno(), 1, select.EPOLLIN, data=1)
        res = one(ring).res
        assert res == -os_errno(lambda: ep.register(b.fileno(), select.EPOLLIN))
        assert res == -errno.EEXIST
        assert ep.poll(0) == []
        a.sendall(b"e")
        # what the ring registered, python's epoll reports (data is the fd)
        assert ep.poll(1) == [(b.fileno(), select.EPOLLIN)]
        if ring.probe().supports("EPOLL_WAIT"):
            events = bytearray(EPOLL_EVENT.size * 4)
            ring.prep_epoll_wait(ep.fileno(), events, 4, user_data=9)
            c = one(ring)
            assert c.res == 1
            assert EPOLL_EVENT.unpack_from(events) == (select.EPOLLIN, b.fileno())
            with pytest.raises(ValueError):
                ring.prep_epoll_wait(ep.fileno(), bytearray(8), 4)
        assert b.recv(1) == b"e"
        # MOD then DEL, as ep.modify / ep.unregister
        ring.prep_epoll_ctl(ep.fileno(), b.fileno(), 3, select.EPOLLOUT, data=b.fileno())
        assert one(ring).res == 0
        assert ep.poll(0) == [(b.fileno(), select.EPOLLOUT)]
        ring.prep_epoll_ctl(ep.fileno(), b.fileno(), 2)
        assert one(ring).res == 0
        assert ep.poll(0) == []
    finally:
        ep.close()


def test_epoll_wait_blocks_until_ready(ring: Ring,
                                       pair: Tuple[socket.socket, socket.socket]) -> None:
    need("EPOLL_WAIT")
    a, b = pair
    ep = select.epoll()
    try:
        ep.register(b.fileno(), select.EPOLLIN)
        events = bytearray(EPOLL_EVENT.size * 2)
        ring.prep_epoll_wait(ep.fileno(), events, 2, user_data=1)
        ring.submit()
        nothing_more(ring)
        a.sendall(b"now")
        assert one(ring).res == 1
        assert EPOLL_EVENT.unpack_from(events)[0] == select.EPOLLIN
    finally:
        ep.close()


# ---------------------------------------------------------------------------
# uring_cmd on sockets, recv_zc
# ---------------------------------------------------------------------------

def test_cmd_sock_ioctls(ring: Ring, tcp: Tuple[socket.socket, socket.socket]) -> None:
    c, s = tcp
    c.sendall(b"12345")
    # wait until the data is queued at the receiver
    assert select.select([s], [], [], 5)[0]
    ring.prep_cmd_sock(SOCKET_URING_OP_SIOCINQ, s.fileno(), 0, 0)
    res = one(ring).res
    inq = array.array("i", [0])
    fcntl.ioctl(s.fileno(), termios.FIONREAD, inq)
    assert res == inq[0] == 5
    ring.prep_cmd_sock(SOCKET_URING_OP_SIOCOUTQ, s.fileno(), 0, 0)
    outq = array.array("i", [0])
    fcntl.ioctl(s.fileno(), termios.TIOCOUTQ, outq)
    assert one(ring).res == outq[0] == 0


def test_cmd_sock_sockopts(ring: Ring, tcp: Tuple[socket.socket, socket.socket]) -> None:
    c, _ = tcp
    val = bytearray(4)
    ring.prep_cmd_sock(SOCKET_URING_OP_GETSOCKOPT, c.fileno(), socket.SOL_SOCKET,
                       socket.SO_RCVBUF, val, 4)
    res = one(ring).res
    assert res == 4
    assert struct.unpack("=i", val)[0] == c.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
    on = bytearray(struct.pack("=i", 1))
    ring.prep_cmd_sock(SOCKET_URING_OP_SETSOCKOPT, c.fileno(), socket.SOL_SOCKET,
                       socket.SO_KEEPALIVE, on, 4)
    assert one(ring).res == 0
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    with pytest.raises(ValueError):
        ring.prep_cmd_sock(SOCKET_URING_OP_GETSOCKOPT, c.fileno(), socket.SOL_SOCKET,
                           socket.SO_RCVBUF, bytearray(2), 4)


def test_cmd_sock_on_a_non_socket(ring: Ring) -> None:
    r, w = os.pipe()  # (not /dev/null: it implements uring_cmd as a no-op)
    try:
        ring.prep_cmd_sock(SOCKET_URING_OP_SIOCINQ, r, 0, 0)
        assert one(ring).res == -errno.EOPNOTSUPP
    finally:
        os.close(r)
        os.close(w)


def test_recv_zc_needs_a_zcrx_queue(ring: Ring, tcp: Tuple[socket.socket, socket.socket]) -> None:
    """RECV_ZC needs a NIC with header/data split and a registered zcrx
    interface queue; without one the kernel refuses cleanly."""
    need("RECV_ZC")
    c, _ = tcp
    ring.prep_recv_zc(c.fileno(), 0, 0)
    assert one(ring).res in (-errno.EINVAL, -errno.EOPNOTSUPP, -errno.ENODEV)


def test_tcp_stream_roundtrip(ring: Ring, tcp: Tuple[socket.socket, socket.socket]) -> None:
    """Many sends and recvs in flight at once, linked so they stay ordered."""
    c, s = tcp
    chunks = [os.urandom(1000 + i) for i in range(20)]
    for i, ch in enumerate(chunks):
        ring.prep_send(c.fileno(), ch, user_data=i,
                       flags=A.IOSQE_IO_LINK if i < len(chunks) - 1 else 0)
    got: List[int] = [x.res for x in sorted(run(ring, len(chunks)), key=lambda x: x.user_data)]
    assert got == [len(ch) for ch in chunks]
    assert _recv_exact(s, sum(map(len, chunks))) == b"".join(chunks)
