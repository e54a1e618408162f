"""What the tests of the loopback redirect need to know about this host."""

from __future__ import annotations

import functools
import socket


@functools.cache
def has_ipv6_loopback() -> bool:
    """True when this host can listen on ::1 (containers and CI hosts may have no IPv6)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def free_port(address: str = "127.0.0.1") -> int:
    """A port free on `address` right now (another program may take it before it is used)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])
