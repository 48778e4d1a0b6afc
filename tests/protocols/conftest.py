"""Fixtures for protocol tests: real target server processes and real pty pairs."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kenning_hil.core.protocol import Flag, FlowControl, Message, MessageType
from kenning_hil.protocols.chunking import encode_message
from kenning_hil.protocols.frame import TCP_MAX_FRAME_SIZE, FrameDecoder
from kenning_hil.targets.process import server_command, start_logged, stop, wait_for_line

LISTENING = r"listening on (?P<address>\S+)"


# a tiny model description for the echo runtime: 16 float inputs, 4 int8 outputs
ECHO_SPEC = {
    "input": [{"name": "x", "shape": [1, 16], "dtype": "float32"}],
    "output": [{"name": "y", "shape": [1, 4], "dtype": "int8"}],
}
ECHO_INPUT = bytes(range(64))
ECHO_OUTPUT = b"\0" * 4  # what the echo runtime answers every input with


def run_echo_session(client, model: bytes = b"model", samples: int = 1,
                     statistics: bool = False):
    """A whole session with an echo server through a product client (TCP or UART, not yet
    connected): io spec, `model`, `samples` inferences answered with ECHO_OUTPUT, and with
    `statistics` the target's STATS (returned); asserts every step, disconnects."""
    client.initialize_client()
    try:
        assert client.upload_io_specification_dict(ECHO_SPEC)
        assert client.upload_model_bytes(model)
        for _ in range(samples):
            assert client.upload_input(ECHO_INPUT) and client.request_processing()
            assert client.download_output() == (True, ECHO_OUTPUT)
        return client.download_statistics() if statistics else None
    finally:
        client.disconnect()


@contextmanager
def serve_process(log_dir: Path, *args: str, runtime: str = "echo") -> Iterator[tuple]:
    """Starts the target server with `--runtime <runtime> <args>`; yields (process, address)."""
    log_path = log_dir / f"serve-{time.monotonic_ns()}.log"
    proc = start_logged(server_command("--runtime", runtime, *args), log_path)
    try:
        match = wait_for_line(proc, log_path, LISTENING, 30.0, "target server")
        yield proc, match.group("address")
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def tcp_server(tmp_path_factory):
    """A `kenning-hil serve --runtime echo` on a free loopback port: (process, host, port).
    Shared by a module's tests: the server starts every connection from a clean session."""
    log_dir = tmp_path_factory.mktemp("serve")
    with serve_process(log_dir, "--host", "127.0.0.1", "--port", "0") as (proc, address):
        host, port = address.rsplit(":", 1)
        yield proc, host, int(port)


def request_frames(
    message_type: int,
    payload: bytes = b"",
    flags: int = Flag.IS_HOST_MESSAGE,
    max_frame_size: int = TCP_MAX_FRAME_SIZE,
) -> list[bytes]:
    return list(
        encode_message(
            Message(message_type, payload, int(flags), FlowControl.REQUEST), max_frame_size
        )
    )


class RawClient:
    """A bare TCP client speaking frames by hand, to send what a proper host never would."""

    def __init__(self, host: str, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        handshake = self.sock.recv(1)
        assert handshake == b"\x00", f"handshake {handshake!r}"
        self.decoder = FrameDecoder()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_messages(self, timeout: float = 2.0, until_type: int | None = None) -> list:
        """Frames received until `until_type` arrives (or silence / close)."""
        frames = []
        self.sock.settimeout(timeout)
        while True:
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                return frames
            if not data:
                return frames
            self.decoder.feed(data)
            while (frame := self.decoder.next()) is not None:
                frames.append(frame)
                if until_type is not None and frame.message_type == until_type and (
                    frame.message_type != MessageType.LOGS
                ):
                    return frames

    def request(self, message_type: int, payload: bytes = b"", flags: int = Flag.IS_HOST_MESSAGE):
        """Sends a request and returns the answer frame of its type (LOGS skipped)."""
        for frame in request_frames(message_type, payload, flags):
            self.send(frame)
        frames = self.read_messages(until_type=message_type)
        answers = [f for f in frames if f.message_type == message_type]
        assert answers, f"no answer to {MessageType(message_type).name}: {frames}"
        return answers[-1]

    def close(self) -> None:
        self.sock.close()
