"""What a run produced: its Result (quality metrics, latency, sizes, raw measurements)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kenning_hil.core.measurements import (
    LatencyStats,
    Measurements,
    summary_fields,
)
from kenning_hil.judge.metrics import LATENCY_STATS

TARGET_STEP = "target_inference_step"
PROTOCOL_STEP = "protocol_inference_step"
TARGET_INSTRUCTIONS = "target_inference_instructions"
TARGET_CYCLES = "target_inference_cycles"
# Where per-inference latency comes from (the first one measured) and its unit: time on the
# target, else a count the target makes (instructions under QEMU, cycles on a board without a
# clock frequency), else the host-timed PROCESS round trip.
LATENCY_SOURCES = (
    (TARGET_STEP, "s"),
    (TARGET_INSTRUCTIONS, "instructions"),
    (TARGET_CYCLES, "cycles"),
    (PROTOCOL_STEP, "s"),
)


# ------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Latency(LatencyStats):
    """Per-inference latency in `unit` (seconds, or instructions / cycles counted by the
    target), and which measurement it comes from."""

    source: str = ""  # one of LATENCY_SOURCES
    samples: tuple[float, ...] = field(default=(), repr=False)
    unit: str = "s"  # "s", "instructions" or "cycles"

    @property
    def metric_prefix(self) -> str:
        """How thresholds and baselines name these values: latency.p95 (seconds),
        instructions.p95, cycles.p95."""
        return "latency" if self.unit == "s" else self.unit

    @classmethod
    def from_measurements(cls, measurements: Mapping) -> Latency | None:
        import numpy as np

        for source, unit in LATENCY_SOURCES:
            values = measurements.get(source)
            if values:
                # times arrive in ns; counts are kept as counted
                samples = np.asarray(values, dtype=np.float64) / (1e9 if unit == "s" else 1.0)
                return cls(**summary_fields(samples), source=source,
                           samples=tuple(float(v) for v in samples), unit=unit)
        return None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("count", *LATENCY_STATS, "source", "unit")}


@dataclass
class Result:
    """What `hil.run` returns: quality metrics as attributes (``result.accuracy``),
    ``latency`` (seconds, with its ``source``), ``compiled_size`` (bytes) and the raw
    ``measurements``."""

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

    def __getattr__(self, name: str) -> Any:
        metrics = self.__dict__.get("metrics", {})
        if name in metrics:
            return metrics[name]
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


def scalar_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    """Quality metrics among dataset results: plain numbers, not timing or counts."""
    skip = {"total", "compiled_model_size"}
    return {
        key: float(value)
        for key, value in values.items()
        if isinstance(value, (int, float))
        and not isinstance(value, bool)
        and key not in skip
        and not key.endswith(("_step", "_timestamp", "_size", "_count"))
    }
