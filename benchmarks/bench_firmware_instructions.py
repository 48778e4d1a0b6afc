#!/usr/bin/env python3
"""Guest instructions per inference of the MLPerf Tiny int8 models on the QEMU boards
(`-icount shift=0`: the firmware's timer counts instructions), with peak arena bytes, the
upload time over the emulated UART and a bit-exactness check against LiteRT's reference
kernels, all through the project's host side (UARTProtocol). TFLite Micro's reference
kernels take (mps2-an386, same models) KWS 42.2 M, VWW 99.3 M, IC 105.7 M, AD 1.95 M
instructions.

    .venv/bin/python benchmarks/bench_firmware_instructions.py [--boards mps2-an386 mps3-an547]
        [--models kws vww ic ad]

Models come from the models path ($KENNING_HIL_MODELS, default ../shared/models).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kenning_hil.datasets.mlperf_tiny import (  # noqa: E402
    MLPERF_TINY_MODELS,
    mlperf_tiny_model_path,
)
from kenning_hil.formats.tflite_flatbuffer import read_tflite_file  # noqa: E402
from kenning_hil.protocols.bytes_protocol import UARTProtocol  # noqa: E402
from kenning_hil.protocols.stats import unpack_stat_records  # noqa: E402
from kenning_hil.sim.firmware_build import build_firmware  # noqa: E402
from kenning_hil.sim.qemu import QemuInstance  # noqa: E402

TFLM_REFERENCE = {"kws": 42.2e6, "vww": 99.3e6, "ic": 105.7e6, "ad": 1.95e6}


def litert_reference(path: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=str(path),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


def measure(board: str, elf: Path, path: Path, seed: int) -> dict:
    spec = read_tflite_file(path).io_specification()
    x = np.random.default_rng(seed).integers(-128, 128, size=spec["input"][0]["shape"],
                                             dtype=np.int8)
    with QemuInstance(board, elf) as qemu:
        protocol = UARTProtocol(port=qemu.url, timeout=300.0, process_timeout=300.0)
        protocol.initialize_client()
        try:
            protocol.upload_io_specification_dict(spec)
            start = time.perf_counter()
            loaded = protocol.upload_model(path)
            upload = time.perf_counter() - start
            if not (loaded and protocol.upload_input(x.tobytes())
                    and protocol.request_processing()):
                raise RuntimeError(f"{path.name} on {board}: {protocol.refusal_reason()}")
            _, out = protocol.download_output()
            protocol.download_statistics()
            stats = {n: v for n, _, v in unpack_stat_records(protocol.last_answer.payload)}
        finally:
            protocol.disconnect()
    expected = litert_reference(path, x)
    exact = np.array_equal(np.frombuffer(out, np.int8).reshape(expected.shape), expected)
    return {"instructions": stats["target_inference_instructions"],
            "peak": stats["peak_allocated"], "upload": upload, "exact": exact,
            "size": path.stat().st_size}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", nargs="+", default=["mps2-an386", "mps3-an547"])
    parser.add_argument("--models", nargs="+", default=[m.name for m in MLPERF_TINY_MODELS])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--build-dir", type=Path,
                        help="use <dir>/<board>/kenning-hil.elf instead of building")
    args = parser.parse_args()
    models = [m for m in MLPERF_TINY_MODELS if m.name in args.models]
    print("| board | model | instructions | vs TFLM ref (M4) | peak arena | upload | bit-exact |")
    print("|---|---|---|---|---|---|---|")
    ok = True
    for board in args.boards:
        if args.build_dir:
            elf = args.build_dir / board / "kenning-hil.elf"
        else:
            elf = build_firmware(board)
        for model in models:
            path = mlperf_tiny_model_path(model)
            if not path.is_file():
                print(f"| {board} | {model.name} | model absent: {path} | | | | |")
                continue
            r = measure(board, elf, path, args.seed)
            ok &= r["exact"]
            ratio = r["instructions"] / TFLM_REFERENCE[model.name]
            print(f"| {board} | {model.name} | {r['instructions'] / 1e6:.2f} M | {ratio:.2f}x | "
                  f"{r['peak']} B | {r['size']} B in {r['upload']:.1f} s "
                  f"({r['size'] / r['upload'] / 1e3:.1f} kB/s) | {'yes' if r['exact'] else 'NO'} |",
                  flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
