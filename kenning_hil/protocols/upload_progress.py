"""How far an upload got: bytes the target has read, not bytes the host has written.

A write returns as soon as the kernel has queued the bytes. To a QEMU board the whole of a
333 kB model is queued in 0.1 s (the socket buffers take it), while the emulated UART reads
it for the next 45 s; a bar of bytes written would sit at 100 % all that time. So the
progress is what was written less what still waits unread: for a loopback TCP connection
our send queue plus the peer's receive queue (both in /proc/net/tcp on Linux), for a serial
device the driver's output queue (TIOCOUTQ). Where neither can be known, it is the bytes
written.
"""

from __future__ import annotations

import math
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kenning_hil.protocols.chunking import chunk_payload_size

POLL_SECONDS = 0.2


def _proc_address(address: tuple, family: int) -> str:
    """An address as /proc/net/tcp{,6} writes it: the IP in host-order 32-bit words, hex."""
    packed = socket.inet_pton(family, address[0])
    words = struct.unpack(f"<{len(packed) // 4}I", packed)
    return "".join(f"{word:08X}" for word in words) + f":{address[1]:04X}"


def socket_unread(sock: socket.socket) -> int | None:
    """Bytes written to `sock` that the peer has not read yet (our unacknowledged send
    queue, plus the peer's receive queue when the peer is on this machine); None where
    /proc/net/tcp cannot tell (not Linux, not TCP)."""
    try:
        family = sock.family
        local = _proc_address(sock.getsockname(), family)
        remote = _proc_address(sock.getpeername(), family)
        table = Path("/proc/net/tcp6" if family == socket.AF_INET6 else "/proc/net/tcp")
        lines = table.read_text().splitlines()[1:]
    except (OSError, ValueError, IndexError):
        return None
    ours = theirs = None
    for line in lines:
        fields = line.split()
        if len(fields) < 5:
            continue
        tx, rx = (int(part, 16) for part in fields[4].split(":"))
        if fields[1] == local and fields[2] == remote:
            ours = tx
        elif fields[1] == remote and fields[2] == local:
            theirs = rx
    if ours is None:
        return None
    return ours + (theirs or 0)


def serial_unread(port: Any) -> int | None:
    """Bytes a serial device's driver still holds to send (pyserial's out_waiting)."""
    try:
        return int(port.out_waiting)
    except (AttributeError, OSError, ValueError, NotImplementedError):
        return None


def wire_size(payload: int, max_frame_size: int) -> int:
    """Bytes a `payload`-byte message takes on the line, frame headers included."""
    step = chunk_payload_size(max_frame_size)
    return payload + max(1, math.ceil(payload / step)) * (max_frame_size - step)


class UploadWatch:
    """While it is entered, calls `report(done, total)` every POLL_SECONDS with the payload
    bytes of a `total`-byte message the target has read from `transport` (whose `sent`
    counts bytes written and `unread()` those not read yet); at a clean exit, with the
    whole message."""

    def __init__(self, transport: Any, total: int, report: Callable[[int, int], None]):
        self.transport = transport
        self.total = total
        self.report = report
        self._wire = wire_size(total, transport.max_frame_size)
        self._start = getattr(transport, "sent", 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="upload-progress", daemon=True)

    def done(self) -> int:
        written = getattr(self.transport, "sent", self._start) - self._start
        unread = self.transport.unread()
        read = written - (unread or 0)
        return max(0, min(self.total, int(read * self.total / self._wire)))

    def _poll(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.report(self.done(), self.total)

    def __enter__(self) -> UploadWatch:
        self.report(0, self.total)
        self._thread.start()
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        self._stop.set()
        self._thread.join()
        # answered: the target has it all; failed: what it had read by then
        self.report(self.total if kind is None else self.done(), self.total)
