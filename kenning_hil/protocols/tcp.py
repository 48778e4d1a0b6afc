"""TCP transport: a client that connects to a target server, and the server's listener.

Handshake (Kenning's): right after accepting, the server sends one 0x00 byte; the client
waits for it before sending anything. The server serves one client at a time: a second
connection while one is served is accepted and closed at once without the handshake byte,
so its client fails fast with a clear "busy" error instead of waiting in a queue. Only while
the served client is still there, though: one that has closed (its end shut down) no longer
keeps the next client out, even if the server has not yet read its end of the stream (a
loaded machine may not run the server, or its runtime worker, for a while); that next client
is kept and served once the session has ended.
TCP_NODELAY is set on both ends: the protocol is small request/response exchanges.
"""

from __future__ import annotations

import errno
import logging
import select
import socket
import struct
import time

from kenning_hil.core.errors import os_reason
from kenning_hil.core.protocol import ConnectionLostError
from kenning_hil.protocols.frame import TCP_MAX_FRAME_SIZE
from kenning_hil.protocols.peers import AllowList
from kenning_hil.protocols.transport import Transport, TransportClosedError

DEFAULT_PORT = 12345
DEFAULT_HOST = "127.0.0.1"
HANDSHAKE = b"\x00"
_RECV_BLOCK = 1 << 16
# the peer shut its end down (FIN: POLLRDHUP, Linux) or the connection broke (RST)
_GONE = getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR | select.POLLNVAL

log = logging.getLogger(__name__)


