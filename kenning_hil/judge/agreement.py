"""Agreement between runtimes and between targets, output by output.

Two uses: the survey of the host runtimes that execute `.tflite` int8 models (the same random
int8 inputs through LiteRT's reference kernels (the oracle), LiteRT's default kernels and
TFLite Micro),

    python -m kenning_hil.judge.agreement [MODEL.tflite ...]

which prints the table (default models: the MLPerf Tiny four under the models path); and the
judge of differential tests (`hil.compare`, suite key `compare:`): `compare_outputs` compares
the raw outputs two targets gave for the same samples against an `OutputTolerance`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.core.iospec import is_quantized
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
    distinct_outputs: int = 0  # different outputs of the first runtime over the samples


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
            distinct_outputs(a_all),
        ))
    return rows


def render_agreement_table(rows: list[PairAgreement]) -> str:
    """Markdown table, one row per (model, runtime pair)."""
    lines = [
        "| model | runtimes | samples | distinct outputs | exact match (samples) | equal "
        "elements | max diff (steps) | top-1 agreement |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        top1 = "–" if r.top1_agreement is None else f"{r.top1_agreement:.0%}"
        lines.append(
            f"| {r.model} | {r.first} vs {r.second} | {r.samples} | {r.distinct_outputs} | "
            f"{r.exact_rate:.0%} | "
            f"{r.element_exact_rate:.1%} | {r.max_difference} | {top1} |"
        )
    return "\n".join(lines)


def distinct_outputs(outputs: Sequence[np.ndarray]) -> int:
    """How many different outputs the samples gave: `outputs` holds one array per model
    output, samples first; a sample's output is all of them together, byte for byte. An
    agreement over few distinct outputs checks few outputs, whatever the sample count."""
    arrays = [np.ascontiguousarray(np.asarray(a)) for a in outputs]
    if not arrays or len(arrays[0]) == 0:
        return 0
    samples = len(arrays[0])
    return len({b"".join(a[i].tobytes() for a in arrays) for i in range(samples)})


def few_distinct_outputs(distinct: int, samples: int) -> str:
    """A warning when fewer than half the samples gave different outputs (empty if not)."""
    if samples and distinct * 2 < samples:
        return (f"only {distinct} distinct outputs in {samples} samples: the comparison "
                f"checks few different outputs (inputs that drive the model to the same "
                f"output prove little; the random dataset's 'spread' draw avoids it)")
    return ""


# ------------------------------------------------------------------- targets compared

TOLERANCE_KEYS = ("exact", "max_lsb", "atol", "rtol")
MESSAGE_VALUES = 12  # output values a failure message shows per side (the JSON has them all)


@dataclass(frozen=True)
class OutputTolerance:
    """How far a target's outputs may be from the reference's: equal (`exact`), at most
    `max_lsb` quantisation steps apart (quantised outputs), or ``|t - r| <= atol + rtol * |r|``
    element by element (float outputs; quantised ones are then compared dequantised)."""

    max_lsb: int | None = 0  # None: atol/rtol
    atol: float = 0.0
    rtol: float = 0.0

    @property
    def exact(self) -> bool:
        return self.max_lsb == 0

    def to_dict(self) -> dict:
        if self.exact:
            return {"exact": True}
        if self.max_lsb is not None:
            return {"max_lsb": self.max_lsb}
        return {"atol": self.atol, "rtol": self.rtol}

    def describe(self) -> str:
        if self.exact:
            return "exact"
        if self.max_lsb is not None:
            return f"max_lsb {self.max_lsb}"
        return f"atol {self.atol:g}, rtol {self.rtol:g}"


EXACT = OutputTolerance()


def _non_negative(value: Any, key: str, where: str, integer: bool) -> float:
    # YAML 1.1 reads 1e-5 (no dot) as a string: numbers in strings are accepted
    number: Any = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not (
            np.isfinite(number) and number >= 0) or (integer and number != int(number)):
        kind = "a non-negative integer" if integer else "a non-negative number"
        raise ConfigurationError(f"{where}: '{key}' must be {kind}, not {value!r}")
    return number


def parse_output_tolerance(value: Any, where: str) -> OutputTolerance:
    """``{exact: true}``, ``{max_lsb: N}`` or ``{atol: A, rtol: R}`` (either or both); None
    is exact. `where` names the setting in errors (a suite key, hil.compare)."""
    if value is None:
        return EXACT
    if isinstance(value, OutputTolerance):
        return value
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{where}: a comparison tolerance is a mapping ({{exact: true}}, {{max_lsb: N}} or "
            f"{{atol: A, rtol: R}}), not {value!r}")
    unknown = [k for k in value if k not in TOLERANCE_KEYS]
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown tolerance key '{unknown[0]}' (known: {', '.join(TOLERANCE_KEYS)})")
    given = set(value)
    if not given:
        raise ConfigurationError(f"{where}: empty tolerance (give exact, max_lsb or atol/rtol)")
    if "exact" in given:
        if given != {"exact"}:
            raise ConfigurationError(
                f"{where}: 'exact' cannot be combined with {', '.join(sorted(given - {'exact'}))}")
        if value["exact"] is not True:
            raise ConfigurationError(
                f"{where}: 'exact' can only be true; for a tolerance give max_lsb or atol/rtol")
        return EXACT
    if "max_lsb" in given:
        if given != {"max_lsb"}:
            raise ConfigurationError(
                f"{where}: 'max_lsb' (quantisation steps) cannot be combined with atol/rtol")
        return OutputTolerance(max_lsb=int(_non_negative(value["max_lsb"], "max_lsb", where,
                                                         integer=True)))
    return OutputTolerance(
        max_lsb=None,
        atol=float(_non_negative(value.get("atol", 0.0), "atol", where, integer=False)),
        rtol=float(_non_negative(value.get("rtol", 0.0), "rtol", where, integer=False)),
    )


@dataclass
class PairComparison:
    """A target's outputs against the reference's, sample by sample."""

    reference: str
    target: str
    tolerance: OutputTolerance
    unit: str  # "steps" (quantisation steps of int outputs) or "abs" (float values)
    samples: int
    exact_samples: int
    max_difference: float  # largest |target - reference| over all elements, in `unit`
    max_relative_difference: float | None  # float comparisons: largest |t - r| / |r|
    max_at: dict | None  # where max_difference is: sample, output, element
    first_mismatch: dict | None  # first differing sample: index, output, element, both outputs
    failing_samples: list[int]  # samples beyond the tolerance
    per_sample_max_difference: list[float]
    accuracy: dict[str, float | None] = field(default_factory=dict)  # target name -> accuracy
    distinct_outputs: int = 0  # different reference outputs over the samples

    @property
    def exact_match_rate(self) -> float:
        return self.exact_samples / self.samples if self.samples else 1.0

    @property
    def passed(self) -> bool:
        return not self.failing_samples

    def to_dict(self) -> dict:
        """The record written into the results JSON (keys documented in docs/plugin.md)."""
        return {
            "reference": self.reference,
            "target": self.target,
            "tolerance": self.tolerance.to_dict(),
            "unit": self.unit,
            "samples": self.samples,
            "exact_samples": self.exact_samples,
            "exact_match_rate": self.exact_match_rate,
            "distinct_outputs": self.distinct_outputs,
            "max_difference": _plain(self.max_difference),
            "max_relative_difference": self.max_relative_difference,
            "max_at": self.max_at,
            "passed": self.passed,
            "failing_samples": len(self.failing_samples),
            "first_failing_sample": self.failing_samples[0] if self.failing_samples else None,
            "first_mismatch": self.first_mismatch,
            "accuracy": dict(self.accuracy),
            "per_sample": {
                "max_difference": [_plain(d) for d in self.per_sample_max_difference],
            },
        }

    def summary(self) -> str:
        """One line: the pair, samples, exact-match rate, max difference, accuracies."""
        unit = " steps" if self.unit == "steps" else ""
        text = (f"{self.target} vs {self.reference}: {self.samples} samples "
                f"({self.distinct_outputs} distinct outputs), "
                f"{self.exact_match_rate:.0%} exact, max difference {_plain(self.max_difference)}"
                f"{unit}")
        if self.max_relative_difference is not None:
            text += f" (relative {self.max_relative_difference:.3g})"
        if self.max_at is not None and self.max_difference:
            text += f" at sample {self.max_at['sample']} ({self.max_at['output']})"
        accuracies = [f"{name} {value:.4g}" for name, value in self.accuracy.items()
                      if value is not None]
        if accuracies:
            text += f"; accuracy {', '.join(accuracies)}"
        warning = self.few_distinct_warning()
        if warning:
            text += f"; warning: {warning}"
        return text

    def few_distinct_warning(self) -> str:
        """Said when fewer than half the samples gave different reference outputs."""
        return few_distinct_outputs(self.distinct_outputs, self.samples)

    def failure(self) -> str:
        """Why the pair fails its tolerance (empty when it passes)."""
        if self.passed:
            return ""
        first = self.first_mismatch or {}
        shown = ""
        if first:
            shown = (f"; first mismatch sample {first['sample']}, output '{first['output']}' "
                     f"element {first['element']}: reference "
                     f"{_shorten(first['reference'])}, {self.target} {_shorten(first['target'])}")
        return (f"outputs differ beyond tolerance ({self.tolerance.describe()}) in "
                f"{len(self.failing_samples)} of {self.samples} samples, first sample "
                f"{self.failing_samples[0]}: {self.summary()}{shown}")


def _plain(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


def _shorten(values: list) -> str:
    if len(values) <= MESSAGE_VALUES:
        return str(values)
    return "[" + ", ".join(str(v) for v in values[:MESSAGE_VALUES]) + f", ... ({len(values)})]"


def _output_name(entry: dict, index: int) -> str:
    return str(entry.get("name") or f"output {index}")


def _in_steps(array: np.ndarray, entry: dict) -> np.ndarray:
    """A quantised output in quantisation steps (its integer values). Runtimes hand outputs
    over dequantised, ``(q - zp) * scale`` in float32; dividing by the scale and rounding
    recovers q exactly (relative error 2^-24 on |q - zp| <= 255)."""
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    scale = np.asarray(entry["scale"], dtype=np.float64).reshape(-1)
    zero_point = np.asarray(entry["zero_point"], dtype=np.int64).reshape(-1)
    if scale.size != 1 or zero_point.size != 1:
        raise ConfigurationError(
            f"output {_output_name(entry, 0)}: per-channel output quantisation is not "
            f"supported by max_lsb comparisons; use atol/rtol")
    return np.rint(array.astype(np.float64) / scale[0]).astype(np.int64) + int(zero_point[0])


def _as_float(array: np.ndarray, entry: dict) -> np.ndarray:
    if array.dtype.kind in "iu" and is_quantized(entry):
        scale = np.asarray(entry["scale"], dtype=np.float64)
        return (array.astype(np.float64) - np.asarray(entry["zero_point"])) * scale
    return array.astype(np.float64)


def compare_outputs(
    reference: Sequence[np.ndarray],
    target: Sequence[np.ndarray],
    entries: Sequence[dict] | None,
    tolerance: OutputTolerance,
    reference_name: str,
    target_name: str,
) -> PairComparison:
    """Compares two targets' outputs for the same samples: each a list with one array per
    model output (samples first), in the model wrapper's order; `entries` are those outputs'
    io spec entries (quantisation). Quantised outputs are compared in quantisation steps
    under exact/max_lsb, as float values under atol/rtol."""
    if len(reference) != len(target):
        raise ConfigurationError(
            f"{target_name} gave {len(target)} outputs per sample, reference {reference_name} "
            f"{len(reference)}")
    specs = list(entries) if entries is not None else [{} for _ in reference]
    names = [_output_name(e, i) for i, e in enumerate(specs)]
    ref_arrays = [np.asarray(a) for a in reference]
    got_arrays = [np.asarray(a) for a in target]
    for name, r, t in zip(names, ref_arrays, got_arrays):
        if r.shape != t.shape:
            raise ConfigurationError(
                f"output '{name}': {target_name} gave shape {t.shape}, reference "
                f"{reference_name} {r.shape} (samples first)")
    samples = len(ref_arrays[0]) if ref_arrays else 0
    quantized = bool(specs) and all(is_quantized(e) if e else False for e in specs)
    steps = tolerance.max_lsb is not None and quantized
    if tolerance.max_lsb and not steps:
        floats = next(n for n, e in zip(names, specs) if not (e and is_quantized(e)))
        raise ConfigurationError(
            f"tolerance max_lsb {tolerance.max_lsb} needs quantised outputs; output '{floats}' "
            f"is not quantised: use atol/rtol")
    per_sample = np.zeros(samples, dtype=np.float64)
    relative = np.zeros(samples, dtype=np.float64)
    failing = np.zeros(samples, dtype=bool)
    flat_pairs = []
    for entry, r, t in zip(specs, ref_arrays, got_arrays):
        if steps:
            a, b = _in_steps(r, entry), _in_steps(t, entry)
        else:
            a, b = _as_float(r, entry), _as_float(t, entry)
        a, b = a.reshape(samples, -1), b.reshape(samples, -1)
        both_nan = np.isnan(a) & np.isnan(b) if not steps else np.zeros(a.shape, bool)
        difference = np.where(both_nan, 0, np.abs(b - a))
        difference = np.where(np.isnan(difference), np.inf, difference)
        flat_pairs.append((a, b, difference))
        if difference.size:
            per_sample = np.maximum(per_sample, difference.max(axis=1))
        if steps:
            failing |= (difference > tolerance.max_lsb).any(axis=1)
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(difference == 0, 0.0, difference / np.abs(a))
        if rel.size:
            relative = np.maximum(relative, np.nan_to_num(rel, nan=np.inf).max(axis=1))
        bound = 0.0 if tolerance.exact else tolerance.atol + tolerance.rtol * np.abs(a)
        failing |= (difference > bound).any(axis=1)
    exact = per_sample == 0
    max_at = first_mismatch = None
    if samples:
        worst = int(per_sample.argmax())
        which = max(range(len(flat_pairs)), key=lambda i: flat_pairs[i][2][worst].max(
            initial=0))
        max_at = {"sample": worst, "output": names[which],
                  "element": int(flat_pairs[which][2][worst].argmax())}
    if not exact.all():
        sample = int(np.argmin(exact))
        which = next(i for i, (_, _, d) in enumerate(flat_pairs) if d[sample].any())
        a, b, d = flat_pairs[which]
        convert = (lambda v: [int(x) for x in v]) if steps else (lambda v: [float(x) for x in v])
        first_mismatch = {"sample": sample, "output": names[which],
                          "element": int(np.flatnonzero(d[sample])[0]),
                          "reference": convert(a[sample]), "target": convert(b[sample])}
    return PairComparison(
        reference=reference_name,
        target=target_name,
        tolerance=tolerance,
        unit="steps" if steps else "abs",
        samples=samples,
        exact_samples=int(exact.sum()),
        max_difference=float(per_sample.max()) if samples else 0.0,
        max_relative_difference=None if steps else (float(relative.max()) if samples else 0.0),
        max_at=max_at,
        first_mismatch=first_mismatch,
        failing_samples=[int(i) for i in np.flatnonzero(failing)],
        per_sample_max_difference=[float(d) for d in per_sample],
        distinct_outputs=distinct_outputs(ref_arrays),
    )


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
