"""Whole messages over a byte-stream transport: chunking on the way out; decoding,
checksums, reassembly and stall handling on the way in.

`MessageChannel.receive` returns one event at a time: a `Message`, a `Corruption` (something
arrived that is not a valid message; the caller decides whether to answer, ask for a
retransmission or drop the connection), or None when the time ran out.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from kenning_hil.core.protocol import (
    STATUS_ACTIONS,
    Flag,
    FlowControl,
    Message,
    MessageType,
    message_type_name,
)
from kenning_hil.protocols.chunking import AssemblyError, MessageAssembler, encode_message
from kenning_hil.protocols.frame import (
    ChecksumPolicy,
    Frame,
    FrameDecoder,
    FrameError,
    HeaderLayout,
    decode_frame,
    decode_whole_message,
    encode_frame,
)
from kenning_hil.protocols.transport import Transport

DEFAULT_MAX_MESSAGE_SIZE = 64 << 20
_CHUNK_FLAGS = int(Flag.FIRST | Flag.LAST)


def _constant_frames() -> dict[bytes, Frame]:
    """The payload-less requests of our host (PROCESS, OUTPUT, STATS) and the status answers
    of our server (OK with the action byte), as they are on the wire (v3, checksum computed),
    each with its decoded message: every inference sends several of them, and a dictionary
    lookup of the bytes read replaces their decoding. (Shared objects: nobody changes a
    received message but the IO_SPEC request, which has a payload.)"""
    whole = int(Flag.FIRST | Flag.LAST)
    host, ok = int(Flag.IS_HOST_MESSAGE), int(Flag.SUCCESS | Flag.IS_KENNING)
    wires = [
        encode_frame(int(mtype), int(FlowControl.REQUEST), host | whole)
        for mtype in (MessageType.PROCESS, MessageType.OUTPUT, MessageType.STATS)
    ]
    wires += [
        encode_frame(int(mtype), int(FlowControl.TRANSMISSION), ok | whole, bytes((int(action),)))
        for mtype, action in STATUS_ACTIONS.items()
    ]
    return {wire: decode_frame(wire) for wire in wires}


CONSTANT_FRAMES = _constant_frames()
_CONSTANT_FRAME_SIZE = max(map(len, CONSTANT_FRAMES))


@dataclass(slots=True)
class Corruption:
    """Bytes that did not make a valid message. `kind`: garbage, checksum, oversized,
    stalled (from the frame decoder) or assembly (frames that do not fit together)."""

    kind: str
    message_type: int
    flow_control: int
    detail: str
    other_layout: bool = False  # the bytes make a frame in the other header layout

    def __str__(self) -> str:
        return self.detail


class MessageChannel:
    """Sends and receives `Message`s over one transport connection."""

    def __init__(
        self,
        transport: Transport,
        checksum: ChecksumPolicy | str = ChecksumPolicy.VERIFY,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        stall_timeout: float = 1.0,
        compute_checksum: bool = True,
        header: HeaderLayout | str = HeaderLayout.V3,
        trust_zero_checksum: bool = True,
    ):
        self.transport = transport
        self.max_frame_size = transport.max_frame_size
        self.header = HeaderLayout(header)
        self.header_size = self.header.size
        # 0x00 = "checksum not computed" (TCP); over a serial line it is a false header
        self._trust_zero = trust_zero_checksum
        self.decoder = FrameDecoder(transport.max_frame_size, checksum, self.header,
                                    trust_zero_checksum)
        self.assembler = MessageAssembler(max_message_size)
        self.stall_timeout = stall_timeout
        self.compute_checksum = compute_checksum
        self._events: deque[Frame | FrameError] = deque()
        self._last_bytes_at = time.monotonic()
        self._stalled_at: int | None = None  # stream offset of a frame one stall_timeout late
        # the fast path (`take`; v3 frames only): the constant frames of every inference, and
        # whole messages decoded in one step
        self._whole_frames = self.header is HeaderLayout.V3
        self._verify = self.decoder.checksum is ChecksumPolicy.VERIFY
        self._constant_frames = (
            CONSTANT_FRAMES if self._whole_frames and max_message_size >= 1 else {}
        )
        #: the next read starts on a frame boundary (`_at_boundary`), so the fast path may
        #: `take` it
        self.quiet = True

    @property
    def name(self) -> str:
        return self.transport.name

    # -- the fast path ----------------------------------------------------------------------

    def _at_boundary(self) -> bool:
        """Nothing received is waiting to be decoded or assembled, and the decoder is not
        resynchronising: the next read starts on a frame boundary, so `take` may decode it.
        Kept in `quiet`, which only `receive`, `take` and `discard_input` change (they are
        what feeds the decoder and the assembler), so that the fast path reads an attribute.
        """
        decoder, assembler = self.decoder, self.assembler
        return (
            not self._events
            and decoder.pending == 0
            and not decoder.resyncing
            and assembler.idle
        )

    def take(self, data: bytes) -> Message | None:
        """`data`, one read made while the channel was `quiet`, as the message it is when it
        is one whole frame (a constant frame of the steady state is looked up, others decoded
        in one step: `decode_whole_message`). Anything else goes to the decoder, and None is
        returned: `receive` then decodes it as it decodes every read (resynchronisation,
        chunks, stalls, errors)."""
        if len(data) <= _CONSTANT_FRAME_SIZE:  # (hashing a long read would cost more)
            message = self._constant_frames.get(data)
            if message is not None:
                return message
        if self._whole_frames:
            message = decode_whole_message(data, self._verify, self.max_frame_size,
                                           self.assembler.max_message_size, self._trust_zero)
            if message is not None:
                return message
        self.decoder.feed(data)
        self._last_bytes_at = time.monotonic()
        self.quiet = False
        return None

    # -- sending ----------------------------------------------------------------------------

    def send(self, message: Message, count: int = 0) -> None:
        """Sends `message`, chunked to the transport's frame size (one write per frame)."""
        for frame in encode_message(message, self.max_frame_size, self.compute_checksum, count,
                                    self.header):
            self.transport.send(frame)

    def send_frames(self, frames: list[bytes]) -> None:
        for frame in frames:
            self.transport.send(frame)

    def encode(self, message: Message, count: int = 0) -> list[bytes]:
        """The frames of `message`, kept by callers that may have to retransmit them."""
        if len(message.payload) <= self.max_frame_size - self.header_size:
            return [  # one frame: skip the generator
                encode_frame(
                    message.message_type,
                    message.flow_control,
                    (message.flags & ~_CHUNK_FLAGS) | _CHUNK_FLAGS,
                    message.payload,
                    count=count,
                    compute_checksum=self.compute_checksum,
                    header=self.header,
                )
            ]
        return list(encode_message(message, self.max_frame_size, self.compute_checksum, count,
                                   self.header))

    # -- receiving --------------------------------------------------------------------------

    def receive(self, timeout: float | None) -> Message | Corruption | None:
        """Waits up to `timeout` seconds (None: forever) for the next event.

        Raises TransportClosedError when the peer goes away.
        """
        try:
            return self._receive(timeout)
        finally:
            self.quiet = self._at_boundary()

    def _receive(self, timeout: float | None) -> Message | Corruption | None:
        decoder = self.decoder
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._events and decoder.pending == 0:
            # the usual case: nothing buffered, one read brings one whole frame
            data = self.transport.receive(timeout)
            if data:
                if self.quiet:
                    # a read that is one whole message: decoded in one step; else fed
                    message = self.take(data)
                    if message is not None:
                        return message
                else:
                    decoder.feed(data)
                frame = decoder.next()
                if decoder.pending:  # a frame still arriving: its stall is timed from now
                    self._last_bytes_at = time.monotonic()
                elif type(frame) is Frame:
                    try:
                        message = self.assembler.add(frame)
                    except AssemblyError as exc:
                        return self._assembly_error(exc)
                    if message is not None:
                        return message
                    frame = None
                if frame is not None:
                    self._events.append(frame)
            elif timeout is not None and timeout <= 0:
                return None
            # anything else (a partial frame, several frames, an early wake-up) below
        while True:
            if self._events:
                event = self._events.popleft()
            elif decoder.pending:
                event = decoder.next()
            else:
                event = None  # nothing buffered: go straight to the transport
            if event is None:
                now = time.monotonic()
                wait = None if deadline is None else deadline - now
                if decoder.pending:
                    stall_left = self._last_bytes_at + self.stall_timeout - now
                    if stall_left <= 0:
                        # Bytes may have arrived while this process was not running (a
                        # loaded host): only a line still quiet now is a stall (#16 finding 6)
                        data = self.transport.receive(0)
                        if data:
                            decoder.feed(data)
                            self._last_bytes_at = time.monotonic()
                            continue
                        waiting_at = decoder.fed - decoder.pending
                        if self._stalled_at != waiting_at:
                            # The first quiet spell on this frame: the sender may be stalled
                            # (a simulator starved of CPU). Dropping the frame would rescan
                            # its payload, where data bytes form headers with valid XOR
                            # checksums; give it one more spell to complete.
                            self._stalled_at = waiting_at
                            self._last_bytes_at = now
                            continue
                        # a partial frame stopped arriving: resynchronise on what is buffered
                        self._stalled_at = None
                        self._events.extend(decoder.resync_stalled())
                        continue
                    wait = stall_left if wait is None else min(wait, stall_left)
                if wait is not None and wait <= 0:
                    return None
                data = self.transport.receive(wait)
                if data:
                    decoder.feed(data)
                    self._last_bytes_at = time.monotonic()
                continue
            if type(event) is FrameError:
                self.assembler.discard_partial()
                return Corruption(event.kind, event.message_type, event.flow_control, event.detail,
                                  event.other_layout)
            try:
                message = self.assembler.add(event)
            except AssemblyError as exc:
                return self._assembly_error(exc)
            if message is not None:
                return message

    @staticmethod
    def _assembly_error(exc: AssemblyError) -> Corruption:
        frame = exc.frame
        return Corruption(
            "assembly",
            frame.message_type,
            frame.flow_control,
            f"{message_type_name(frame.message_type)} {_flow_name(frame.flow_control)}: "
            f"{exc.reason}",
        )

    def pending_layout_hint(self) -> str:
        """What the bytes received but not decoded look like in the other header layout
        ("; these bytes look like a frame in the v2 ... layout ..."), or empty: for a
        request that timed out with an answer the decoder could not read."""
        return self.decoder.pending_layout_hint()

    def discard_input(self) -> None:
        """Forgets everything received so far (stale bytes from an earlier session)."""
        self.transport.discard_input()
        self.decoder.reset()
        self.assembler.reset()
        self._events.clear()
        self.quiet = True

    def close(self) -> None:
        self.transport.close()


def _flow_name(flow_control: int) -> str:
    try:
        return FlowControl(flow_control).name
    except ValueError:
        return f"flow control {flow_control}"
