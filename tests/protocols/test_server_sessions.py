"""The target server (`kenning-hil serve`, a real process) against well- and ill-behaved
hosts over real TCP sockets: session order, malformed requests, limits, disconnects."""

import json
import socket
import time

import pytest

from kenning_hil.core.protocol import (
    ConnectionLostError,
    Flag,
    FlowControl,
    MessageType,
    ServerAction,
)
from kenning_hil.protocols.bytes_protocol import NetworkProtocol
from kenning_hil.protocols.frame import encode_frame, pack_header

from .conftest import (
    ECHO_INPUT,
    ECHO_SPEC,
    RawClient,
    request_frames,
    run_echo_session,
    serve_process,
)

SPEC_JSON = json.dumps(ECHO_SPEC).encode()


def well_formed_session(host: str, port: int, samples: int = 3) -> None:
    """A whole host session through the product client; asserts every step succeeds."""
    stats = run_echo_session(NetworkProtocol(host=host, port=port, timeout=5.0),
                             b"model bytes", samples, statistics=True)
    assert len(stats.get_values("target_inference_step")) == samples


def assert_fail(frame, message_type):
    assert frame.message_type == message_type
    assert frame.flags & Flag.FAIL and not frame.flags & Flag.SUCCESS


def test_kenning_style_answers(tcp_server):
    _, host, port = tcp_server
    raw = RawClient(host, port)
    answer = raw.request(MessageType.IO_SPEC, SPEC_JSON)
    assert answer.flow_control == FlowControl.TRANSMISSION
    # SUCCESS + IS_KENNING + FIRST + LAST + HAS_PAYLOAD, payload = the finished action
    assert answer.flags == 0x0079
    assert answer.payload == bytes([ServerAction.UPLOADING_IOSPEC])
    assert raw.request(MessageType.MODEL, b"m").payload == bytes([ServerAction.UPLOADING_MODEL])
    answer = raw.request(MessageType.DATA, ECHO_INPUT)
    assert answer.payload == bytes([ServerAction.UPLOADING_INPUT])
    answer = raw.request(MessageType.PROCESS)
    assert answer.payload == bytes([ServerAction.PROCESSING_INPUT])
    answer = raw.request(MessageType.OUTPUT)
    assert answer.flags == 0x0079 and answer.payload == b"\0" * 4
    stats = json.loads(raw.request(MessageType.STATS).payload)
    assert len(stats["target_inference_step"]) == 1 and stats["target_inference_step"][0] > 0
    raw.close()


def test_requests_out_of_order_get_fail_with_reason(tcp_server):
    _, host, port = tcp_server
    raw = RawClient(host, port)
    for mtype, payload, reason in [
        (MessageType.PROCESS, b"", "PROCESS before MODEL"),
        (MessageType.DATA, ECHO_INPUT, "DATA before MODEL"),
        (MessageType.OUTPUT, b"", "OUTPUT before PROCESS"),
    ]:
        for frame in request_frames(mtype, payload):
            raw.send(frame)
        frames = raw.read_messages(until_type=mtype)
        logs = [f.payload.decode() for f in frames if f.message_type == MessageType.LOGS]
        assert any(reason in line for line in logs), logs
        assert_fail(frames[-1], mtype)
    assert raw.request(MessageType.IO_SPEC, SPEC_JSON).flags & Flag.SUCCESS
    assert raw.request(MessageType.MODEL, b"m").flags & Flag.SUCCESS
    assert_fail(raw.request(MessageType.PROCESS), MessageType.PROCESS)  # no DATA yet
    assert raw.request(MessageType.DATA, ECHO_INPUT).flags & Flag.SUCCESS
    assert_fail(raw.request(MessageType.OUTPUT), MessageType.OUTPUT)  # no PROCESS yet
    raw.close()


@pytest.mark.parametrize(
    "mtype", [MessageType.PING, MessageType.PROCESS, MessageType.OUTPUT, MessageType.STATS]
)
def test_payload_on_payloadless_request_is_refused(tcp_server, mtype):
    _, host, port = tcp_server
    raw = RawClient(host, port)
    assert_fail(raw.request(mtype, b"unexpected"), mtype)
    raw.close()
    well_formed_session(host, port)


@pytest.mark.parametrize("mtype", [14, 63, 200, int(MessageType.OPTIMIZE_MODEL)])
def test_unknown_or_unsupported_types_get_fail(tcp_server, mtype):
    _, host, port = tcp_server
    raw = RawClient(host, port)
    assert_fail(raw.request(mtype, b"x"), mtype)
    assert raw.request(MessageType.IO_SPEC, SPEC_JSON).flags & Flag.SUCCESS  # still served
    raw.close()


def test_invalid_io_spec_is_refused_not_executed(tcp_server):
    _, host, port = tcp_server
    raw = RawClient(host, port)
    # a pickle payload must never be unpickled: it is not JSON, so it is refused
    pickled = b"\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94"
    frames = []
    for payload in (pickled, b'{"input": 5}', b"\xff\xfe"):
        for frame in request_frames(MessageType.IO_SPEC, payload):
            raw.send(frame)
        frames = raw.read_messages(until_type=MessageType.IO_SPEC)
        assert_fail(frames[-1], MessageType.IO_SPEC)
    raw.close()
    well_formed_session(host, port)


