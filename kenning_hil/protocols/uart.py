"""UART transport over pyserial: device paths (``/dev/ttyACM0``, a pty), ``socket://``,
``rfc2217://`` and ``loop://`` URLs.

A serial line has no connection: the protocol layer opens a session with a PING (see
`bytes_protocol.UARTProtocol`). Frames are at most 136 bytes (124-byte payload chunks), and
the line rate (baud / 10 bytes per second, 8N1) bounds upload times.
"""

from __future__ import annotations

import select
import time

from kenning_hil.core.errors import os_reason
from kenning_hil.core.protocol import ConnectionLostError
from kenning_hil.protocols.frame import UART_MAX_FRAME_SIZE
from kenning_hil.protocols.transport import Transport, TransportClosedError

DEFAULT_BAUDRATE = 115200
_READ_BLOCK = 4096


def line_rate(baudrate: int) -> float:
    """Payload bytes per second on an 8N1 line (start + 8 data + stop bits per byte)."""
    return baudrate / 10


class SerialTransport(Transport):
    """One open serial port (or pyserial URL)."""

    def __init__(
        self,
        port: str,
        baudrate: int = DEFAULT_BAUDRATE,
        max_frame_size: int = UART_MAX_FRAME_SIZE,
    ):
        import serial  # pyserial: a core dependency, imported when a port is opened

        self._port_name = port
        self.max_frame_size = max_frame_size
        self.line_rate = line_rate(baudrate)
        try:
            self._serial = serial.serial_for_url(port, baudrate=baudrate, timeout=0)
        except (serial.SerialException, ValueError) as exc:
            raise ConnectionLostError(f"cannot open serial port: {os_reason(exc)}", port) from exc
        self._serial_error = serial.SerialException
        # a real device (or pty) gives a file descriptor to wait on; URL handlers do not
        self._fd = self._serial.fd if isinstance(self._serial, serial.Serial) else None
        if self._fd is not None:
            self._poll = select.poll()
            self._poll.register(self._fd, select.POLLIN)
        self._closed = False
        self.sent = 0  # bytes written, for an upload's progress (with `unread`)

    @property
    def name(self) -> str:
        return self._port_name

    def send(self, data: bytes) -> None:
        try:
            self._serial.write(data)
        except (self._serial_error, OSError) as exc:
            raise TransportClosedError(f"write failed: {os_reason(exc)}", self._port_name) from exc
        self.sent += len(data)

    def unread(self) -> int | None:
        from kenning_hil.protocols.upload_progress import serial_unread, socket_unread

        connection = getattr(self._serial, "_socket", None)  # pyserial's socket:// handler
        if connection is not None:
            return socket_unread(connection)
        return serial_unread(self._serial) if self._fd is not None else None

    def receive(self, timeout: float | None) -> bytes:
        try:
            if self._fd is not None:
                wait_ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
                events = self._poll.poll(wait_ms)
                if not events:
                    return b""
                if events[0][1] & (select.POLLHUP | select.POLLERR) and not (
                    events[0][1] & select.POLLIN
                ):
                    raise TransportClosedError("device hung up", self._port_name)
                data = self._serial.read(_READ_BLOCK)  # timeout 0: whatever is there
                if not data:
                    raise TransportClosedError("device reports data but none came",
                                               self._port_name)
                return data
            return self._receive_url(timeout)
        except self._serial_error as exc:
            raise TransportClosedError(f"read failed: {os_reason(exc)}", self._port_name) from exc

    def _receive_url(self, timeout: float | None) -> bytes:
        """URL handlers: block for the first byte, then take what else is there."""
        self._serial.timeout = None if timeout is None else max(0.0, timeout)
        first = self._serial.read(1)
        self._serial.timeout = 0
        if not first:
            return b""
        return first + self._serial.read(_READ_BLOCK)

    def discard_input(self) -> None:
        try:
            self._serial.reset_input_buffer()
        except (self._serial_error, OSError):
            pass
        deadline = time.monotonic() + 1.0  # a device that never stops talking: give up
        while self.receive(0) and time.monotonic() < deadline:
            pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._serial.close()
        except (self._serial_error, OSError):
            pass