class TCPConnection(Transport):
    """One connected TCP socket (either end)."""

    # assumed worst-case throughput, only to scale upload timeouts generously
    line_rate = 1e6

    def __init__(
        self,
        sock: socket.socket,
        peer: str,
        max_frame_size: int = TCP_MAX_FRAME_SIZE,
        listener: TCPListener | None = None,
    ):
        self._sock = sock
        self._peer = peer
        self.max_frame_size = max_frame_size
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(True)
        self._receive_timeout: float | None = -1.0  # what SO_RCVTIMEO is set to (-1: unknown)
        self._fitting_timeouts: set[float] = set()  # other timeouts the bound serves as well
        self._set_receive_timeout(None)
        self._listener = listener
        self._closed = False

    @property
    def name(self) -> str:
        return self._peer

    def send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise TransportClosedError(f"send failed: {os_reason(exc)}", self._peer) from exc

    def _set_receive_timeout(self, timeout: float | None) -> None:
        """Bounds each blocking recv in the kernel (SO_RCVTIMEO): one system call per read
        instead of poll + recv. Changed only when needed: a read may wait up to 10 ms (or 2 %)
        longer than asked, or return early (the caller then reads again), so requests with
        different timeouts do not cost a system call each."""
        current = self._receive_timeout
        if timeout is None:
            if current is None:
                return
        else:
            timeout = max(timeout, 0.001)
            if (
                current is not None
                and current > 0
                and current - max(0.01, 0.02 * timeout) <= timeout <= current * 8
            ):
                # remembered (a few), so that requests alternating their timeouts (DATA,
                # PROCESS, OUTPUT) cost no call here
                if len(self._fitting_timeouts) >= 8:
                    self._fitting_timeouts.clear()
                self._fitting_timeouts.add(timeout)
                return
        seconds = 0.0 if timeout is None else timeout  # 0 = no bound
        whole = int(seconds)
        micros = int((seconds - whole) * 1e6)
        self._sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", whole, micros)
        )
        self._receive_timeout = timeout
        self._fitting_timeouts.clear()

    def receive(self, timeout: float | None) -> bytes:
        try:
            if timeout is not None and timeout <= 0:
                data = self._sock.recv(_RECV_BLOCK, socket.MSG_DONTWAIT)
            else:
                if timeout != self._receive_timeout and timeout not in self._fitting_timeouts:
                    self._set_receive_timeout(timeout)
                data = self._sock.recv(_RECV_BLOCK)
        except BlockingIOError:  # the time ran out
            if self._listener is not None:
                # between requests: turn away anyone who tried to connect meanwhile
                self._listener.refuse_pending(self)
            return b""
        except OSError as exc:
            reason = f"receive failed: {os_reason(exc)}"
            raise TransportClosedError(reason, self._peer) from exc
        if not data:
            raise TransportClosedError("connection closed by peer", self._peer)
        return data

    def fileno(self) -> int:
        """The socket's descriptor (-1 once closed), e.g. to hand the connection to another
        process."""
        return self._sock.fileno()

    def peer_gone(self) -> bool:
        """Whether the other end has closed (or reset) the connection, whatever is still
        unread on it; asks the kernel without reading, so whoever serves the connection (this
        process or a runtime worker holding the same socket) reads it undisturbed."""
        if self._closed:
            return True
        poller = select.poll()
        poller.register(self._sock, _GONE)
        return any(events & _GONE for _, events in poller.poll(0))

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
            f"cannot connect: {os_reason(exc)}", peer, elapsed=time.monotonic() - start
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
        allow: AllowList | None = None,
    ):
        self.max_frame_size = max_frame_size
        self.allow = allow  # None: any peer
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise ConnectionLostError(
                f"cannot listen on {host}:{port}: {os_reason(exc)}"
            ) from exc
        self._sock.listen(4)
        self.host, self.port = self._sock.getsockname()[:2]
        # a client that connected while the last one was leaving: served next (refuse_pending)
        self._next: tuple[socket.socket, tuple] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def fileno(self) -> int:
        return self._sock.fileno()

    def accept(self, timeout: float | None = None) -> TCPConnection | None:
        """Waits for a client, sends it the handshake byte; None on timeout."""
        if self._next is not None:
            (sock, address), self._next = self._next, None
        else:
            ready, _, _ = select.select([self._sock], [], [], timeout)
            if not ready:
                return None
            try:
                sock, address = self._sock.accept()
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.ECONNABORTED):
                    return None
                raise
        if self.allow is not None and not self.allow.allows(address[0]):
            # outside --allow: closed before the handshake, nothing read from it
            log.warning(
                "refused connection from %s:%s: not in the allow list %s",
                address[0], address[1], self.allow,
            )
            sock.close()
            return None
        keep_alive(sock)
        connection = TCPConnection(
            sock, f"tcp://{address[0]}:{address[1]}", self.max_frame_size, listener=self
        )
        try:
            connection.send(HANDSHAKE)
        except TransportClosedError:
            connection.close()
            return None
        return connection

    def refuse_pending(self, served: TCPConnection) -> None:
        """Closes a connection attempt made while `served` is served (the client is told it
        is busy), unless `served` has closed meanwhile: then the attempt is kept and
        `accept` returns it next. Accepted before `served` is looked at, so a client that
        connected after the served one left is never taken for one that came too early."""
        self._sock.setblocking(False)
        try:
            sock, address = self._sock.accept()
        except OSError:
            return
        finally:
            self._sock.setblocking(True)
        if self._next is None and served.peer_gone():
            log.debug("kept %s:%s to serve next: %s has closed", address[0], address[1],
                      served.name)
            self._next = sock, address
            return
        sock.close()

    def close(self) -> None:
        if self._next is not None:
            self._next[0].close()
            self._next = None
        self._sock.close()


KEEPALIVE_IDLE = 10
"""Seconds of silence on a served connection before the kernel probes the client."""
KEEPALIVE_INTERVAL = 5
KEEPALIVE_PROBES = 3


def keep_alive(sock: socket.socket) -> None:
    """TCP keepalive on a served connection: a client whose machine vanished (power, cable,
    a VM stopped) without closing is found dead by the kernel after
    KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_PROBES = 25 s of silence, and the server
    goes on to the next client instead of turning every later one away as busy. A live but
    idle client answers the probes from its kernel and keeps its session."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_PROBES),
    ):
        if hasattr(socket, option):  # Linux; elsewhere the system's keepalive timing
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
