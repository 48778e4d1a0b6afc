"""Frame codec of the wire protocol: the header, the XOR checksum and a streaming decoder
that resynchronises after garbage.

Layout v3 (PROTOCOL.md, Kenning since April 2026; all little-endian)::

    bytes 0..4   40-bit message id: low 38 bits message type, top 2 bits flow control
    byte  5      checksum: 0x4B XOR every other byte of the frame (0x00: "not computed",
                 trusted over TCP only)
    bytes 6..7   flags (u16, see `Flag`)
    bytes 8..11  payload size (u32); the payload follows only when HAS_PAYLOAD is set
                 (without it the field is a count, e.g. on ACKNOWLEDGE / REQUEST_RETRANSMIT)

Layout v2 (older Kenning and kenning-zephyr-runtime firmware; `HeaderLayout.V2`) is the same
with an 8-bit message id: byte 0 holds the type (low 6 bits) and the flow control (top 2),
so the header is 8 bytes. Its type numbers predate TRACE_DATA: OPTIMIZERS..LOGS are one lower
(8..12), and TRACE_DATA does not exist. Frames here always carry the v3 numbers
(`core.protocol.MessageType`); the codec translates.

Usable on its own (the firmware tests use it to talk to their boards)::

    from kenning_hil.protocols.frame import FrameDecoder, encode_frame
    flags = Flag.SUCCESS | Flag.FIRST | Flag.LAST
    wire = encode_frame(MessageType.PING, FlowControl.REQUEST, flags)
    decoder = FrameDecoder(max_frame_size=136)
    decoder.feed(serial_port.read(64))
    event = decoder.next()   # a Frame, a FrameError, or None (needs more bytes)
"""

from __future__ import annotations

import struct
from enum import Enum

from kenning_hil.core.errors import KenningHILError
from kenning_hil.core.protocol import Flag, FlowControl, Message, message_type_name

HEADER_SIZE = 12  # v3; `HeaderLayout.size` for either layout
CHECKSUM_MAGIC = 0x4B
CHECKSUM_OFFSET = 5
# Largest frame (header included) each transport carries; longer messages are chunked.
TCP_MAX_FRAME_SIZE = 1 << 20
UART_MAX_FRAME_SIZE = 136
# Types are assigned from 0 up (14 so far); a header whose 38-bit type field is larger than
# this is taken for garbage while resynchronising. Types up to it that are unknown still decode,
# so that the receiver can answer them with FAIL.
MAX_PLAUSIBLE_TYPE = 0xFF
# ACKNOWLEDGE / REQUEST_RETRANSMIT count value meaning "the whole transmission".
WHOLE_TRANSMISSION = 0xFFFFFFFF

_HEADER = struct.Struct("<IBBHI")  # id bits 0-31, id bits 32-39, checksum, flags, size
_unpack_header = _HEADER.unpack_from
_TYPE_MASK = (1 << 38) - 1
_HAS_PAYLOAD = int(Flag.HAS_PAYLOAD)
_RESERVED_FLAGS = 0x0F00  # bits 8-11
_LAST_KNOWN_TYPE = 13  # LOGS
_REQUEST = int(FlowControl.REQUEST)
_TRANSMISSION = int(FlowControl.TRANSMISSION)
# below this many bytes a Python loop is the cheapest XOR; up to _FOLD_XOR bytes one integer
# folded by shifts (a few C operations) beats numpy's call overhead (~3 us)
_SMALL_XOR = 16
_FOLD_XOR = 256
_FIRST_LAST = int(Flag.FIRST | Flag.LAST)


class HeaderLayout(str, Enum):
    """The header layout a target speaks (a per-target protocol setting, `header`)."""

    V3 = "v3"  # 12 bytes, 40-bit message id: Kenning since April 2026, our firmware
    V2 = "v2"  # 8 bytes, 8-bit message id: older Kenning and kenning-zephyr-runtime builds

    @property
    def size(self) -> int:
        return HEADER_SIZE if self is HeaderLayout.V3 else V2_HEADER_SIZE

    def describe(self) -> str:
        return f"{self.value} ({self.size}-byte header)"


