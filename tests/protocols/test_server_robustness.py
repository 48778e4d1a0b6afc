"""Outside testers' findings against `kenning-hil serve` (issue 16), each on a real server
process over real sockets: consecutive client sessions start clean however the last client
left, io specs are bounded, a refused frame is one log line, and hostile traffic leaves the
server serving with bounded memory (`kenning_hil.protocols.hostile`)."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from kenning_hil.core.iospec import MAX_RECEIVED_ENTRIES, MAX_RECEIVED_RANK
from kenning_hil.core.protocol import Flag, MessageType
from kenning_hil.protocols.bytes_protocol import NetworkProtocol
from kenning_hil.protocols.frame import pack_header
from kenning_hil.protocols.hostile import GoodSession, fuzz_tcp_server

from .conftest import (
    ECHO_INPUT,
    ECHO_SPEC,
    RawClient,
    request_frames,
    run_echo_session,
    serve_process,
)
from .test_server_sessions import well_formed_session


def server_log(log_dir: Path) -> str:
    (path,) = log_dir.glob("serve-*.log")
    return path.read_text()


def split_address(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


# --- finding 1: consecutive sessions, alternating models, clients killed mid-upload -----------

MODEL_SPECS = {
    "gemm": {
        "input": [{"name": "x", "shape": [1, 8], "dtype": "float32"}],
        "output": [{"name": "y", "shape": [1, 3], "dtype": "float32"}],
    },
    "identity": {
        "input": [{"name": "p", "shape": [1, 4], "dtype": "float32"}],
        "output": [{"name": "p_out", "shape": [1, 4], "dtype": "float32"}],
    },
}

# A client that connects, uploads the io spec and part of a chunked model, says so, and waits
# to be killed (the server sees the connection reset mid-upload, no disconnect of any kind).
KILLED_CLIENT = textwrap.dedent(
    """
    import json, socket, sys, time
    from kenning_hil.core.protocol import Flag, FlowControl, Message, MessageType
    from kenning_hil.protocols.chunking import encode_message
    host, port, spec, model, whole = sys.argv[1:6]
    port = int(port)
    def frames(mtype, payload):
        message = Message(mtype, payload, int(Flag.IS_HOST_MESSAGE), FlowControl.REQUEST)
        return list(encode_message(message, 1000))
    sock = socket.create_connection((host, port))
    assert sock.recv(1) == b"\\x00"
    for frame in frames(MessageType.IO_SPEC, spec.encode()):
        sock.sendall(frame)
    model_frames = frames(MessageType.MODEL, open(model, "rb").read())
    sock.sendall(b"".join(model_frames if whole == "1" else model_frames[: len(model_frames) // 2]))
    time.sleep(0.3)
    print("uploading", flush=True)
    time.sleep(60)
    """
)


def killed_client(host: str, port: int, spec: dict, model: Path, whole: bool) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_CLIENT, host, str(port), json.dumps(spec), str(model),
         "1" if whole else "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "uploading"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()


def onnx_session(host: str, port: int, spec: dict, model: Path, sample: np.ndarray) -> np.ndarray:
    client = NetworkProtocol(host=host, port=port, timeout=10.0)
    client.initialize_client()
    try:
        assert client.upload_io_specification_dict(spec), client.refusal_reason()
        assert client.upload_model_bytes(model.read_bytes()), client.refusal_reason()
        assert client.upload_input(sample.tobytes()), client.refusal_reason()
        assert client.request_processing(), client.refusal_reason()
        ok, raw = client.download_output()
        assert ok, client.refusal_reason()
    finally:
        client.disconnect()
    shape = spec["output"][0]["shape"]
    return np.frombuffer(raw, np.float32).reshape(shape)


def test_twenty_sessions_of_alternating_models_and_killed_clients(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from tests.onnx_test_models import gemm_softmax_model, identity_model

    models = {
        "gemm": gemm_softmax_model(tmp_path / "gemm.onnx", 8, 3),
        "identity": identity_model(tmp_path / "identity.onnx", [("p", "float32", [None, 4])]),
    }
    rng = np.random.default_rng(0)
    with serve_process(tmp_path, "--port", "0", runtime="onnxruntime") as (proc, address):
        host, port = split_address(address)
        killed = 0
        for index in range(20):
            name = ("gemm", "identity")[index % 2]
            spec, model = MODEL_SPECS[name], models[name]
            if index % 3 == 1:  # the last client vanished mid-upload or right after it
                other = "identity" if name == "gemm" else "gemm"
                killed_client(host, port, MODEL_SPECS[other], models[other], whole=index % 2 == 0)
                killed += 1
            sample = rng.standard_normal(spec["input"][0]["shape"]).astype(np.float32)
            output = onnx_session(host, port, spec, model, sample)
            feed = {spec["input"][0]["name"]: sample}
            expected = ort.InferenceSession(str(model)).run(None, feed)[0]
            np.testing.assert_allclose(output, expected, rtol=1e-6, atol=1e-6)
        assert killed == 7 and proc.poll() is None
    assert "Traceback" not in server_log(tmp_path)


# --- finding 2: bounded io specs ---------------------------------------------------------------


def refusal_of(raw: RawClient, message_type: int, payload: bytes) -> str:
    for frame in request_frames(message_type, payload):
        raw.send(frame)
    frames = raw.read_messages(timeout=10.0, until_type=message_type)
    answer = frames[-1]
    assert answer.message_type == message_type and answer.flags & Flag.FAIL, frames
    return " ".join(f.payload.decode() for f in frames if f.message_type == MessageType.LOGS)


ENTRY = {"name": "x", "shape": [1, 4], "dtype": "float32"}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (
            {"input": [dict(ENTRY, name=f"i{k}", shape=[1]) for k in range(30_000)],
             "output": [ENTRY]},
            f"'input' lists 30000 tensors, at most {MAX_RECEIVED_ENTRIES}",
        ),
        ({"input": [dict(ENTRY, shape=[1] * 5_000)], "output": [ENTRY]},
         f"input[0] has 5000 dimensions, at most {MAX_RECEIVED_RANK}"),
        ({"input": [dict(ENTRY, shape=[1, 1 << 40, 1 << 40])], "output": [ENTRY]},
         "'input' tensors take more than 4000000 bytes per sample"),
        ({"input": [ENTRY], "output": [dict(ENTRY, shape=[-1, 1_000_001])]},
         "'output' tensors take more than 4000000 bytes per sample"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"input": [{"shape": [' + "9" * 5_000 + "]}]}", "not JSON"),
    ],
    ids=["30000-entries", "rank-5000", "elements", "output-bytes", "deep-nesting", "huge-int"],
)
def test_io_spec_beyond_the_bounds_is_refused_naming_the_bound(tmp_path, payload, reason):
    with serve_process(tmp_path, "--port", "0", "--max-message-size", "4000000") as (_, address):
        host, port = split_address(address)
        raw = RawClient(host, port)
        text = payload if isinstance(payload, str) else json.dumps(payload)
        data = text.encode()
        assert len(data) < 4_000_000
        logs = refusal_of(raw, MessageType.IO_SPEC, data)
        assert reason in logs, logs
        raw.close()
        well_formed_session(host, port)
    assert "Traceback" not in server_log(tmp_path)


# --- finding 5: one log line per refused frame, no traceback ----------------------------------


def test_each_refused_frame_is_one_log_line_naming_client_type_and_reason(tmp_path):
    with serve_process(tmp_path, "--port", "0") as (_, address):
        host, port = split_address(address)
        cases = [  # (frames, type name, a word of the reason)
            (request_frames(MessageType.DATA, ECHO_INPUT), "DATA", "before MODEL"),
            (request_frames(MessageType.IO_SPEC, b"{not json"), "IO_SPEC", "not JSON"),
            (request_frames(MessageType.PROCESS, b"x"), "PROCESS", "no payload"),
            (request_frames(200, b"x"), "type 200", "unsupported"),
            ([pack_header(MessageType.MODEL, 0, 0x55, Flag.HAS_PAYLOAD | Flag.FIRST, 1 << 30)],
             "MODEL", "limit"),
            ([b"\xff" * 40], "bytes", "do not start a frame"),
        ]
        clients = []
        for frames, _, _ in cases:
            raw = RawClient(host, port)
            clients.append(raw.sock.getsockname())
            for frame in frames:
                raw.send(frame)
            raw.read_messages(timeout=1.0)
            raw.close()
        well_formed_session(host, port)
    log = server_log(tmp_path)
    assert "Traceback" not in log
    # the log cut at each "client ... connected": one block per session, in order (a client
    # port alone does not tell sessions apart: Linux reuses a closed loopback port at once)
    blocks: list[list[str]] = []
    for line in log.splitlines():
        if re.search(r"client \S+ connected", line):
            blocks.append([])
        elif blocks and not re.search(r"client \S+ disconnected", line):
            blocks[-1].append(line)
    assert len(blocks) == len(cases) + 1, log  # the cases, then the well-formed session
    for (_, what, reason), (client_host, client_port), lines in zip(cases, clients, blocks):
        client = f"tcp://{client_host}:{client_port}"
        lines = [line for line in lines if client in line]
        assert len(lines) == 1, lines
        assert what in lines[0] and reason in lines[0], lines[0]


# --- findings 3 and 4: hostile traffic, then good sessions; memory ----------------------------


def test_hostile_traffic_leaves_good_sessions_working_and_memory_bounded(tmp_path):
    with serve_process(tmp_path, "--port", "0") as (proc, address):
        host, port = split_address(address)
        good = GoodSession(ECHO_SPEC, b"model bytes " * 30, ECHO_INPUT)
        report = fuzz_tcp_server(
            host, port, 2_000, good, lambda: well_formed_session(host, port),
            seed=16, pid=proc.pid, good_every=50, warmup=1_000,
        )
    print("\n" + "\n".join(report.lines()))
    assert report.cases == 2_000 and report.frames > 8_000
    assert report.crashes == 0 and report.hangs == 0 and report.malformed_answers == 0
    assert report.good_failed == 0 and report.good_passed == 41
    assert report.growth_after_warmup is not None and report.growth_after_warmup <= 5_000_000
    assert "Traceback" not in server_log(tmp_path)


# --- finding 1, a client whose machine vanished: the kernel probes it --------------------------


def test_served_connections_probe_a_vanished_client():
    """A client machine that vanishes without closing is found dead by TCP keepalive (25 s),
    so the server does not turn every later client away as busy. (A real vanishing peer
    cannot be made on loopback; this checks what the kernel is told on a real connection.)"""
    from kenning_hil.protocols.tcp import TCPListener

    listener = TCPListener("127.0.0.1", 0)
    client = socket.create_connection(("127.0.0.1", listener.port), timeout=5.0)
    served = listener.accept(5.0)
    try:
        assert served is not None and client.recv(1) == b"\x00"
        sock = served._sock
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
            interval = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL)
            probes = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)
            assert idle + interval * probes == 25
    finally:
        client.close()
        if served is not None:
            served.close()
        listener.close()


def test_hostile_bursts_down_a_serial_line_leave_the_server_serving(tmp_path, pty_pair):
    """The serial runner (the one the firmware fuzz benchmark uses) against `serve --serial`
    on a real pty pair: every burst is followed by an answered connect PING, good sessions
    pass, nothing crashes."""
    from kenning_hil.protocols.bytes_protocol import UARTProtocol
    from kenning_hil.protocols.hostile import fuzz_serial_target

    server_end, client_end = pty_pair
    good = GoodSession(ECHO_SPEC, b"model bytes " * 30, ECHO_INPUT)

    def good_session() -> None:
        run_echo_session(UARTProtocol(port=client_end, timeout=5.0), good.model)

    with serve_process(tmp_path, "--serial", server_end, "--frame-timeout", "0.1") as (proc, _):
        report = fuzz_serial_target(
            client_end, 80, good, good_session, seed=16, alive=lambda: proc.poll() is None,
            good_every=40, answer_timeout=1.0,
        )
    print("\n" + "\n".join(report.lines()))
    assert report.cases == 80 and report.frames > 1_000
    assert report.crashes == 0 and report.hangs == 0 and report.malformed_answers == 0
    assert report.good_passed == 2 and report.good_failed == 0
    assert "Traceback" not in server_log(tmp_path)


# --- serial line: stray zero bytes and unanswered REQUEST_RETRANSMIT (#16) ----------------------


class SerialHost:
    """A bare host on the client end of a pty pair, writing frames by hand as Kenning's UART
    host does (checksums computed, no IS_HOST_MESSAGE) and resending nothing unless told."""

    def __init__(self, port: str):
        from kenning_hil.protocols.frame import UART_MAX_FRAME_SIZE, FrameDecoder
        from kenning_hil.protocols.uart import SerialTransport

        self.transport = SerialTransport(port)
        self.decoder = FrameDecoder(UART_MAX_FRAME_SIZE, trust_zero_checksum=False)

    def send(self, data: bytes) -> None:
        self.transport.send(data)

    def send_request(self, message_type: int, payload: bytes = b"", flags: int = 0) -> None:
        for frame in request_frames(message_type, payload, flags, max_frame_size=136):
            self.send(frame)

    def read_until(self, done, timeout: float = 20.0) -> list:
        """Frames received until one satisfies `done` (that one included)."""
        import time

        frames, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.decoder.feed(self.transport.receive(0.2))
            while (frame := self.decoder.next()) is not None:
                frames.append(frame)
                if done(frame):
                    return frames
        pytest.fail(f"no awaited frame in {timeout} s; got {frames}")

    def answer_to(self, message_type: int) -> list:
        """Frames up to the TRANSMISSION answering `message_type` (LOGS included)."""
        from kenning_hil.core.protocol import FlowControl

        return self.read_until(lambda f: f.message_type == message_type and (
            f.flow_control == FlowControl.TRANSMISSION))

    def close(self) -> None:
        self.transport.close()


def kinds(frames: list) -> list[tuple[str, str, bool]]:
    """(type, flow control, SUCCESS) of each frame: what a test compares."""
    from kenning_hil.core.protocol import FlowControl

    return [(MessageType(f.message_type).name, FlowControl(f.flow_control).name,
             bool(f.flags & Flag.SUCCESS)) for f in frames]


KENNING_CONNECT = int(Flag.SUCCESS)  # Kenning's UART host sets no IS_HOST_MESSAGE
PING_OK = ("PING", "TRANSMISSION", True)


def test_serial_stray_zeros_before_a_connect_ping_still_connect(tmp_path, pty_pair):
    """1-11 stray zero bytes (the tail of a burst, a byte of a cut frame) before a connect
    PING, in the same write or before a quiet line: the PING connects and nothing else is
    answered. The XOR checksum matches a frame shifted by zeros, so 1 zero made a disconnect
    PING (answered PING SUCCESS, then the IO_SPEC refused as outside a session)."""
    import time

    server_end, client_end = pty_pair
    with serve_process(tmp_path, "--serial", server_end, "--frame-timeout", "0.1") as (proc, _):
        host = SerialHost(client_end)
        try:
            for stray in range(1, 12):
                for quiet in (False, True):
                    case = f"{stray} stray zeros{' then a quiet line' if quiet else ''}"
                    host.send(bytes(stray))
                    if quiet:  # (a loaded machine may read them with the PING: also fine)
                        time.sleep(0.3)
                    host.send_request(MessageType.PING, flags=KENNING_CONNECT)
                    assert kinds(host.answer_to(MessageType.PING)) == [PING_OK], case
                    host.send_request(MessageType.IO_SPEC, json.dumps(ECHO_SPEC).encode())
                    answer = host.answer_to(MessageType.IO_SPEC)
                    assert kinds(answer) == [("IO_SPEC", "TRANSMISSION", True)], (case, answer)
                    host.send_request(MessageType.PING, flags=int(Flag.FAIL))  # disconnect
                    assert kinds(host.answer_to(MessageType.PING)) == [PING_OK], case
        finally:
            host.close()
        assert proc.poll() is None
    assert "Traceback" not in server_log(tmp_path)


def corrupt_model_request(payload: bytes) -> bytes:
    (frame,) = request_frames(MessageType.MODEL, payload, 0, max_frame_size=136)
    damaged = bytearray(frame)
    damaged[20] ^= 0x40  # a bit flipped on the line
    return bytes(damaged)


def connected_host(client_end: str) -> SerialHost:
    host = SerialHost(client_end)
    host.send_request(MessageType.PING, flags=KENNING_CONNECT)
    assert kinds(host.answer_to(MessageType.PING)) == [PING_OK]
    host.send_request(MessageType.IO_SPEC, json.dumps(ECHO_SPEC).encode())
    assert kinds(host.answer_to(MessageType.IO_SPEC)) == [("IO_SPEC", "TRANSMISSION", True)]
    return host


def asked_again(frame) -> bool:
    from kenning_hil.core.protocol import FlowControl

    return frame.flow_control == FlowControl.REQUEST_RETRANSMIT


def test_serial_server_fails_a_request_its_host_never_resends(tmp_path, pty_pair):
    """Kenning's UART host logs REQUEST_RETRANSMIT as unexpected, never resends and waits
    for the answer without a timeout: `serve --serial` answers the request FAIL, with the
    reason, once the line has been quiet for RESEND_WAIT_SECONDS without a new request (the
    firmware's rule); bytes on the line start the wait again."""
    import time

    from kenning_hil.protocols.bytes_protocol import RESEND_WAIT_SECONDS

    server_end, client_end = pty_pair
    with serve_process(tmp_path, "--serial", server_end) as (proc, _):
        host = connected_host(client_end)
        try:
            host.send(corrupt_model_request(b"model bytes " * 3))
            asked = host.read_until(asked_again)
            assert kinds(asked) == [("LOGS", "TRANSMISSION", False),
                                    ("MODEL", "REQUEST_RETRANSMIT", False)]
            time.sleep(RESEND_WAIT_SECONDS / 2)
            # a host's log line: not a request, but the line is not quiet
            host.send(encode_logs(b"host still here"))
            noise_at = time.monotonic()
            failed = host.answer_to(MessageType.MODEL)
            waited = time.monotonic() - noise_at
            assert kinds(failed) == [("LOGS", "TRANSMISSION", False),
                                     ("MODEL", "TRANSMISSION", False)]
            assert failed[-1].flags & Flag.FAIL
            reason = failed[0].payload.decode()
            assert reason.startswith("MODEL refused: corrupt input: checksum mismatch in MODEL")
            assert reason.endswith("; no retransmission came")
            # counted from the last bytes on the line (a lower bound: load only delays it)
            assert waited >= RESEND_WAIT_SECONDS - 0.5, waited
            # the session goes on: a new request is served, the FAIL is not repeated
            host.send_request(MessageType.MODEL, b"model bytes " * 3)
            assert kinds(host.answer_to(MessageType.MODEL)) == [("MODEL", "TRANSMISSION", True)]
        finally:
            host.close()
        assert proc.poll() is None
    assert "no retransmission of MODEL" in server_log(tmp_path)


def encode_logs(text: bytes) -> bytes:
    from kenning_hil.core.protocol import FlowControl
    from kenning_hil.protocols.frame import encode_frame

    return encode_frame(MessageType.LOGS, FlowControl.TRANSMISSION,
                        int(Flag.FIRST | Flag.LAST), text)


def test_serial_server_serves_a_request_resent_after_retransmit_without_a_fail(
        tmp_path, pty_pair):
    """A host that resends (ours, after a 0xFF preamble) gets the answer and never the FAIL:
    the resend ends the wait."""
    import time

    from kenning_hil.protocols.bytes_protocol import RESEND_WAIT_SECONDS, UARTProtocol

    server_end, client_end = pty_pair
    with serve_process(tmp_path, "--serial", server_end) as (proc, _):
        host = connected_host(client_end)
        try:
            host.send(corrupt_model_request(b"model bytes " * 3))
            assert kinds(host.read_until(asked_again))[-1] == (
                "MODEL", "REQUEST_RETRANSMIT", False)
            host.send(UARTProtocol.resend_preamble)
            host.send_request(MessageType.MODEL, b"model bytes " * 3)
            answered = host.answer_to(MessageType.MODEL)
            assert kinds(answered)[-1] == ("MODEL", "TRANSMISSION", True), answered
            # longer than the wait: no FAIL comes for the request asked for again
            time.sleep(RESEND_WAIT_SECONDS + 1.0)
            host.send_request(MessageType.DATA, ECHO_INPUT)
            answer = host.answer_to(MessageType.DATA)
            assert kinds(answer) == [("DATA", "TRANSMISSION", True)], answer
        finally:
            host.close()
        assert proc.poll() is None
    assert "no retransmission" not in server_log(tmp_path)
