"""A partial frame is dropped as stalled only when the line is still quiet when the reader
looks: bytes that arrived while the host process was not running (a loaded machine)
complete it (#16 finding 6, #22). Over a real pty; the test places the late bytes itself,
so the result does not depend on machine load."""

from __future__ import annotations

import os
import time

from kenning_hil.core.protocol import Flag, FlowControl, MessageType
from kenning_hil.protocols.channel import Corruption, MessageChannel
from kenning_hil.protocols.frame import encode_frame
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
