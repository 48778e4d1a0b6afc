#!/usr/bin/env python3
"""Model upload throughput over the emulated UART of a QEMU board.

Protocol: a MODEL request carrying a real model (124-byte chunks in 136-byte frames, one
answer at the end, which also includes the firmware's model load) to the kenning-hil
firmware, timed from the first byte written to the answer.

Raw: the same bytes through the same emulated UART and QEMU serial backend (loopback TCP
chardev, -icount shift=0) to `uart-drain.elf`, built from the same board code, which reads a
4-byte length and then throws the bytes away, answering one byte at the end - no framing,
no checksums, no protocol work.

Rounds alternate between the two so both see the same machine load; medians are reported.
The last line is the ratio (goal >= 0.8).

    .venv/bin/python benchmarks/bench_uart_upload.py [--board mps2-an386] [--model PATH]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import struct
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kenning_hil.core.protocol import Flag, FlowControl, MessageType  # noqa: E402
from kenning_hil.datasets.mlperf_tiny import models_root  # noqa: E402
from kenning_hil.protocols.frame import (  # noqa: E402
    UART_MAX_FRAME_SIZE,
    Frame,
    FrameDecoder,
    encode_frame,
)
from kenning_hil.sim.firmware_build import build_firmware  # noqa: E402
from kenning_hil.sim.qemu import QemuInstance  # noqa: E402

CHUNK = UART_MAX_FRAME_SIZE - 12


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("socket://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(120)
    return sock


def request(mtype: int, payload: bytes, flags: int = 0) -> bytes:
    chunks = [payload[i : i + CHUNK] for i in range(0, len(payload), CHUNK)] or [b""]
    out = bytearray()
    for i, chunk in enumerate(chunks):
        f = flags | (Flag.FIRST if i == 0 else 0) | (Flag.LAST if i == len(chunks) - 1 else 0)
        out += encode_frame(mtype, FlowControl.REQUEST, f, chunk)
    return bytes(out)


def wait_answer(sock: socket.socket, decoder: FrameDecoder, mtype: int) -> Frame:
    while True:
        while (event := decoder.next()) is not None:
            if isinstance(event, Frame) and event.message_type == mtype:
                return event
        data = sock.recv(4096)
        if not data:
            raise RuntimeError("board closed the connection")
        decoder.feed(data)


def protocol_upload(elf: Path, board: str, model: bytes) -> float:
    """Seconds for one MODEL upload (connect PING first, not timed)."""
    with QemuInstance(board, elf) as qemu:
        sock = connect(qemu.url)
        decoder = FrameDecoder(UART_MAX_FRAME_SIZE)
        sock.sendall(request(MessageType.PING, b"", Flag.SUCCESS))
        wait_answer(sock, decoder, MessageType.PING)
        wire = request(MessageType.MODEL, model)
        start = time.perf_counter()
        sock.sendall(wire)
        answer = wait_answer(sock, decoder, MessageType.MODEL)
        elapsed = time.perf_counter() - start
        sock.close()
    if not answer.flags & Flag.SUCCESS:
        raise RuntimeError(f"MODEL refused: {answer.payload.decode(errors='replace')}")
    return elapsed


def raw_upload(elf: Path, board: str, model: bytes) -> float:
    """Seconds to push the same bytes through the UART to the drain program."""
    with QemuInstance(board, elf) as qemu:
        sock = connect(qemu.url)
        start = time.perf_counter()
        sock.sendall(struct.pack("<I", len(model)) + model)
        if sock.recv(1) != b"D":
            raise RuntimeError("drain program did not confirm")
        elapsed = time.perf_counter() - start
        sock.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", default="mps2-an386")
    parser.add_argument("--model", type=Path,
                        default=models_root() / "mlperf_tiny" / "kws_ref_model.tflite")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--elf", type=Path, help="firmware ELF (default: build it)")
    parser.add_argument("--drain-elf", type=Path, help="drain ELF (default: build it)")
    args = parser.parse_args()
    if not args.model.is_file():
        print(f"model {args.model} not found (set KENNING_HIL_MODELS or pass --model)")
        return 2
    model = args.model.read_bytes()
    firmware = args.elf or build_firmware(args.board)
    drain = args.drain_elf or build_firmware(args.board, target="drain")
    frames = -(-len(model) // CHUNK)
    wire_bytes = len(model) + 12 * frames
    print(f"board {args.board} (QEMU, -icount shift=0, UART on a loopback TCP chardev)")
    print(f"model {args.model.name}: {len(model)} bytes = {frames} frames, {wire_bytes} bytes "
          "on the wire")
    proto_times, raw_times = [], []
    for round_index in range(args.rounds):
        raw_times.append(raw_upload(drain, args.board, model))
        proto_times.append(protocol_upload(firmware, args.board, model))
        print(f"  round {round_index + 1}: raw {raw_times[-1]:.2f} s, "
              f"protocol {proto_times[-1]:.2f} s")
    raw = len(model) / statistics.median(raw_times)
    proto = len(model) / statistics.median(proto_times)
    print(f"raw write:     {raw / 1e3:.1f} kB/s of model bytes (median of {args.rounds})")
    print(f"MODEL upload:  {proto / 1e3:.1f} kB/s of model bytes (median of {args.rounds})")
    print(f"upload throughput ratio (protocol / raw, goal >= 0.8): {proto / raw:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
