"""Baselines: stored results a new run must not regress from, and their tolerances.

Latency in seconds against a baseline is judged on the fast end of the run, the 10th
percentile (``latency.p10``), robustly: its distribution-free 95% confidence interval (from
order statistics of the binomial(n, 0.1) distribution; the minimum when the run is too short
for a lower bound) must lie wholly above ``baseline p10 + tolerance`` for a regression. Load
on the machine (other processes, preemption, bursts) slows some inferences by a lot and
leaves others untouched, so it moves the median and the tail but hardly the fast end; a
slower model or runtime slows every inference, the fast end included. Below
``min_latency_samples`` samples no latency verdict is given at all (a note says so). A
baseline recorded before the p10 was stored is judged on the median's interval, with a note.
Counts a target makes (instructions on a simulated board) are deterministic and are compared
on their median.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kenning_hil.core.errors import ConfigurationError, os_reason
from kenning_hil.judge.metrics import (
    format_metric,
    format_seconds,
    lower_is_better,
    metric_class,
    parse_value,
)

# ---------------------------------------------------------------------------- tolerances


@dataclass(frozen=True)
class Tolerance:
    """Allowed drift from a baseline: ``abs + rel * |baseline|``."""

    rel: float = 0.0
    abs: float = 0.0

    def allowed(self, baseline: float) -> float:
        return self.abs + self.rel * abs(baseline)

    def describe(self, metric: str) -> str:
        parts = []
        if self.rel:
            parts.append(f"{self.rel * 100:g}%")
        if self.abs or not parts:
            parts.append(format_metric(metric, self.abs))
        return " + ".join(parts)


DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "quality": Tolerance(rel=0.0, abs=0.01),
    "latency": Tolerance(rel=0.10, abs=20e-6),
    # instruction counts are deterministic for the same inputs (to one timer tick)
    "count": Tolerance(rel=0.01, abs=0.0),
    "size": Tolerance(rel=0.0, abs=0.0),
}


def parse_tolerances(spec: Mapping | None, source: str) -> dict[str, Tolerance]:
    """`{latency: {rel: 0.1, abs: 50us}, accuracy: {abs: 0.02}, size: {rel: 5%}}`: keys are
    a metric class (quality, latency, size) or a metric name; merged over the defaults."""
    result = dict(DEFAULT_TOLERANCES)
    for key, value in (spec or {}).items():
        if not isinstance(value, Mapping) or not set(value) <= {"rel", "abs"}:
            raise ConfigurationError(
                f"{source}: tolerance '{key}': expected a mapping with rel and/or abs, "
                f"got {value!r}"
            )
        metric = {"latency": LATENCY_MEDIAN_METRIC, "size": "compiled_size"}.get(key, key)
        rel = value.get("rel", 0.0)
        if isinstance(rel, str) and rel.strip().endswith("%"):
            rel = float(rel.strip()[:-1]) / 100
        try:
            rel = float(rel)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"{source}: tolerance '{key}.rel': expected a fraction or a percentage, "
                f"got {value.get('rel')!r}"
            ) from None
        absolute = parse_value(metric, value.get("abs", 0.0), source)
        result[str(key)] = Tolerance(rel=rel, abs=absolute)
    return result


def tolerance_for(metric: str, tolerances: Mapping[str, Tolerance]) -> Tolerance:
    if metric in tolerances:
        return tolerances[metric]
    return tolerances.get(metric_class(metric), DEFAULT_TOLERANCES[metric_class(metric)])


# ---------------------------------------------------------------------------- statistics


def _binomial_pmf(n: int, p: float) -> list[float]:
    """P(B = k) for k = 0..n, B ~ binomial(n, p), computed in log space (exact for any n)."""
    log_p, log_q = math.log(p), math.log1p(-p)
    return [
        math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                 + k * log_p + (n - k) * log_q)
        for k in range(n + 1)
    ]


def quantile_confidence_interval(
    samples: Sequence[float], quantile: float, confidence: float = 0.95
) -> tuple[float, float]:
    """Distribution-free CI of a quantile from order statistics.

    The number B of samples below the true q-quantile is binomial(n, q). The interval is
    [x_(j), x_(m)] (0-based, sorted): j the largest index with P(B <= j) <= alpha/2, m the
    smallest with P(B > m) <= alpha/2. When no index qualifies on a side (too few samples
    for this confidence), that side is the sample's minimum or maximum.
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile_confidence_interval: quantile must be in (0, 1), got "
                         f"{quantile}")
    values = sorted(float(v) for v in samples)
    n = len(values)
    if n == 0:
        raise ValueError("quantile_confidence_interval: no samples")
    tail = (1.0 - confidence) / 2
    pmf = _binomial_pmf(n, quantile)
    low, cumulative = 0, 0.0
    for k in range(n):
        cumulative += pmf[k]
        if cumulative > tail:
            break
        low = k
    high, upper = n - 1, 0.0
    for k in range(n, 0, -1):  # P(B >= k) while it stays within the tail
        upper += pmf[k]
        if upper > tail:
            break
        high = k - 1
    return values[low], values[high]


