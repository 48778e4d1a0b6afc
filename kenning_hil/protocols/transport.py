"""Byte-stream transport interface: what the protocol needs from TCP, a serial port or a pty.

A transport moves bytes, nothing more: framing, chunking and request/response live above
it. Reads are buffered (take whatever arrived, up to a large block) and bounded in time;
writes send a whole buffer or fail.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from kenning_hil.core.protocol import ConnectionLostError


class TransportClosedError(ConnectionLostError):
    """The other side closed the connection (or the device went away)."""


class Transport(ABC):
    """A connected, bidirectional byte stream."""

    #: largest frame (header included) sent or accepted on this link
    max_frame_size: int
    #: bytes per second the link can carry at best; scales upload timeouts
    line_rate: float

    @property
    @abstractmethod
    def name(self) -> str:
        """Names the peer in messages, e.g. ``tcp://127.0.0.1:12345`` or ``/dev/ttyACM0``."""

    @abstractmethod
    def send(self, data: bytes) -> None:
        """Writes all of `data`; raises TransportClosedError if the peer is gone."""

    @abstractmethod
    def receive(self, timeout: float | None) -> bytes:
        """Returns the bytes available (at least one), waiting up to `timeout` seconds
        (None: forever); b"" when the time ran out; raises TransportClosedError at EOF."""

    def unread(self) -> int | None:
        """Bytes written that the peer has not read yet (still in kernel or driver queues),
        None where that cannot be known; an upload's progress is what was written less this
        (`protocols/upload_progress`)."""
        return None

    def discard_input(self) -> None:
        """Drops bytes already received but not read (stale answers from an old session)."""
        while self.receive(0):
            pass

    @abstractmethod
    def close(self) -> None:
        """Releases the connection; safe to call twice."""
