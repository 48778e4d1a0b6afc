"""Chunking: FIRST/LAST framing, reassembly, limits, interleaving and discard rules."""

import pytest

from kenning_hil.core.protocol import Flag, FlowControl, Message, MessageType
from kenning_hil.protocols.chunking import AssemblyError, MessageAssembler, encode_message
from kenning_hil.protocols.frame import UART_MAX_FRAME_SIZE, FrameDecoder, decode_frame


def frames_of(message, max_frame_size=UART_MAX_FRAME_SIZE):
    return [decode_frame(f) for f in encode_message(message, max_frame_size)]


def test_five_chunk_message_reassembles():
    payload = bytes(range(256)) * 2 + b"tail"  # 516 bytes -> 124 * 4 + 20: five chunks
    message = Message(MessageType.MODEL, payload, int(Flag.IS_HOST_MESSAGE), FlowControl.REQUEST)
    frames = frames_of(message)
    assert len(frames) == 5
    assert [f.flags & (Flag.FIRST | Flag.LAST) for f in frames] == [
        Flag.FIRST, 0, 0, 0, Flag.LAST
    ]
    assert all(len(f.payload) == 124 for f in frames[:4]) and len(frames[4].payload) == 20
    assert all(f.message_type == MessageType.MODEL and f.flow_control == 0 for f in frames)
    assert all(f.flags & Flag.IS_HOST_MESSAGE for f in frames)
    assembler = MessageAssembler(max_message_size=1 << 20)
    results = [assembler.add(f) for f in frames]
    assert results[:4] == [None] * 4
    assert results[4].payload == payload
    assert results[4].message_type == MessageType.MODEL
    assert results[4].flow_control == FlowControl.REQUEST


def test_single_frame_has_first_and_last():
    (frame,) = frames_of(Message(MessageType.PROCESS, b"", 0, FlowControl.REQUEST))
    assert frame.flags & Flag.FIRST and frame.flags & Flag.LAST
    (frame,) = frames_of(Message(MessageType.DATA, b"x" * 124, 0, FlowControl.REQUEST))
    assert frame.flags & Flag.FIRST and frame.flags & Flag.LAST


def test_exact_multiple_of_chunk_size():
    frames = frames_of(Message(MessageType.DATA, b"y" * 248, 0, FlowControl.REQUEST))
    assert len(frames) == 2 and frames[1].flags & Flag.LAST and len(frames[1].payload) == 124


def test_logs_may_interleave_with_an_answer():
    answer = frames_of(Message(MessageType.OUTPUT, b"o" * 300, int(Flag.SUCCESS)))
    (logs,) = frames_of(Message(MessageType.LOGS, b"booting", 0))
    assembler = MessageAssembler(1 << 20)
    got = [assembler.add(f) for f in [answer[0], logs, answer[1], answer[2]]]
    assert got[1].message_type == MessageType.LOGS and got[1].payload == b"booting"
    assert got[3].payload == b"o" * 300 and got[3].success


def test_orphan_continuation_is_an_error_unless_discarding():
    frames = frames_of(Message(MessageType.MODEL, b"m" * 400, 0, FlowControl.REQUEST))
    assembler = MessageAssembler(1 << 20)
    with pytest.raises(AssemblyError, match="without a FIRST frame"):
        assembler.add(frames[1])
    assembler.discard_partial()
    assert assembler.add(frames[2]) is None  # dropped silently after a corrupt chunk
    # the retransmission starts with FIRST and completes normally
    results = [assembler.add(f) for f in frames]
    assert results[-1].payload == b"m" * 400


def test_message_size_limit_stops_assembly():
    frames = frames_of(Message(MessageType.MODEL, b"m" * 1000, 0, FlowControl.REQUEST))
    assembler = MessageAssembler(max_message_size=300)
    assembler.add(frames[0])
    assembler.add(frames[1])
    with pytest.raises(AssemblyError, match="exceeds the limit of 300 bytes"):
        assembler.add(frames[2])
    # the rest of the oversized message is dropped, not reported chunk by chunk
    assert [assembler.add(f) for f in frames[3:]] == [None] * (len(frames) - 3)
    assert assembler.open_bytes == 0


def test_acknowledge_is_always_a_single_frame():
    (frame,) = frames_of(Message(MessageType.DATA, b"", int(Flag.FAIL), FlowControl.ACKNOWLEDGE))
    assembler = MessageAssembler(100)
    frame.flags &= ~(Flag.FIRST | Flag.LAST)
    message = assembler.add(frame)
    assert message.flow_control == FlowControl.ACKNOWLEDGE and message.failed


def test_large_message_through_decoder_and_assembler():
    payload = bytes(range(256)) * 4096  # 1 MiB: several 64 KiB frames
    encoded = b"".join(encode_message(Message(MessageType.MODEL, payload), 1 << 16))
    decoder = FrameDecoder(1 << 16)
    assembler = MessageAssembler(2 << 20)
    message = None
    for offset in range(0, len(encoded), 50_000):
        decoder.feed(encoded[offset : offset + 50_000])
        while (frame := decoder.next()) is not None:
            message = assembler.add(frame) or message
    assert message is not None and message.payload == payload
