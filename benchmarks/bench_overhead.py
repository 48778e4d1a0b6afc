#!/usr/bin/env python3
"""Per-sample cost of `Runtime.run_locally` against a bare ONNX Runtime loop.

Both run the digits model (all 1797 samples, batch 1) on the same inputs, in this process,
interleaved, after a warm-up; each figure is the median over the repetitions. The bare loop is
``for x in samples: session.run(None, {"pixels": x})`` over pre-cut inputs; `run_locally`
includes everything: dataset preparation, preprocessing, timing, output postprocessing,
evaluation and measurements. Its model load happens once (the runtime keeps the session of an
unchanged model file) and is reported separately. The last line is the ratio.

    .venv/bin/python benchmarks/bench_overhead.py [--repetitions N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from kenning_hil.datasets.digits import DigitsDataset  # noqa: E402
from kenning_hil.modelwrappers.onnx import ONNXWrapper  # noqa: E402
from kenning_hil.runtimes.onnxruntime import ONNXRuntime, default_execution_providers  # noqa: E402

MODEL = REPO_ROOT / "models" / "digits" / "digits-mlp.onnx"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=31)
    args = parser.parse_args(argv)

    import onnxruntime

    dataset = DigitsDataset(subset="all", batch_size=1)
    wrapper = ONNXWrapper(MODEL, dataset)
    (inputs,), _ = dataset.get_data()
    samples = [inputs[i : i + 1] for i in range(len(inputs))]
    count = len(samples)

    providers = default_execution_providers()
    session = onnxruntime.InferenceSession(str(MODEL), providers=providers)
    runtimes = {
        "run_locally": ONNXRuntime(),
        "run_locally (no system stats)": ONNXRuntime(disable_performance_measurements=True),
    }

    def bare() -> float:
        start = time.perf_counter()
        for x in samples:
            session.run(None, {"pixels": x})
        return (time.perf_counter() - start) / count

    def local(runtime: ONNXRuntime) -> float:
        start = time.perf_counter()
        runtime.run_locally(dataset, wrapper, MODEL)
        return (time.perf_counter() - start) / count

    load_start = time.perf_counter()
    for runtime in runtimes.values():
        runtime.run_locally(dataset, wrapper, MODEL)  # loads the model, warms up
    load = (time.perf_counter() - load_start) / len(runtimes)
    for _ in range(3):
        bare()

    times: dict[str, list[float]] = {"bare": [], **{name: [] for name in runtimes}}
    for _ in range(args.repetitions):
        times["bare"].append(bare())
        for name, runtime in runtimes.items():
            times[name].append(local(runtime))
    medians = {name: statistics.median(values) for name, values in times.items()}

    print(f"model: {MODEL.relative_to(REPO_ROOT)}, providers: {providers}")
    print(f"samples: {count} (batch 1), repetitions: {args.repetitions}, median per sample:")
    for name, value in medians.items():
        print(f"  {name:32s} {value * 1e6:8.2f} us")
    print(f"first run_locally incl. model load: {load * 1e3:.1f} ms")
    ratio = medians["run_locally"] / medians["bare"]
    print(f"overhead ratio run_locally/bare: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
