"""Summary rows of HIL tests (one per test, from its recorded properties) and the terminal
table; the session report built from them is in `kenning_hil.report.session`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kenning_hil.core.measurements import COUNT_UNITS, SECONDS
from kenning_hil.judge.metrics import format_latency


def latency_property_names(unit: str) -> tuple[str, str]:
    """The record_property names of the median and 95th percentile latency in `unit`: each
    name carries its unit, so a dashboard plotting one never mixes seconds (host targets)
    with counts (simulated or cycle-counting boards): ``latency_p50_s`` / ``latency_p95_s``,
    ``instructions_p50`` / ``instructions_p95``, ``cycles_p50`` / ``cycles_p95``."""
    if unit == SECONDS:
        return "latency_p50_s", "latency_p95_s"
    return f"{unit}_p50", f"{unit}_p95"


LATENCY_UNITS = (SECONDS, *COUNT_UNITS)

# record_property names: what JUnit XML carries and CI dashboards read
PROPERTY_NAMES = (
    "target",
    "accuracy",
    *(name for unit in LATENCY_UNITS for name in latency_property_names(unit)),
    "latency_source",
    "latency_unit",
    "compiled_size",
    "hil_results",
)


@dataclass
class SummaryRow:
    test: str
    target: str
    outcome: str  # passed, failed, skipped, error
    accuracy: float | None = None
    latency_p50: float | None = None
    latency_p95: float | None = None
    latency_source: str | None = None
    compiled_size: int | None = None
    reason: str = ""
    results: str | None = None
    latency_unit: str = SECONDS  # or instructions / cycles counted by the target
    # MLPerf Tiny figures, from the result file and the target (report/footprint.py)
    arena_peak: int | None = None
    ram_used: int | None = None
    ram_limit: int | None = None
    code_size: int | None = None
    flash_limit: int | None = None
    bit_exact: str | None = None

    def add_footprint(self, footprint) -> None:
        """Takes the fields of a `report.footprint.Footprint`."""
        for name in FOOTPRINT_FIELDS:
            setattr(self, name, getattr(footprint, name))

    @classmethod
    def from_properties(
        cls, test: str, outcome: str, properties: Iterable[tuple[str, object]], reason: str = ""
    ) -> SummaryRow | None:
        """A row from a test's recorded properties; None for tests that ran no HIL."""
        props = {name: value for name, value in properties if name in PROPERTY_NAMES}
        if "target" not in props:
            return None

        def number(key: str) -> float | None:
            value = props.get(key)
            try:
                return None if value is None else float(value)
            except (TypeError, ValueError):
                return None

        size = number("compiled_size")
        unit = str(props.get("latency_unit") or SECONDS)
        latency = [number(name) for name in latency_property_names(unit)]
        return cls(
            test=test,
            target=str(props["target"]),
            outcome=outcome,
            accuracy=number("accuracy"),
            latency_p50=latency[0],
            latency_p95=latency[1],
            latency_source=props.get("latency_source"),
            compiled_size=None if size is None else int(size),
            reason=reason,
            results=props.get("hil_results"),
            latency_unit=unit,
        )


def _cell(value: float | None, kind: str, unit: str = SECONDS) -> str:
    if value is None:
        return "-"
    if kind == "latency":
        return format_latency(value, unit)
    if kind == "size":
        return f"{int(value)} B"
    return f"{value:.4f}"


def row_cells(row: SummaryRow) -> list[str]:
    verdict = row.outcome if not row.reason else f"{row.outcome}: {row.reason}"
    return [
        row.test,
        row.target,
        _cell(row.accuracy, "quality"),
        _cell(row.latency_p50, "latency", row.latency_unit),
        _cell(row.latency_p95, "latency", row.latency_unit),
        _cell(row.compiled_size, "size"),
        verdict,
    ]


HEADERS = ["test", "target", "accuracy", "p50", "p95", "size", "result"]

FOOTPRINT_FIELDS = ("arena_peak", "ram_used", "ram_limit", "code_size", "flash_limit",
                    "bit_exact")


def _footprint_columns() -> list[tuple[str, Any]]:
    """(header, cell of a row or None) of the columns a table shows when some row has them:
    what MLPerf Tiny readers look for besides latency and size."""
    from kenning_hil.report.footprint import of_limit, size_text

    return [
        ("arena peak", lambda r: None if r.arena_peak is None else size_text(r.arena_peak)),
        ("RAM (model + arena)", lambda r: of_limit(r.ram_used, r.ram_limit)),
        ("code", lambda r: of_limit(r.code_size, r.flash_limit)),
        ("bit-exact", lambda r: r.bit_exact),
    ]


_MIN_PART = 8  # fewest characters of a shortened path or [params] worth showing


