"""Extras for pytest-html: a results table and the run's figures per HIL run of a test.

The figures are the report's own: drawn into ``<results>/figures`` while the test reports,
embedded in its pytest-html row, and reused (not drawn again) by the session report.
The builders (`extras.html`, `extras.png`) are passed in, so this module needs neither
pytest nor pytest-html."""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kenning_hil.judge.metrics import format_metric


def result_table(result: Any) -> str:
    """An HTML table of one Result: target, samples, metrics, latency, size, files."""
    rows = [("target", result.target), ("model", result.model),
            ("optimizers", ", ".join(o["type"] for o in result.optimizers) or "none"),
            ("samples", str(result.samples))]
    for name, value in sorted(result.metrics.items()):
        rows.append((name, format_metric(name, value)))
    if result.latency is not None:
        for stat in ("p50", "p95", "p99", "max", "mean"):
            value = getattr(result.latency, stat)
            metric = f"{result.latency.metric_prefix}.{stat}"  # seconds or a count
            rows.append((f"latency {stat}", format_metric(metric, value)))
        rows.append(("latency from", result.latency.source))
    if result.compiled_size is not None:
        rows.append(("compiled size", f"{result.compiled_size} B"
                     + (" (cached)" if result.compile_cached else "")))
    if result.ram is not None:
        rows.append(("peak RAM", f"{result.ram} B"))
    if result.path is not None:
        rows.append(("results", str(result.path)))
    body = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
        f"<td>{html.escape(str(v))}</td></tr>"
        for k, v in rows
    )
    return f"<table class='kenning-hil-result'>{body}</table>"


def result_figures(result_path: Path) -> list[tuple[str, Path]]:
    """(kind, PNG path) of a written result's figures, drawn under its results directory."""
    from kenning_hil.report.runs import read_run
    from kenning_hil.report.session import FigureWriter, run_figures

    directory = Path(result_path).parent.parent  # <results>/tests/<test>.json
    writer = FigureWriter(directory)
    found = run_figures(read_run(Path(result_path)), writer)
    writer.draw()
    return [(kind, directory / figure.path) for kind, figure in found.items()
            if figure.path not in writer.undrawn]


def result_extras(
    results: Sequence[Any], make_html: Callable[[str], Any], make_png: Callable[..., Any]
) -> list[Any]:
    extras = []
    for result in results:
        extras.append(make_html(result_table(result)))
        if result.path is None:
            continue
        try:
            drawn = result_figures(result.path)
        except OSError:
            continue  # no figures in the row; the session report says what is missing
        for kind, path in drawn:
            extras.append(make_png(base64.b64encode(path.read_bytes()).decode(), name=kind))
    return extras
