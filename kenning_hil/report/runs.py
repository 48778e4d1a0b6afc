"""Runs as a report reads them: one `RunRecord` per test result file (``tests/*.json``
written by the harness) or bare measurements file, loaded from any number of results
directories and merged into one list with a run per test.

Everything read here may be missing, empty, truncated or from an older kenning-hil: the
loader never raises on a file's content; what it could not read goes into the run's
``missing`` (or the load's ``problems``) in words a report prints as is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kenning_hil.core.errors import os_reason
from kenning_hil.core.measurements import (
    ARENA_SIZE,
    CONFUSION_MATRIX,
    LATENCY_SOURCES,
    PEAK_ALLOCATED,
    PROTOCOL_STEP,
    SECONDS,
    TFLM_ARENA_SIZE,
    TFLM_ARENA_USED,
    measurements_in_memory,
)
from kenning_hil.report.summary import INTERRUPTED, SummaryRow, interrupted_reason

MEASUREMENTS_SUFFIX = "-measurements.json"
# record keys another part may add to a result file: compared outputs between targets
COMPARISON_KEYS = ("comparison", "comparisons", "agreement")


@dataclass
class Series:
    """Per-inference latency of one source: ``values`` in ``unit`` (seconds or a count)."""

    source: str
    unit: str
    values: list[float]


@dataclass
class SystemStats:
    """SystemStatsCollector samples: seconds since the first sample, per-core CPU %,
    memory %, and GPU % when a GPU was visible."""

    prefix: str
    time_s: list[float]
    cpus_percent: list[list[float]]
    mem_percent: list[float]
    gpu_percent: list[float] = field(default_factory=list)
    gpu_mem_percent: list[float] = field(default_factory=list)


@dataclass
class RunRecord:
    test: str
    target: str = "?"
    model: str = "?"
    optimizers: list[str] = field(default_factory=list)
    samples: int | None = None
    outcome: str = ""  # passed, failed, ... from the session's summary.json; "" unknown
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    latency: Series | None = None  # the target-side source (or the protocol's, alone)
    protocol: Series | None = None  # the host-timed round trip, when latency is target-side
    stats: SystemStats | None = None
    confusion: list[list[int]] | None = None
    class_names: list[str] = field(default_factory=list)
    compiled_size: int | None = None
    ram_used: int | None = None  # peak bytes the target's allocator held
    arena_used: int | None = None
    arena_size: int | None = None
    target_ram: int | None = None
    environment: dict[str, str] = field(default_factory=dict)
    checks: list[dict] = field(default_factory=list)  # thresholds and baseline comparisons
    comparison: Any = None  # per-sample agreement with other targets, when recorded
    started: float | None = None
    finished: float | None = None
    path: str = ""
    missing: list[str] = field(default_factory=list)  # what the file lacked, in words
    row: SummaryRow | None = None  # the session's summary row, when there is one

    @property
    def chain(self) -> str:
        return " > ".join(self.optimizers) or "none"

    @property
    def key(self) -> str:
        """What makes two files the same run for merging: the test (its id carries the
        target) and, for tests running several models, the file's index suffix."""
        stem = Path(self.path).stem
        index = stem.rsplit("~", 1)[1] if "~" in stem else ""
        return f"{self.test}~{index}" if index.isdigit() else self.test


@dataclass
class Loaded:
    """Runs from one or more results directories, and what could not be read."""

    runs: list[RunRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    duplicates: int = 0  # result files of a test already read from another directory
    ignored: int = 0  # result files their directory's summary.json does not name


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _numbers(value: Any) -> list[float]:
    """The numbers of a flat list (others dropped); [] for anything else."""
    if not isinstance(value, list):
        return []
    return [float(v) for v in value if _number(v) is not None]


def _int(value: Any) -> int | None:
    if isinstance(value, list) and value:  # accumulated values are one-element lists
        value = max((v for v in value if _number(v) is not None), default=None)
    number = _number(value)
    return None if number is None else int(number)


def _latency(measurements: Mapping[str, Any]) -> tuple[Series | None, Series | None]:
    """(target-side or only series, protocol round trip when both exist)."""
    found = []
    for source in LATENCY_SOURCES:
        values = _numbers(measurements.get(source.key))
        if values:
            scale = 1e-9 if source.unit == SECONDS else 1.0  # times are stored in ns
            found.append(Series(source.key, source.unit, [v * scale for v in values]))
    if not found:
        return None, None
    first = found[0]
    protocol = next((s for s in found[1:] if s.source == PROTOCOL_STEP), None)
    return first, protocol


def _stats(measurements: Mapping[str, Any]) -> SystemStats | None:
    prefixes = sorted(k[: -len("_cpus_percent")] for k in measurements
                      if k.endswith("_cpus_percent"))
    if not prefixes:
        return None
    prefix = prefixes[0]
    stamps = _numbers(measurements.get(f"{prefix}_timestamp"))
    cpus = [c for c in measurements.get(f"{prefix}_cpus_percent") or [] if isinstance(c, list)]
    mem = _numbers(measurements.get(f"{prefix}_mem_percent"))
    count = min(len(stamps), len(cpus), len(mem)) if stamps else min(len(cpus), len(mem))
    if count == 0:
        return None
    time_s = ([(s - stamps[0]) / 1e9 for s in stamps[:count]] if stamps
              else [float(i) for i in range(count)])
    gpu = _numbers(measurements.get(f"{prefix}_gpu_utilization"))[:count]
    gpu_mem = _numbers(measurements.get(f"{prefix}_gpu_mem_utilization"))[:count]
    return SystemStats(prefix, time_s, [[float(v) for v in c] for c in cpus[:count]],
                       mem[:count], gpu, gpu_mem)


def _confusion(value: Any) -> list[list[int]] | None:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list) and value[0] \
            and isinstance(value[0][0], list):
        value = value[0]  # an accumulated matrix: [matrix]
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(row, list) and len(row) == len(value) for row in value):
        return None
    if not all(_number(v) is not None for row in value for v in row):
        return None
    return [[int(v) for v in row] for row in value]


