#!/usr/bin/env python3
"""Digits accuracy table: the fp32 model and its int8/compiled variants, each on its runtime,
over the held-out test split, with the median host latency per inference.

    .venv/bin/python benchmarks/bench_accuracy.py [--models-dir build/models]

Builds the variants with scripts/make_digits_int8.py when they are missing. Variants whose
framework is not installed are listed as skipped with the extra to install.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "scripts"))

from kenning_hil.core.errors import KenningHILError  # noqa: E402
from kenning_hil.core.measurements import COMPILED_MODEL_SIZE, TARGET_STEP  # noqa: E402

GOAL_POINTS = 1.0  # every int8 variant within this many accuracy points of fp32


def variants(models_dir: Path) -> list[tuple[str, str, Path, object]]:
    """(label, runtime short name, model path, runtime factory) for each table row."""
    from kenning_hil.runtimes.litert import LiteRTRuntime
    from kenning_hil.runtimes.onnxruntime import ONNXRuntime
    from kenning_hil.runtimes.tflm import TFLMRuntime
    from kenning_hil.runtimes.tvm import TVMRuntime

    cpu = ["CPUExecutionProvider"]
    return [
        ("fp32 ONNX", "onnxruntime", REPO_ROOT / "models/digits/digits-mlp.onnx",
         lambda: ONNXRuntime(execution_providers=cpu)),
        ("int8 ONNX (QDQ)", "onnxruntime", models_dir / "digits-int8.onnx",
         lambda: ONNXRuntime(execution_providers=cpu)),
        ("int8 TFLite", "litert", models_dir / "digits-int8.tflite", lambda: LiteRTRuntime()),
        ("int8 TFLite", "litert (reference kernels)", models_dir / "digits-int8.tflite",
         lambda: LiteRTRuntime(reference_kernels=True)),
        ("int8 TFLite", "tflm", models_dir / "digits-int8.tflite", lambda: TFLMRuntime()),
        ("fp32 TVM llvm", "tvm", models_dir / "digits-llvm.so", lambda: TVMRuntime()),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "build" / "models")
    args = parser.parse_args()
    from kenning_hil.datasets.digits import DigitsDataset
    from kenning_hil.modelwrappers.onnx import ONNXWrapper

    if not all(p.is_file() for _, _, p, _ in variants(args.models_dir)):
        import make_digits_int8

        try:
            make_digits_int8.build(args.models_dir)
        except KenningHILError as error:  # e.g. TVM missing: build what can be built
            print(f"note: {error}", file=sys.stderr)
            make_digits_int8.build(args.models_dir, with_tvm=False)
    dataset = DigitsDataset()
    wrapper = ONNXWrapper(REPO_ROOT / "models/digits/digits-mlp.onnx", dataset)
    rows, fp32 = [], None
    for label, runtime_name, path, factory in variants(args.models_dir):
        try:
            result = factory().run_locally(dataset, wrapper, path)
        except KenningHILError as error:
            rows.append((label, runtime_name, "skipped", "", "", str(error)[:60]))
            continue
        accuracy = 100 * result["accuracy"]
        fp32 = accuracy if fp32 is None else fp32
        delta = accuracy - fp32
        latency_us = np.median(result[TARGET_STEP]) / 1000
        rows.append((label, runtime_name, f"{accuracy:.2f}", f"{delta:+.2f}",
                     f"{latency_us:.1f}", f"{result[COMPILED_MODEL_SIZE]}"))
    print(f"Digits, held-out test split: {len(dataset)} samples, batch 1\n")
    print("| model | runtime | accuracy % | Δ vs fp32 (points) | median latency µs | size bytes |")
    print("|---|---|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    failed = [r for r in rows if r[3] and abs(float(r[3])) > GOAL_POINTS]
    print(f"\ngoal: every variant within {GOAL_POINTS} point of fp32: "
          + ("met" if not failed else f"NOT met by {[r[:2] for r in failed]}"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
