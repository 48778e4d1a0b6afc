"""The v2 (8-byte) header layout of older Kenning targets (#16 finding 8): golden vectors from
Kenning's own history, v2 type numbering, a full session against `serve --header v2`, and the
error that names the layout when a target answers in the other one."""

import pytest

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.core.protocol import Flag, FlowControl, MessageType, ProtocolError
from kenning_hil.protocols.bytes_protocol import NetworkProtocol
from kenning_hil.protocols.chunking import encode_message
from kenning_hil.protocols.frame import (
    ChecksumPolicy,
    Frame,
    FrameDecoder,
    FrameFormatError,
    HeaderLayout,
    decode_frame,
    encode_frame,
    v3_type_to_v2,
)
from tests.protocols.conftest import ECHO_SPEC, run_echo_session, serve_process

# kenning/tests/protocols/test_message.py at antmicro/kenning 734c5fa9 (the 8-byte header,
# before April 2026): the same two messages as PROTOCOL.md's v3 vectors
GOLDEN_V2 = [
    (MessageType.IO_SPEC, FlowControl.TRANSMISSION, 0xE02D, bytes([1, 2, 3, 4, 5]),
     bytes.fromhex("C7 45 2D E0 05 00 00 00 01 02 03 04 05")),
    (MessageType.OUTPUT, FlowControl.TRANSMISSION, 0x6021, b"",
     bytes.fromhex("C5 CF 21 60 00 00 00 00")),
]


@pytest.mark.parametrize("mtype, flow, flags, payload, wire", GOLDEN_V2)
def test_v2_golden_vectors_encode_and_decode_exactly(mtype, flow, flags, payload, wire):
    assert encode_frame(mtype, flow, flags, payload, header="v2") == wire
    frame = decode_frame(wire, header="v2")
    assert frame == Frame(mtype, flow, flags, payload, wire[1], len(payload))
    decoder = FrameDecoder(header="v2")
    for byte in wire:  # one byte at a time, as a serial line delivers them
        assert decoder.next() is None
        decoder.feed(bytes([byte]))
    assert decoder.next() == frame and decoder.next() is None


def test_kenning_v2_vectors_with_damage_are_refused():
    # the same history's corrupt cases: a wrong checksum byte, and a flipped payload bit
    for wire in ("C7 47 2D E0 05 00 00 00 01 02 03 04 05",
                 "C7 45 2D E0 05 00 00 00 01 02 02 04 05"):
        with pytest.raises(FrameFormatError, match="checksum mismatch in IO_SPEC"):
            decode_frame(bytes.fromhex(wire), header="v2")
    frame = decode_frame(bytes.fromhex("C7 47 2D E0 05 00 00 00 01 02 03 04 05"),
                         ChecksumPolicy.IGNORE, header="v2")
    assert frame.payload == bytes([1, 2, 3, 4, 5])


def test_v2_type_numbers_predate_trace_data():
    # v2: ... IO_SPEC 7, OPTIMIZERS 8 ... LOGS 12; v3 inserted TRACE_DATA at 8
    assert v3_type_to_v2(MessageType.IO_SPEC) == 7
    assert v3_type_to_v2(MessageType.OPTIMIZERS) == 8
    assert v3_type_to_v2(MessageType.LOGS) == 12
    logs = encode_frame(MessageType.LOGS, FlowControl.TRANSMISSION, 0, b"hi", header="v2")
    assert logs[0] == 12 | (3 << 6)
    assert decode_frame(logs, header="v2").message_type == MessageType.LOGS
    with pytest.raises(ValueError, match="TRACE_DATA does not exist in the v2"):
        encode_frame(MessageType.TRACE_DATA, FlowControl.REQUEST, 0, header="v2")


def test_v2_chunks_carry_eight_more_payload_bytes_per_frame():
    message_frames = list(encode_message(
        _message(MessageType.MODEL, bytes(300)), 136, header="v2"))
    assert [len(f) for f in message_frames] == [136, 136, 52]  # 128 + 128 + 44 payload
    decoder = FrameDecoder(136, header="v2")
    decoder.feed(b"".join(message_frames))
    assert [len(decoder.next().payload) for _ in message_frames] == [128, 128, 44]


def _message(mtype, payload):
    from kenning_hil.core.protocol import Message

    return Message(mtype, payload, int(Flag.IS_HOST_MESSAGE), FlowControl.REQUEST)


