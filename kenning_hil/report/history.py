"""Trends: each test's accuracy and median latency over a history of results directories
(a nightly job's ``--hil-report`` directories, oldest first or in any order: they are
sorted by when their runs started), regressions marked.

A point is a regression when its run's baseline check failed (the result file's
``checks``), or, for runs judged without a baseline, when it is worse than the test's first
point in the history by more than the default baseline tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kenning_hil.core.measurements import SECONDS
from kenning_hil.judge.baselines import DEFAULT_TOLERANCES, tolerance_for
from kenning_hil.judge.metrics import format_metric, lower_is_better
from kenning_hil.report import figures
from kenning_hil.report.document import Block, Heading, Paragraph, Table
from kenning_hil.report.runs import RunRecord, load_runs


def _label(directory: Path, runs: Sequence[RunRecord]) -> str:
    """A point's x label: the commit the runs were made from, else their date, else the
    directory's name."""
    commits = {r.environment.get("commit", "")[:8] for r in runs} - {"", "?"}
    started = [r.started for r in runs if r.started]
    if len(commits) == 1:
        return commits.pop()
    if started:
        import time

        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(min(started)))
    return directory.name


def _metric(run: RunRecord) -> dict[str, float]:
    """accuracy and the median latency, by the name thresholds give them."""
    values = {}
    if "accuracy" in run.metrics:
        values["accuracy"] = run.metrics["accuracy"]
    if run.latency is not None and run.latency.values:
        prefix = "latency" if run.latency.unit == SECONDS else run.latency.unit
        values[f"{prefix}.p50"] = float(np.median(run.latency.values))
    return values


def _baseline_failed(run: RunRecord, metric: str) -> bool | None:
    """Whether the run's own baseline check of `metric` failed; None if it had none."""
    family = metric.split(".")[0]
    checks = [c for c in run.checks if c.get("kind") == "baseline"
              and str(c.get("metric", "")).split(".")[0] == family]
    if not checks:
        return None
    return any(c.get("passed") is False for c in checks)


def collect(history: Sequence[Path]) -> tuple[list[str], dict[str, dict[str, list]]]:
    """(x labels in time order, metric -> test -> [(label, value, regressed)])."""
    points = []
    for directory in history:
        loaded = load_runs([directory])
        runs = [r for r in loaded.runs if r.path.endswith(".json")]
        started = min((r.started for r in runs if r.started), default=float("inf"))
        points.append((started, str(directory), _label(Path(directory), runs), runs))
    points.sort(key=lambda p: (p[0], p[1]))
    labels = []
    for _, directory, label, _ in points:  # two runs of one commit keep both points
        labels.append(label if label not in labels else f"{label} ({Path(directory).name})")
    series: dict[str, dict[str, list]] = {}
    first: dict[tuple[str, str], float] = {}
    for label, (_, _, _, runs) in zip(labels, points):
        for run in runs:
            for metric, value in _metric(run).items():
                reference = first.setdefault((metric, run.test), value)
                regressed = _baseline_failed(run, metric)
                if regressed is None:
                    allowed = tolerance_for(metric, DEFAULT_TOLERANCES).allowed(reference)
                    worse = value - reference if lower_is_better(metric) or metric.endswith(
                        ".p50") else reference - value
                    regressed = worse > allowed
                series.setdefault(metric, {}).setdefault(run.test, []).append(
                    (label, value, regressed))
    return labels, series


def trend_blocks(history: Sequence[Path], writer) -> list[Block]:
    labels, series = collect(history)
    blocks: list[Block] = [Heading(2, "Trends")]
    if not series:
        return blocks + [Paragraph(f"No runs with accuracy or latency in the "
                                   f"{len(history)} history directories.")]
    blocks.append(Paragraph(
        f"{len(labels)} results from {labels[0]} to {labels[-1]}. A cross marks a regression: "
        "the run's baseline check failed, or (judged without a baseline) it is worse than the "
        "test's first point by more than the default baseline tolerance."))
    for metric in sorted(series, key=lambda m: (m != "accuracy", m)):
        family = metric.split(".")[0]
        unit = "" if metric == "accuracy" else (SECONDS if family == "latency" else family)
        what = "accuracy" if metric == "accuracy" else f"median {family}"
        blocks.append(writer.figure(f"trend-{metric.replace('.', '-')}.png",
                                    f"{what.capitalize()} of each test over the history",
                                    figures.trends_png, series[metric], what, unit))
    rows = []
    for metric in sorted(series):
        for test, points in sorted(series[metric].items()):
            regressions = [p[0] for p in points if p[2]]
            rows.append([test, metric, format_metric(metric, points[0][1]),
                         format_metric(metric, points[-1][1]), str(len(points)),
                         ", ".join(regressions) or "none"])
    blocks.append(Table(["test", "metric", "first", "last", "points", "regressions at"], rows))
    return blocks
