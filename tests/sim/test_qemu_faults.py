"""Faults on the emulated boards: line noise, corrupt and truncated frames, an unsupported
operator, a model larger than the board's memory, a HardFault, and QEMU dying mid-session.
Each must end in a clear answer or error within a timeout, never a hang."""

from __future__ import annotations

import random
import time

import pytest
import serial

from kenning_hil.core.protocol import Flag, FlowControl, MessageType
from kenning_hil.protocols.bytes_protocol import UARTProtocol
from kenning_hil.protocols.frame import encode_frame
from kenning_hil.sim.firmware_build import FIRMWARE_DIR, build_firmware
from kenning_hil.sim.qemu import QemuInstance

from .conftest import BOARDS, require_simulation
from .frame_client import FrameClient, request_frames
from .tflite_patch import replace_operator

pytestmark = pytest.mark.sim

# A test build per board: 32 KiB for model + arena (smaller than every MLPerf Tiny model) and
# fault injection (a MODEL of these exact bytes writes to unmapped memory).
SMALL_REGION = 32768
FAULT_INJECTION_MODEL = b"khil-fault-injection"


@pytest.fixture(scope="session")
def test_build_elf():
    require_simulation()
    built = {}

    def get(board: str):
        if board not in built:
            built[board] = build_firmware(
                board,
                build_dir=FIRMWARE_DIR / "build" / f"{board}-test-faults",
                ml_region_size=SMALL_REGION,
                extra_cflags="-DKHIL_FAULT_INJECTION",
            )
        return built[board]

    return get


@pytest.fixture(params=BOARDS)
def test_board(request, test_build_elf):
    with QemuInstance(request.param, test_build_elf(request.param)) as board:
        client = FrameClient(board.url)
        yield board, client
        client.close()


def test_line_noise_and_corrupt_frames_then_a_good_session(board, client):
    rng = random.Random(1)
    client.send_raw(rng.randbytes(3000))  # noise
    ping = encode_frame(MessageType.PING, FlowControl.REQUEST,
                        Flag.SUCCESS | Flag.FIRST | Flag.LAST)
    client.send_raw(ping[:5] + bytes([ping[5] ^ 0xA5]) + ping[6:])  # bad checksum
    # noise may have opened a resynchronisation episode that absorbs the report: either a
    # retransmission request naming the checksum arrives or nothing does - never an answer
    try:
        client.retransmit_request(MessageType.PING, timeout=2)
        assert "corrupt PING frame" in client.logs[-1]
    except TimeoutError:
        pass
    assert client.connect(timeout=3, attempts=5).success  # as a host connects after noise
    # a checksum error on a clean line is always asked for again (#16 finding 6); the waits
    # are generous for a QEMU descheduled on a loaded machine, the board answers at once
    client.send_raw(ping[:5] + bytes([ping[5] ^ 0x01]) + ping[6:])
    client.retransmit_request(MessageType.PING, timeout=15)
    assert "corrupt PING frame: checksum" in client.logs[-1]
    client.send_raw(UARTProtocol.resend_preamble)
    assert client.connect().success
    # a truncated frame is asked for again once the line has been quiet for a while
    client.send_raw(request_frames(MessageType.IO_SPEC, bytes(356))[:60])
    client.retransmit_request(MessageType.IO_SPEC, timeout=15)
    assert "truncated IO_SPEC frame" in client.logs[-1]
    assert client.connect().success
    assert client.request(MessageType.STATS).success
    assert not [f for f in client.other if f.flow_control == FlowControl.TRANSMISSION]


def test_unsupported_operator_is_named(board, client, kws_model):
    assert client.connect().success
    patched = replace_operator(kws_model.read_bytes(), "SOFTMAX", "TANH")
    answer = client.request(MessageType.MODEL, patched, timeout=120)
    assert not answer.success
    assert "TANH" in answer.text
    assert any("MODEL refused:" in line and "TANH" in line for line in client.logs)


def test_model_larger_than_memory_fails_fast(test_board, kws_model):
    board, client = test_board
    assert client.connect().success
    data = kws_model.read_bytes()
    assert len(data) > SMALL_REGION
    start = time.monotonic()
    client.send(MessageType.MODEL, data)
    answer = client.answer(MessageType.MODEL, timeout=60)
    assert not answer.success
    assert f"model too large: more than {SMALL_REGION} bytes" in answer.text
    assert time.monotonic() - start < 60
    # the rest of the upload is dropped without further answers; the session goes on
    assert client.request(MessageType.PING, flags=Flag.SUCCESS, timeout=30).success
    assert not [f for f in client.other if f.message_type == MessageType.MODEL]


def test_hard_fault_is_reported_then_board_resets(test_board):
    board, client = test_board
    assert client.connect().success
    answer = client.request(MessageType.MODEL, FAULT_INJECTION_MODEL, timeout=10)
    assert not answer.success
    assert answer.text.startswith("BusFault: pc=0x")
    assert "bfar=0xf0000000" in answer.text
    assert any(line.startswith("BusFault") for line in client.logs)
    # the board rebooted: no session any more, a new connect works. Bytes that reach the
    # UART while the board is still resetting are lost, as on hardware, so ask again.
    for attempt in range(4):
        try:
            answer = client.request(MessageType.STATS, timeout=3)
            break
        except TimeoutError:
            if attempt == 3:
                raise
    assert not answer.success and "outside a session" in answer.text
    assert client.connect().success


def test_qemu_killed_mid_upload_fails_the_host_within_timeout(board, client, kws_model):
    assert client.connect().success
    client.send(MessageType.MODEL, kws_model.read_bytes()[:5000])
    board.kill()
    start = time.monotonic()
    # TimeoutError is an OSError too: an unanswered request is not the error we wait for
    with pytest.raises((serial.SerialException, OSError)) as error:
        for _ in range(100):
            client.send(MessageType.MODEL, bytes(1000))
            try:
                client.answer(MessageType.MODEL, timeout=0.2)
            except TimeoutError:
                continue
    assert not isinstance(error.value, TimeoutError), error.value
    # the write fails within a round or two; 10 s is a margin no machine load reaches
    assert time.monotonic() - start < 10


def test_qemu_killed_mid_session_through_uart_protocol(board, kws_model):
    from kenning_hil.core.protocol import ProtocolError
    from kenning_hil.protocols.bytes_protocol import UARTProtocol

    protocol = UARTProtocol(port=board.url, timeout=3.0)
    assert protocol.initialize_client()
    try:
        assert protocol.upload_model(kws_model)
        board.kill()
        start = time.monotonic()
        with pytest.raises(ProtocolError) as error:
            protocol.upload_input(bytes(490))
            protocol.request_processing()
        assert time.monotonic() - start < 10
        assert board.url in str(error.value) or "127.0.0.1" in str(error.value)
    finally:
        protocol.disconnect()
