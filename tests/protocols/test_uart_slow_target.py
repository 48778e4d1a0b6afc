"""The UART host against a target that is slow the way an emulator starved of CPU is (#16
finding 6, #22): a partial frame is dropped as stalled only after two quiet spells, and
only when the line is still quiet when the reader looks (bytes that arrived while the host
process was not running complete it), and an upload the target is still reading is not
timed out. Real pty and sockets; the tests set the pace themselves, so results do not
depend on machine load."""

from __future__ import annotations

import os
import socket
import threading
import time

from kenning_hil.core.protocol import Flag, FlowControl, MessageType
from kenning_hil.protocols.bytes_protocol import UARTProtocol
from kenning_hil.protocols.channel import Corruption, MessageChannel
from kenning_hil.protocols.frame import FrameDecoder, encode_frame
from kenning_hil.protocols.uart import SerialTransport

STALL = 0.2


class LateRest(SerialTransport):
    """The rest of the frame reaches the line just after the reader's wait for it timed out,
    while the reader is not running (preempted on a busy machine)."""

    def __init__(self, port: str, master: int, rest: bytes):
        super().__init__(port)
        self.master = master
        self.rest = rest
        self.reads = 0

    def receive(self, timeout):
        data = super().receive(timeout)
        self.reads += 1
        if self.reads == 2 and self.rest:  # the wait after the first part: it timed out
            assert data == b""
            os.write(self.master, self.rest)
            self.rest = b""
            time.sleep(STALL)
        return data


def test_bytes_that_came_while_the_reader_slept_complete_the_frame():
    frame = encode_frame(MessageType.OUTPUT, FlowControl.TRANSMISSION,
                         Flag.SUCCESS | Flag.FIRST | Flag.LAST, bytes(range(40)))
    master, slave = os.openpty()
    try:
        transport = LateRest(os.ttyname(slave), master, frame[20:])
        channel = MessageChannel(transport, stall_timeout=STALL)
        os.write(master, frame[:20])
        event = channel.receive(5.0)
        assert not isinstance(event, Corruption), event
        assert (event.message_type, event.flow_control, event.payload) == (
            MessageType.OUTPUT, FlowControl.TRANSMISSION, bytes(range(40)))
        # a frame whose rest never comes is still dropped after the stall timeout
        os.write(master, frame[:20])
        event = channel.receive(5.0)
        assert isinstance(event, Corruption) and event.kind == "stalled", event
        channel.close()
    finally:
        os.close(master)
        os.close(slave)


class RestAfterTheStall(SerialTransport):
    """The rest of the frame comes only after the reader has seen the line quiet for a whole
    stall timeout (its probe for late bytes found none): a sender stalled longer than that,
    not a cut."""

    def __init__(self, port: str, master: int, rest: bytes):
        super().__init__(port)
        self.master = master
        self.rest = rest

    def receive(self, timeout):
        data = super().receive(timeout)
        if timeout == 0 and not data and self.rest:  # the probe before giving up on a frame
            os.write(self.master, self.rest)
            self.rest = b""
        return data


def test_a_sender_stalled_past_the_stall_timeout_loses_nothing():
    """CI under load: dropping a frame after one quiet spell rescans its payload, where data
    bytes form headers with valid XOR checksums (a false MODEL FIRST corrupted an upload).
    One quiet spell is a stall; the frame completes when its rest comes."""
    frame = encode_frame(MessageType.MODEL, FlowControl.REQUEST, Flag.FIRST | Flag.LAST,
                         bytes(range(100)))
    master, slave = os.openpty()
    try:
        channel = MessageChannel(RestAfterTheStall(os.ttyname(slave), master, frame[30:]),
                                 stall_timeout=STALL)
        os.write(master, frame[:30])
        event = channel.receive(5.0)
        assert not isinstance(event, Corruption), event
        assert event.payload == bytes(range(100))
        channel.close()
    finally:
        os.close(master)
        os.close(slave)


class SlowReader:
    """A UART target on a loopback socket that reads the line at ~1.3 kB/s (64 bytes every
    50 ms, its own pace), like firmware on an emulator starved of CPU, and answers every
    request OK once it has read it."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests: list[int] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        decoder = FrameDecoder(136)
        with conn:
            while True:
                time.sleep(0.05)
                data = conn.recv(64)
                if not data:
                    return
                decoder.feed(data)
                while (frame := decoder.next()) is not None:
                    if frame.flags & Flag.LAST:
                        self.requests.append(frame.message_type)
                        conn.sendall(encode_frame(frame.message_type, FlowControl.TRANSMISSION,
                                                  Flag.SUCCESS | Flag.IS_ZEPHYR | Flag.FIRST
                                                  | Flag.LAST))

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


def test_upload_to_a_target_still_reading_it_is_not_timed_out():
    """The MODEL timeout (here 2 s + 2 x size / line rate = 2.9 s) counts from when the
    target stops reading, not from the first byte: a 5 kB upload read at 1.3 kB/s takes
    ~4.5 s and succeeds (#16 finding 6: uploads to QEMU on a loaded machine timed out)."""
    target = SlowReader()
    client = UARTProtocol(port=target.url, timeout=2.0)
    try:
        client.initialize_client()
        model = bytes(range(256)) * 20
        assert client.model_timeout(len(model)) < 3.0
        start = time.monotonic()
        assert client.upload_model_bytes(model)
        assert time.monotonic() - start > client.model_timeout(len(model))
        assert target.requests == [MessageType.PING, MessageType.MODEL]
    finally:
        client.disconnect()
        target.close()
