#!/usr/bin/env python3
"""Hostile traffic against the reference firmware over its emulated UART (issue 16): the
firmware on QEMU mps2-an386, reached as a pyserial ``socket://`` URL, gets bursts of every
`kenning_hil.protocols.hostile.CATEGORIES` (in 136-byte frames), half of them inside an open
session, and a well-formed session (io spec, a small int8 model, one inference) after every
70 bursts.

Prints bursts and frames sent, crashes (QEMU exited), hangs (a target still talking after
5 s, or a connect PING unanswered for 2 s), malformed answers and good sessions
passed/failed. Targets: 0 crashes, 0 hangs, 0 good sessions failed; exit code 1 otherwise.

    .venv/bin/python benchmarks/bench_firmware_fuzz.py [--cases 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from kenning_hil.protocols.bytes_protocol import UARTProtocol  # noqa: E402
from kenning_hil.protocols.hostile import GoodSession, fuzz_serial_target  # noqa: E402
from kenning_hil.sim.firmware_build import build_firmware  # noqa: E402
from kenning_hil.sim.qemu import QemuInstance  # noqa: E402
from tests.sim.test_qemu_target import fc_model  # noqa: E402  (the tests' small int8 model)

BOARD = "mps2-an386"
SPEC = {  # the model's own tensors: the host quantises, the firmware takes int8
    "input": [{"name": "x", "shape": [1, 256], "dtype": "int8"}],
    "output": [{"name": "y", "shape": [1, 10], "dtype": "int8"}],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    elf = build_firmware(BOARD)
    with tempfile.TemporaryDirectory(prefix="bench-fw-fuzz-") as tmp:
        model = fc_model(Path(tmp) / "fc-int8.tflite").read_bytes()
        sample = np.arange(256, dtype=np.int16).astype(np.int8).tobytes()
        good = GoodSession(SPEC, model, sample)
        with QemuInstance(BOARD, elf) as board:

            def good_session() -> None:
                client = UARTProtocol(port=board.url, timeout=10.0)
                client.initialize_client()
                try:
                    for step, ok in (
                        ("IO_SPEC", lambda: client.upload_io_specification_dict(SPEC)),
                        ("MODEL", lambda: client.upload_model_bytes(model)),
                        ("DATA", lambda: client.upload_input(sample)),
                        ("PROCESS", client.request_processing),
                        ("OUTPUT", lambda: client.download_output()[0]),
                    ):
                        if not ok():
                            raise AssertionError(f"{step} refused: {client.refusal_reason()}")
                finally:
                    client.disconnect()

            good_session()  # the board works before any hostile byte
            start = time.monotonic()
            report = fuzz_serial_target(
                board.url, args.cases, good, good_session, seed=args.seed,
                alive=lambda: board.running,
                progress=lambda r: print(
                    f"  {r.cases} bursts, {time.monotonic() - start:.0f} s", flush=True),
            )
            seconds = time.monotonic() - start
    print(f"firmware {BOARD} over its emulated UART: {args.cases} bursts in {seconds:.0f} s")
    for line in report.lines():
        if not line.startswith("server RSS"):
            print(f"  {line}")
    met = report.crashes == 0 and report.hangs == 0 and report.good_failed == 0
    print("firmware fuzz: targets " + ("met" if met else "MISSED")
          + f" ({report.crashes} crashes, {report.hangs} hangs, {report.good_failed} good "
          f"sessions failed of {report.good_passed + report.good_failed})")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
