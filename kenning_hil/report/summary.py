"""Summary rows of HIL tests, the terminal table and the session Markdown report."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

from kenning_hil.baseline import format_count, format_seconds

# record_property names: what JUnit XML carries and CI dashboards read
PROPERTY_NAMES = (
    "target",
    "accuracy",
    "latency_p50",
    "latency_p95",
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
    latency_unit: str = "s"  # or instructions / cycles counted by the target

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
        return cls(
            test=test,
            target=str(props["target"]),
            outcome=outcome,
            accuracy=number("accuracy"),
            latency_p50=number("latency_p50"),
            latency_p95=number("latency_p95"),
            latency_source=props.get("latency_source"),
            compiled_size=None if size is None else int(size),
            reason=reason,
            results=props.get("hil_results"),
            latency_unit=str(props.get("latency_unit") or "s"),
        )


def _cell(value: float | None, kind: str, unit: str = "s") -> str:
    if value is None:
        return "-"
    if kind == "latency":
        return format_seconds(value) if unit == "s" else format_count(value, unit)
    if kind == "size":
        return f"{int(value)} B"
    return f"{value:.4f}"


def _row_cells(row: SummaryRow) -> list[str]:
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


def format_table(rows: Sequence[SummaryRow], id_width: int = 60, reason_width: int = 100) -> str:
    """A plain-text table; long test ids (kept: their end) and reasons are shortened."""
    table = [HEADERS, *(_row_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS) - 1)]
    widths[0] = min(widths[0], id_width)
    lines = []
    for line in table:
        cells = [
            (cell if len(cell) <= w else "…" + cell[-(w - 1):]).ljust(w)
            for cell, w in zip(line[:-1], widths)
        ]
        last = line[-1] if len(line[-1]) <= reason_width else line[-1][: reason_width - 1] + "…"
        lines.append("  ".join([*cells, last]).rstrip())
    return "\n".join(lines)


def render_markdown(rows: Sequence[SummaryRow], title: str = "kenning-hil report",
                    figures: Mapping[str, str] | None = None) -> str:
    """The session report: a table per target plus links to each test's results."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.outcome] = counts.get(row.outcome, 0) + 1
    lines = [
        f"# {title}",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')}; "
        + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())),
        "",
    ]
    for target in sorted({r.target for r in rows}):
        lines += [f"## {target}", ""]
        lines.append(
            "| test | accuracy | latency p50 | latency p95 | latency from | size | result |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        for row in (r for r in rows if r.target == target):
            cells = _row_cells(row)
            test = f"[{row.test}]({quote(row.results)})" if row.results else row.test
            result = cells[6].replace("|", "\\|")
            lines.append(
                f"| {test} | {cells[2]} | {cells[3]} | {cells[4]} | "
                f"{row.latency_source or '-'} | {cells[5]} | {result} |"
            )
        lines.append("")
    for caption, path in (figures or {}).items():
        lines += [f"![{caption}]({path})", ""]
    return "\n".join(lines)


def write_session_report(rows: Sequence[SummaryRow], directory: Path) -> Path:
    """Writes report.md (and summary.json, and a latency figure when matplotlib is there)."""
    from kenning_hil.core.measurements import write_json_atomic

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    relative_rows = []
    for row in rows:
        data = asdict(row)
        if row.results:
            try:
                data["results"] = str(Path(row.results).resolve().relative_to(directory.resolve()))
            except ValueError:
                pass
        relative_rows.append(SummaryRow(**data))
    figures = {}
    figure = latency_overview(relative_rows, directory)
    if figure is not None:
        figures["Latency per test (p50 bar, p95 whisker)"] = figure.name
    write_json_atomic(directory / "summary.json", [asdict(r) for r in rows])
    path = directory / "report.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(render_markdown(relative_rows, figures=figures))
    tmp.replace(path)
    return path


def latency_overview(rows: Sequence[SummaryRow], directory: Path) -> Path | None:
    """A horizontal bar chart of p50 with p95 markers, one bar per test."""
    # seconds only: a count (instructions) has no place on a time axis
    timed = [r for r in rows if r.latency_p50 is not None and r.latency_unit == "s"]
    if not timed:
        return None
    try:
        from kenning_hil.report.figures import latency_bars_png
    except ImportError:
        return None
    data = latency_bars_png([(r.test, r.latency_p50, r.latency_p95) for r in timed[:60]])
    if data is None:
        return None
    path = directory / "latency.png"
    path.write_bytes(data)
    return path


def load_rows(path: Path) -> list[SummaryRow]:
    return [SummaryRow(**row) for row in json.loads(Path(path).read_text())]
