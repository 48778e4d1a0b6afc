"""The session report: every HIL test of a run, a table per target, in Markdown and RST.

Both documents are rendered from the same `SummaryRow`s and share the latency figure; RST is
what Kenning's own reports are (Sphinx renders it with the figures), Markdown is what CI
front ends show. `write_session_report` writes them next to ``summary.json``, from which
`kenning-hil report DIR` renders them again without pytest.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from urllib.parse import quote

from kenning_hil.core.measurements import SECONDS, write_json_atomic, write_text_atomic
from kenning_hil.report.summary import SummaryRow, load_rows, row_cells

TITLE = "kenning-hil report"
COLUMNS = ["test", "accuracy", "latency p50", "latency p95", "latency from", "size", "result"]
LATENCY_FIGURE = "latency.png"
LATENCY_CAPTION = "Latency per test (p50 bar, p95 whisker)"


def _outcome_counts(rows: Sequence[SummaryRow]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.outcome] = counts.get(row.outcome, 0) + 1
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or (
        "no HIL test ran")


def _targets(rows: Sequence[SummaryRow]) -> list[str]:
    return sorted({row.target for row in rows})


def _columns(row: SummaryRow) -> list[str]:
    """The report's cells of one row, in COLUMNS order (the test cell unlinked)."""
    cells = row_cells(row)
    return [row.test, cells[2], cells[3], cells[4], row.latency_source or "-", cells[5],
            cells[6]]


def render_markdown(rows: Sequence[SummaryRow], title: str = TITLE,
                    figures: Mapping[str, str] | None = None) -> str:
    lines = [f"# {title}", "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')}; {_outcome_counts(rows)}", ""]
    for target in _targets(rows):
        lines += [f"## {target}", "", "| " + " | ".join(COLUMNS) + " |",
                  "|" + "---|" * len(COLUMNS)]
        for row in (r for r in rows if r.target == target):
            cells = [cell.replace("|", "\\|") for cell in _columns(row)]
            if row.results:
                cells[0] = f"[{cells[0]}]({quote(row.results)})"
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    for caption, path in (figures or {}).items():
        lines += [f"![{caption}]({path})", ""]
    return "\n".join(lines)


# characters with a meaning in RST inline text; a backslash makes each literal
_RST_INLINE = re.compile(r"([\\`*_|<>\[\]])")


def rst_escape(text: str) -> str:
    escaped = _RST_INLINE.sub(r"\\\1", text)
    # a cell starting with '-', '+', '#' or '1.' would open a list: keep it text
    if re.match(r"[-+#]|\d+[.)]\s", escaped):
        escaped = "\\" + escaped
    return escaped


def _rst_heading(text: str, mark: str, overline: bool = False) -> list[str]:
    rule = mark * max(len(text), 4)
    return [rule, text, rule] if overline else [text, rule]


def render_rst(rows: Sequence[SummaryRow], title: str = TITLE,
               figures: Mapping[str, str] | None = None) -> str:
    lines = [*_rst_heading(rst_escape(title), "=", overline=True), "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')}; {_outcome_counts(rows)}", ""]
    for target in _targets(rows):
        lines += [*_rst_heading(rst_escape(target), "-"), "",
                  ".. list-table::", "   :header-rows: 1", ""]
        table = [COLUMNS]
        for row in (r for r in rows if r.target == target):
            cells = [rst_escape(cell) for cell in _columns(row)]
            if row.results:
                cells[0] = f"`{cells[0]} <{quote(row.results)}>`__"
            table.append(cells)
        for cells in table:
            lines.append(f"   * - {cells[0]}")
            lines += [f"     - {cell}" for cell in cells[1:]]
        lines.append("")
    for caption, path in (figures or {}).items():
        lines += [f".. figure:: {path}", f"   :alt: {caption}", "", f"   {rst_escape(caption)}",
                  ""]
    return "\n".join(lines)


def write_session_report(rows: Sequence[SummaryRow], directory: Path) -> Path:
    """Writes summary.json, report.md, report.rst and the latency figure (when matplotlib is
    there) into `directory`; returns report.md's path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # rows first: whatever fails after, the results survive and the report can be redone
    write_json_atomic(directory / "summary.json", [asdict(r) for r in rows])
    return render_session_report(rows, directory)


def render_session_report(rows: Sequence[SummaryRow], directory: Path) -> Path:
    """Renders report.md, report.rst and the latency figure from rows into `directory`."""
    directory = Path(directory)
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
    if latency_overview(relative_rows, directory) is not None:
        figures[LATENCY_CAPTION] = LATENCY_FIGURE
    else:  # an earlier run's figure would pass for this run's
        (directory / LATENCY_FIGURE).unlink(missing_ok=True)
    write_text_atomic(directory / "report.rst", render_rst(relative_rows, figures=figures))
    path = directory / "report.md"
    write_text_atomic(path, render_markdown(relative_rows, figures=figures))
    return path


def rerender(directory: Path) -> Path:
    """report.md and report.rst again from a results directory's summary.json."""
    from kenning_hil.core.errors import ConfigurationError

    summary = Path(directory) / "summary.json"
    if not summary.is_file():
        below = sorted(Path(directory).glob("**/summary.json"))[:3]
        hint = (f"; results directories below it: "
                f"{', '.join(str(p.parent) for p in below)}") if below else ""
        raise ConfigurationError(
            f"{summary}: no such file (a results directory written by a pytest run with HIL "
            f"tests has one){hint}"
        )
    try:
        rows = load_rows(summary)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ConfigurationError(f"{summary}: not a kenning-hil summary ({exc})") from exc
    return render_session_report(rows, Path(directory))


def latency_overview(rows: Sequence[SummaryRow], directory: Path) -> Path | None:
    """A horizontal bar chart of p50 with p95 markers, one bar per test."""
    # seconds only: a count (instructions) has no place on a time axis
    timed = [r for r in rows if r.latency_p50 is not None and r.latency_unit == SECONDS]
    if not timed:
        return None
    try:
        from kenning_hil.report.figures import latency_bars_png
    except ImportError:
        return None
    data = latency_bars_png([(r.test, r.latency_p50, r.latency_p95) for r in timed[:60]])
    if data is None:
        return None
    path = Path(directory) / LATENCY_FIGURE
    path.write_bytes(data)
    return path