V2_HEADER_SIZE = 8
_V2_HEADER = struct.Struct("<BBHI")  # message id, checksum, flags, size
_unpack_v2_header = _V2_HEADER.unpack_from
_TRACE_DATA = 8  # the one v3 type v2 lacks; v3 types above it are one higher than in v2
# v2 wire type -> v3 type for all 64 values (unknown ones stay distinct and get a FAIL)
_V2_TO_V3 = tuple(t if t < _TRACE_DATA else t + 1 for t in range(64))


def v3_type_to_v2(message_type: int) -> int:
    """The v2 wire number of a (v3-numbered) message type; ValueError if v2 has none."""
    if message_type < _TRACE_DATA:
        return message_type
    if message_type == _TRACE_DATA or message_type > 64:
        raise ValueError(
            f"message type {message_type_name(message_type)} does not exist in the v2 header "
            f"layout"
        )
    return message_type - 1


class ChecksumPolicy(str, Enum):
    """What a receiver does with the checksum byte (a per-target setting, never both)."""

    VERIFY = "verify"  # mismatch = corrupt frame; 0x00 means "not computed" and is accepted
    # where the transport trusts it (TCP: Kenning's TCP host and server send 0x00; not over
    # a serial line, where every host computes it: `FrameDecoder(trust_zero_checksum=)`)
    IGNORE = "ignore"  # for targets that leave the byte uninitialised (Kenning's Zephyr runtime)


class FrameFormatError(KenningHILError):
    """Bytes that do not form a valid frame (raised by the one-shot `decode_frame`)."""


_xor_reduce = _frombuffer = _uint64 = None  # numpy's, bound on first use


def xor_bytes(data: bytes | bytearray | memoryview) -> int:
    """XOR of all bytes of `data`."""
    size = len(data)
    if size < _SMALL_XOR:
        acc = 0
        for byte in data:
            acc ^= byte
        return acc
    if size <= _FOLD_XOR:
        # the bytes as one integer; each shift XORs its upper half onto its lower one, so
        # after the eight shifts (1024 bits down to 8) byte 0 holds the XOR of bytes 0-255
        # (up to 64 bytes the first two shift nothing in)
        folded = int.from_bytes(data, "little")
        if size > 64:
            folded ^= folded >> 1024
            folded ^= folded >> 512
        folded ^= folded >> 256
        folded ^= folded >> 128
        folded ^= folded >> 64
        folded ^= folded >> 32
        folded ^= folded >> 16
        folded ^= folded >> 8
        return folded & 0xFF
    global _xor_reduce, _frombuffer, _uint64
    if _xor_reduce is None:
        import numpy  # lazily: keeps `import kenning_hil.protocols.frame` light

        _xor_reduce, _frombuffer, _uint64 = numpy.bitwise_xor.reduce, numpy.frombuffer, numpy.uint64
    words = size >> 3
    # XOR 64-bit words in C, then fold the word to a byte
    folded = int(_xor_reduce(_frombuffer(data, _uint64, words)))
    folded ^= folded >> 32
    folded ^= folded >> 16
    folded ^= folded >> 8
    acc = folded & 0xFF
    if size & 7:
        for byte in memoryview(data)[words << 3 :]:
            acc ^= byte
    return acc


def _fold_to_byte(fields: int, payload: bytes | bytearray | memoryview) -> int:
    """The XOR of a frame's header fields (`fields`, already XORed together) and its payload
    bytes, as one byte: what the checksum covers. Encoder and one-step decoder share it; a
    short payload is folded in as one integer (cheaper than `xor_bytes`' call for it)."""
    if payload:
        if len(payload) <= 64:
            fields ^= int.from_bytes(payload, "little")
            fields ^= fields >> 256
            fields ^= fields >> 128
            fields ^= fields >> 64
            fields ^= fields >> 32
        else:
            fields ^= xor_bytes(payload)
    fields ^= fields >> 16
    fields ^= fields >> 8
    return fields & 0xFF


def pack_header(
    message_type: int, flow_control: int, checksum: int, flags: int, size: int
) -> bytes:
    """Packs raw header fields, unchecked beyond their widths (for tests and fuzzing too)."""
    return _HEADER.pack(
        message_type & 0xFFFFFFFF,
        ((message_type >> 32) & 0x3F) | ((flow_control & 0x3) << 6),
        checksum & 0xFF,
        flags & 0xFFFF,
        size & 0xFFFFFFFF,
    )