def test_a_v2_answer_to_a_v3_decoder_is_named():
    answer = encode_frame(MessageType.OUTPUT, FlowControl.TRANSMISSION,
                          int(Flag.SUCCESS | Flag.IS_KENNING), bytes(40), header="v2")
    decoder = FrameDecoder()
    decoder.feed(answer)
    error = decoder.next()
    assert error.other_layout
    assert "look like a frame in the v2 (8-byte header) layout (OUTPUT TRANSMISSION" in (
        error.detail)
    assert "header: v2" in error.detail
    # a payload-less one is shorter than a v3 header: named when the line goes quiet
    decoder = FrameDecoder()
    decoder.feed(encode_frame(MessageType.PING, FlowControl.TRANSMISSION, 1, header="v2"))
    assert decoder.next() is None
    assert "v2 (8-byte header) layout (PING TRANSMISSION" in decoder.pending_layout_hint()
    (stalled,) = decoder.resync_stalled()
    assert stalled.kind == "stalled" and stalled.other_layout


def test_a_v3_frame_to_a_v2_decoder_is_named_not_taken_for_a_v2_frame():
    # its message id's zero bytes read as a v2 header with a 0x00 ("not computed") checksum
    wire = encode_frame(MessageType.PING, FlowControl.TRANSMISSION,
                        int(Flag.SUCCESS | Flag.FIRST | Flag.LAST))
    for chunks in ([wire], [wire[:8], wire[8:]]):
        decoder = FrameDecoder(header="v2")
        events = []
        for chunk in chunks:
            decoder.feed(chunk)
            events += iter(decoder.next, None)
        (error,) = events
        assert error.kind == "layout" and error.other_layout
        assert "v3 (12-byte header) layout (PING TRANSMISSION" in error.detail
        assert decoder.pending == 0
    # a genuine checksum-less, flag-less v2 frame still decodes once the line goes quiet
    decoder = FrameDecoder(header="v2")
    decoder.feed(encode_frame(MessageType.PROCESS, FlowControl.REQUEST, 0, header="v2",
                              compute_checksum=False))
    assert decoder.next() is None
    (frame,) = decoder.resync_stalled()
    assert frame.message_type == MessageType.PROCESS


def test_unknown_header_setting_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="header must be v3 or v2, got 'v1'"):
        NetworkProtocol(header="v1")
    assert HeaderLayout("v2").size == 8 and HeaderLayout("v3").size == 12


def _session(port: int, header: str) -> None:
    stats = run_echo_session(
        NetworkProtocol(host="127.0.0.1", port=port, timeout=3.0, header=header), b"-",
        statistics=True)
    assert stats  # STATS: a multi-byte JSON answer


def test_v2_session_against_serve_header_v2_and_mismatches_named(tmp_path):
    with serve_process(tmp_path, "--port", "0", "--header", "v2") as (_, address):
        port = int(address.rsplit(":", 1)[1])
        _session(port, "v2")
        # a v3 host at a v2 server: the server cannot read the request and answers in v2
        with pytest.raises(ProtocolError, match=r"v2 \(8-byte header\) layout"):
            _session(port, "v3")
        _session(port, "v2")  # and it serves the next client as before
    with serve_process(tmp_path, "--port", "0") as (_, address):
        port = int(address.rsplit(":", 1)[1])
        with pytest.raises(ProtocolError, match=r"v3 \(12-byte header\) layout"):
            _session(port, "v2")


def test_v2_session_over_a_serial_line(tmp_path, pty_pair):
    """PING sessions, the packed io spec and 128-byte chunks of a multi-frame model, all in
    v2 frames over a real pty; a v3 host there is told which layout it heard."""
    from kenning_hil.protocols.bytes_protocol import UARTProtocol

    server_end, client_end = pty_pair
    model = bytes(range(256)) * 3  # 6 frames of 128 payload bytes
    with serve_process(tmp_path, "--serial", server_end, "--header", "v2"):
        run_echo_session(UARTProtocol(port=client_end, timeout=5.0, header="v2"), model)
        v3 = UARTProtocol(port=client_end, timeout=2.0, connect_attempts=1)
        with pytest.raises(ProtocolError, match=r"look like a frame in the v2 \(8-byte header\)"):
            v3.initialize_client()


def test_a_host_target_with_header_v2_starts_its_server_with_it(tmp_path):
    from kenning_hil.targets import SessionManager, Target
    from kenning_hil.targets.description import parse_target

    board = Target(parse_target({"kind": "host", "runtime": "echo", "instances": 1,
                                 "protocol": {"type": "tcp", "header": "v2"}},
                                "old.yaml", "old"))
    assert board.kind.serve_command()[-2:] == ["--header", "v2"]
    manager = SessionManager(tmp_path / "work", tmp_path / "locks", default_timeout=30)
    try:
        with manager.use(board, "t") as session:
            protocol = session.protocol
            assert protocol.header is HeaderLayout.V2
            assert protocol.upload_io_specification_dict(ECHO_SPEC)
            assert protocol.upload_model_bytes(b"-")
    finally:
        manager.close_all()
