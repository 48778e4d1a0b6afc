"""Metric names, their classes and units, and how values are read and written.

Metric names are flat: dataset metrics as the dataset reports them (``accuracy``,
``top_3``, ``mse`` ...), ``latency.p50|p95|p99|max|mean|min`` (seconds), or
``instructions.<stat>`` / ``cycles.<stat>`` on targets that count instead of timing (QEMU
boards count instructions), ``compiled_size`` (bytes) and ``ram`` (bytes, when the target
reports peak allocation).
"""

from __future__ import annotations

import re
from typing import Any

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.core.measurements import COUNT_UNITS, SECONDS

# quality metrics whose smaller values are better
_LOWER_IS_BETTER = re.compile(r"(error|loss|mse|mae|rmse|distance|false_)", re.IGNORECASE)
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_COUNT_UNITS = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}
COUNT_PREFIXES = COUNT_UNITS  # per-inference counts made by the target, named by their unit
TIMING_METRIC_PREFIXES = ("latency", *COUNT_PREFIXES)
"""The families of per-inference latency metrics: seconds, or a count the target makes."""
_COMPARISON = re.compile(r"^\s*(>=|<=|>|<|==)?\s*([-+]?[0-9.eE+-]+)\s*([A-Za-zµ]*)\s*$")


def metric_class(name: str) -> str:
    """'latency', 'count' (instructions or cycles per inference), 'size' or 'quality'."""
    if name.startswith("latency.") or name == "latency":
        return "latency"
    if name.split(".", 1)[0] in COUNT_PREFIXES and "." in name:
        return "count"
    if name in ("compiled_size", "ram", "size"):
        return "size"
    return "quality"


def lower_is_better(name: str) -> bool:
    return metric_class(name) != "quality" or bool(_LOWER_IS_BETTER.search(name))


def parse_value(metric: str, text: Any, source: str) -> float:
    """A number, with a unit for latency (s, ms, us, ns), count (k, M, G) or size (B, KiB,
    MiB, ...)."""
    if isinstance(text, bool):
        raise ConfigurationError(f"{source}: threshold '{metric}': expected a number, got {text!r}")
    if isinstance(text, (int, float)):
        return float(text)
    match = _COMPARISON.match(str(text))
    if not match or match.group(1):
        raise ConfigurationError(
            f"{source}: threshold '{metric}': expected a number, got {text!r}"
        )
    number, unit = match.group(2), match.group(3)
    try:
        value = float(number)
    except ValueError:
        raise ConfigurationError(
            f"{source}: threshold '{metric}': expected a number, got {text!r}"
        ) from None
    if not unit:
        return value
    kind = metric_class(metric)
    if kind == "latency" and unit in _TIME_UNITS:
        return value * _TIME_UNITS[unit]
    if kind == "count" and unit in _COUNT_UNITS:
        return value * _COUNT_UNITS[unit]
    if kind == "size":
        from kenning_hil.targets.description import parse_size

        return float(parse_size(f"{number}{unit}", f"{source}: threshold '{metric}'"))
    raise ConfigurationError(
        f"{source}: threshold '{metric}': unit '{unit}' does not fit a {kind} metric"
    )


def format_metric(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    kind = metric_class(metric)
    if kind == "latency":
        return format_seconds(value)
    if kind == "count":
        return format_count(value, metric.split(".", 1)[0])
    if kind == "size":
        return f"{int(round(value))} B"
    return f"{value:.4g}"


def format_latency(value: float, unit: str) -> str:
    """A per-inference latency in its unit: seconds ('1.234 ms') or a count ('37.55 M
    instructions')."""
    return format_seconds(value) if unit == SECONDS else format_count(value, unit)


def format_count(value: float, unit: str) -> str:
    """'37.55 M instructions', '49.7 k cycles'."""
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.2f} M {unit}"
    if magnitude >= 1e4:
        return f"{value / 1e3:.1f} k {unit}"
    return f"{value:.0f} {unit}"


def format_seconds(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 1:
        return f"{value:.3f} s"
    if magnitude >= 1e-3:
        return f"{value * 1e3:.3f} ms"
    if magnitude >= 1e-6:
        return f"{value * 1e6:.1f} µs"
    return f"{value * 1e9:.0f} ns"