def encode_frame(
    message_type: int,
    flow_control: int,
    flags: int,
    payload: bytes = b"",
    *,
    count: int = 0,
    compute_checksum: bool = True,
    header: HeaderLayout | str = HeaderLayout.V3,
) -> bytes:
    """Encodes one frame. HAS_PAYLOAD is set exactly when `payload` is non-empty; without a
    payload the size field carries `count` (ACKNOWLEDGE / REQUEST_RETRANSMIT use it).
    `header` picks the layout (v3 unless said)."""
    if header == "v2":
        return _encode_frame_v2(message_type, flow_control, flags, payload, count,
                                compute_checksum)
    if not 0 <= message_type <= _TYPE_MASK:
        raise ValueError(f"message type {message_type} does not fit in 38 bits")
    if payload:
        flags = (flags | _HAS_PAYLOAD) & 0xFFFF
        size = len(payload)
    else:
        flags = flags & ~_HAS_PAYLOAD & 0xFFFF
        size = count & 0xFFFFFFFF
    low = message_type & 0xFFFFFFFF
    high = ((message_type >> 32) & 0x3F) | ((flow_control & 0x3) << 6)
    checksum = 0
    if compute_checksum:
        # the header's bytes XORed from its fields (XOR is linear: fold once), no packing twice
        checksum = CHECKSUM_MAGIC ^ _fold_to_byte(low ^ size ^ flags ^ high, payload)
    header = _HEADER.pack(low, high, checksum, flags, size)
    return header + payload if payload else header


def _encode_frame_v2(
    message_type: int, flow_control: int, flags: int, payload: bytes, count: int,
    compute_checksum: bool,
) -> bytes:
    ident = v3_type_to_v2(message_type) | ((flow_control & 0x3) << 6)
    if payload:
        flags = (flags | _HAS_PAYLOAD) & 0xFFFF
        size = len(payload)
    else:
        flags = flags & ~_HAS_PAYLOAD & 0xFFFF
        size = count & 0xFFFFFFFF
    checksum = 0
    if compute_checksum:
        folded = ident ^ flags ^ size
        folded ^= folded >> 16
        folded ^= folded >> 8
        checksum = CHECKSUM_MAGIC ^ (folded & 0xFF)
        if payload:
            checksum ^= xor_bytes(payload)
    head = _V2_HEADER.pack(ident, checksum, flags, size)
    return head + payload if payload else head


def _plausible_header(data, layout: HeaderLayout, max_frame_size: int) -> str | None:
    """What the bytes at the start of `data` are as a `layout` frame ("PING TRANSMISSION,
    flags 0x0061, 0 payload bytes"), when they make a convincing one: a known message type,
    no reserved flag bits, a size that fits, and a checksum that verifies (or a 0x00 "not
    computed" one on an otherwise exact frame). None otherwise."""
    size_h = layout.size
    if len(data) < size_h:
        return None
    if layout is HeaderLayout.V2:
        ident, csum, flags, size = _unpack_v2_header(data, 0)
        mtype, flow, folded = _V2_TO_V3[ident & 0x3F], ident >> 6, ident ^ csum ^ flags ^ size
    else:
        low, high, csum, flags, size = _unpack_header(data, 0)
        mtype, flow = low | ((high & 0x3F) << 32), high >> 6
        folded = low ^ high ^ csum ^ flags ^ size
    if mtype > _LAST_KNOWN_TYPE or flags & _RESERVED_FLAGS:
        return None
    length = size_h + (size if flags & _HAS_PAYLOAD else 0)
    if length > max(max_frame_size, size_h + 1) or len(data) < length:
        return None
    if not flags & _HAS_PAYLOAD and size and flow in (_REQUEST, _TRANSMISSION):
        return None  # only acknowledgements and retransmission requests carry a count
    if csum == 0:
        if len(data) != length:
            return None
    else:
        folded ^= folded >> 16
        folded ^= folded >> 8
        if size_h < length:
            folded ^= xor_bytes(memoryview(data)[size_h:length])
        if folded & 0xFF != CHECKSUM_MAGIC:
            return None
    return (f"{message_type_name(mtype)} {_flow_name(flow)}, flags 0x{flags:04X}, "
            f"{length - size_h} payload bytes")


