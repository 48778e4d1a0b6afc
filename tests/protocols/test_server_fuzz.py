"""Random and mutated frames against a live `kenning-hil serve` (echo runtime), over TCP and
over a real pty pair: the server must never crash or hang, must answer with well-formed
frames (FAIL, retransmission requests, LOGS) or drop the connection, and must serve a
well-formed session afterwards.

A little over a thousand frames per transport, and the `slow` variants ten thousand (both
run by `make test`, the slow ones left out by `make test-quick`); each prints the counts of
frames sent, crashes and hangs.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kenning_hil.core.protocol import Flag, FlowControl, Message, MessageType
from kenning_hil.protocols.bytes_protocol import UARTProtocol
from kenning_hil.protocols.chunking import encode_message
from kenning_hil.protocols.frame import FrameDecoder, encode_frame, pack_header
from kenning_hil.protocols.uart import SerialTransport

from .conftest import ECHO_INPUT, ECHO_SPEC, run_echo_session, serve_process
from .test_server_sessions import well_formed_session

HOST = int(Flag.IS_HOST_MESSAGE)
CONNECT = HOST | Flag.SUCCESS | Flag.FIRST | Flag.LAST
SESSION = [
    (MessageType.PING, b"", HOST | Flag.SUCCESS),
    (MessageType.IO_SPEC, json.dumps(ECHO_SPEC).encode(), HOST),
    (MessageType.MODEL, b"model bytes " * 30, HOST),
    (MessageType.DATA, ECHO_INPUT, HOST),
    (MessageType.PROCESS, b"", HOST),
    (MessageType.OUTPUT, b"", HOST),
    (MessageType.STATS, b"", HOST),
    (MessageType.PING, b"", HOST | Flag.FAIL),
]


@st.composite
def valid_frames(draw) -> list[bytes]:
    mtype, payload, flags = draw(st.sampled_from(SESSION))
    max_frame = draw(st.sampled_from([136, 64, 1 << 20]))
    return list(encode_message(Message(mtype, payload, int(flags), 0), max_frame))


@st.composite
def mutated_frames(draw) -> list[bytes]:
    frames = draw(valid_frames())
    index = draw(st.integers(0, len(frames) - 1))
    frame = bytearray(frames[index])
    mutation = draw(
        st.sampled_from(["flip", "truncate", "type", "flow", "flags", "size", "insert", "drop"])
    )
    if mutation == "flip":
        position = draw(st.integers(0, len(frame) - 1))
        frame[position] ^= draw(st.integers(1, 255))
    elif mutation == "truncate":
        del frame[draw(st.integers(0, len(frame) - 1)) :]
    elif mutation == "type":
        frame[0:4] = draw(st.integers(0, 0xFFFFFFFF)).to_bytes(4, "little")
    elif mutation == "flow":
        frame[4] = (frame[4] & 0x3F) | (draw(st.integers(0, 3)) << 6)
    elif mutation == "flags":
        frame[6:8] = draw(st.integers(0, 0xFFFF)).to_bytes(2, "little")
    elif mutation == "size":
        frame[8:12] = draw(st.sampled_from([0, 1, 124, 125, 1 << 20, 0xFFFFFFFF])).to_bytes(
            4, "little"
        )
    elif mutation == "insert":
        position = draw(st.integers(0, len(frame)))
        frame[position:position] = draw(st.binary(min_size=1, max_size=16))
    if mutation == "drop":
        del frames[index]
    else:
        frames[index] = bytes(frame)
    return frames


@st.composite
def random_frames(draw) -> list[bytes]:
    payload = draw(st.binary(max_size=150))
    flags = draw(st.integers(0, 0xFFFF))
    if draw(st.booleans()):  # consistent header
        return [
            encode_frame(
                draw(st.integers(0, 300)),
                draw(st.integers(0, 3)),
                flags,
                payload,
                compute_checksum=draw(st.booleans()),
            )
        ]
    header = pack_header(
        draw(st.integers(0, (1 << 38) - 1)),
        draw(st.integers(0, 3)),
        draw(st.integers(0, 255)),
        flags,
        draw(st.integers(0, 0xFFFFFFFF)),
    )
    return [header + payload]


garbage = st.binary(max_size=40).map(lambda data: [data])
frame_group = st.one_of(valid_frames(), mutated_frames(), random_frames(), garbage)
frame_batches = st.lists(frame_group, min_size=8, max_size=14).map(
    lambda groups: [frame for group in groups for frame in group]
)


@dataclass
class FuzzCounts:
    frames: int = 0
    bytes: int = 0
    answers: int = 0
    crashes: int = 0
    hangs: int = 0

    def __str__(self) -> str:
        return (
            f"frames sent: {self.frames}, bytes: {self.bytes}, answer frames: {self.answers}, "
            f"crashes: {self.crashes}, hangs: {self.hangs}"
        )


def check_answers(data: bytes, counts: FuzzCounts) -> None:
    """Whatever the server sends is a clean sequence of frames."""
    decoder = FrameDecoder()
    decoder.feed(data)
    while decoder.next() is not None:
        counts.answers += 1
    assert decoder.errors == 0 and decoder.pending == 0, f"malformed server output {data!r}"


def fuzz_tcp(proc, host: str, port: int, examples: int) -> FuzzCounts:
    counts = FuzzCounts()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(frame_batches)
    def one_connection(frames: list[bytes]) -> None:
        sock = socket.create_connection((host, port), timeout=5.0)
        try:
            assert sock.recv(1) == b"\x00", "server did not accept a new client (hung?)"
            stream = b"".join(frames)
            try:
                sock.sendall(stream)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server may drop us before we finish (e.g. after garbage)
            counts.frames += len(frames)
            counts.bytes += len(stream)
            received = b""
            deadline = time.monotonic() + 5.0
            while True:  # the server answers what it got, then closes on our EOF
                if time.monotonic() > deadline:
                    counts.hangs += 1
                    raise AssertionError("server neither answered nor closed within 5 s")
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    break
                except TimeoutError:
                    counts.hangs += 1
                    raise
                if not data:
                    break
                received += data
            check_answers(received, counts)
        finally:
            sock.close()
        if proc.poll() is not None:
            counts.crashes += 1
            raise AssertionError(f"server exited with code {proc.returncode}")

    one_connection()
    well_formed_session(host, port)
    return counts


def uart_session(port: str) -> None:
    run_echo_session(UARTProtocol(port=port, timeout=3.0, connect_timeout=1.0))


def fuzz_pty(proc, port: str, examples: int, quiet: float) -> FuzzCounts:
    counts = FuzzCounts()
    line = SerialTransport(port)

    def drain() -> bytes:
        """Reads until the server has been quiet for `quiet` seconds."""
        received = b""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            data = line.receive(quiet)
            if not data:
                return received
            received += data
        counts.hangs += 1
        raise AssertionError("server kept talking for 5 s")

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(frame_batches, min_size=8, max_size=10))
    def one_burst(batches: list[list[bytes]]) -> None:
        frames = [frame for batch in batches for frame in batch]
        stream = b"".join(frames)
        line.send(stream)
        counts.frames += len(frames)
        counts.bytes += len(stream)
        check_answers(drain(), counts)
        # still alive and back in sync: a connect PING is answered (late answers to the
        # burst may come first; they must be well-formed too)
        line.send(encode_frame(MessageType.PING, FlowControl.REQUEST, CONNECT))
        decoder = FrameDecoder()
        frames_back = []
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            decoder.feed(line.receive(0.1))
            while (frame := decoder.next()) is not None:
                frames_back.append(frame)
            # the server answers in order, so the answer to our PING is the last PING frame;
            # on a loaded machine the burst's own (failed) PING answers may still come first
            last_ping = [f for f in frames_back if f.message_type == MessageType.PING][-1:]
            if last_ping and last_ping[0].flags & Flag.SUCCESS:
                break
        assert decoder.errors == 0, f"malformed server output: {frames_back}"
        pings = [f for f in frames_back if f.message_type == MessageType.PING]
        if not pings:
            counts.hangs += 1
        assert pings and pings[-1].flags & Flag.SUCCESS, f"no PING answer: {frames_back}"
        if proc.poll() is not None:
            counts.crashes += 1
            raise AssertionError(f"server exited with code {proc.returncode}")

    try:
        one_burst()
    finally:
        line.close()
    uart_session(port)
    return counts


def test_fuzz_live_server_over_tcp(tcp_server):
    proc, host, port = tcp_server
    counts = fuzz_tcp(proc, host, port, examples=110)
    print(f"\nTCP fuzz: {counts}")
    assert counts.frames >= 1000 and counts.crashes == 0 and counts.hangs == 0


def test_fuzz_live_server_over_a_pty(tmp_path, pty_pair):
    server_end, client_end = pty_pair
    with serve_process(tmp_path, "--serial", server_end, "--frame-timeout", "0.03") as (proc, _):
        counts = fuzz_pty(proc, client_end, examples=12, quiet=0.08)
    print(f"\npty fuzz: {counts}")
    assert counts.frames >= 1000 and counts.crashes == 0 and counts.hangs == 0


@pytest.mark.slow
def test_fuzz_ten_thousand_frames_over_tcp(tcp_server):
    proc, host, port = tcp_server
    counts = fuzz_tcp(proc, host, port, examples=1000)
    print(f"\nTCP fuzz: {counts}")
    assert counts.frames >= 10_000 and counts.crashes == 0 and counts.hangs == 0


@pytest.mark.slow
def test_fuzz_ten_thousand_frames_over_a_pty(tmp_path, pty_pair):
    server_end, client_end = pty_pair
    with serve_process(tmp_path, "--serial", server_end, "--frame-timeout", "0.03") as (proc, _):
        counts = fuzz_pty(proc, client_end, examples=110, quiet=0.08)
    print(f"\npty fuzz: {counts}")
    assert counts.frames >= 10_000 and counts.crashes == 0 and counts.hangs == 0