def shorten_test_id(test_id: str, width: int) -> str:
    """`test_id` in at most `width` characters, keeping what names the test: the function
    and the [params] (where the target is) whole when they fit, eliding the middle of the
    file path; else the head (file::function) whole and the end of the [params]; else the
    file name and function with the end of the [params]; else the function and the [params]
    whole with the end of the path that fits; else the function whole with the end of the
    [params]. Last resort (a function name longer than the column): the middle goes."""
    if len(test_id) <= width:
        return test_id
    bracket = test_id.find("[")
    head, params = (test_id[:bracket], test_id[bracket:]) if bracket > 0 else (test_id, "")
    path, sep, function = head.partition("::")
    function = sep + function
    # 1. function and params whole, the middle of the path elided
    room = width - len(function) - len(params) - 1  # "…"
    if sep and room >= 2 * _MIN_PART:
        left = room // 3  # the file name at the end says more than the first directories
        return f"{path[:left]}…{path[len(path) - (room - left):]}{function}{params}"
    if params:
        # 2. the head whole, the end of the params
        tail = width - len(head) - 2  # "[" and "…"
        if tail >= _MIN_PART:
            return f"{head}[…{params[-tail:]}"
        # 3. the file name and function (no directories), the end of the params
        slash = path.rfind("/")
        kept_head = head[slash:] if slash >= 0 else head
        tail = width - len(kept_head) - 3  # "…", "[" and "…"
        if tail >= _MIN_PART:
            return f"…{kept_head}[…{params[-tail:]}"
    if sep:
        # 4. a long function: it and the params whole, with what fits of the path's end
        room = width - len(function) - len(params) - 1
        if room >= 0:
            return f"…{path[len(path) - room:] if room else ''}{function}{params}"
        # 5. the function whole and the end of the params (the target is last)
        tail = width - len(function) - 3
        if params and tail >= 1:
            return f"…{function}[…{params[-tail:]}"
        if len(function) + 1 <= width:
            return f"…{function}"
    left = (width - 1) // 3
    return test_id[:left] + "…" + test_id[len(test_id) - (width - 1 - left):]


def format_table(rows: Sequence[SummaryRow], id_width: int = 60, reason_width: int = 100) -> str:
    """A plain-text table; long test ids lose their middle (`shorten_test_id`), long
    reasons their end. The footprint columns (arena peak, RAM, code, bit-exact) show when
    some row has a value for them, before the result."""
    extra = [(header, cell) for header, cell in _footprint_columns()
             if any(cell(r) is not None for r in rows)]
    headers = [*HEADERS[:-1], *(header for header, _ in extra), HEADERS[-1]]
    table = [headers]
    for row in rows:
        cells = row_cells(row)
        table.append([*cells[:-1], *(cell(row) or "-" for _, cell in extra), cells[-1]])
    widths = [max(len(line[i]) for line in table) for i in range(len(headers) - 1)]
    widths[0] = min(widths[0], id_width)
    lines = []
    for line in table:
        cells = [shorten_test_id(line[0], widths[0]).ljust(widths[0])]
        cells += [cell.ljust(w) for cell, w in zip(line[1:-1], widths[1:])]
        last = line[-1] if len(line[-1]) <= reason_width else line[-1][: reason_width - 1] + "…"
        lines.append("  ".join([*cells, last]).rstrip())
    return "\n".join(lines)


def load_rows(path: Path) -> list[SummaryRow]:
    return [SummaryRow(**row) for row in json.loads(Path(path).read_text())]


def result_properties(result) -> list[tuple[str, object]]:
    """A run's record_property pairs (PROPERTY_NAMES; absent values left out): what the
    plugin records on a test and what `SummaryRow.from_properties` reads back."""
    latency = result.latency
    p50, p95 = latency_property_names(latency.unit if latency else SECONDS)
    pairs = [
        ("target", result.target),
        ("accuracy", result.metrics.get("accuracy")),
        (p50, latency.p50 if latency else None),
        (p95, latency.p95 if latency else None),
        ("latency_source", latency.source if latency else None),
        ("latency_unit", latency.unit if latency else None),
        ("compiled_size", result.compiled_size),
        ("hil_results", str(result.path) if result.path else None),
    ]
    return [(name, value) for name, value in pairs if value is not None]


INTERRUPTED = "interrupted"


def interrupted_reason(record: dict) -> str:
    """What a result file says about a run the session's interruption cut short."""
    marked = record.get(INTERRUPTED)
    if isinstance(marked, dict):
        asked = marked.get("asked")
        return f"interrupted after {marked.get('samples', 0)}/{asked if asked else '?'} samples"
    if record.get("error"):
        return f"interrupted (the run had failed: {record['error']})"
    return "interrupted before its checks reported (all samples measured)"


def row_from_record(record: dict, path: Path, outcome: str, reason: str = "") -> SummaryRow:
    """A summary row from a test's result file (`Harness.write`)."""
    latency = record.get("latency") or {}
    unit = str(latency.get("unit") or SECONDS)
    metrics = record.get("metrics") or {}
    size = record.get("compiled_size")
    return SummaryRow(
        test=str(record["test"]),
        target=str(record.get("target", "?")),
        outcome=outcome,
        accuracy=metrics.get("accuracy"),
        latency_p50=latency.get("p50"),
        latency_p95=latency.get("p95"),
        latency_source=latency.get("source"),
        compiled_size=int(size) if isinstance(size, (int, float)) else None,
        reason=reason,
        results=str(path),
        latency_unit=unit,
    )


def unreported_rows(results_dir: Path, since: float, reported: Iterable[str]) -> list[SummaryRow]:
    """Rows, outcome ``interrupted``, for the result files under `results_dir`/tests written
    at or after `since` (the session's start) by tests with no row in `reported`: after a
    Ctrl-C, the test that was running (its partial result is marked ``interrupted``) and, under
    pytest-xdist, tests whose outcome never reached the controller. One row per test (its
    latest file)."""
    known = set(reported)
    latest: dict[str, tuple[float, Path, dict]] = {}
    for path in sorted((Path(results_dir) / "tests").glob("*.json")):
        try:
            written = path.stat().st_mtime
            if written < since or path.name.endswith("-measurements.json"):
                continue
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a file being replaced, or not a result: nothing to report from it
        test = record.get("test") if isinstance(record, dict) else None
        if not isinstance(test, str) or test in known or "target" not in record:
            continue
        if test not in latest or written >= latest[test][0]:
            latest[test] = (written, path, record)
    return [row_from_record(record, path, INTERRUPTED, interrupted_reason(record))
            for _, path, record in (latest[t] for t in sorted(latest))]
