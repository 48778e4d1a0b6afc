"""Thresholds: the bounds a measured result must reach (suite files, ``hil.run``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.core.measurements import LATENCY_STATS
from kenning_hil.judge.metrics import (
    _COMPARISON,
    TIMING_METRIC_PREFIXES,
    format_metric,
    lower_is_better,
    parse_value,
)


@dataclass(frozen=True)
class Threshold:
    """A bound on one metric: ``min <= value <= max`` (either side optional)."""

    metric: str
    min: float | None = None
    max: float | None = None

    def violation(self, value: float) -> str | None:
        """Why `value` misses this threshold, or None."""
        if self.min is not None and value < self.min:
            return (
                f"{self.metric} = {format_metric(self.metric, value)} is below the threshold "
                f"{format_metric(self.metric, self.min)}"
            )
        if self.max is not None and value > self.max:
            return (
                f"{self.metric} = {format_metric(self.metric, value)} is above the threshold "
                f"{format_metric(self.metric, self.max)}"
            )
        return None

    def describe(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {format_metric(self.metric, self.min)}")
        if self.max is not None:
            parts.append(f"<= {format_metric(self.metric, self.max)}")
        return f"{self.metric} {' and '.join(parts)}"


def parse_threshold(metric: str, spec: Any, source: str) -> Threshold:
    """`spec`: a bare number (a floor for quality, a ceiling for latency/size), a string such
    as '>= 0.9' or '<= 120ms', or a mapping {min: ..., max: ...}."""
    family, _, stat = metric.partition(".")
    if family in TIMING_METRIC_PREFIXES and stat not in LATENCY_STATS:
        raise ConfigurationError(
            f"{source}: threshold '{metric}': {family} thresholds are {family}.<stat> with "
            f"<stat> one of {', '.join(LATENCY_STATS)}"
        )
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"min", "max"}
        if unknown or not spec:
            raise ConfigurationError(
                f"{source}: threshold '{metric}': expected keys min and/or max, got "
                f"{', '.join(sorted(map(str, spec))) or 'nothing'}"
            )
        low = parse_value(metric, spec["min"], source) if spec.get("min") is not None else None
        high = parse_value(metric, spec["max"], source) if spec.get("max") is not None else None
        return Threshold(metric, low, high)
    if isinstance(spec, str):
        match = _COMPARISON.match(spec)
        if match and match.group(1):
            op = match.group(1)
            value = parse_value(metric, spec[spec.index(op) + len(op):].strip(), source)
            if op in (">=", ">"):
                return Threshold(metric, min=value)
            if op in ("<=", "<"):
                return Threshold(metric, max=value)
            return Threshold(metric, value, value)
    value = parse_value(metric, spec, source)
    if lower_is_better(metric):
        return Threshold(metric, max=value)
    return Threshold(metric, min=value)


def parse_thresholds(spec: Mapping | None, source: str) -> list[Threshold]:
    if spec is None:
        return []
    if not isinstance(spec, Mapping):
        raise ConfigurationError(
            f"{source}: thresholds must be a mapping of metric to bound, got {type(spec).__name__}"
        )
    return [parse_threshold(str(metric), value, source) for metric, value in spec.items()]


def check_thresholds(values: Mapping[str, float], thresholds: Sequence[Threshold]) -> list[str]:
    """One message per threshold missed (a metric that was not measured is a miss too)."""
    failures = []
    for threshold in thresholds:
        value = values.get(threshold.metric)
        if value is None:
            measured = ", ".join(sorted(values)) or "nothing"
            failures.append(
                f"{threshold.metric} was not measured, so '{threshold.describe()}' cannot be "
                f"checked (measured: {measured})"
            )
            continue
        violation = threshold.violation(float(value))
        if violation:
            failures.append(violation)
    return failures
