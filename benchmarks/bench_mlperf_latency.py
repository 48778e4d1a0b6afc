#!/usr/bin/env python3
"""Per-inference host latency of the four MLPerf Tiny int8 models on LiteRT default kernels,
LiteRT reference kernels and TFLite Micro: median (and p95) of N timed runs after warm-up,
one random int8 input per run, measured around `run_batch` (set input, invoke, read output).

    .venv/bin/python benchmarks/bench_mlperf_latency.py [--runs 200] [--threads 1]

Models come from the models path ($KENNING_HIL_MODELS, which `make bench` sets to
../shared/models; else ./models).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from kenning_hil.datasets.mlperf_tiny import (  # noqa: E402
    MLPERF_TINY_MODELS,
    mlperf_tiny_model_path,
)
from kenning_hil.judge.agreement import random_int8_inputs  # noqa: E402

WARMUP = 10


def runtime_factories(threads: int):
    from kenning_hil.runtimes.litert import LiteRTRuntime
    from kenning_hil.runtimes.tflm import TFLMRuntime

    return [
        ("LiteRT default", lambda p: LiteRTRuntime(model_path=p, num_threads=threads)),
        ("LiteRT reference", lambda p: LiteRTRuntime(model_path=p, reference_kernels=True,
                                                      num_threads=threads)),
        ("TFLM", lambda p: TFLMRuntime(model_path=p)),
    ]


def time_runs(runtime, inputs: list[np.ndarray], runs: int) -> np.ndarray:
    """Seconds per run_batch call on batch-1 inputs (after WARMUP untimed calls)."""
    samples = [[x[i : i + 1] for x in inputs] for i in range(len(inputs[0]))]
    for i in range(WARMUP):
        runtime.run_batch(samples[i % len(samples)])
    durations = np.empty(runs)
    clock = time.perf_counter
    for i in range(runs):
        sample = samples[i % len(samples)]
        start = clock()
        runtime.run_batch(sample)
        durations[i] = clock() - start
    return durations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed runs per cell (>= 200)")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT interpreter threads")
    args = parser.parse_args()
    rows = []
    for model in MLPERF_TINY_MODELS:
        path = mlperf_tiny_model_path(model)
        if not path.is_file():
            print(f"skipped {model.name}: {path} not found", file=sys.stderr)
            continue
        inputs = random_int8_inputs(path, 50, seed=0)
        cells = []
        for _, factory in runtime_factories(args.threads):
            runtime = factory(path)
            runtime.prepare_model(None)
            durations = time_runs(runtime, inputs, args.runs)
            median, p95 = 1e3 * np.median(durations), 1e3 * np.percentile(durations, 95)
            cells.append(f"{median:.3f} / {p95:.3f}")
        rows.append((f"{model.name} ({path.name})", *cells))
    names = [name for name, _ in runtime_factories(args.threads)]
    print(f"Host latency per inference, ms, median / p95 of {args.runs} runs "
          f"(LiteRT threads: {args.threads})\n")
    print("| model | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
