"""A minimal host for the firmware tests: sends requests as chunked frames over any pyserial
URL and reassembles the answer, using the project's Python frame codec (so these tests also
check the C and Python codecs against each other on the wire)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import serial

from kenning_hil.core.protocol import Flag, FlowControl, MessageType
from kenning_hil.protocols.frame import UART_MAX_FRAME_SIZE, Frame, FrameDecoder, encode_frame

CHUNK = UART_MAX_FRAME_SIZE - 12


def request_frames(mtype: int, payload: bytes = b"", flags: int = 0) -> bytes:
    """The bytes of one request, cut into UART chunks marked FIRST ... LAST."""
    chunks = [payload[i : i + CHUNK] for i in range(0, len(payload), CHUNK)] or [b""]
    out = bytearray()
    for i, chunk in enumerate(chunks):
        f = flags
        if i == 0:
            f |= Flag.FIRST
        if i == len(chunks) - 1:
            f |= Flag.LAST
        out += encode_frame(mtype, FlowControl.REQUEST, f, chunk)
    return bytes(out)


@dataclass
class Answer:
    message_type: int
    flags: int
    payload: bytes
    frames: list[Frame] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return bool(self.flags & Flag.SUCCESS) and not self.flags & Flag.FAIL

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", errors="replace")


class FrameClient:
    def __init__(self, url: str):
        self.port = serial.serial_for_url(url, timeout=0.05)
        self.decoder = FrameDecoder(UART_MAX_FRAME_SIZE)
        self.logs: list[str] = []
        self.other: list[Frame] = []  # frames that answered nothing we waited for

    def close(self) -> None:
        self.port.close()

    def send_raw(self, data: bytes) -> None:
        self.port.write(data)

    def send(self, mtype: int, payload: bytes = b"", flags: int = 0) -> None:
        self.port.write(request_frames(mtype, payload, flags))

    def _next_frame(self, deadline: float) -> Frame:
        while True:
            event = self.decoder.next()
            if isinstance(event, Frame):
                return event
            if event is not None:
                continue  # a decoding error on our side: the firmware never sends garbage
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from the board")
            self.decoder.feed(self.port.read(max(1, self.port.in_waiting)))

    def answer(self, mtype: int, timeout: float = 10.0) -> Answer:
        """Waits for the (possibly chunked) TRANSMISSION answering `mtype`; LOGS are kept."""
        deadline = time.monotonic() + timeout
        frames: list[Frame] = []
        while True:
            frame = self._next_frame(deadline)
            if frame.message_type == MessageType.LOGS:
                self.logs.append(frame.payload.decode("utf-8", errors="replace"))
                continue
            if frame.message_type != mtype or frame.flow_control != FlowControl.TRANSMISSION:
                self.other.append(frame)
                continue
            if frame.flags & Flag.FIRST:
                frames = []
            frames.append(frame)
            if frame.flags & Flag.LAST:
                return Answer(
                    mtype, frames[0].flags, b"".join(f.payload for f in frames), frames
                )

    def retransmit_request(self, mtype: int, timeout: float = 10.0) -> Frame:
        """Waits for the board to ask for `mtype` again (REQUEST_RETRANSMIT); LOGS are kept,
        other frames go to `other`."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self._next_frame(deadline)
            if frame.message_type == MessageType.LOGS:
                self.logs.append(frame.payload.decode("utf-8", errors="replace"))
            elif (frame.message_type == mtype
                  and frame.flow_control == FlowControl.REQUEST_RETRANSMIT):
                return frame
            else:
                self.other.append(frame)

    def request(self, mtype: int, payload: bytes = b"", flags: int = 0,
                timeout: float = 10.0) -> Answer:
        self.send(mtype, payload, flags)
        return self.answer(mtype, timeout)

    def connect(self, timeout: float = 15.0, attempts: int = 1) -> Answer:
        """A connect PING, sent up to `attempts` times as a host does: after line noise the
        board may still be waiting for the rest of a frame the noise began, and a PING sent
        then is taken as part of it. 15 s per try: generous for a board answering at once,
        as a QEMU on a loaded 2-core machine may be descheduled for seconds (#22)."""
        for attempt in range(attempts):
            try:
                return self.request(MessageType.PING, flags=Flag.SUCCESS, timeout=timeout)
            except TimeoutError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("attempts must be >= 1")
