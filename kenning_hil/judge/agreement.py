"""Agreement between the runtimes that execute `.tflite` int8 models: the same random int8
inputs through LiteRT's reference kernels (the oracle), LiteRT's default kernels and TFLite
Micro, compared output by output.

    python -m kenning_hil.judge.agreement [MODEL.tflite ...]

prints the table (default models: the MLPerf Tiny four under the models path).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kenning_hil.core.runtime import Runtime

RUNTIME_NAMES = ("litert-ref", "litert", "tflm")
PAIRS = (("litert-ref", "litert"), ("litert-ref", "tflm"), ("litert", "tflm"))


def make_runtime(name: str, model_path: Path) -> Runtime:
    """A loaded runtime by agreement name: litert-ref, litert or tflm."""
    from kenning_hil.runtimes.litert import LiteRTRuntime
    from kenning_hil.runtimes.tflm import TFLMRuntime

    runtime: Runtime
    if name == "litert-ref":
        runtime = LiteRTRuntime(model_path=model_path, reference_kernels=True)
    elif name == "litert":
        runtime = LiteRTRuntime(model_path=model_path)
    elif name == "tflm":
        runtime = TFLMRuntime(model_path=model_path)
    else:
        raise ValueError(f"unknown runtime {name!r} (known: {', '.join(RUNTIME_NAMES)})")
    runtime.prepare_model(None)
    return runtime


@dataclass
class PairAgreement:
    """How two runtimes' raw outputs agree over the same inputs."""

    model: str
    first: str
    second: str
    samples: int
    exact_rate: float  # fraction of samples whose every output element is equal
    element_exact_rate: float  # fraction of output elements that are equal
    max_difference: int  # largest |a - b| over all elements, in quantisation steps
    top1_agreement: float | None  # classifiers (last axis <= 100 classes): argmax agreement


def random_int8_inputs(model_path: Path, count: int, seed: int) -> list[np.ndarray]:
    """`count` uniformly random samples for each input, in the input's own integer type."""
    from kenning_hil.formats.tflite_flatbuffer import read_tflite_file

    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in read_tflite_file(model_path).inputs:
        dtype = np.dtype(tensor.dtype)
        if dtype.kind not in "iu":
            raise ValueError(f"{model_path}: input '{tensor.name}' is {dtype}, not an integer")
        info = np.iinfo(dtype)
        shape = (count, *tensor.shape[1:])
        arrays.append(rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype))
    return arrays


def compare_runtimes(
    model_path: Path, count: int = 100, seed: int = 0, names: tuple[str, ...] = RUNTIME_NAMES
) -> list[PairAgreement]:
    """Runs `count` random inputs through each runtime; returns the agreement of each pair."""
    model_path = Path(model_path)
    inputs = random_int8_inputs(model_path, count, seed)
    outputs = {
        name: [o.astype(np.int64) for o in make_runtime(name, model_path).run_batch(inputs)]
        for name in names
    }
    rows = []
    for first, second in PAIRS:
        if first not in outputs or second not in outputs:
            continue
        a_all, b_all = outputs[first], outputs[second]
        per_sample_equal = np.ones(count, dtype=bool)
        equal_elements = total_elements = 0
        max_difference = 0
        for a, b in zip(a_all, b_all):
            equal = a == b
            per_sample_equal &= equal.reshape(count, -1).all(axis=1)
            equal_elements += int(equal.sum())
            total_elements += equal.size
            max_difference = max(max_difference, int(np.abs(a - b).max()))
        first_output = a_all[0].reshape(count, -1), b_all[0].reshape(count, -1)
        top1 = None
        if 1 < first_output[0].shape[1] <= 100:
            top1 = float(np.mean(first_output[0].argmax(1) == first_output[1].argmax(1)))
        rows.append(PairAgreement(
            model_path.name, first, second, count, float(per_sample_equal.mean()),
            equal_elements / total_elements, max_difference, top1,
        ))
    return rows


def render_agreement_table(rows: list[PairAgreement]) -> str:
    """Markdown table, one row per (model, runtime pair)."""
    lines = [
        "| model | runtimes | samples | exact match (samples) | equal elements | max diff "
        "(steps) | top-1 agreement |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        top1 = "–" if r.top1_agreement is None else f"{r.top1_agreement:.0%}"
        lines.append(
            f"| {r.model} | {r.first} vs {r.second} | {r.samples} | {r.exact_rate:.0%} | "
            f"{r.element_exact_rate:.1%} | {r.max_difference} | {top1} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    from kenning_hil.datasets.mlperf_tiny import MLPERF_TINY_MODELS, mlperf_tiny_model_path

    paths = [Path(a) for a in argv] or [mlperf_tiny_model_path(m) for m in MLPERF_TINY_MODELS]
    rows = []
    for path in paths:
        if not path.is_file():
            print(f"skipped {path}: not found", file=sys.stderr)
            continue
        rows.extend(compare_runtimes(path))
    print(render_agreement_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