def run_from_record(record: Mapping[str, Any], path: Path | str) -> RunRecord:
    """A run from a result file's content (or a bare measurements dict, with no ``test``)."""
    path = str(path)
    bare = "measurements" not in record and "test" not in record
    measurements = record if bare else record.get("measurements")
    run = RunRecord(test=str(record.get("test") or Path(path).stem), path=path)
    missing = run.missing
    if bare:
        missing.append("test, target and model (a bare measurements file)")
    else:
        for key in ("target", "model"):
            if isinstance(record.get(key), str):
                setattr(run, key, record[key])
            else:
                missing.append(key)
    optimizers = record.get("optimizers")
    if isinstance(optimizers, list):
        run.optimizers = [str(o.get("type", "?")) if isinstance(o, Mapping) else str(o)
                          for o in optimizers]
    if not isinstance(measurements, Mapping):
        missing.append("measurements" if measurements is None else
                       f"measurements (a {type(measurements).__name__}, not a mapping)")
        measurements = {}
    measurements = measurements_in_memory(dict(measurements))  # any format_version, in ns
    metrics = record.get("metrics") if not bare else None
    if isinstance(metrics, Mapping):
        run.metrics = {str(k): float(v) for k, v in metrics.items() if _number(v) is not None}
    else:
        # an older result file, or a bare one: the quality metrics among the measurements
        run.metrics = {k: float(v) for k, v in measurements.items() if _number(v) is not None
                       and (k in _QUALITY_KEYS or k.startswith("top_") and k.endswith("_accuracy"))}
    run.latency, run.protocol = _latency(measurements)
    if run.latency is None:
        missing.append("per-inference latency (no " + ", ".join(
            s.key for s in LATENCY_SOURCES) + " values)")
    samples = _int(record.get("samples"))
    run.samples = samples if samples is not None else (
        len(run.latency.values) if run.latency else None)
    run.stats = _stats(measurements)
    run.confusion = _confusion(measurements.get(CONFUSION_MATRIX))
    names = measurements.get("class_names")
    if isinstance(names, list) and run.confusion and len(names) == len(run.confusion):
        run.class_names = [str(n) for n in names]
    run.compiled_size = _int(record.get("compiled_size"))
    run.ram_used = _int(record.get("ram")) or _int(measurements.get(PEAK_ALLOCATED))
    run.arena_used = _int(measurements.get(TFLM_ARENA_USED))
    run.arena_size = _int(measurements.get(TFLM_ARENA_SIZE)) or _int(measurements.get(ARENA_SIZE))
    run.target_ram = _int(record.get("target_ram"))
    environment = record.get("environment")
    if isinstance(environment, Mapping):
        run.environment = {str(k): str(v) for k, v in environment.items()}
    checks = record.get("checks")
    if isinstance(checks, list):
        run.checks = [c for c in checks if isinstance(c, Mapping) and "metric" in c]
    run.comparison = next((record[k] for k in COMPARISON_KEYS if record.get(k)), None)
    run.started, run.finished = _number(record.get("started")), _number(record.get("finished"))
    if record.get("error"):
        run.outcome, run.reason = "error", str(record["error"])
    if record.get(INTERRUPTED):
        run.outcome, run.reason = INTERRUPTED, interrupted_reason(dict(record))
    return run