def test_oversized_frame_and_model_are_refused(tmp_path):
    with serve_process(
        tmp_path, "--port", "0", "--max-frame-size", "1024", "--max-message-size", "4000"
    ) as (_, address):
        host, port = address.rsplit(":", 1)
        port = int(port)
        # a frame above the frame limit: FAIL and the connection is dropped
        raw = RawClient(host, port)
        raw.send(pack_header(MessageType.MODEL, 0, 0x55, Flag.HAS_PAYLOAD | Flag.FIRST, 100_000))
        frames = raw.read_messages(timeout=10.0)  # ends at the close; 10 s: load margin (#22)
        assert any(f.message_type == MessageType.MODEL and f.flags & Flag.FAIL for f in frames)
        assert raw.sock.recv(1) == b""  # closed by the server
        raw.close()
        # a model above the message limit, in frames within the frame limit
        raw = RawClient(host, port)
        for frame in request_frames(MessageType.MODEL, b"m" * 5000, max_frame_size=1024):
            raw.send(frame)
        # until the MODEL answer: a 1 s silence could pass on a loaded machine first (#22)
        frames = raw.read_messages(timeout=10.0, until_type=MessageType.MODEL)
        assert any(f.message_type == MessageType.MODEL and f.flags & Flag.FAIL for f in frames)
        raw.close()
        # the server still serves a proper client (its frames fit once it is told the limit)
        client = NetworkProtocol(host=host, port=port, max_frame_size=1024)
        client.initialize_client()
        assert client.upload_io_specification_dict(ECHO_SPEC)
        assert client.upload_model_bytes(b"m" * 3000)
        client.disconnect()


def test_client_disconnecting_mid_chunked_model_upload(tmp_path):
    with serve_process(tmp_path, "--port", "0") as (proc, address):
        host, port = address.rsplit(":", 1)
        raw = RawClient(host, int(port))
        assert raw.request(MessageType.IO_SPEC, SPEC_JSON).flags & Flag.SUCCESS
        frames = request_frames(MessageType.MODEL, b"M" * 10_000, max_frame_size=1000)
        assert len(frames) == 11
        for frame in frames[:5]:  # FIRST and some middle chunks, never LAST
            raw.send(frame)
        raw.close()
        # the half model is forgotten; the next client gets a clean session
        well_formed_session(host, int(port))
        assert proc.poll() is None


def test_second_client_is_refused_while_one_is_served(tcp_server):
    _, host, port = tcp_server
    first = NetworkProtocol(host=host, port=port, timeout=5.0)
    first.initialize_client()
    assert first.upload_io_specification_dict(ECHO_SPEC)
    second = NetworkProtocol(host=host, port=port, timeout=60.0)
    start = time.monotonic()
    with pytest.raises(ConnectionLostError, match="busy with another client"):
        second.initialize_client()
    # turned away at once, not left waiting for its 60 s timeout (a margin no load reaches)
    assert time.monotonic() - start < 20
    # the first session was not disturbed
    assert first.upload_model_bytes(b"m")
    assert first.upload_input(ECHO_INPUT) and first.request_processing()
    assert first.download_output() == (True, b"\0" * 4)
    first.disconnect()
    well_formed_session(host, port)


def test_kenning_host_without_host_flag_or_checksum(tcp_server):
    """Kenning's TCP host sets only FIRST/LAST/HAS_PAYLOAD and sends checksum 0x00."""
    _, host, port = tcp_server
    raw = RawClient(host, port)
    flags = Flag.FIRST | Flag.LAST
    raw.send(encode_frame(MessageType.IO_SPEC, 0, flags, SPEC_JSON, compute_checksum=False))
    answer = raw.read_messages(until_type=MessageType.IO_SPEC)[-1]
    assert answer.flags & Flag.SUCCESS
    raw.close()


def test_corrupt_checksum_asks_for_retransmission(tcp_server):
    _, host, port = tcp_server
    raw = RawClient(host, port)
    (frame,) = request_frames(MessageType.IO_SPEC, SPEC_JSON)
    bad = bytearray(frame)
    bad[20] ^= 0x01
    raw.send(bytes(bad))
    frames = raw.read_messages(until_type=MessageType.IO_SPEC)
    assert frames[-1].flow_control == FlowControl.REQUEST_RETRANSMIT
    assert frames[-1].size_field == 0xFFFFFFFF
    raw.send(frame)  # the retransmission is served normally
    assert raw.read_messages(until_type=MessageType.IO_SPEC)[-1].flags & Flag.SUCCESS
    raw.close()


def test_garbage_drops_the_connection_and_server_lives_on(tcp_server):
    proc, host, port = tcp_server
    raw = RawClient(host, port)
    raw.send(b"\xff" * 64)
    raw.read_messages(timeout=2.0)
    with pytest.raises((ConnectionResetError, BrokenPipeError, OSError)):
        for _ in range(50):  # the server closed its end; writes start failing
            raw.send(b"\xff" * 1024)
            time.sleep(0.01)
    raw.close()
    assert proc.poll() is None
    well_formed_session(host, port)


def test_raw_socket_closed_before_handshake_read(tcp_server):
    _, host, port = tcp_server
    for _ in range(5):
        socket.create_connection((host, port)).close()
    well_formed_session(host, port)
