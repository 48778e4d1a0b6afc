"""The steady-state fast path (#16 finding 7): a read that is one whole frame is decoded in
one step (`decode_whole_message`, the constant frames of every inference looked up), exactly
as the streaming decoder and the assembler decode it, and anything else falls back to them.

Checked three ways: the one-step decoder against the streaming one on valid, mutated and
concatenated frames; a live session (real server process, real sockets) whose decoders never
see a frame, since every read was whole; and answers cut into pieces, preceded by LOGS or
corrupt, which must take the general path and still work.
"""

from __future__ import annotations

import socket
import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from kenning_hil.core.protocol import STATUS_ACTIONS, Flag, FlowControl, Message, MessageType
from kenning_hil.protocols.bytes_protocol import NetworkProtocol
from kenning_hil.protocols.channel import CONSTANT_FRAMES, MessageChannel
from kenning_hil.protocols.chunking import AssemblyError, MessageAssembler, encode_message
from kenning_hil.protocols.frame import (
    ChecksumPolicy,
    Frame,
    FrameDecoder,
    decode_whole_message,
    encode_frame,
)
from kenning_hil.protocols.tcp import TCPConnection

from .conftest import ECHO_INPUT, ECHO_OUTPUT, ECHO_SPEC

WHOLE = int(Flag.FIRST | Flag.LAST)
HOST = int(Flag.IS_HOST_MESSAGE)
KENNING_OK = int(Flag.SUCCESS | Flag.IS_KENNING)


def test_xor_bytes_agrees_with_a_plain_loop_at_every_length():
    from kenning_hil.protocols.frame import xor_bytes

    data = bytes((i * 37 + 11) & 0xFF for i in range(700))
    expected = 0
    for size in range(len(data) + 1):
        assert xor_bytes(data[:size]) == expected, size
        assert xor_bytes(memoryview(data)[:size]) == expected, size
        if size < len(data):
            expected ^= data[size]


def streaming_decode(data: bytes, verify: bool, max_frame: int, max_message: int,
                     trust_zero: bool = True):
    """What the general path makes of `data`: the decoder's events, then the assembler's."""
    decoder = FrameDecoder(max_frame, ChecksumPolicy.VERIFY if verify else ChecksumPolicy.IGNORE,
                           trust_zero_checksum=trust_zero)
    decoder.feed(data)
    events = []
    while (event := decoder.next()) is not None:
        events.append(event)
    messages = []
    assembler = MessageAssembler(max_message)
    for event in events:
        if type(event) is Frame:
            try:
                messages.append(assembler.add(event))
            except AssemblyError as exc:
                messages.append(exc)
    return events, decoder.pending, messages


frame_specs = st.tuples(
    st.integers(0, 15),  # message type (beyond LOGS too: unknown types decode)
    st.sampled_from(list(FlowControl)),
    st.integers(0, 0xFFFF),  # flags, FIRST and LAST among them or not
    st.binary(max_size=300),
    st.booleans(),  # checksum computed or 0x00
)


@st.composite
def reads(draw) -> tuple[bytes, bool]:
    """A read as it may come off a connection: a frame, mutated, cut, or several; and
    whether it is a single, intact frame."""
    mtype, flow, flags, payload, checksum = draw(frame_specs)
    count = draw(st.sampled_from([0, 0, 1, 0xFFFFFFFF]))  # the size field of a payload-less one
    wire = encode_frame(mtype, int(flow), flags, payload, count=count, compute_checksum=checksum)
    change = draw(st.sampled_from(["none", "none", "flip", "cut", "append", "second frame"]))
    if change == "flip":
        data = bytearray(wire)
        data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        return bytes(data), False
    if change == "cut":
        return wire[: draw(st.integers(0, len(wire) - 1))], False
    if change == "append":
        return wire + draw(st.binary(min_size=1, max_size=20)), False
    if change == "second frame":
        return wire + encode_frame(MessageType.LOGS, FlowControl.TRANSMISSION, WHOLE, b"x"), False
    return wire, True