def median_confidence_interval(
    samples: Sequence[float], confidence: float = 0.95
) -> tuple[float, float]:
    """Distribution-free CI of the median from order statistics (binomial(n, 1/2)): the
    interval is [x_(j), x_(n-j-1)] (0-based, sorted) with the largest j such that
    P(B <= j) <= alpha/2, or the whole range when no j qualifies."""
    return quantile_confidence_interval(samples, 0.5, confidence)


def sample_quantile(samples: Sequence[float], quantile: float) -> float:
    """The q-quantile of the samples, linear between order statistics (numpy's default)."""
    values = sorted(float(v) for v in samples)
    if not values:
        raise ValueError("sample_quantile: no samples")
    position = quantile * (len(values) - 1)
    below = math.floor(position)
    above = min(below + 1, len(values) - 1)
    return values[below] + (values[above] - values[below]) * (position - below)


LATENCY_QUANTILE = 0.10
"""The percentile of host latency a baseline is compared on: the fast end of the run."""
LATENCY_QUANTILE_METRIC = "latency.p10"
LATENCY_MEDIAN_METRIC = "latency.p50"
"""The latency metric a `latency` tolerance names, and the one verdict on latency."""


# ---------------------------------------------------------------------------- baselines


@dataclass
class Comparison:
    """The verdict on one metric against its baseline."""

    metric: str
    baseline: float
    measured: float
    tolerance: Tolerance
    regressed: bool
    detail: str = ""

    def message(self) -> str:
        verb = "regressed" if self.regressed else "within tolerance"
        direction = "above" if lower_is_better(self.metric) else "below"
        text = (
            f"{self.metric} {verb}: measured {format_metric(self.metric, self.measured)}, "
            f"baseline {format_metric(self.metric, self.baseline)}, tolerance "
            f"{self.tolerance.describe(self.metric)}"
        )
        if self.regressed:
            allowed = self.tolerance.allowed(self.baseline)
            lower = lower_is_better(self.metric)
            limit = self.baseline + allowed if lower else self.baseline - allowed
            text += f" (limit {format_metric(self.metric, limit)}; measured is {direction})"
        if self.detail:
            text += f"; {self.detail}"
        return text


@dataclass
class BaselineVerdict:
    comparisons: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.regressed]


