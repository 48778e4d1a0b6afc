"""What a run produced: its Result (quality metrics, latency, sizes, raw measurements)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.measurements import (
    COMPILED_MODEL_SIZE,
    LATENCY_STATS,
    SAMPLES_TOTAL,
    TIMESTAMP_SUFFIX,
    Latency,
    Measurements,
    measurements_file,
    measurements_in_memory,
)

# ------------------------------------------------------------------------------- results


@dataclass
class Result:
    """What `hil.run` returns: quality metrics as attributes (``result.accuracy``),
    ``latency`` (a `Latency`: seconds or a count, with its ``source``), ``compiled_size``
    (bytes) and the raw ``measurements``."""

    test_id: str
    target: str
    model: str
    optimizers: list[dict]
    samples: int
    metrics: dict[str, float]
    latency: Latency | None
    compiled_size: int | None
    measurements: Measurements
    compiled_model_path: Path | None = None
    compile_cached: bool = False
    ram: int | None = None
    path: Path | None = None  # where the results were written
    record: dict | None = None  # the results record (what `path` holds, or will)
    # why the dataset reports no quality metrics (random inputs, synthetic labels), or ""
    no_metrics_reason: str = ""

    def __getattr__(self, name: str) -> Any:
        metrics = self.__dict__.get("metrics", {})
        if name in metrics:
            return metrics[name]
        if name.startswith("__"):  # copy, pickle and friends probe for these
            raise AttributeError(name)
        why = self.__dict__.get("no_metrics_reason", "")
        if why and not metrics:
            raise AttributeError(
                f"Result has no attribute or metric '{name}': this run has no quality metrics "
                f"({why})")
        raise AttributeError(
            f"Result has no attribute or metric '{name}' (metrics: {', '.join(sorted(metrics))})"
        )

    def values(self) -> dict[str, float]:
        """Flat metric names -> values, as thresholds and baselines name them."""
        values: dict[str, float] = dict(self.metrics)
        if self.latency is not None:
            for stat in LATENCY_STATS:
                values[f"{self.latency.metric_prefix}.{stat}"] = getattr(self.latency, stat)
        if self.compiled_size is not None:
            values["compiled_size"] = float(self.compiled_size)
        if self.ram is not None:
            values["ram"] = float(self.ram)
        return values

    def summary(self) -> dict:
        return {
            "test": self.test_id,
            "target": self.target,
            "model": self.model,
            "optimizers": self.optimizers,
            "samples": self.samples,
            "metrics": self.metrics,
            "latency": self.latency.to_dict() if self.latency else None,
            "compiled_size": self.compiled_size,
            "ram": self.ram,
            "compile_cached": self.compile_cached,
        }


@dataclass
class CapturedOutputs:
    """A run's outputs, kept for differential tests (`Harness.run(capture=...)`): each
    batch's outputs in the model wrapper's order, dequantised, their io spec entries, and a
    digest of the inputs that produced them (targets compared must have had the same)."""

    batches: list[list[np.ndarray]] = field(default_factory=list)
    entries: list[dict] | None = None
    _inputs: Any = field(default_factory=lambda: hashlib.sha256(), repr=False)

    def __call__(self, inputs: list[np.ndarray], outputs: list[np.ndarray]) -> None:
        """`Runtime.output_sink`: one batch's inputs and outputs."""
        for array in inputs:
            array = np.ascontiguousarray(array)
            self._inputs.update(f"{array.dtype}{array.shape}".encode())
            self._inputs.update(array.tobytes())
        self.batches.append(outputs)

    @property
    def inputs_digest(self) -> str:
        return self._inputs.hexdigest()

    def arrays(self) -> list[np.ndarray]:
        """One array per model output, all samples (first axis) of the run."""
        if not self.batches:
            return []
        return [np.concatenate([np.asarray(batch[i]) for batch in self.batches])
                for i in range(len(self.batches[0]))]


def scalar_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    """Quality metrics among dataset results: plain numbers, not timing or counts."""
    skip = {SAMPLES_TOTAL, COMPILED_MODEL_SIZE}
    return {
        key: float(value)
        for key, value in values.items()
        if isinstance(value, (int, float))
        and not isinstance(value, bool)
        and key not in skip
        and not key.endswith(("_step", TIMESTAMP_SUFFIX, "_size", "_count"))
    }


# ------------------------------------------------------------------------------- export


def kenning_measurements(record: Mapping[str, Any]) -> dict[str, Any]:
    """A plain Kenning-style measurements file (`measurements_file`: Kenning's keys at the top
    level, times in seconds, `format_version`) from a result file the harness wrote (its
    measurements nested under ``measurements``, in ns), or from a bare measurements file.
    Kenning's report header keys are filled from the record where it has them."""
    nested = record.get("measurements")
    bare = not isinstance(nested, Mapping)
    data = measurements_in_memory(dict(record if bare else nested))
    out = measurements_file(data)
    if bare:
        return out
    model = record.get("model")
    if isinstance(model, str):
        out.setdefault("model_name", model)
    if isinstance(record.get("compiled_size"), int):
        out.setdefault(COMPILED_MODEL_SIZE, record["compiled_size"])
    optimizers = record.get("optimizers")
    if isinstance(optimizers, list):
        out.setdefault("build_cfg", {"optimizers": optimizers})
    for key in ("test", "target", "error", "interrupted"):
        if key in record:
            out.setdefault(key, record[key])
    return out
