"""Frame codec: PROTOCOL.md's golden vectors, checksum policy, streaming and resync."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kenning_hil.core.protocol import Flag, FlowControl, MessageType
from kenning_hil.protocols.frame import (
    HEADER_SIZE,
    UART_MAX_FRAME_SIZE,
    ChecksumPolicy,
    Frame,
    FrameDecoder,
    FrameError,
    FrameFormatError,
    decode_frame,
    encode_frame,
    pack_header,
    xor_bytes,
)

CONNECT_FLAGS = Flag.SUCCESS | Flag.FIRST | Flag.LAST

GOLDEN = [
    (
        MessageType.IO_SPEC,
        FlowControl.TRANSMISSION,
        0xE02D,
        bytes([1, 2, 3, 4, 5]),
        bytes.fromhex("07 00 00 00 C0 45 2D E0 05 00 00 00 01 02 03 04 05"),
    ),
    (
        MessageType.OUTPUT,
        FlowControl.TRANSMISSION,
        0x6021,
        b"",
        bytes.fromhex("05 00 00 00 C0 CF 21 60 00 00 00 00"),
    ),
]


@pytest.mark.parametrize("mtype, flow, flags, payload, wire", GOLDEN)
def test_golden_vector_encodes_exactly(mtype, flow, flags, payload, wire):
    assert encode_frame(mtype, flow, flags, payload) == wire


@pytest.mark.parametrize("mtype, flow, flags, payload, wire", GOLDEN)
def test_golden_vector_decodes_exactly(mtype, flow, flags, payload, wire):
    frame = decode_frame(wire)
    assert frame == Frame(mtype, flow, flags, payload, wire[5], len(payload))
    decoder = FrameDecoder()
    decoder.feed(wire)
    assert decoder.next() == frame
    assert decoder.next() is None


def test_checksum_covers_whole_frame():
    wire = GOLDEN[0][4]
    assert xor_bytes(wire) == 0x4B
    # the numpy path of xor_bytes agrees with the plain loop
    data = bytes(range(256)) * 13 + b"\x07\x99"
    expected = 0
    for byte in data:
        expected ^= byte
    assert xor_bytes(data) == expected


def test_has_payload_follows_payload():
    assert decode_frame(encode_frame(MessageType.DATA, 0, Flag.HAS_PAYLOAD)).flags == 0
    assert decode_frame(encode_frame(MessageType.DATA, 0, 0, b"x")).flags == Flag.HAS_PAYLOAD


def test_size_field_is_a_count_without_payload():
    wire = encode_frame(MessageType.MODEL, FlowControl.REQUEST_RETRANSMIT, 0, count=0xFFFFFFFF)
    assert len(wire) == HEADER_SIZE
    frame = decode_frame(wire)
    assert frame.size_field == 0xFFFFFFFF and frame.payload == b""


def test_zero_checksum_means_not_computed():
    wire = encode_frame(MessageType.DATA, 0, 0, b"abc", compute_checksum=False)
    assert wire[5] == 0
    assert decode_frame(wire).payload == b"abc"


def test_checksum_mismatch_is_rejected_unless_ignored():
    wire = bytearray(encode_frame(MessageType.DATA, 0, 0, b"abc"))
    wire[-1] ^= 0x10
    with pytest.raises(FrameFormatError, match="checksum mismatch in DATA"):
        decode_frame(bytes(wire))
    assert decode_frame(bytes(wire), ChecksumPolicy.IGNORE).payload == b"abd"[:2] + bytes(
        [ord("c") ^ 0x10]
    )


def test_decode_frame_names_length_problems():
    wire = encode_frame(MessageType.DATA, 0, 0, b"abcdef")
    with pytest.raises(FrameFormatError, match="at least 12 bytes"):
        decode_frame(wire[:5])
    with pytest.raises(FrameFormatError, match="declares a 18-byte frame, got 17"):
        decode_frame(wire[:-1])
    with pytest.raises(FrameFormatError, match="exceeds the limit of 16"):
        decode_frame(wire, max_frame_size=16)


def test_streaming_byte_by_byte():
    frames = [encode_frame(t, 0, Flag.FIRST | Flag.LAST, bytes([t]) * t) for t in range(8)]
    decoder = FrameDecoder(UART_MAX_FRAME_SIZE)
    got = []
    for byte in b"".join(frames):
        decoder.feed(bytes([byte]))
        while (event := decoder.next()) is not None:
            got.append(event)
    assert [f.encode() for f in got] == frames
    assert decoder.errors == 0 and decoder.pending == 0


def test_resynchronises_after_garbage_and_reports_once():
    good = encode_frame(MessageType.PING, FlowControl.REQUEST, CONNECT_FLAGS)
    decoder = FrameDecoder(UART_MAX_FRAME_SIZE)
    decoder.feed(b"\xff" * 40 + good)
    first = decoder.next()
    assert isinstance(first, FrameError) and first.kind == "garbage"
    assert decoder.next() == decode_frame(good)
    assert decoder.next() is None
    assert decoder.errors == 1 and decoder.dropped_bytes == 40


def test_oversized_header_is_not_waited_for():
    # a header announcing 1000 bytes on a 136-byte link, then a valid frame right behind it
    bad = pack_header(MessageType.MODEL, 0, 0x11, Flag.HAS_PAYLOAD, 1000)
    good = encode_frame(MessageType.STATS, 0, Flag.FIRST | Flag.LAST)
    decoder = FrameDecoder(UART_MAX_FRAME_SIZE)
    decoder.feed(bad + good)
    error = decoder.next()
    assert isinstance(error, FrameError) and error.kind == "oversized"
    assert error.message_type == MessageType.MODEL and "1012 bytes" in error.detail
    assert decoder.next() == decode_frame(good)


def test_checksum_mismatch_then_next_frame():
    bad = bytearray(encode_frame(MessageType.DATA, 0, Flag.FIRST | Flag.LAST, b"payload"))
    bad[13] ^= 1
    good = encode_frame(MessageType.PROCESS, 0, Flag.FIRST | Flag.LAST)
    decoder = FrameDecoder()
    decoder.feed(bytes(bad) + good)
    error = decoder.next()
    assert error.kind == "checksum" and error.message_type == MessageType.DATA
    assert decoder.next() == decode_frame(good)


def test_truncated_frame_then_stall_recovers_frame_behind_it():
    truncated = encode_frame(MessageType.DATA, 0, 0, b"x" * 100)[:30]
    good = encode_frame(MessageType.OUTPUT, 0, Flag.FIRST | Flag.LAST)
    decoder = FrameDecoder(UART_MAX_FRAME_SIZE)
    decoder.feed(truncated + good)
    assert decoder.next() is None  # waiting for the 100-byte payload that never comes
    events = decoder.resync_stalled()
    assert isinstance(events[0], FrameError) and events[0].kind == "stalled"
    assert events[1:] == [decode_frame(good)]
    assert decoder.pending == 0


frame_args = st.tuples(
    st.integers(0, 255),
    st.integers(0, 3),
    # reserved flag bits 8-11: no sender sets them, the decoder skips such a header
    st.integers(0, 0xFFFF).map(lambda flags: flags & ~0x0F00),
    st.binary(max_size=200),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(frame_args, min_size=1, max_size=6), st.data())
def test_any_frames_survive_any_chunking(frames, data):
    wires = [encode_frame(t, fc, fl, p) for t, fc, fl, p in frames]
    stream = b"".join(wires)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = FrameDecoder()
    got = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)]):
        decoder.feed(stream[start:end])
        while (event := decoder.next()) is not None:
            got.append(event)
    assert [f.encode() for f in got] == wires


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(list(ChecksumPolicy)))
def test_garbage_never_breaks_the_decoder(garbage, policy):
    decoder = FrameDecoder(UART_MAX_FRAME_SIZE, policy)
    decoder.feed(garbage)
    for _ in range(len(garbage) + 1):
        if decoder.next() is None:
            break
    else:
        pytest.fail("decoder kept producing events from finite input")
    decoder.resync_stalled()
    assert decoder.pending == 0
    # after the line went quiet, the decoder is back in sync
    good = encode_frame(MessageType.PING, FlowControl.REQUEST, CONNECT_FLAGS)
    decoder.feed(good)
    assert decoder.next() == decode_frame(good)


# --- stray zero bytes on a serial line (#16) -------------------------------------------------
# The XOR checksum matches a frame shifted by zeros: 1 stray 0x00 before a connect PING read as
# a disconnect PING (flags 0x357E: its checksum byte lands in the flags), 2-6 as PINGs with a
# size, 7-11 as an all-zero PING with a 0x00 ("not computed") checksum. A serial line does not
# trust 0x00 (every UART host computes the checksum) and no sender writes reserved flag bits or
# a size on a payload-less REQUEST: such headers are skipped, silently, like the zeros.

OUR_CONNECT = Flag.SUCCESS | Flag.IS_HOST_MESSAGE | Flag.FIRST | Flag.LAST  # 0x35
KENNING_CONNECT = CONNECT_FLAGS  # Kenning's UART host sets no IS_HOST_MESSAGE: 0x31


def serial_decoder() -> FrameDecoder:
    return FrameDecoder(UART_MAX_FRAME_SIZE, trust_zero_checksum=False)


def decode_all(decoder: FrameDecoder, *chunks: bytes, quiet_between: bool = False) -> list:
    events = []
    for chunk in chunks:
        decoder.feed(chunk)
        events += iter(decoder.next, None)
        if quiet_between:
            events += decoder.resync_stalled()
    return events


@pytest.mark.parametrize("flags", [OUR_CONNECT, KENNING_CONNECT])
@pytest.mark.parametrize("quiet_between", [False, True])
def test_stray_zeros_before_a_connect_ping_decode_as_that_ping(flags, quiet_between):
    ping = encode_frame(MessageType.PING, FlowControl.REQUEST, flags)
    for stray in range(1, 12):
        decoder = serial_decoder()
        # in one read, or the zeros first and the line quiet before the PING
        events = decode_all(decoder, bytes(stray), ping, quiet_between=quiet_between)
        assert events == [decode_frame(ping)], f"{stray} stray zeros: {events}"
        assert decoder.pending == 0 and decoder.errors == 0 and decoder.dropped_bytes == stray


def test_zero_checksum_is_verified_on_a_serial_line_and_trusted_over_tcp():
    unchecked = encode_frame(MessageType.DATA, 0, CONNECT_FLAGS, b"abc", compute_checksum=False)
    (error,) = decode_all(serial_decoder(), unchecked)
    assert isinstance(error, FrameError) and error.kind == "checksum"
    tcp = FrameDecoder()  # Kenning's TCP host and server send 0x00
    assert decode_all(tcp, unchecked) == [decode_frame(unchecked)]
    # a checksum that computes to 0x00 is still a good one
    (wire,) = [w for byte in range(256) if (w := encode_frame(
        MessageType.DATA, FlowControl.REQUEST, CONNECT_FLAGS, bytes([byte])))[5] == 0]
    assert decode_all(serial_decoder(), wire) == [decode_frame(wire)]


@pytest.mark.parametrize("trust_zero", [True, False])
def test_headers_no_sender_writes_are_skipped_silently(trust_zero):
    good = encode_frame(MessageType.STATS, FlowControl.REQUEST, CONNECT_FLAGS)
    reserved = encode_frame(MessageType.OUTPUT, FlowControl.REQUEST, CONNECT_FLAGS | 0x0400)
    sized_request = encode_frame(MessageType.PROCESS, FlowControl.REQUEST, CONNECT_FLAGS,
                                 count=1)
    for bad in (reserved, sized_request):
        decoder = FrameDecoder(UART_MAX_FRAME_SIZE, trust_zero_checksum=trust_zero)
        decoder.feed(bad)
        assert decoder.next() is None  # not taken for a frame, and no error for it...
        assert decoder.pending == len(bad) - 1
        # ...its other bytes are then scanned as any garbage would be
        assert decode_all(decoder, good)[-1] == decode_frame(good)
    # a count on a payload-less ACKNOWLEDGE / REQUEST_RETRANSMIT is what the field is for
    for flow in (FlowControl.ACKNOWLEDGE, FlowControl.REQUEST_RETRANSMIT):
        wire = encode_frame(MessageType.MODEL, flow, 0, count=0xFFFFFFFF)
        decoder = FrameDecoder(UART_MAX_FRAME_SIZE, trust_zero_checksum=trust_zero)
        assert decode_all(decoder, wire) == [decode_frame(wire)]


def test_a_partial_header_of_zeros_on_a_quiet_line_is_no_error_and_other_bytes_are():
    decoder = serial_decoder()
    decoder.feed(bytes(5))
    assert decoder.next() is None and decoder.resync_stalled() == []
    decoder.feed(bytes([0, 0, 7, 0, 0]))
    (stalled,) = decoder.resync_stalled()
    assert stalled.kind == "stalled"