def layout_hint(data, layout: HeaderLayout | str, max_frame_size: int = TCP_MAX_FRAME_SIZE
                ) -> str:
    """For bytes that are no valid frame in `layout`: "; they look like a v2 (8-byte
    header) frame: ... (set the target's protocol `header: v2`)" when they make one in the
    other layout, else empty."""
    other = HeaderLayout.V2 if HeaderLayout(layout) is HeaderLayout.V3 else HeaderLayout.V3
    what = _plausible_header(data, other, max_frame_size)
    if what is None:
        return ""
    return (f"; these bytes look like a frame in the {other.describe()} layout ({what}), not "
            f"{HeaderLayout(layout).describe()}: set the target's protocol `header: "
            f"{other.value}` (kenning-hil serve --header {other.value})")


class Frame(Message):
    """One decoded frame. `size_field` is the raw size field (the count for payload-less
    ACKNOWLEDGE / REQUEST_RETRANSMIT frames). A frame that holds a whole message (FIRST and
    LAST) is handed on as that message, without copying it into a new object."""

    __slots__ = ("checksum", "size_field")

    def __init__(
        self,
        message_type: int,
        flow_control: int,
        flags: int,
        payload: bytes = b"",
        checksum: int = 0,
        size_field: int = 0,
    ):
        self.message_type = message_type
        self.flow_control = flow_control
        self.flags = flags
        self.payload = payload
        self.checksum = checksum
        self.size_field = size_field

    def encode(self, compute_checksum: bool = True) -> bytes:
        return encode_frame(
            self.message_type,
            self.flow_control,
            self.flags,
            self.payload,
            count=self.size_field if not self.payload else 0,
            compute_checksum=compute_checksum,
        )

    _FIELDS = ("message_type", "flow_control", "flags", "payload", "checksum", "size_field")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._FIELDS)

    __hash__ = None  # mutable, compared by value

    def __repr__(self) -> str:
        return (
            f"Frame({message_type_name(self.message_type)}, {_flow_name(self.flow_control)}, "
            f"flags=0x{self.flags:04X}, payload={len(self.payload)} bytes, "
            f"checksum=0x{self.checksum:02X})"
        )


class FrameError:
    """A decoding problem the receiver should answer (FAIL or REQUEST_RETRANSMIT).

    `kind` is ``garbage`` (bytes that cannot start a header: a message type beyond
    `MAX_PLAUSIBLE_TYPE`), ``checksum`` (a complete frame whose checksum does not match),
    ``oversized`` (a header declaring more payload than the limit), ``stalled`` (a partial
    frame that stopped arriving) or ``layout`` (a whole frame in the other header layout).
    A `detail` ends by naming the other layout when the bad bytes make a frame in it.
    `message_type`/`flow_control` come from the offending header.
    """

    __slots__ = ("kind", "message_type", "flow_control", "detail", "other_layout")

    def __init__(self, kind: str, message_type: int, flow_control: int, detail: str,
                 other_layout: bool = False):
        self.kind = kind
        self.message_type = message_type
        self.flow_control = flow_control
        self.detail = detail
        self.other_layout = other_layout  # the bytes make a frame in the other header layout

    def __repr__(self) -> str:
        return f"FrameError({self.kind}: {self.detail})"


def _flow_name(flow_control: int) -> str:
    try:
        return FlowControl(flow_control).name
    except ValueError:
        return str(flow_control)


def _parse_header(
    data, offset: int, header: HeaderLayout = HeaderLayout.V3
) -> tuple[int, int, int, int, int]:
    """(message_type, flow_control, checksum, flags, size_field) of the header at `offset`
    (the type in v3 numbers whatever the layout)."""
    if header is HeaderLayout.V2:
        ident, checksum, flags, size = _unpack_v2_header(data, offset)
        return _V2_TO_V3[ident & 0x3F], ident >> 6, checksum, flags, size
    low, high, checksum, flags, size = _HEADER.unpack_from(data, offset)
    return low | ((high & 0x3F) << 32), high >> 6, checksum, flags, size


