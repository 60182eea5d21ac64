"""The port the front ends share."""

from __future__ import annotations

import socket


def reuseport_socket(host: str, port: int, listen: bool = True) -> socket.socket:
    """A TCP socket on ``host:port`` that other processes may bind too (the kernel spreads new
    connections over the listening ones)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(2048)
        sock.set_inheritable(True)
    return sock
