"""Instructions per inference and arena peak of the firmware interpreter on the QEMU boards.

Builds the reference firmware (fw_board's Makefile, with this interpreter) into its own folder,
boots each board under QEMU (-icount shift=0: the board timer counts guest instructions),
uploads each MLPerf Tiny model over the emulated UART, checks one random input bit-exact with
LiteRT's reference kernels and prints the STATS counters. Run from the repository root:

    .venv/bin/python -m tests.firmware.khil_mcu_bench [BOARD ...] [--models kws,ad]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from .conftest import MLPERF_TINY_FILES, models_root

# TFLite Micro on QEMU mps2-an386 (shared/models/mlperf_tiny/README.md), instructions.
TFLM_REFERENCE = {"kws": 42.2e6, "vww": 99.3e6, "ic": 105.7e6, "ad": 1.95e6}
CMSIS_NN = {"kws": 7.58e6, "vww": 23.8e6, "ic": 29.8e6, "ad": 0.58e6}


def measure(board: str, models: list[str], build_dir: Path, samples: int = 1) -> list[dict]:
    from kenning_hil.core.protocol import MessageType
    from kenning_hil.protocols.stats import unpack_stat_records
    from kenning_hil.sim.firmware_build import build_firmware
    from kenning_hil.sim.qemu import QemuInstance
    from tests.sim.frame_client import FrameClient

    from .test_interp_mlperf import litert_reference

    elf = build_firmware(board, build_dir=build_dir / board)
    rows = []
    for name in models:
        path = models_root() / "mlperf_tiny" / MLPERF_TINY_FILES[name]
        with QemuInstance(board, elf) as instance:
            client = FrameClient(instance.url)
            try:
                assert client.connect().success
                answer = client.request(MessageType.MODEL, path.read_bytes(), timeout=300)
                assert answer.success, answer.payload
                reference = litert_reference(path)
                (inp,) = reference.get_input_details()
                rng = np.random.default_rng(1)
                exact = True
                for _ in range(samples):
                    x = rng.integers(-128, 128, size=inp["shape"], dtype=np.int8)
                    assert client.request(MessageType.DATA, x.tobytes()).success
                    assert client.request(MessageType.PROCESS, timeout=600).success
                    out = client.request(MessageType.OUTPUT).payload
                    reference.set_tensor(inp["index"], x)
                    reference.invoke()
                    expected = reference.get_tensor(
                        reference.get_output_details()[0]["index"])
                    exact &= np.array_equal(
                        np.frombuffer(out, np.int8).reshape(expected.shape), expected)
                stats = {n: v for n, _, v in
                         unpack_stat_records(client.request(MessageType.STATS).payload)}
            finally:
                client.close()
        rows.append({"board": board, "model": name, "exact": f"{exact} ({samples})",
                     "instructions": stats.get("target_inference_instructions"),
                     "peak_allocated": stats.get("peak_allocated")})
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("boards", nargs="*", default=["mps2-an386"])
    parser.add_argument("--models", default=",".join(MLPERF_TINY_FILES))
    parser.add_argument("--samples", type=int, default=1,
                        help="random inputs checked against LiteRT per model")
    args = parser.parse_args(argv)
    models = args.models.split(",")
    print("| board | model | bit-exact | instructions | vs TFLM ref | vs CMSIS-NN | arena peak |")
    print("|---|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="khil-bench-") as tmp:
        for board in args.boards:
            for r in measure(board, models, Path(tmp), args.samples):
                n = r["instructions"] or 0
                print(f"| {r['board']} | {r['model']} | {r['exact']} | {n / 1e6:.2f} M | "
                      f"{n / TFLM_REFERENCE[r['model']]:.2f}x | "
                      f"{n / CMSIS_NN[r['model']]:.2f}x | {r['peak_allocated']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
