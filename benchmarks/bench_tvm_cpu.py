"""TVM llvm vs ONNX Runtime CPU latency (median ms of --runs runs, batch 1) for the digits MLP and
the ResNet-18-sized CNN (`benchmarks/resnet18_onnx.py`), plus TVM compile time.

    .venv/bin/python benchmarks/bench_tvm_cpu.py --runs 20 [--target "llvm -mcpu=native"]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from resnet18_onnx import build_resnet18  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DIGITS_ONNX = REPO / "models" / "digits" / "digits-mlp.onnx"


def median_ms(run, runs: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def bench(name: str, onnx_path: Path, x: np.ndarray, target: str, runs: int, out: Path) -> None:
    import onnxruntime as ort

    from kenning_hil.optimizers.tvm import TVMCompiler
    from kenning_hil.runtimes.tvm import TVMRuntime

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    ort_ms = median_ms(lambda: session.run(None, feed), runs)
    library = out / f"{name}.so"
    start = time.perf_counter()
    TVMCompiler(None, library, target=target).compile(onnx_path)
    compile_s = time.perf_counter() - start
    runtime = TVMRuntime()
    runtime.model_path = library
    runtime.prepare_model(None)
    tvm_ms = median_ms(lambda: runtime.run_batch([x]), runs)
    error = float(np.max(np.abs(runtime.run_batch([x])[0] - session.run(None, feed)[0])))
    print(f"{name:9s} ORT CPU {ort_ms:9.3f} ms | TVM '{target}' {tvm_ms:9.3f} ms "
          f"(compile {compile_s:5.1f} s, max |diff| {error:.2e})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--target", default="llvm")
    parser.add_argument("--only", choices=["digits", "resnet18"], default=None)
    args = parser.parse_args()
    import onnx

    with tempfile.TemporaryDirectory(prefix="bench-tvm-") as tmp:
        out = Path(tmp)
        rng = np.random.default_rng(0)
        if args.only in (None, "digits"):
            bench("digits", DIGITS_ONNX, rng.random((1, 64), dtype=np.float32), args.target,
                  args.runs, out)
        if args.only in (None, "resnet18"):
            path = out / "resnet18.onnx"
            onnx.save(build_resnet18(), str(path))
            x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
            bench("resnet18", path, x, args.target, args.runs, out)


if __name__ == "__main__":
    main()
