"""A TCP server serves one client at a time and turns a second one away as busy, but only
while the served client is still there. A client that connects right after the last one
closed is served, even when the server (or its runtime worker) has not yet run to read that
close: on a loaded machine it may not run for a while, which turned the next client away as
busy ("server closed the connection before its handshake"). The tests stop the process that
would notice (SIGSTOP), which is what a loaded scheduler does, instead of depending on load."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import struct

from kenning_hil.core.protocol import Flag, MessageType
from kenning_hil.protocols.bytes_protocol import NetworkProtocol
from kenning_hil.protocols.frame import FrameDecoder
from kenning_hil.protocols.tcp import HANDSHAKE, TCPListener
from tests.protocols.conftest import ECHO_SPEC, request_frames, run_echo_session, serve_process

# a worker-served echo runtime (echo itself is served in the server process)
WORKER_ECHO = "tests.runtimes.compromised_runtime.CompromisedRuntime"


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30.0)


def _refused(sock: socket.socket) -> bool:
    """Whether the server closed `sock` without its handshake byte (turned away as busy)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_pending_client_is_refused_only_while_the_served_one_is_connected():
    listener = TCPListener("127.0.0.1", 0)
    first = _connect(listener.port)
    served = listener.accept(30.0)
    sockets = [first]
    try:
        assert served is not None and first.recv(1) == HANDSHAKE
        assert not served.peer_gone()
        # the served client is there: a second one is turned away
        busy = _connect(listener.port)
        sockets.append(busy)
        listener.refuse_pending(served)
        assert _refused(busy)
        # the served client closed, the server has not read that yet: the next is kept
        first.close()
        after = _connect(listener.port)
        sockets.append(after)
        assert served.peer_gone()
        listener.refuse_pending(served)
        # ...and only it: one more while that one waits is turned away
        third = _connect(listener.port)
        sockets.append(third)
        listener.refuse_pending(served)
        assert _refused(third)
        assert select.select([after], [], [], 0)[0] == []  # no answer yet: kept, not closed
        served.close()
        following = listener.accept(30.0)
        assert following is not None and after.recv(1) == HANDSHAKE
        following.close()
    finally:
        for sock in sockets:
            sock.close()
        if served is not None:
            served.close()
        listener.close()


def test_a_reset_connection_counts_as_gone():
    listener = TCPListener("127.0.0.1", 0)
    client = _connect(listener.port)
    served = listener.accept(30.0)
    try:
        assert served is not None and client.recv(1) == HANDSHAKE
        # SO_LINGER 0: close sends RST, as the kernel does for a killed client with unread data
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        assert served.peer_gone()
    finally:
        if served is not None:
            served.close()
        listener.close()


def _worker_pid(log_dir) -> int:
    (log,) = log_dir.glob("serve-*.log")
    (pid,) = re.findall(r"runtime worker pid (\d+) started", log.read_text())
    return int(pid)


def test_worker_not_run_after_its_client_closed_does_not_turn_the_next_away(tmp_path):
    """The server process refuses a waiting client after SERVER_POLL_SECONDS while its worker
    serves a session. Here the worker is stopped mid-session: while its client is still
    connected a second one is busy; once that client closed, the next one waits (however long
    the worker is not run) and is served when the worker has ended the session."""
    with serve_process(tmp_path, "--port", "0", runtime=WORKER_ECHO) as (proc, address):
        port = int(address.rsplit(":", 1)[1])
        worker = _worker_pid(tmp_path)
        first = NetworkProtocol(host="127.0.0.1", port=port, timeout=30.0)
        first.initialize_client()
        assert first.upload_io_specification_dict(ECHO_SPEC)  # the worker serves it
        os.kill(worker, signal.SIGSTOP)
        try:
            busy = _connect(port)
            assert _refused(busy)  # the first client is still there
            busy.close()
            first.disconnect()
            after = _connect(port)
            # 1 s: five times the server's busy check; it must not close this one meanwhile
            assert select.select([after], [], [], 1.0)[0] == []
        finally:
            os.kill(worker, signal.SIGCONT)
        assert after.recv(1) == HANDSHAKE
        assert _io_spec_answer(after) & Flag.SUCCESS  # served by the worker
        after.close()
        run_echo_session(NetworkProtocol(host="127.0.0.1", port=port, timeout=30.0))
        assert _worker_pid(tmp_path) == worker and proc.poll() is None


def _io_spec_answer(sock: socket.socket) -> int:
    """Sends an IO_SPEC request on a connected socket; the flags of its answer."""
    for frame in request_frames(MessageType.IO_SPEC, json.dumps(ECHO_SPEC).encode()):
        sock.sendall(frame)
    decoder = FrameDecoder()
    while True:
        data = sock.recv(65536)
        assert data, "connection closed before the IO_SPEC answer"
        decoder.feed(data)
        while (frame := decoder.next()) is not None:
            if frame.message_type == MessageType.IO_SPEC:
                return frame.flags
