#!/usr/bin/env python3
"""UART soak under host load (issue 16 finding 6): two QEMU mps2-an386 boards running the
reference firmware, driven in parallel by the project's UART host (UARTProtocol), while
stress-ng keeps every core busy. Each session is a whole Kenning-style run on a board that
stays booted: connect PING, IO_SPEC, MODEL (ResNet-8 int8, MLPerf Tiny IC, 98 kB), a few
inferences checked bit-exact against LiteRT's reference kernels, STATS, disconnect PING.

Prints sessions passed/failed (with each failure's message), the retransmissions the
boards asked for (a request damaged or cut off on the line), the answers the host asked for
again, the firmware's UART receive overruns, and the wall time. Target: 0 failed sessions;
exit code 1 otherwise. Without stress-ng (or with --no-load) it runs on the machine as it is.

    .venv/bin/python benchmarks/bench_uart_soak.py [--sessions 100] [--inferences 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from kenning_hil.datasets.mlperf_tiny import models_root  # noqa: E402
from kenning_hil.formats.tflite_flatbuffer import read_tflite_file  # noqa: E402
from kenning_hil.protocols.bytes_protocol import UARTProtocol  # noqa: E402
from kenning_hil.sim.firmware_build import build_firmware  # noqa: E402
from kenning_hil.sim.qemu import QemuInstance  # noqa: E402

BOARD = "mps2-an386"
MODEL = "mlperf_tiny/pretrainedResnet_quant.tflite"


class HostReasks(logging.Handler):
    """Counts the host's resends and answers asked for again (protocol log records)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.count = 0
        self.lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if "again" in record.getMessage():
            with self.lock:
                self.count += 1


def reference_outputs(model: Path, inputs: list[np.ndarray]) -> list[bytes]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=str(model),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    out = []
    for x in inputs:
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        out.append(interp.get_tensor(interp.get_output_details()[0]["index"]).tobytes())
    return out


class Soak:
    def __init__(self, model: Path, inferences: int):
        self.model = model
        self.spec = read_tflite_file(model).io_specification()
        shape = self.spec["input"][0]["shape"]
        rng = np.random.default_rng(22)
        self.inputs = [rng.integers(-128, 128, shape, dtype=np.int8) for _ in range(inferences)]
        self.expected = reference_outputs(model, self.inputs)
        self.lock = threading.Lock()
        self.passed = 0
        self.failures: list[str] = []
        self.board_asked = 0
        self.overruns = 0

    def session(self, url: str) -> None:
        """One whole session; raises with the step that failed."""
        client = UARTProtocol(port=url, timeout=10.0)
        client.initialize_client()
        try:
            steps = [("IO_SPEC", lambda: client.upload_io_specification_dict(self.spec)),
                     ("MODEL", lambda: client.upload_model(self.model))]
            for step, call in steps:
                if not call():
                    raise RuntimeError(f"{step} refused: {client.refusal_reason()}")
            for x, expected in zip(self.inputs, self.expected):
                if not client.upload_input(x.tobytes()):
                    raise RuntimeError(f"DATA refused: {client.refusal_reason()}")
                if not client.request_processing():
                    raise RuntimeError(f"PROCESS refused: {client.refusal_reason()}")
                ok, out = client.download_output()
                if not ok or out != expected:
                    raise RuntimeError("OUTPUT differs from LiteRT's reference kernels")
            stats = client.download_statistics()
            overruns = int(np.max(stats.get_values("uart_rx_overruns") or [0]))
        finally:
            asked = sum("asking for retransmission" in line for line in client.target_logs)
            client.disconnect()
            with self.lock:
                self.board_asked += asked
        with self.lock:
            self.overruns = max(self.overruns, overruns)

    def run_board(self, board_name: str, elf: Path, sessions: int, name: str) -> None:
        with QemuInstance(board_name, elf) as board:
            for i in range(sessions):
                try:
                    self.session(board.url)
                except Exception as exc:  # noqa: BLE001 - counted and printed, the soak goes on
                    with self.lock:
                        self.failures.append(f"{name} session {i + 1}: {exc}")
                else:
                    with self.lock:
                        self.passed += 1
                with self.lock:
                    done = self.passed + len(self.failures)
                if done % 10 == 0:
                    print(f"  {done} sessions done, {len(self.failures)} failed", flush=True)


def start_load(enabled: bool) -> subprocess.Popen | None:
    if not enabled or shutil.which("stress-ng") is None:
        return None
    return subprocess.Popen(
        ["stress-ng", "--cpu", str(os.cpu_count() or 2), "--cpu-method", "matrixprod",
         "--timeout", "0", "--quiet"],
        start_new_session=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100, help="in all, split over 2 boards")
    parser.add_argument("--inferences", type=int, default=3, help="per session")
    parser.add_argument("--no-load", action="store_true", help="do not start stress-ng")
    parser.add_argument("--board", default=BOARD, help=f"QEMU machine (default {BOARD})")
    parser.add_argument("--model", default=MODEL,
                        help=f"model under the models path (default {MODEL})")
    args = parser.parse_args()
    model = models_root() / args.model
    if not model.is_file():
        print(f"bench_uart_soak: {model} absent (set KENNING_HIL_MODELS); skipped")
        return 0
    elf = build_firmware(args.board)
    reasks = HostReasks()
    logging.getLogger("kenning_hil.protocols").addHandler(reasks)
    logging.getLogger("kenning_hil.protocols").setLevel(logging.INFO)
    soak = Soak(model, args.inferences)
    load = start_load(not args.no_load)
    load_text = (f"stress-ng --cpu {os.cpu_count()}" if load else "no stress-ng")
    print(f"{args.sessions} sessions on 2 QEMU {args.board} boards in parallel, {load_text}, "
          f"{model.name} ({model.stat().st_size} B), {args.inferences} inferences each",
          flush=True)
    start = time.monotonic()
    try:
        halves = (args.sessions - args.sessions // 2, args.sessions // 2)
        threads = [threading.Thread(target=soak.run_board,
                                    args=(args.board, elf, n, f"board {i + 1}"))
                   for i, n in enumerate(halves)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        if load is not None:
            os.killpg(load.pid, signal.SIGTERM)
            load.wait()
    wall = time.monotonic() - start
    for failure in soak.failures:
        print(f"  FAILED {failure}")
    print(f"retransmissions asked by the boards: {soak.board_asked}; asked again by the host "
          f"(resends + answers): {reasks.count}; UART RX overruns: {soak.overruns}; "
          f"{wall:.0f} s")
    failed = len(soak.failures)
    print(f"sessions: {soak.passed} passed, {failed} failed (target: 0 failed)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
