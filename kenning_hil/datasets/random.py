"""RandomDataset: seeded synthetic inputs matching a model's io specification.

For models without labelled data (e.g. MLPerf Tiny references): runs on random inputs are
compared between runtimes, where bit-exactness needs no labels. Each sample is generated from
(seed, sample index) alone, so a sample is the same whatever the batch size or sample limit.

Values: float inputs of a quantised tensor cover its representable range
((qmin - zero_point) * scale .. (qmax - zero_point) * scale); other float inputs are uniform in
[low, high]; integer inputs are uniform over their dtype's range.
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
        subset: str = "all",
        **kwargs: Any,
    ):
        self.io_specification = self._load_spec(io_spec_path, io_specification)
        if samples < 1:
            raise ConfigurationError(f"RandomDataset: samples must be >= 1, got {samples}")
        if not low < high:
            raise ConfigurationError(f"RandomDataset: low ({low}) must be below high ({high})")
        self.samples, self.seed, self.low, self.high = samples, seed, low, high
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
        total.accumulate(SAMPLES_TOTAL, part[SAMPLES_TOTAL][0], lambda: 0)

    @classmethod
    def declared_quality_metrics(cls, parameters) -> tuple[frozenset[str] | None, str]:
        return frozenset(), NO_LABELS

    def no_quality_metrics_reason(self) -> str:
        return NO_LABELS

    def compute_quality_metrics(self, measurements: Measurements) -> dict[str, Any]:
        if SAMPLES_TOTAL not in measurements:
            return {}
        return {SAMPLES_TOTAL: int(measurements[SAMPLES_TOTAL][0])}
