"""TCP transport: a client that connects to a target server, and the server's listener.

Handshake (Kenning's): right after accepting, the server sends one 0x00 byte; the client
waits for it before sending anything. The server serves one client at a time: a second
connection while one is served is accepted and closed at once without the handshake byte,
so its client fails fast with a clear "busy" error instead of waiting in a queue.
TCP_NODELAY is set on both ends: the protocol is small request/response exchanges.
"""

from __future__ import annotations

import errno
import math
import select
import socket
import time

from kenning_hil.core.protocol import ConnectionLostError
from kenning_hil.protocols.frame import TCP_MAX_FRAME_SIZE
from kenning_hil.protocols.transport import Transport, TransportClosedError

DEFAULT_PORT = 12345
DEFAULT_HOST = "127.0.0.1"
HANDSHAKE = b"\x00"
_RECV_BLOCK = 1 << 16


class TCPConnection(Transport):
    """One connected TCP socket (either end)."""

    # assumed worst-case throughput, only to scale upload timeouts generously
    line_rate = 1e6

    def __init__(
        self,
        sock: socket.socket,
        peer: str,
        max_frame_size: int = TCP_MAX_FRAME_SIZE,
        listener: socket.socket | None = None,
    ):
        self._sock = sock
        self._peer = peer
        self.max_frame_size = max_frame_size
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(True)
        # one poll object for the lifetime of the connection: no per-read set-up
        self._sock_fd = sock.fileno()
        self._poll = select.poll()
        self._poll.register(self._sock_fd, select.POLLIN)
        self._listener = listener
        if listener is not None:
            # while serving, new connections are turned away as soon as they arrive
            self._poll.register(listener.fileno(), select.POLLIN)
        self._closed = False

    @property
    def name(self) -> str:
        return self._peer

    def send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise TransportClosedError(f"send failed: {exc.strerror or exc}", self._peer) from exc

    def receive(self, timeout: float | None) -> bytes:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if deadline is None:
                wait_ms = None
            else:
                wait_ms = max(0, math.ceil((deadline - time.monotonic()) * 1000))
            ready = self._poll.poll(wait_ms)
            if not ready:
                return b""
            # the client's own data (or its EOF) first: a client that just left must not make
            # the next one look like a second, concurrent client
            if any(fd == self._sock_fd for fd, _ in ready):
                try:
                    data = self._sock.recv(_RECV_BLOCK)
                except OSError as exc:
                    raise TransportClosedError(
                        f"receive failed: {exc.strerror or exc}", self._peer
                    ) from exc
                if not data:
                    raise TransportClosedError("connection closed by peer", self._peer)
                return data
            if self._listener is not None:
                _refuse_pending(self._listener)
            if deadline is not None and time.monotonic() >= deadline:
                return b""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()


def connect(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    timeout: float = 5.0,
    max_frame_size: int = TCP_MAX_FRAME_SIZE,
) -> TCPConnection:
    """Connects to a target server and waits for its handshake byte."""
    peer = f"tcp://{host}:{port}"
    start = time.monotonic()
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise ConnectionLostError(
            f"cannot connect: {exc.strerror or exc}", peer, elapsed=time.monotonic() - start
        ) from exc
    connection = TCPConnection(sock, peer, max_frame_size)
    try:
        greeting = connection.receive(max(0.0, timeout - (time.monotonic() - start)))
    except TransportClosedError as exc:
        connection.close()
        raise ConnectionLostError(
            "server closed the connection before its handshake (busy with another client?)",
            peer,
            elapsed=time.monotonic() - start,
        ) from exc
    if greeting != HANDSHAKE:
        connection.close()
        what = "no handshake byte" if not greeting else f"handshake {greeting[:8].hex()} != 00"
        raise ConnectionLostError(
            f"{what} within {timeout:.1f} s (not a kenning-hil/Kenning server, or busy)",
            peer,
            elapsed=time.monotonic() - start,
        )
    return connection


class TCPListener:
    """The server's listening socket; `accept` yields one client connection at a time."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        max_frame_size: int = TCP_MAX_FRAME_SIZE,
    ):
        self.max_frame_size = max_frame_size
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise ConnectionLostError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from exc
        self._sock.listen(4)
        self.host, self.port = self._sock.getsockname()[:2]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def fileno(self) -> int:
        return self._sock.fileno()

    def accept(self, timeout: float | None = None) -> TCPConnection | None:
        """Waits for a client, sends it the handshake byte; None on timeout."""
        ready, _, _ = select.select([self._sock], [], [], timeout)
        if not ready:
            return None
        try:
            sock, address = self._sock.accept()
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.ECONNABORTED):
                return None
            raise
        connection = TCPConnection(
            sock, f"tcp://{address[0]}:{address[1]}", self.max_frame_size, listener=self._sock
        )
        try:
            connection.send(HANDSHAKE)
        except TransportClosedError:
            connection.close()
            return None
        return connection

    def close(self) -> None:
        self._sock.close()


def _refuse_pending(listener: socket.socket) -> None:
    """Accepts and immediately closes a connection attempt made while a client is served."""
    listener.setblocking(False)
    try:
        sock, _ = listener.accept()
    except OSError:
        return
    finally:
        listener.setblocking(True)
    sock.close()
