"""Which arithmetic step makes TFLite runtimes disagree on int8 models.

The firmware interpreter is the instrument: its host "variants" build switches one arithmetic
step at a time (firmware/interp/khil_quant.h), and a runtime's difference is explained when one
variant reproduces that runtime's outputs exactly. Run from the repository root:

    .venv/bin/python -m tests.firmware.khil_arithmetic_survey [SAMPLES]

prints the Markdown table of docs/firmware-interpreter.md (default 100 seeded random inputs per
model). The library must be built first: make -C firmware -f interp.mk host-interp
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kenning_hil.sim import interp_lib as il

# Runtimes by name: LiteRT with reference kernels (the oracle), with its default kernels
# (XNNPACK delegate), with its optimised built-in kernels but no delegate, TFLite Micro, and the
# firmware interpreter (exact build, or a variant).
VARIANTS = {
    "khil": 0,
    "khil[fc-fixed-point]": il.VARIANT_FC_FIXED_POINT,
    "khil[fp32-requant]": il.VARIANT_FP32_REQUANT,
    "khil[single-rounding]": il.VARIANT_SINGLE_ROUNDING,
    "khil[fc-fixed-point,ties-up]": il.VARIANT_FC_FIXED_POINT | il.VARIANT_SHIFT_TIES_UP,
}

# (first, second, why the row is there)
PAIRS = (
    ("litert-ref", "khil", "firmware vs oracle"),
    ("litert-ref", "tflm", "TFLite Micro vs oracle"),
    ("tflm", "khil[fc-fixed-point]", "explains TFLM"),
    ("litert-ref", "litert", "LiteRT default (XNNPACK) vs oracle"),
    ("litert", "khil[fp32-requant]", "explains LiteRT default"),
    ("litert", "khil[single-rounding]", "close, not the cause"),
    ("litert-ref", "litert-opt", "LiteRT optimised built-ins vs oracle"),
    ("litert-opt", "khil[fc-fixed-point,ties-up]", "explains optimised built-ins"),
)


class Runner:
    """Runs one input through one runtime and returns its first output."""

    def __init__(self, name: str, model: bytes, libraries: dict[str, Path] | None = None):
        self.name = name
        libraries = libraries or {}
        if name in VARIANTS:
            variant = VARIANTS[name]
            library = libraries.get("variants" if variant else "exact")
            self._fw = il.FirmwareInterpreter(model, library=library, variant=variant)
            self.run = lambda x: self._fw.run(x)[0]
        elif name == "tflm":
            from tflite_micro.python.tflite_micro import runtime

            self._tflm = runtime.Interpreter.from_bytes(model)
            self.run = self._run_tflm
        else:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType

            resolver = {
                "litert-ref": OpResolverType.BUILTIN_REF,
                "litert": OpResolverType.AUTO,
                "litert-opt": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            }[name]
            self._lite = Interpreter(model_content=model, experimental_op_resolver_type=resolver)
            self._lite.allocate_tensors()
            self.run = self._run_litert

    def _run_tflm(self, x: np.ndarray) -> np.ndarray:
        self._tflm.set_input(x, 0)
        self._tflm.invoke()
        return self._tflm.get_output(0).copy()

    def _run_litert(self, x: np.ndarray) -> np.ndarray:
        (inp,) = self._lite.get_input_details()
        self._lite.set_tensor(inp["index"], x)
        self._lite.invoke()
        return self._lite.get_tensor(self._lite.get_output_details()[0]["index"]).copy()


@dataclass
class Agreement:
    model: str
    first: str
    second: str
    note: str
    samples: int
    exact_rate: float  # samples whose whole output is identical
    element_rate: float  # output elements that are identical
    max_difference: int  # in quantisation steps


def survey(model_path: Path, samples: int = 100, seed: int = 0,
           pairs=PAIRS, libraries: dict[str, Path] | None = None) -> list[Agreement]:
    model = Path(model_path).read_bytes()
    names = sorted({n for pair in pairs for n in pair[:2]})
    runners = {n: Runner(n, model, libraries) for n in names}
    shape = runners[next(n for n in names if n in VARIANTS)]
    input_shape = shape._fw.inputs[0].shape
    rng = np.random.default_rng(seed)
    outputs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for _ in range(samples):
        x = rng.integers(-128, 127, size=input_shape, endpoint=True, dtype=np.int8)
        for n in names:
            outputs[n].append(runners[n].run(x).astype(np.int64))
    rows = []
    for first, second, note in pairs:
        a, b = np.stack(outputs[first]), np.stack(outputs[second])
        rows.append(Agreement(
            Path(model_path).name, first, second, note, samples,
            float(np.mean([np.array_equal(x, y) for x, y in zip(a, b)])),
            float(np.mean(a == b)), int(np.abs(a - b).max()),
        ))
    return rows


def render(rows: list[Agreement]) -> str:
    lines = ["| model | pair | why | identical samples | identical elements | max diff |",
             "|---|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.model} | {r.first} vs {r.second} | {r.note} | "
                     f"{r.exact_rate:.0%} | {r.element_rate:.1%} | {r.max_difference} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    from .conftest import MLPERF_TINY_FILES, models_root

    samples = int(argv[0]) if argv else 100
    rows = []
    for file_name in MLPERF_TINY_FILES.values():
        path = models_root() / "mlperf_tiny" / file_name
        if path.is_file():
            rows.extend(survey(path, samples))
    print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
