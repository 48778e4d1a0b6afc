#!/usr/bin/env python3
"""Per-sample cost of `Runtime.run_locally` against a bare ONNX Runtime loop.

Both run the digits model (batch 1) on the same inputs in this process, interleaved, after a
warm-up; every figure is a median over the repetitions. The bare loop is
``for x in samples: session.run(None, {"pixels": x})`` over pre-cut inputs. `run_locally`
includes everything: dataset preparation, preprocessing, timing, output postprocessing,
evaluation, system statistics and measurements; its model load happens once (the runtime
keeps the session of an unchanged model file) and is reported separately.

Two views of the cost per sample:
- whole call: wall time of a call over all 1797 samples / 1797 (per-run fixed costs, such as
  starting the statistics thread and computing metrics, spread over the samples);
- per sample: (time for 1797 samples - time for 359) / 1438, the cost each further sample
  adds, i.e. the per-sample path alone. The last line is this ratio.

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
from kenning_hil.runtimes.onnxruntime import (  # noqa: E402
    ONNXRuntime,
    default_execution_providers,
)

MODEL = REPO_ROOT / "models" / "digits" / "digits-mlp.onnx"
SMALL = 359


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=31)
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: perf_counter; cpu: CPU time of this thread (steadier on a busy machine)",
    )
    args = parser.parse_args(argv)

    import onnxruntime

    dataset = DigitsDataset(subset="all", batch_size=1)
    wrapper = ONNXWrapper(MODEL, dataset)
    (inputs,), _ = dataset.get_data()
    samples = [inputs[i : i + 1] for i in range(len(inputs))]
    full = len(samples)

    providers = default_execution_providers()
    session = onnxruntime.InferenceSession(str(MODEL), providers=providers)
    variants = {
        "bare session.run loop": None,
        "run_locally": ONNXRuntime(),
        "run_locally, no system stats": ONNXRuntime(disable_performance_measurements=True),
    }

    clock = time.thread_time if args.clock == "cpu" else time.perf_counter

    def measure(runtime: ONNXRuntime | None, count: int) -> float:
        start = clock()
        if runtime is None:
            for x in samples[:count]:
                session.run(None, {"pixels": x})
        else:
            dataset.set_sample_limit(count)
            runtime.run_locally(dataset, wrapper, MODEL)
        return clock() - start

    load_start = time.perf_counter()
    measure(variants["run_locally"], full)  # loads the model
    load = time.perf_counter() - load_start
    for _ in range(3):  # warm-up
        for runtime in variants.values():
            measure(runtime, full)

    whole: dict[str, list[float]] = {name: [] for name in variants}
    marginal: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repetitions):
        for name, runtime in variants.items():
            all_samples, some = measure(runtime, full), measure(runtime, SMALL)
            whole[name].append(all_samples / full)
            marginal[name].append((all_samples - some) / (full - SMALL))
    whole_median = {name: statistics.median(v) for name, v in whole.items()}
    marginal_median = {name: statistics.median(v) for name, v in marginal.items()}

    print(f"model: {MODEL.relative_to(REPO_ROOT)}, providers: {providers}, batch 1")
    print(f"repetitions: {args.repetitions}, clock: {args.clock}; medians in us per sample:")
    print(f"  {'':30s} {'whole call':>10s} {'per sample':>10s}")
    for name in variants:
        print(f"  {name:30s} {whole_median[name] * 1e6:10.2f} {marginal_median[name] * 1e6:10.2f}")
    print(f"first run_locally call, model load included: {load * 1e3:.1f} ms")
    bare = "bare session.run loop"
    whole_ratio = whole_median["run_locally"] / whole_median[bare]
    print(f"whole-call ratio run_locally/bare: {whole_ratio:.2f}")
    ratio = marginal_median["run_locally"] / marginal_median[bare]
    print(f"overhead ratio run_locally/bare: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