@settings(max_examples=600, deadline=None)
@given(reads(), st.booleans(), st.sampled_from([136, 400, 1 << 20]),
       st.sampled_from([0, 64, 1 << 20]), st.booleans())
def test_one_step_decoding_is_the_streaming_decoding(read, verify, max_frame, max_message,
                                                     trust_zero):
    # trust_zero: a 0x00 checksum means "not computed" (TCP) or is verified (serial line)
    data, intact = read
    fast = decode_whole_message(data, verify, max_frame, max_message, trust_zero)
    events, pending, messages = streaming_decode(data, verify, max_frame, max_message,
                                                 trust_zero)
    if fast is not None:
        # taken only where the general path gives this very frame as a whole message
        assert events == [fast] and pending == 0
        assert messages == [fast] and messages[0] is events[0]
    elif intact and pending == 0 and len(events) == 1 and type(events[0]) is Frame:
        # an intact whole message within the limits is never left to the slow path
        frame = events[0]
        whole = frame.flags & WHOLE == WHOLE
        assert not (whole and len(frame.payload) <= max_message), f"fast path missed {frame!r}"


def test_constant_frames_are_what_our_host_and_server_send():
    # the host's payload-less requests (as its channel encodes them) and the server's status
    # answers: the steady state's frames are looked up, not decoded
    for mtype in (MessageType.PROCESS, MessageType.OUTPUT, MessageType.STATS):
        (wire,) = encode_message(Message(int(mtype), b"", HOST, FlowControl.REQUEST), 1 << 20)
        assert CONSTANT_FRAMES[wire] == decode_whole_message(wire, True, 1 << 20, 1)
    for mtype, action in STATUS_ACTIONS.items():
        (wire,) = encode_message(Message(int(mtype), bytes((int(action),)), KENNING_OK), 136)
        assert CONSTANT_FRAMES[wire] == decode_whole_message(wire, True, 136, 1)


def test_a_live_session_is_decoded_in_one_step_on_both_sides():
    """An in-process echo server (a thread) and our host over loopback TCP: io spec, model
    and 20 inferences, every read one whole frame, so neither side's streaming decoder sees a
    frame (it would, were the fast path not taken), and the outputs are right."""
    from kenning_hil.runtimes.echo import EchoRuntime

    server = NetworkProtocol(host="127.0.0.1", port=0)
    runtime = EchoRuntime(protocol=server, disable_performance_measurements=True)
    runtime.prepare_server()
    thread = threading.Thread(target=runtime.run_server, daemon=True)
    thread.start()
    client = NetworkProtocol(host="127.0.0.1", port=server.port)
    try:
        client.initialize_client()
        assert client.upload_io_specification_dict(ECHO_SPEC)
        assert client.upload_model_bytes(b"model")
        for _ in range(20):
            assert client.upload_input(ECHO_INPUT) and client.request_processing()
            assert client.download_output() == (True, ECHO_OUTPUT)
        served = server.channel
        assert served is not None
        assert client.channel.decoder.frames == 0 and served.decoder.frames == 0
        assert client.channel.decoder.pending == 0 and served.decoder.pending == 0
    finally:
        client.disconnect()
        runtime.close_server()
        thread.join(5)
    assert not thread.is_alive()


class PieceTarget:
    """A TCP target that answers each request with bytes the test chose, sent in pieces
    with pauses between them (so that each piece is a read of its own)."""

    def __init__(self, answers: list[list[bytes]]):
        self.answers = answers
        self.requests: list[Message] = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sendall(b"\x00")
        decoder, assembler = FrameDecoder(), MessageAssembler(1 << 20)
        answers = iter(self.answers)
        with conn:
            while (data := conn.recv(65536)):
                decoder.feed(data)
                while (frame := decoder.next()) is not None:
                    message = assembler.add(frame)
                    if message is None:
                        continue
                    self.requests.append(message)
                    for piece in next(answers, []):
                        conn.sendall(piece)
                        time.sleep(0.05)

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


