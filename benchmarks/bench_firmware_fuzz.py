#!/usr/bin/env python3
"""Hostile traffic against the reference firmware over its emulated UART (issue 16): the
firmware on QEMU mps2-an386, reached as a pyserial ``socket://`` URL, gets bursts of every
`kenning_hil.protocols.hostile.CATEGORIES` (in 136-byte frames), half of them inside an open
session, and a well-formed session (io spec, a small int8 model, one inference) after every
70 bursts.

Prints bursts and frames sent, crashes (QEMU exited), hangs (the target stopped reading a
burst for 2 s, kept talking for 5 s, or left 5 connect PINGs of 2 s unanswered), malformed
answers and good sessions passed/failed. Targets: 0 crashes, 0 hangs, 0 good sessions failed;
exit code 1 otherwise.

    .venv/bin/python benchmarks/bench_firmware_fuzz.py [--cases 2000]
    # bursts 1260-1329 of the same run, absurd io specs only, every frame the firmware sent:
    .venv/bin/python benchmarks/bench_firmware_fuzz.py --start 1260 --cases 1330 \
        --only absurd_io_spec --trace fuzz-trace.log
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
from kenning_hil.protocols.hostile import (  # noqa: E402
    CATEGORIES,
    GoodSession,
    fuzz_serial_target,
)
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
    parser.add_argument("--start", type=int, default=0,
                        help="first burst to send (the earlier ones are drawn, not sent)")
    parser.add_argument("--only", action="append", choices=CATEGORIES, metavar="CATEGORY",
                        help=f"send only bursts of this category (repeatable): {CATEGORIES}")
    parser.add_argument("--trace", type=Path, metavar="FILE",
                        help="write every burst and every frame the firmware sent to FILE")
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
            trace = args.trace.open("w") if args.trace else None
            start = time.monotonic()
            try:
                report = fuzz_serial_target(
                    board.url, args.cases, good, good_session, seed=args.seed,
                    alive=lambda: board.running, start=args.start,
                    only=frozenset(args.only) if args.only else None,
                    progress=lambda r: print(
                        f"  {r.cases} bursts, {time.monotonic() - start:.0f} s", flush=True),
                    trace=(lambda text: print(text, file=trace, flush=True)) if trace else None,
                )
            finally:
                if trace is not None:
                    trace.close()
            seconds = time.monotonic() - start
    print(f"firmware {BOARD} over its emulated UART: {report.cases} bursts "
          f"({args.start}..{args.cases - 1}) in {seconds:.0f} s")
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