def decode_frame(
    data: bytes, checksum: ChecksumPolicy = ChecksumPolicy.VERIFY,
    max_frame_size: int | None = None, header: HeaderLayout | str = HeaderLayout.V3,
) -> Frame:
    """Decodes `data` as exactly one frame; raises FrameFormatError naming what is wrong
    (and, when the bytes make a frame in the other header layout, saying so)."""
    layout = HeaderLayout(header)
    size_h = layout.size
    try:
        if len(data) < size_h:
            raise FrameFormatError(f"frame needs at least {size_h} bytes, got {len(data)}")
        mtype, flow, csum, flags, size = _parse_header(data, 0, layout)
        length = size_h + (size if flags & _HAS_PAYLOAD else 0)
        if max_frame_size is not None and length > max_frame_size:
            raise FrameFormatError(
                f"frame of {length} bytes exceeds the limit of {max_frame_size}")
        if len(data) != length:
            raise FrameFormatError(
                f"header declares a {length}-byte frame, got {len(data)} bytes")
        if checksum is ChecksumPolicy.VERIFY and csum != 0 and xor_bytes(data) != CHECKSUM_MAGIC:
            raise FrameFormatError(f"checksum mismatch in {message_type_name(mtype)} frame")
    except FrameFormatError as exc:
        hint = layout_hint(data, layout, max_frame_size or TCP_MAX_FRAME_SIZE)
        if hint:
            raise FrameFormatError(f"{exc}{hint}") from None
        raise
    return Frame(mtype, flow, flags, bytes(data[size_h:]), csum, size)


def decode_whole_message(
    data: bytes, verify: bool, max_frame_size: int, max_message_size: int,
    trust_zero_checksum: bool = True,
) -> Frame | None:
    """The fast path's decoder (`MessageChannel.take`): `data`, one read from a quiet v3
    connection, as the one frame it holds when that frame is a whole message (FIRST and
    LAST) within the limits and, when `verify`, with a checksum that verifies or is 0x00
    (when `trust_zero_checksum`).
    Gives exactly what `FrameDecoder` and `MessageAssembler` would give for the same bytes;
    None for anything else (a partial frame, several frames, a chunk, garbage, a bad
    checksum), which the caller hands to them instead."""
    length = len(data)
    if length < HEADER_SIZE or length > max_frame_size:
        return None
    low, high, csum, flags, size = _unpack_header(data, 0)
    if (flags & _FIRST_LAST != _FIRST_LAST or high & 0x3F or low > MAX_PLAUSIBLE_TYPE
            or flags & _RESERVED_FLAGS):
        return None
    if flags & _HAS_PAYLOAD:
        if length != HEADER_SIZE + size or size > max_message_size:
            return None
        payload = data[HEADER_SIZE:]
    elif length == HEADER_SIZE and (not size or high & 0xC0):  # a sized REQUEST: not a header
        payload = b""
    else:
        return None
    if verify and (csum or not trust_zero_checksum):
        if _fold_to_byte(low ^ size ^ flags ^ high ^ csum, payload) != CHECKSUM_MAGIC:
            return None
    return Frame(low, high >> 6, flags, payload, csum, size)


