#!/usr/bin/env python3
"""Builds the digits int8 models from the shipped fp32 ONNX model with the project's own
optimizers, into build/models/ (built, not committed):

    .venv/bin/python scripts/make_digits_int8.py [--output-dir build/models] [--no-tvm]

- digits-int8.onnx    static QDQ int8 (optimizer "onnxruntime-quant"), float io
- digits-int8.tflite  full-integer int8 with int8 input/output (optimizer "tflite")
- digits-llvm.so      TVM library for the host CPU (optimizer "tvm"; skipped without TVM)

Each gets its io specification beside it (`<model>.json`). Calibration: the train part of the
digits split (the held-out test part is never seen).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from kenning_hil.core.errors import KenningHILError, MissingDependencyError  # noqa: E402

DIGITS_ONNX = REPO_ROOT / "models" / "digits" / "digits-mlp.onnx"
DEFAULT_OUTPUT = REPO_ROOT / "build" / "models"


def build(output_dir: Path, with_tvm: bool = True, source: Path = DIGITS_ONNX) -> dict[str, Path]:
    """Builds the int8 (and TVM) digits models; returns {variant: path}."""
    from kenning_hil.datasets.digits import DigitsDataset
    from kenning_hil.optimizers.onnxruntime_quant import ONNXRuntimeQuantizer
    from kenning_hil.optimizers.tflite import TFLiteCompiler

    dataset = DigitsDataset()
    output_dir.mkdir(parents=True, exist_ok=True)
    built = {}
    steps = [
        ("onnx-int8", ONNXRuntimeQuantizer(dataset, output_dir / "digits-int8.onnx")),
        ("tflite-int8", TFLiteCompiler(dataset, output_dir / "digits-int8.tflite")),
    ]
    if with_tvm:
        from kenning_hil.optimizers.tvm import TVMCompiler

        steps.append(("tvm-llvm", TVMCompiler(dataset, output_dir / "digits-llvm.so")))
    for name, optimizer in steps:
        start = time.perf_counter()
        optimizer.compile(source)
        path = optimizer.compiled_model_path
        shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
        print(f"{name:12s} {shown}  {path.stat().st_size} bytes  "
              f"{time.perf_counter() - start:.1f} s")
        built[name] = path
    return built


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--no-tvm", action="store_true", help="skip the TVM library")
    args = parser.parse_args()
    try:
        build(args.output_dir, with_tvm=not args.no_tvm)
    except MissingDependencyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KenningHILError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
