#!/usr/bin/env python3
"""A 3-runner KenningFlow against calling the runtime directly in a loop, on the same samples.

The flow: dataset-provider (digits, all 1797 samples) -> model-runtime-runner (the digits model
on ONNX Runtime, here) -> summary collector (top-1 class and running accuracy; its line goes
to a discarded stream). The direct loop does the same work by hand on pre-cut samples: per
sample the runtime's `convert_input_arrays`, `run_batch` and `postprocess_output`, then the
predicted class and the accuracy count. Both run in this process, interleaved, after a
warm-up; the figures are medians over the repetitions, taken with the chosen clock (the
thread's CPU time by default). Both sessions use one intra-op thread: with a thread pool, ONNX
Runtime's spinning workers compete with the caller for the cores of a busy machine, and
what that costs depends on the load, not on the flow. The flow's
time is that of its steps 2..N (read in the flow's progress callback, whose calls count
against the flow): prepare and cleanup are left out, as the loop's model load is. The last
line is the ratio (goal: within 1.2x).

    .venv/bin/python benchmarks/bench_flow.py [--repetitions N] [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from kenning_hil.config.settings import HILSettings  # noqa: E402
from kenning_hil.datasets.digits import DigitsDataset  # noqa: E402
from kenning_hil.flows.flowrun import build_flow  # noqa: E402
from kenning_hil.runtimes.onnxruntime import ONNXRuntime  # noqa: E402

MODEL = REPO_ROOT / "models" / "digits" / "digits-mlp.onnx"
FLOW = [
    {"type": "dataset-provider",
     "parameters": {"dataset": {"type": "digits", "parameters": {"subset": "all"}}},
     "outputs": {"data": "pixels", "label": "digit"}},
    {"type": "model-runtime-runner",
     "parameters": {"model_wrapper": str(MODEL),
                    "runtime": {"type": "onnxruntime", "parameters": {"num_threads": 1}}},
     "inputs": {"input": "pixels"}, "outputs": {"model_output": "scores"}},
    {"type": "summary", "parameters": {"interval": 0.5},
     "inputs": {"model_output": "scores", "label": "digit"}},
]


def direct_loop(runtime: ONNXRuntime, samples: list, labels: list) -> tuple[int, int]:
    """The same work as the flow, by hand: (correct, done)."""
    correct = 0
    for sample, label in zip(samples, labels):
        raw = runtime.run_batch(runtime.convert_input_arrays([sample]))
        scores = runtime.postprocess_output(raw)[0]
        correct += int(scores.argmax()) == label
    return correct, len(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=15)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="cpu",
                        help="cpu (default): CPU time of this thread, steady on a busy machine "
                        "where wall time mostly measures waiting for a core; wall: perf_counter")
    args = parser.parse_args(argv)
    clock = time.perf_counter if args.clock == "wall" else time.thread_time

    dataset = DigitsDataset(subset="all")
    (inputs,), (truth,) = dataset.get_data()
    samples = [inputs[i : i + 1] for i in range(len(inputs))]
    labels = [int(v) for v in truth]
    runtime = ONNXRuntime(num_threads=1)
    runtime.model_path = MODEL
    runtime.prepare_local()

    with tempfile.TemporaryDirectory() as scratch:
        settings = HILSettings.resolve(REPO_ROOT, {"hil_report": f"{scratch}/report",
                                                   "compile_cache": f"{scratch}/cache"})
        harness = settings.harness()

        def run_flow() -> tuple[float, float]:
            flow = build_flow(FLOW, harness, targets=None)
            flow.runners[2].stream = io.StringIO()
            marks = {}
            last = len(samples)

            def mark(done: int, _flow) -> None:
                # steps 2..N: prepare (the model load) and the first step (which cuts the
                # samples, done before the loop's clock starts) stay out; this call itself
                # is counted against the flow
                if done == 1 or done == last:
                    marks[done] = clock()

            measured = flow.run(progress=mark)
            assert measured["flow_steps"] == len(samples)
            per_step = (marks[len(samples)] - marks[1]) / (len(samples) - 1)
            return per_step * len(samples), measured["accuracy"]

        def run_direct() -> tuple[float, float]:
            start = clock()
            correct, done = direct_loop(runtime, samples, labels)
            return clock() - start, correct / done

        run_flow(), run_direct()  # warm-up
        flow_times, direct_times = [], []
        for _ in range(args.repetitions):
            seconds, flow_accuracy = run_flow()
            flow_times.append(seconds)
            seconds, direct_accuracy = run_direct()
            direct_times.append(seconds)
        harness.close()
    assert abs(flow_accuracy - direct_accuracy) < 1e-12, (flow_accuracy, direct_accuracy)
    flow_us = statistics.median(flow_times) / len(samples) * 1e6
    direct_us = statistics.median(direct_times) / len(samples) * 1e6
    print(f"samples per run: {len(samples)}, repetitions: {args.repetitions}, clock: "
          f"{args.clock}, accuracy (both): {flow_accuracy:.4f}")
    print(f"direct runtime loop: {direct_us:.2f} us/sample")
    print(f"3-runner flow: {flow_us:.2f} us/sample (overhead {flow_us - direct_us:.2f} us)")
    print(f"flow / direct loop: {flow_us / direct_us:.2f}x (goal <= 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
