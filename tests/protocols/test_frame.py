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
    st.integers(0, 0xFFFF),
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
