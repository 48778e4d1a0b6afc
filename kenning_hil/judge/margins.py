"""Checks as records a report shows: each threshold and baseline comparison of a run with
the measured value, the bound and the margin left to it (positive: inside the bound, in the
metric's own unit; negative: past it by that much)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kenning_hil.judge.baselines import Comparison
from kenning_hil.judge.metrics import format_metric, lower_is_better
from kenning_hil.judge.thresholds import Threshold


def threshold_records(values: Mapping[str, float], thresholds: Sequence[Threshold]) -> list[dict]:
    records = []
    for threshold in thresholds:
        value = values.get(threshold.metric)
        margins = []
        if value is not None:
            if threshold.min is not None:
                margins.append(float(value) - threshold.min)
            if threshold.max is not None:
                margins.append(threshold.max - float(value))
        margin = min(margins) if margins else None
        records.append({
            "kind": "threshold", "metric": threshold.metric,
            "bound": threshold.describe().removeprefix(threshold.metric).strip(),
            "value": None if value is None else float(value), "margin": margin,
            "passed": value is not None and threshold.violation(float(value)) is None,
        })
    return records


def baseline_records(comparisons: Sequence[Comparison]) -> list[dict]:
    records = []
    for c in comparisons:
        allowed = c.tolerance.allowed(c.baseline)
        lower = lower_is_better(c.metric)
        limit = c.baseline + allowed if lower else c.baseline - allowed
        records.append({
            "kind": "baseline", "metric": c.metric,
            "bound": f"{'<=' if lower else '>='} {format_metric(c.metric, limit)} (baseline "
                     f"{format_metric(c.metric, c.baseline)} ± "
                     f"{c.tolerance.describe(c.metric)})",
            "value": c.measured, "margin": (limit - c.measured) if lower else c.measured - limit,
            "passed": not c.regressed,
        })
    return records