def ok(mtype: int, payload: bytes) -> bytes:
    return encode_frame(mtype, FlowControl.TRANSMISSION, KENNING_OK | WHOLE, payload)


def test_answers_that_are_no_single_whole_frame_take_the_general_path():
    data_ok = ok(MessageType.DATA, bytes((int(STATUS_ACTIONS[MessageType.DATA]),)))
    process_ok = ok(MessageType.PROCESS, bytes((int(STATUS_ACTIONS[MessageType.PROCESS]),)))
    output = ok(MessageType.OUTPUT, b"\x01\x02\x03\x04")
    logs = encode_frame(MessageType.LOGS, FlowControl.TRANSMISSION, WHOLE, b"working on it")
    corrupt = bytearray(output)
    corrupt[-1] ^= 0x40
    target = PieceTarget([
        [data_ok[:5], data_ok[5:]],  # cut inside the header
        [logs + process_ok],  # a LOGS frame and the answer in one read
        [bytes(corrupt)],  # a corrupt answer: asked for again
        [output[:-1], output[-1:]],  # the retransmission, cut before its last byte
    ])
    client = NetworkProtocol(host="127.0.0.1", port=target.port, timeout=5.0)
    try:
        client.initialize_client()
        assert client.upload_input(b"\x00" * 64)
        assert client.request_processing()
        assert list(client.target_logs) == ["working on it"]
        assert client.download_output() == (True, b"\x01\x02\x03\x04")
        # the corrupt OUTPUT answer was asked for again as a whole transmission
        kinds = [(m.message_type, m.flow_control) for m in target.requests]
        assert kinds[-2:] == [(MessageType.OUTPUT, FlowControl.REQUEST),
                              (MessageType.OUTPUT, FlowControl.REQUEST_RETRANSMIT)]
        assert client.channel.quiet  # and the next read starts on a frame boundary again
    finally:
        client.disconnect()
        target.close()


def receive_as_the_server_does(channel: MessageChannel, timeout: float):
    """One `receive_message` step's reading: the fast path when quiet, else `receive`."""
    if channel.quiet:
        data = channel.transport.receive(timeout)
        if not data:
            return None
        event = channel.take(data)
        return event if event is not None else channel.receive(timeout)
    return channel.receive(timeout)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(frame_specs, st.booleans()), min_size=1, max_size=12),
       st.lists(st.integers(1, 400), min_size=1, max_size=8), st.binary(max_size=40))
def test_quiet_follows_the_decoder_over_a_real_connection(specs, cuts, garbage):
    """Frames (some chunked, some behind garbage) arrive over loopback TCP in reads cut
    anywhere: after every step `quiet` is what the decoder and assembler say, and without
    garbage the messages are those the streaming decoder and assembler give for the bytes."""
    wires, expected = [], []
    for (mtype, flow, flags, payload, checksum), chunked in specs:
        message = Message(mtype, payload, flags, int(flow))
        frames = list(encode_message(message, 64 if chunked else 1 << 20, checksum))
        wires += frames
    stream = b"".join(wires)
    events, _, messages = streaming_decode(stream, True, 1 << 20, 1 << 20)
    expected = [m for m in messages if isinstance(m, Message)]
    if garbage:
        stream = garbage + stream
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    sender = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    listener.close()
    channel = MessageChannel(TCPConnection(accepted, "tcp://test"), stall_timeout=5.0)
    got = []
    try:
        position = 0
        for cut in cuts * (len(stream) // sum(cuts) + 1):
            if position >= len(stream):
                break
            sender.sendall(stream[position:position + cut])
            position += cut
            time.sleep(0.002)  # most cuts become reads of their own
            while (event := receive_as_the_server_does(channel, 0.01)) is not None:
                got.append(event)
                assert channel.quiet == channel._at_boundary()
            assert channel.quiet == channel._at_boundary()
        while (event := receive_as_the_server_does(channel, 0.1)) is not None:
            got.append(event)
            assert channel.quiet == channel._at_boundary()
    finally:
        sender.close()
        channel.close()
    if not garbage:
        assert [m for m in got if isinstance(m, Message)] == expected
