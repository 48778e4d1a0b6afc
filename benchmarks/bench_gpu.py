#!/usr/bin/env python3
"""CPU vs GPU latency of the digits MLP and a ResNet-18-sized CNN (random weights) on ONNX
Runtime (CPU vs CUDA execution provider) and TVM (llvm vs cuda), batch 1, median of N runs.

    .venv/bin/python benchmarks/bench_gpu.py [--runs 100] [--output-dir build/gpu-bench]

Installs nothing. For the GPU columns the environment needs:
- ONNX Runtime with CUDA: `pip uninstall -y onnxruntime && pip install onnxruntime-gpu`
  (never both packages in one environment: they share the `onnxruntime` module);
- TVM's CUDA runtime (in the apache-tvm wheel) and, to compile for `cuda`, the CUDA toolkit's
  nvcc on PATH;
- an NVIDIA driver (`nvidia-smi` works).
A column that cannot run prints the reason instead of a number.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from kenning_hil.core.errors import KenningHILError  # noqa: E402

WARMUP = 10


def median_ms(run, inputs: list[np.ndarray], runs: int) -> float:
    for _ in range(WARMUP):
        run(inputs)
    durations = []
    for _ in range(runs):
        start = time.perf_counter()
        run(inputs)  # both runtimes return host arrays: GPU work is finished when it returns
        durations.append(time.perf_counter() - start)
    return 1e3 * float(np.median(durations))


def gpu_reason() -> str | None:
    """Why no GPU column can run here, or None."""
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA driver (nvidia-smi absent)"
    return None


def onnxruntime_cell(model: Path, inputs, runs: int, provider: str) -> str:
    from kenning_hil.runtimes.onnxruntime import ONNXRuntime

    runtime = ONNXRuntime(execution_providers=[provider])
    runtime.model_path = model
    try:
        runtime.prepare_local()
    except KenningHILError as error:
        return f"n/a ({str(error)[:70]})"
    return f"{median_ms(runtime.run_batch, inputs, runs):.3f}"


def tvm_cell(model: Path, inputs, runs: int, target: str, output_dir: Path) -> str:
    from kenning_hil.optimizers.tvm import TVMCompiler
    from kenning_hil.runtimes.tvm import TVMRuntime

    library = output_dir / f"{model.stem}-{target}.so"
    try:
        start = time.perf_counter()
        TVMCompiler(None, library, target=target).compile(model)
        compile_s = time.perf_counter() - start
        runtime = TVMRuntime(device="cuda" if target == "cuda" else "cpu")
        runtime.model_path = library
        runtime.prepare_local()
    except KenningHILError as error:
        return f"n/a ({str(error)[:70]})"
    return f"{median_ms(runtime.run_batch, inputs, runs):.3f} (compile {compile_s:.0f} s)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "build" / "gpu-bench")
    args = parser.parse_args()
    from resnet18_onnx import save_resnet18

    args.output_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    models = [
        ("digits MLP", REPO_ROOT / "models/digits/digits-mlp.onnx",
         [rng.random((1, 64), dtype=np.float32)]),
        ("ResNet-18 (random)", save_resnet18(args.output_dir / "resnet18.onnx"),
         [rng.standard_normal((1, 3, 224, 224), dtype=np.float32)]),
    ]
    no_gpu = gpu_reason()
    print(f"Latency per inference, ms, batch 1, median of {args.runs} runs"
          + (f" — GPU columns skipped: {no_gpu}" if no_gpu else "") + "\n")
    print("| model | ORT CPU | ORT CUDA | TVM llvm | TVM cuda |")
    print("|---|---:|---:|---:|---:|")
    for name, path, inputs in models:
        cells = [
            onnxruntime_cell(path, inputs, args.runs, "CPUExecutionProvider"),
            "n/a" if no_gpu else onnxruntime_cell(path, inputs, args.runs, "CUDAExecutionProvider"),
            tvm_cell(path, inputs, args.runs, "llvm", args.output_dir),
            "n/a" if no_gpu else tvm_cell(path, inputs, args.runs, "cuda", args.output_dir),
        ]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
