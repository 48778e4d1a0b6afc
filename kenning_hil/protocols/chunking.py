"""Splitting a message into frames no longer than the transport allows (FIRST ... LAST), and
putting it back together on the other side.

Every frame of a message has the same type and flow control; the first has FIRST, the last
LAST (a single frame both); payloads concatenate in order; there are no per-chunk
acknowledgements. ACKNOWLEDGE and REQUEST_RETRANSMIT frames carry no payload and are always
single frames.
"""

from __future__ import annotations

from collections.abc import Iterator

from kenning_hil.core.protocol import Flag, FlowControl, Message
from kenning_hil.protocols.frame import HEADER_SIZE, Frame, HeaderLayout, encode_frame

_FIRST = int(Flag.FIRST)
_LAST = int(Flag.LAST)
_CHUNK_FLAGS = _FIRST | _LAST
_SINGLE_FRAME_FLOWS = (FlowControl.ACKNOWLEDGE, FlowControl.REQUEST_RETRANSMIT)


def chunk_payload_size(max_frame_size: int, header: HeaderLayout | str = HeaderLayout.V3) -> int:
    return max_frame_size - (HEADER_SIZE if header == "v3" else HeaderLayout(header).size)


def encode_message(
    message: Message, max_frame_size: int, compute_checksum: bool = True, count: int = 0,
    header: HeaderLayout | str = HeaderLayout.V3,
) -> Iterator[bytes]:
    """Yields the frames of `message` (FIRST/LAST set here, whatever `message.flags` say)
    in the `header` layout."""
    flags = message.flags & ~_CHUNK_FLAGS
    payload = message.payload
    step = chunk_payload_size(max_frame_size, header)
    if len(payload) <= step:
        yield encode_frame(
            message.message_type,
            message.flow_control,
            flags | _CHUNK_FLAGS,
            payload,
            count=count,
            compute_checksum=compute_checksum,
            header=header,
        )
        return
    view = memoryview(payload)
    last = len(payload) - step
    for offset in range(0, len(payload), step):
        chunk_flags = flags
        if offset == 0:
            chunk_flags |= _FIRST
        if offset >= last:
            chunk_flags |= _LAST
        yield encode_frame(
            message.message_type,
            message.flow_control,
            chunk_flags,
            bytes(view[offset : offset + step]),
            compute_checksum=compute_checksum,
            header=header,
        )


class AssemblyError(Exception):
    """Frames that do not form a message (orphan chunk, interleaving, too large)."""

    def __init__(self, reason: str, frame: Frame):
        super().__init__(reason)
        self.reason = reason
        self.frame = frame


class MessageAssembler:
    """Collects frames into messages, bounded by `max_message_size` payload bytes.

    Messages of different (type, flow control) may be interleaved (a target may slip a LOGS
    transmission between the chunks of an answer); chunks of the same one may not. After a
    corrupt chunk the rest of that message is unusable: `discard_partial` forgets it and drops
    its continuation frames silently until a frame with FIRST starts something new.
    """

    MAX_OPEN = 4  # more concurrently open messages than this is a peer gone wrong

    def __init__(self, max_message_size: int):
        self.max_message_size = max_message_size
        self._open: dict[tuple[int, int], list[bytes]] = {}
        self._open_sizes: dict[tuple[int, int], int] = {}
        self._discarding = False

    def add(self, frame: Frame) -> Message | None:
        """Returns the completed message, None while one is incomplete (or a frame was
        discarded); raises AssemblyError for frames that break the rules."""
        flags = frame.flags
        if flags & _CHUNK_FLAGS == _CHUNK_FLAGS and not self._open:
            # the common case: a whole message in one frame, nothing else in flight; a Frame
            # is a Message, so it is handed on as it is
            self._discarding = False
            if len(frame.payload) > self.max_message_size:
                self._check_size(len(frame.payload), frame)
            return frame
        if frame.flow_control in _SINGLE_FRAME_FLOWS:
            return Message(frame.message_type, frame.payload, flags, frame.flow_control)
        key = (frame.message_type, frame.flow_control)
        if flags & _FIRST:
            self._discarding = False
            self._open.pop(key, None)  # a restarted transmission replaces an abandoned one
            self._open_sizes.pop(key, None)
            if flags & _LAST:
                self._check_size(len(frame.payload), frame)
                return Message(frame.message_type, frame.payload, flags, frame.flow_control)
            if len(self._open) >= self.MAX_OPEN:
                raise AssemblyError(f"more than {self.MAX_OPEN} messages open at once", frame)
            self._check_size(len(frame.payload), frame)
            self._open[key] = [frame.payload]
            self._open_sizes[key] = len(frame.payload)
            return None
        parts = self._open.get(key)
        if parts is None:
            if self._discarding:
                return None
            raise AssemblyError(
                "continuation frame without a FIRST frame before it (missing FIRST/LAST flags?)",
                frame,
            )
        size = self._open_sizes[key] + len(frame.payload)
        self._check_size(size, frame, key)
        parts.append(frame.payload)
        self._open_sizes[key] = size
        if not flags & _LAST:
            return None
        del self._open[key]
        del self._open_sizes[key]
        return Message(
            frame.message_type, b"".join(parts), flags | _FIRST, frame.flow_control
        )

    def _check_size(self, size: int, frame: Frame, key: tuple[int, int] | None = None) -> None:
        if size > self.max_message_size:
            if key is not None:
                del self._open[key]
                del self._open_sizes[key]
            self._discarding = True
            raise AssemblyError(
                f"message exceeds the limit of {self.max_message_size} bytes", frame
            )

    def discard_partial(self) -> None:
        """Forgets incomplete messages and drops continuation frames until the next FIRST."""
        self._open.clear()
        self._open_sizes.clear()
        self._discarding = True

    def reset(self) -> None:
        self._open.clear()
        self._open_sizes.clear()
        self._discarding = False

    @property
    def idle(self) -> bool:
        """No message half-assembled and no continuation frames being dropped: the next
        whole-message frame is handed on as it is."""
        return not self._open and not self._discarding

    @property
    def open_bytes(self) -> int:
        return sum(self._open_sizes.values())