def compare_to_baseline(
    baseline: Mapping[str, Any],
    values: Mapping[str, float],
    latency_samples: Sequence[float] | None,
    tolerances: Mapping[str, Tolerance] = DEFAULT_TOLERANCES,
    min_latency_samples: int = 10,
    samples: int | None = None,
    latency_source: str | None = None,
    label: str = "",
) -> BaselineVerdict:
    """Compares measured `values` (and latency samples, seconds) with a baseline record.

    Only like is compared with like: quality metrics when this run has as many samples as
    the baseline recorded (accuracy on 20 samples says little about accuracy on 450), and
    latency or counts when both come from the same measurement (`latency_source`). What is
    not compared gets a note saying why; a record without those facts is compared as is.
    """
    verdict = BaselineVerdict()
    stored = baseline.get("metrics", {})
    where = f"baseline {label}" if label else "the baseline"
    recorded = baseline.get("samples")
    same_samples = not (_is_number(recorded) and samples is not None and recorded != samples)
    if not same_samples:
        verdict.notes.append(
            f"{where} was recorded on {recorded:g} samples, this run has {samples}: quality "
            f"not compared; re-record with --update-baseline"
        )
    recorded_source = baseline.get("latency_source")
    same_source = not (recorded_source and latency_source and recorded_source != latency_source)
    if not same_source:
        verdict.notes.append(
            f"{where} has latency from {recorded_source}, this run from {latency_source}: "
            f"latency not compared; re-record with --update-baseline"
        )
    for metric, base in sorted(stored.items()):
        if not _is_number(base):
            continue
        kind = metric_class(metric)
        if (kind == "quality" and not same_samples) or (
            kind in ("latency", "count") and not same_source
        ):
            continue
        if kind == "latency":
            if metric != LATENCY_MEDIAN_METRIC:
                continue  # the other statistics are kept for information; one verdict
            verdict_latency(verdict, stored, latency_samples, tolerances, min_latency_samples)
            continue
        if kind == "count" and not metric.endswith(".p50"):
            continue  # as for latency, the verdict is on the median
        if metric not in values:
            verdict.notes.append(f"{metric} is in the baseline but was not measured")
            continue
        measured = float(values[metric])
        tol = tolerance_for(metric, tolerances)
        allowed = tol.allowed(base)
        if lower_is_better(metric):
            regressed = measured > base + allowed
        else:
            regressed = measured < base - allowed
        verdict.comparisons.append(Comparison(metric, float(base), measured, tol, regressed))
    return verdict


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def verdict_latency(
    verdict: BaselineVerdict,
    stored: Mapping[str, Any],
    samples: Sequence[float] | None,
    tolerances: Mapping[str, Tolerance],
    min_samples: int,
) -> None:
    """One verdict on host latency (seconds): this run's 10th percentile against the
    baseline's (`LATENCY_QUANTILE`), or the median for a baseline recorded without one.
    The tolerance is the latency tolerance (`latency` or `latency.p50`)."""
    count = len(samples or [])
    if count < min_samples:
        verdict.notes.append(
            f"latency not compared with the baseline: {count} samples, a robust comparison "
            f"needs at least {min_samples}"
        )
        return
    tol = tolerance_for(LATENCY_MEDIAN_METRIC, tolerances)
    median = float(statistics.median(samples))
    base_median = float(stored[LATENCY_MEDIAN_METRIC])
    base_low = stored.get(LATENCY_QUANTILE_METRIC)
    if not _is_number(base_low):
        verdict.notes.append(
            f"the baseline has no {LATENCY_QUANTILE_METRIC} (recorded by an older version): "
            f"latency compared on the median, which load on the machine moves; re-record "
            f"with --update-baseline to compare the fast end of the run"
        )
        low, high = median_confidence_interval(samples)
        regressed = low > base_median + tol.allowed(base_median)
        detail = (
            f"median 95% CI [{format_seconds(low)}, {format_seconds(high)}] over {count} "
            f"samples"
        )
        verdict.comparisons.append(
            Comparison(LATENCY_MEDIAN_METRIC, base_median, median, tol, regressed, detail))
        return
    base_low = float(base_low)
    low, high = quantile_confidence_interval(samples, LATENCY_QUANTILE)
    measured = sample_quantile(samples, LATENCY_QUANTILE)
    regressed = low > base_low + tol.allowed(base_low)
    percent = f"{LATENCY_QUANTILE * 100:g}th percentile"
    detail = (
        f"compared the {percent} (the fast end of the run: load on the machine slows some "
        f"inferences, a slower model every one), its 95% CI [{format_seconds(low)}, "
        f"{format_seconds(high)}] over {count} samples; median {format_seconds(median)}, "
        f"baseline median {format_seconds(base_median)}"
    )
    verdict.comparisons.append(
        Comparison(LATENCY_QUANTILE_METRIC, base_low, measured, tol, regressed, detail))


