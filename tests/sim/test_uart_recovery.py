"""#16 finding 6 / #22: the host (UARTProtocol) and the firmware on QEMU recover from a
damaged line instead of failing the session: a flipped bit in a MODEL upload, a request cut
off by a stop longer than the board's RX gap (what a starved host or simulator looks like to
the board), and an answer that stops mid-frame longer than the host's frame timeout. The
faults are placed by a relay the test controls (faulty_line.py), so the test does not depend
on machine load; on a loaded machine the same recoveries make the RX-gap flake harmless."""

from __future__ import annotations

import numpy as np
import pytest

from kenning_hil.core.protocol import Flag, MessageType
from kenning_hil.protocols.bytes_protocol import UARTProtocol
from kenning_hil.sim.qemu import QemuInstance

from .faulty_line import FaultyLine
from .frame_client import FrameClient, request_frames
from .test_host_protocol import litert_reference

pytestmark = pytest.mark.sim

FRAME = 136  # a full UART frame: 12-byte header + 124-byte payload chunk


def test_uart_session_recovers_corrupt_cut_off_and_stalled_frames(firmware_elf, kws_model):
    with QemuInstance("mps2-an386", firmware_elf("mps2-an386")) as board:
        line = FaultyLine(board.url)
        protocol = UARTProtocol(port=line.url, timeout=10.0)
        try:
            assert protocol.initialize_client()
            line.flip(line.to_board + 10 * FRAME + 50)  # a payload bit of the 11th chunk
            assert protocol.upload_model(kws_model)
            x = np.random.default_rng(3).integers(-128, 128, size=(1, 49, 10, 1), dtype=np.int8)
            # the first DATA frame stops after 60 bytes for 8 s: the board drops a frame after
            # two RX gaps of 1 s of board time each (one gap is a stall), which an idle
            # guest's clock follows only as QEMU gets the CPU (a 1.5 s pause was sometimes not
            # one gap yet on a loaded machine)
            line.pause(line.to_board + 60, 8.0)
            assert protocol.upload_input(x.tobytes())
            assert protocol.request_processing()
            # the OUTPUT answer stops after 14 bytes for 3 s: the host gives up on a frame
            # after two frame timeouts of 0.5 s
            line.pause_answer(14, 3.0)
            ok, out = protocol.download_output()
            assert ok and np.array_equal(np.frombuffer(out, np.int8),
                                         litert_reference(kws_model, x)[0])
            asked = [entry for entry in protocol.target_logs if "retransmission" in entry]
            assert len(asked) == 2, list(protocol.target_logs)
            assert "corrupt MODEL frame: checksum" in asked[0]
            assert "truncated DATA frame" in asked[1]
            # the firmware's own count: nothing overflowed its receive ring
            stats = protocol.download_statistics()
            assert stats["uart_rx_overruns"] == [0]
        finally:
            protocol.disconnect()
            line.close()


def test_stray_zeros_before_a_connect_ping_do_not_close_the_session(firmware_elf):
    """Zeros left on the line (the tail of a cut frame) shift the connect PING behind them;
    its XOR checksum still matches. 1 stray zero made it a disconnect PING, answered like a
    connect, so the host's next request was refused as outside a session (#16: a good session
    after 1,329 fuzz bursts). Sent in one write, so the board's RX gap cannot drop them."""
    with QemuInstance("mps2-an386", firmware_elf("mps2-an386")) as board:
        client = FrameClient(board.url)
        try:
            assert client.connect().success
            for stray in (1, 3, 7):
                client.send_raw(bytes(stray) + request_frames(MessageType.PING,
                                                              flags=Flag.SUCCESS))
                assert client.answer(MessageType.PING).success
                refused = client.request(MessageType.PROCESS)
                assert "PROCESS before a model was loaded" in refused.text, (stray, refused.text)
        finally:
            client.close()


def test_a_request_never_resent_is_answered_fail_after_the_resend_wait(firmware_elf):
    """Kenning's UART host ignores REQUEST_RETRANSMIT and waits for the answer without a
    timeout: the board answers the damaged request FAIL, with the reason, after 5 quiet RX
    gaps (about 5 s) instead of leaving such a host waiting forever (#16)."""
    with QemuInstance("mps2-an386", firmware_elf("mps2-an386")) as board:
        client = FrameClient(board.url)
        try:
            assert client.connect().success
            frame = bytearray(request_frames(MessageType.IO_SPEC, bytes(100)))
            frame[40] ^= 0x01  # a payload bit: the checksum no longer matches
            client.send_raw(bytes(frame))
            client.retransmit_request(MessageType.IO_SPEC)
            failed = client.answer(MessageType.IO_SPEC, timeout=60.0)
            assert not failed.success
            assert "corrupt IO_SPEC frame: checksum" in failed.text, failed.text
            assert "no retransmission came" in failed.text, failed.text
            assert client.connect().success  # and the board serves on
        finally:
            client.close()