class FrameDecoder:
    """Streaming decoder: `feed` bytes as they arrive, `next` returns frames one by one.

    Robustness rules (PROTOCOL.md, "Where we must be better than Kenning"):

    - a header declaring a frame longer than `max_frame_size` is never waited for;
    - after an implausible or oversized header or a checksum mismatch the decoder drops one
      byte and scans on until a header (and, when verifying, its checksum, zero included)
      parses: it resynchronises instead of hanging or trusting a corrupt length;
    - a header no sender writes is skipped like that, silently (as the firmware's decoder
      does): reserved flag bits 8-11 set, a payload-less REQUEST with a size, and, where a
      0x00 checksum is not trusted, 12 zero bytes. The XOR checksum cannot tell a frame
      shifted by stray zero bytes (the tail of a burst, a byte of a cut frame): 1 zero
      before a connect PING read as a disconnect PING (its checksum byte lands in the
      flags), 2-6 as PINGs with a size, 7-11 as an all-zero PING;
    - `trust_zero_checksum` (TCP, where Kenning's host and server send 0x00): a 0x00
      checksum means "not computed" outside resynchronisation. Over a serial line every host
      computes it, and the zeros of a shifted message id are the commonest false header;
    - one `FrameError` is reported per resynchronisation episode (not one per dropped byte),
      so a burst of line noise produces a single answer;
    - a partial frame that stops arriving is dropped by `resync_stalled` (the caller decides
      how long "stopped" is).
    """

    def __init__(
        self,
        max_frame_size: int = TCP_MAX_FRAME_SIZE,
        checksum: ChecksumPolicy | str = ChecksumPolicy.VERIFY,
        header: HeaderLayout | str = HeaderLayout.V3,
        trust_zero_checksum: bool = True,
    ):
        self.header = HeaderLayout(header)
        self.header_size = self.header.size
        self._v2 = self.header is HeaderLayout.V2
        self.trust_zero_checksum = trust_zero_checksum
        if max_frame_size < self.header_size:
            raise ValueError(f"max_frame_size must be at least {self.header_size}")
        self.max_frame_size = max_frame_size
        self.checksum = ChecksumPolicy(checksum)
        self._verify = self.checksum is ChecksumPolicy.VERIFY
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._resyncing = False
        self._flushing = False  # resync_stalled: decide on the bytes there are
        self.frames = 0  # frames decoded
        self.errors = 0  # FrameErrors reported
        self.dropped_bytes = 0  # bytes skipped while resynchronising
        self.fed = 0  # bytes fed in all: `fed - pending` is the stream offset of what waits

    @property
    def pending(self) -> int:
        """Bytes received but not yet decoded (a partial frame, usually)."""
        return len(self._buf) - self._pos

    @property
    def resyncing(self) -> bool:
        """Whether the decoder is skipping bytes after an error (a header there must prove
        itself by its checksum, 0x00 included, until one decodes)."""
        return self._resyncing

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        self.fed += len(data)
        if self._pos >= len(self._buf):
            # the common case: previous data fully consumed, keep the new chunk without copying
            self._buf = data if isinstance(data, bytes) else bytes(data)
            self._pos = 0
            return
        if not isinstance(self._buf, bytearray):
            self._buf = bytearray(memoryview(self._buf)[self._pos :])
        elif self._pos:
            del self._buf[: self._pos]
        self._pos = 0
        self._buf += data

    def next(self) -> Frame | FrameError | None:
        """The next frame or error, or None when more bytes are needed."""
        buf = self._buf
        size_h = self.header_size
        while True:
            pos = self._pos
            available = len(buf) - pos
            if available < size_h:
                return None
            if self._v2:
                high, csum, flags, size = _unpack_v2_header(buf, pos)
                low = 0
                mtype = _V2_TO_V3[high & 0x3F]
                if csum == 0 and not flags:
                    # maybe the zero bytes of a v3 message id: decide on 12 bytes, or on
                    # the 8 there are once the line went quiet
                    if available < HEADER_SIZE and not self._flushing:
                        return None
                    error = self._v3_frame_in_v2(buf, pos)
                    if error is not None:
                        return error
            else:
                low, high, csum, flags, size = _unpack_header(buf, pos)
                mtype = low | ((high & 0x3F) << 32)
            flow = high >> 6
            if mtype > MAX_PLAUSIBLE_TYPE:
                error = self._skip_byte(
                    "garbage", mtype, flow, "bytes that do not start a frame header"
                )
                if error is not None:
                    return error
                continue
            if flags & _RESERVED_FLAGS or not flags & _HAS_PAYLOAD and (
                (size and flow == _REQUEST)
                or not (self.trust_zero_checksum or csum or mtype or flags or size or flow)
            ):
                # a header no sender writes (the class docstring): stray zeros shifted a
                # frame; no error, as for the idle line they are
                self._pos += 1
                self.dropped_bytes += 1
                continue
            length = size_h + (size if flags & _HAS_PAYLOAD else 0)
            if length > self.max_frame_size:
                error = self._skip_byte(
                    "oversized",
                    mtype,
                    flow,
                    f"{message_type_name(mtype)} frame declares {length} bytes, "
                    f"limit is {self.max_frame_size}",
                )
                if error is not None:
                    return error
                continue
            if available < length:
                return None
            end = pos + length
            if length > size_h:
                if pos == 0 and end == len(buf) and isinstance(buf, bytes):
                    payload = buf[size_h:]
                else:
                    with memoryview(buf) as view:
                        payload = bytes(view[pos + size_h : end])
            else:
                payload = b""
            # while resynchronising a zero checksum proves nothing (the zeros of a message id
            # shifted by a byte look like one), so it must verify like any other value
            if self._verify and (csum != 0 or self._resyncing or not self.trust_zero_checksum):
                # the header's bytes XORed from its fields (XOR is linear: fold once)
                folded = low ^ size ^ flags ^ high ^ csum
                folded ^= folded >> 16
                folded ^= folded >> 8
                if payload:
                    if len(payload) < _SMALL_XOR:  # status bytes, short outputs: no call
                        for byte in payload:
                            folded ^= byte
                    else:
                        folded ^= xor_bytes(payload)
                if folded & 0xFF != CHECKSUM_MAGIC:
                    error = self._skip_byte(
                        "checksum",
                        mtype,
                        flow,
                        f"checksum mismatch in {message_type_name(mtype)} frame "
                        f"({length} bytes)",
                    )
                    if error is not None:
                        return error
                    continue
            self._pos = end
            self._resyncing = False
            self.frames += 1
            return Frame(mtype, flow, flags, payload, csum, size)

    def _skip_byte(self, kind: str, mtype: int, flow: int, detail: str) -> FrameError | None:
        """Drops the first buffered byte; reports the error if it starts an episode (saying
        so when the bytes make a frame in the other header layout)."""
        hint = ""
        if not self._resyncing:
            with memoryview(self._buf) as view:
                hint = layout_hint(view[self._pos :], self.header, self.max_frame_size)
        self._pos += 1
        self.dropped_bytes += 1
        if self._resyncing:
            return None
        self._resyncing = True
        self.errors += 1
        return FrameError(kind, mtype, flow, detail + hint, bool(hint))

    def _v3_frame_in_v2(self, buf, pos: int) -> FrameError | None:
        """A v2 header with a 0x00 ("not computed") checksum and no flags that is really the
        start of a whole v3 frame whose checksum verifies: skips that frame and reports it
        (a v2 receiver would take it for a payload-less frame and the rest for garbage)."""
        if len(buf) - pos < HEADER_SIZE or buf[pos + CHECKSUM_OFFSET] == 0:
            return None
        with memoryview(buf) as view:
            what = _plausible_header(view[pos : pos + self.max_frame_size], HeaderLayout.V3,
                                     self.max_frame_size)
        if what is None:
            return None
        mtype, flow, _, flags, size = _parse_header(buf, pos)
        skipped = HEADER_SIZE + (size if flags & _HAS_PAYLOAD else 0)
        self._pos = pos + skipped
        self.dropped_bytes += skipped
        self.errors += 1
        return FrameError(
            "layout", mtype, flow,
            f"a frame in the {HeaderLayout.V3.describe()} layout ({what}), not "
            f"{HeaderLayout.V2.describe()}: set the target's protocol `header: v3` "
            f"(kenning-hil serve --header v3)", True)

    def pending_layout_hint(self) -> str:
        """`layout_hint` of the bytes received but not decoded (empty when none)."""
        if not self.pending:
            return ""
        with memoryview(self._buf) as view:
            return layout_hint(view[self._pos :], self.header, self.max_frame_size)

    def drop_stalled(self) -> FrameError | None:
        """Gives up on a partial frame that stopped arriving: drops one byte and lets `next`
        rescan the rest (a complete frame may sit behind a truncated one). Returns the error
        to report, or None when nothing was pending or the episode was already reported."""
        if self.pending == 0:
            return None
        if self.pending < self.header_size and not any(memoryview(self._buf)[self._pos :]):
            # a partial header of zeros says nothing: stray zeros, dropped as the line noise
            # they are, without an error to answer
            self.dropped_bytes += self.pending
            self._pos = len(self._buf)
            return None
        mtype = flow = 0
        if self.pending >= self.header_size:
            mtype, flow, _, _, _ = _parse_header(self._buf, self._pos, self.header)
        return self._skip_byte(
            "stalled",
            mtype,
            flow,
            f"incomplete frame: {self.pending} bytes received, then nothing",
        )

    def resync_stalled(self) -> list[Frame | FrameError]:
        """Called when buffered bytes stopped arriving: drops what cannot complete a frame,
        byte by byte, and returns the error to report (once) plus any frames found behind it.
        Leaves the buffer empty."""
        events: list[Frame | FrameError] = []
        self._flushing = True
        try:
            while self.pending:
                event = self.next()
                if event is None:
                    event = self.drop_stalled()
                if event is not None:
                    events.append(event)
        finally:
            self._flushing = False
        # the line went quiet, so whatever comes next starts on a frame boundary
        self._resyncing = False
        return events

    def reset(self) -> None:
        """Forgets buffered bytes (e.g. on a new connection)."""
        self._buf = b""
        self._pos = 0
        self._resyncing = False