NAME_LIMIT = 200  # characters of a readable file name stem (file systems allow 255 bytes)
HASH_SEPARATOR = "~"  # never in a readable stem, so hashed and plain names cannot meet


def readable_stem(test_id: str) -> str:
    """The id with path separators as dots, '::' as '__' and anything else unsafe as '_'."""
    path, sep, rest = test_id.partition("::")
    if not sep:
        path, rest = "", test_id
    name = path.replace("/", ".") + ("__" if sep else "") + rest.replace("::", "__")
    return re.sub(r"[^A-Za-z0-9._\[\]-]", "_", name)


def id_of_stem(stem: str) -> str:
    """The one test id a readable stem stands for: the inverse of `readable_stem` for ids it
    maps without loss (dots of the file path before its suffix were '/', '__' was '::')."""
    path, sep, rest = stem.partition("__")
    if not sep:
        return stem
    head, dot, suffix = path.rpartition(".")
    path = head.replace(".", "/") + dot + suffix
    return path + "::" + rest.replace("__", "::")


def baseline_file_name(test_id: str) -> str:
    """A readable, collision-free file name for a test id (the id itself is stored inside).

    The readable stem alone is used when it reads back to exactly this id (so two ids never
    share it); otherwise, and always when cut to length, a hash of the full id follows it:
    ``test_c[a_b].json`` for ``test_c[a_b]``, ``test_c[a_b]~1f0e2d3c4b5a.json`` for
    ``test_c[a b]``.
    """
    stem = readable_stem(test_id)
    if len(stem) <= NAME_LIMIT and id_of_stem(stem) == test_id:
        return stem + ".json"
    digest = hashlib.sha256(test_id.encode("utf-8")).hexdigest()[:12]
    return f"{stem[:NAME_LIMIT]}{HASH_SEPARATOR}{digest}.json"


class BaselineStore:
    """Baselines as one human-readable JSON file per test id in a directory (to commit)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def path_for(self, test_id: str) -> Path:
        return self.directory / baseline_file_name(test_id)

    def load(self, test_id: str) -> dict | None:
        path = self.path_for(test_id)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{path}: baseline is not valid JSON: {exc}") from exc
        except OSError as exc:
            raise ConfigurationError(f"cannot read baseline {path}: {os_reason(exc)}") from None
        if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
            raise ConfigurationError(f"{path}: baseline must be an object with a 'metrics' object")
        if record.get("test") not in (None, test_id):
            return None  # a different test whose id sanitises to the same name
        return record

    def save(self, test_id: str, record: dict) -> Path:
        from kenning_hil.core.measurements import save_json_file

        return save_json_file(self.path_for(test_id), {"test": test_id, **record},
                              f"the baseline (--baseline {self.directory})")


def baseline_record(
    values: Mapping[str, float],
    target: str,
    samples: int,
    latency_source: str | None,
    latency_samples: Sequence[float] | None = None,
) -> dict:
    """What a baseline file holds: the metrics worth comparing, and their context. Given the
    run's latency samples (seconds), it also keeps their 10th percentile, `latency.p10`,
    on which later runs are judged."""
    metrics = {
        k: v
        for k, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    if latency_samples:
        metrics[LATENCY_QUANTILE_METRIC] = sample_quantile(latency_samples, LATENCY_QUANTILE)
    metrics = dict(sorted(metrics.items()))
    return {
        "target": target,
        "samples": samples,
        "latency_source": latency_source,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "metrics": metrics,
    }