_QUALITY_KEYS = {"accuracy", "precision", "recall", "f1_score", "mean_precision", "mean_recall",
                 "auc", "mse", "mae", "rmse"}


def read_run(path: Path) -> RunRecord:
    """A run from a result or measurements file; one the JSON parser cannot read (empty,
    truncated) is a run with nothing but what went wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return RunRecord(test=path.stem, path=str(path),
                         missing=[f"everything: cannot read the file ({os_reason(exc)})"])
    if not text.strip():
        return RunRecord(test=path.stem, path=str(path),
                         missing=["everything: the file is empty"])
    try:
        record = json.loads(text)
    except ValueError as exc:
        return RunRecord(test=path.stem, path=str(path), missing=[
            f"everything: not valid JSON, truncated? ({exc.__class__.__name__}: {exc})"])
    if not isinstance(record, Mapping):
        return RunRecord(test=path.stem, path=str(path), missing=[
            f"everything: a JSON {type(record).__name__}, not a result object"])
    return run_from_record(record, path)


def fill_session_facts(runs: Sequence[RunRecord], directory: Path) -> None:
    """What the result files do not say themselves: the session's environment (commit,
    versions; environment.json) and each target's RAM (its description)."""
    from kenning_hil.report.environment import read_environment, target_ram

    environment = read_environment(directory)
    for run in runs:
        if not run.environment and environment:
            run.environment = dict(environment)
        if run.target_ram is None and run.target != "?":
            run.target_ram = target_ram(run.target)


def _summary_rows(directory: Path, problems: list[str]) -> dict[str, SummaryRow]:
    summary = directory / "summary.json"
    if not summary.is_file():
        return {}
    try:
        data = json.loads(summary.read_text(encoding="utf-8"))
        rows = [SummaryRow(**row) for row in data]
    except (OSError, ValueError, TypeError) as exc:
        problems.append(f"{summary}: unreadable, outcomes unknown ({exc.__class__.__name__})")
        return {}
    return {row.test: row for row in rows}


def result_files(directory: Path) -> list[Path]:
    """A results directory's result files (``tests/*.json`` without the tests' own
    measurements files)."""
    tests = Path(directory) / "tests"
    return sorted(p for p in tests.glob("*.json") if not p.name.endswith(MEASUREMENTS_SUFFIX))


def load_runs(paths: Sequence[Path | str]) -> Loaded:
    """Runs from results directories (``summary.json`` + ``tests/*.json``, the output of
    ``--hil-report``, of any number of xdist workers, CI jobs or shards) and single result or
    measurements files, merged: one run per test, the most recently finished one when
    several directories hold it."""
    loaded = Loaded()
    by_key: dict[str, RunRecord] = {}
    for given in paths:
        path = Path(given)
        if path.is_dir():
            rows = _summary_rows(path, loaded.problems)
            files = result_files(path)
            if not files and not rows:
                loaded.problems.append(f"{path}: no results (neither summary.json nor "
                                       f"tests/*.json)")
            if rows:
                # the session's own files: older sessions' files stay in tests/ too
                named = {Path(r.results).name for r in rows.values() if r.results}
                kept = [f for f in files if f.name in named]
                loaded.ignored += len(files) - len(kept)
                files = kept
            runs = [read_run(f) for f in files]
            fill_session_facts(runs, path)
            by_file = {Path(r.results).name: r for r in rows.values() if r.results}
            seen = set()
            for run in runs:
                row = by_file.get(Path(run.path).name) or rows.get(run.test)
                if row is not None:
                    seen.add(row.test)
                    run.row = SummaryRow(**{**asdict(row), "results": run.path})
                    run.outcome, run.reason = row.outcome, row.reason or run.reason
                    if run.target == "?":
                        run.target = row.target
            # tests with a row but no result file: skipped before running, or errors
            runs += [RunRecord(test=row.test, target=row.target, outcome=row.outcome,
                               reason=row.reason, row=row)
                     for row in rows.values() if row.test not in seen]
        elif path.is_file():
            runs = [read_run(path)]
        else:
            loaded.problems.append(f"{path}: no such file or directory")
            continue
        for run in runs:
            earlier = by_key.get(run.key)
            if earlier is not None:
                loaded.duplicates += 1
                if (earlier.finished or 0) > (run.finished or 0):
                    continue
            by_key[run.key] = run
    loaded.runs = sorted(by_key.values(), key=lambda r: (r.target, r.test))
    return loaded


def merge_rows(paths: Iterable[Path]) -> list[SummaryRow]:
    """The summary rows of several results directories, one per test (the last given
    directory wins)."""
    merged: dict[str, SummaryRow] = {}
    problems: list[str] = []
    for path in paths:
        merged.update(_summary_rows(Path(path), problems))
    return [merged[t] for t in sorted(merged)]
