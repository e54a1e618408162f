"""The web page's listening socket: answers leave at once on a keep-alive connection."""

from __future__ import annotations

import socket

from tokenpost.web.server import Listen, _bind


def test_accepted_connections_do_not_wait_for_nagle() -> None:
    # Without TCP_NODELAY every keep-alive answer waits for the client's delayed ACK (~40 ms).
    listening = _bind(Listen("127.0.0.1", 0))
    with listening, socket.create_connection(listening.getsockname()):
        listening.setblocking(True)
        accepted, _ = listening.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
