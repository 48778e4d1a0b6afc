"""RandomDataset: seeded synthetic inputs matching a model's io specification.

For models without labelled data (e.g. MLPerf Tiny references): runs on random inputs are
compared between runtimes, where bit-exactness needs no labels. Each sample is generated from
(seed, sample index) alone, so a sample is the same whatever the batch size or sample limit.

Values (`distribution: spread`, the default): the float inputs of a quantised tensor are drawn
in quantisation steps around its zero point (the real value 0; moved into the middle half of
the integer range when it sits at an edge, as for unsigned data shifted to int8) with a
standard deviation of an eighth of the range (32 steps for int8), so most values are
representable and not clipped. Image-like inputs (NHWC with both spatial sides at least 8)
vary smoothly: an 8 x 8 grid of such values over the picture plus a little per-pixel noise.
Why: uniform values over the whole range drive saturating models to the same output for
every sample (MLPerf Tiny VWW: 4 distinct outputs of 20 samples; spread: 18), and a
bit-exactness check on identical outputs checks one output (#23). `distribution: uniform`
keeps the old draw: the representable range ((qmin - zero_point) * scale .. (qmax -
zero_point) * scale). Other float inputs are uniform in [low, high]; integer inputs are uniform
over their dtype's range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.dataset import Dataset
from kenning_hil.core.errors import ConfigurationError
from kenning_hil.core.iospec import (
    io_spec_path,
    is_quantized,
    load_io_specification,
    numpy_dtype,
    tensor_shape,
    validate_io_specification,
)
from kenning_hil.core.measurements import SAMPLES_TOTAL, Measurements

NO_LABELS = "random inputs have no labels"
DISTRIBUTIONS = ("spread", "uniform")
SMOOTH_GRID = 8  # cells per spatial side of the coarse pattern of image-like inputs


class RandomDataset(Dataset):
    """Seeded random inputs for the tensors an io specification describes."""

    arguments_structure = {
        "io_spec_path": {
            "description": "io spec JSON file, or a model file whose '<model>.json' io spec to use",
            "type": Path,
            "nullable": True,
            "default": None,
        },
        "io_specification": {
            "description": "The io spec itself ({'input': [...], 'output': [...]})",
            "type": dict,
            "nullable": True,
            "default": None,
        },
        "samples": {"description": "Number of samples", "type": int, "default": 100},
        "seed": {"description": "Seed of the generated values", "type": int, "default": 0},
        "low": {"description": "Lowest value of float inputs", "type": float, "default": 0.0},
        "high": {"description": "Highest value of float inputs", "type": float, "default": 1.0},
        "distribution": {
            "description": "spread: quantised inputs around their zero point, smooth over "
            "images, so outputs differ; uniform: over the whole representable range",
            "type": str,
            "enum": list(DISTRIBUTIONS),
            "default": "spread",
        },
        "subset": {"default": "all"},
    }

    def __init__(
        self,
        *args: Any,
        io_spec_path: Path | None = None,
        io_specification: dict | None = None,
        samples: int = 100,
        seed: int = 0,
        low: float = 0.0,
        high: float = 1.0,
        distribution: str = "spread",
        subset: str = "all",
        **kwargs: Any,
    ):
        self.io_specification = self._load_spec(io_spec_path, io_specification)
        if samples < 1:
            raise ConfigurationError(f"RandomDataset: samples must be >= 1, got {samples}")
        if not low < high:
            raise ConfigurationError(f"RandomDataset: low ({low}) must be below high ({high})")
        if distribution not in DISTRIBUTIONS:
            raise ConfigurationError(
                f"RandomDataset: distribution must be one of {', '.join(DISTRIBUTIONS)}, got "
                f"{distribution!r}"
            )
        self.samples, self.seed, self.low, self.high = samples, seed, low, high
        self.distribution = distribution
        super().__init__(*args, subset=subset, **kwargs)

    @staticmethod
    def _load_spec(path: Path | None, spec: dict | None) -> dict:
        if (path is None) == (spec is None):
            raise ConfigurationError(
                "RandomDataset: give exactly one of io_spec_path and io_specification"
            )
        if spec is not None:
            return validate_io_specification(spec, source="RandomDataset io_specification")
        path = Path(path)
        candidate = path if path.suffix == ".json" else io_spec_path(path)
        loaded = load_io_specification(candidate)
        if loaded is None:
            raise ConfigurationError(f"RandomDataset: io specification {candidate} does not exist")
        return loaded

    def prepare(self) -> None:
        self.dataX = list(range(self.samples))
        self.dataY = [None] * self.samples

    def _generate(self, entry: dict, rng: np.random.Generator) -> np.ndarray:
        shape = tensor_shape(entry, batch=1)[1:]
        dtype = np.dtype(entry.get("prequantized_dtype", entry["dtype"]))
        if dtype.kind == "f":
            low, high = self.low, self.high
            if is_quantized(entry):
                info = np.iinfo(numpy_dtype(entry))
                scale = float(np.max(entry["scale"]))
                zero_point = float(np.min(entry["zero_point"]))
                if self.distribution == "spread":
                    steps = spread_steps(shape, info.min, info.max, zero_point, rng)
                    return ((steps - zero_point) * scale).astype(dtype)
                low, high = (info.min - zero_point) * scale, (info.max - zero_point) * scale
            return rng.uniform(low, high, size=shape).astype(dtype)
        if dtype.kind == "b":
            return rng.integers(0, 2, size=shape).astype(dtype)
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)

    def prepare_input_samples(self, samples: list) -> list[np.ndarray]:
        entries = self.io_specification["input"]
        columns: list[list[np.ndarray]] = [[] for _ in entries]
        for index in samples:
            rng = np.random.default_rng([self.seed, int(index)])
            for column, entry in zip(columns, entries):
                column.append(self._generate(entry, rng))
        return [
            np.stack(column)
            if column
            else np.zeros((0, *tensor_shape(entry, 1)[1:]), dtype=entry["dtype"])
            for column, entry in zip(columns, entries)
        ]

    def prepare_output_samples(self, samples: list) -> list:
        return [list(samples)]

    def evaluate(self, predictions: list, truth: list) -> Measurements:
        """No labels: counts the samples only."""
        measurements = Measurements()
        measurements.accumulate(SAMPLES_TOTAL, len(predictions[0]) if predictions else 0, lambda: 0)
        return measurements

    def merge_evaluation(self, total: Measurements, part: Measurements) -> None:
        total.accumulate(SAMPLES_TOTAL, part[SAMPLES_TOTAL], lambda: 0)

    @classmethod
    def declared_quality_metrics(cls, parameters) -> tuple[frozenset[str] | None, str]:
        return frozenset(), NO_LABELS

    @classmethod
    def declared_sample_count(cls, parameters) -> int | None:
        samples = parameters.get("samples", cls.arguments_structure["samples"]["default"])
        return samples if isinstance(samples, int) and samples >= 1 else None

    def no_quality_metrics_reason(self) -> str:
        return NO_LABELS

    def compute_quality_metrics(self, measurements: Measurements) -> dict[str, Any]:
        if SAMPLES_TOTAL not in measurements:
            return {}
        return {SAMPLES_TOTAL: int(measurements[SAMPLES_TOTAL])}


def spread_steps(shape: tuple, qmin: int, qmax: int, zero_point: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Values in quantisation steps (floats, within [qmin, qmax]) for one sample of `shape`:
    normal around the zero point (kept inside the middle half of the range) with a standard
    deviation of an eighth of the range; smooth over the picture for image-like shapes."""
    span = qmax - qmin
    centre = min(max(zero_point, qmin + span / 4), qmax - span / 4)
    deviation = span / 8
    if len(shape) == 3 and shape[0] >= SMOOTH_GRID and shape[1] >= SMOOTH_GRID:
        height, width, channels = shape
        coarse = rng.normal(0.0, 1.0, size=(SMOOTH_GRID, SMOOTH_GRID, channels))
        rows = np.arange(height) * SMOOTH_GRID // height
        columns = np.arange(width) * SMOOTH_GRID // width
        pattern = coarse[rows][:, columns] * 2 * deviation
        values = centre + pattern + rng.normal(0.0, deviation / 4, size=shape)
    else:
        values = rng.normal(centre, deviation, size=shape)
    return np.clip(np.round(values), qmin, qmax)
