"""The report: every HIL run of one or more results directories, as Markdown, RST and HTML.

One document (`kenning_hil.report.document` blocks) holds, in order: the results tables (a
table per target, a row per test, from the session's `SummaryRow`s), the latency overview,
comparisons between runs (latency distributions per unit, accuracy against latency, a
ranking, agreement between targets), a section per run (summary, inference time, resource
usage, quality, memory, checks) and, given a history of results, trends. RST is what
Kenning's own reports are (Sphinx renders it with the figures), Markdown is what CI front
ends show, HTML opens from a CI artifact as is.

`write_session_report` is what the plugin calls at the end of a run (rows first, into
``summary.json``, then the report); `render_report` is `kenning-hil report`: any number of
results directories (xdist workers, CI jobs, shards) merged into one report, a row per test.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from kenning_hil.core.measurements import SECONDS, write_json_atomic, write_text_atomic
from kenning_hil.judge.metrics import format_latency, format_metric
from kenning_hil.report import figures
from kenning_hil.report.document import (
    RENDERERS,
    Block,
    Bullets,
    Figure,
    Heading,
    Paragraph,
    Table,
    rst_escape,
    to_markdown,
    to_rst,
)
from kenning_hil.report.runs import Loaded, RunRecord, fill_session_facts, load_runs, read_run
from kenning_hil.report.summary import SummaryRow, row_cells

__all__ = ["rst_escape", "write_session_report", "render_report", "render_markdown",
           "render_rst"]

TITLE = "kenning-hil report"
COLUMNS = ["test", "accuracy", "latency p50", "latency p95", "latency from", "size", "result"]
LATENCY_FIGURE = "latency.png"
LATENCY_CAPTION = "Latency per test (p50 bar, p95 whisker)"
FIGURES_DIR = "figures"
DEFAULT_FORMATS = ("md", "rst", "html")
MIN_STATS_SAMPLES = 3  # system statistics drawn over time from this many samples on
PER_CLASS_ROWS = 20  # classes listed in full up to this many; beyond, the worst recalls


def _outcome_counts(rows: Sequence[SummaryRow]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.outcome] = counts.get(row.outcome, 0) + 1
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or (
        "no HIL test ran")


def _columns(row: SummaryRow) -> list[str]:
    """The report's cells of one row, in COLUMNS order."""
    cells = row_cells(row)
    return [row.test, cells[2], cells[3], cells[4], row.latency_source or "-", cells[5],
            cells[6]]


def _link(path: str | None, directory: Path) -> str | None:
    """A results file's path as the report links it: relative to the report's directory
    when it can be, else as recorded."""
    if not path:
        return None
    target = Path(path)
    try:
        return str(target.resolve().relative_to(directory.resolve()))
    except (ValueError, OSError):
        pass
    if target.exists():
        return os.path.relpath(target.resolve(), directory.resolve())
    return path


def results_blocks(rows: Sequence[SummaryRow], directory: Path) -> list[Block]:
    blocks: list[Block] = []
    for target in sorted({row.target for row in rows}):
        chosen = [r for r in rows if r.target == target]
        blocks += [Heading(2, target),
                   Table(COLUMNS, [_columns(r) for r in chosen],
                         [_link(r.results, directory) for r in chosen])]
    return blocks


def _title_blocks(title: str, rows: Sequence[SummaryRow], lines: Sequence[str] = ()) -> list:
    return [Heading(1, title),
            Paragraph(f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')}; {_outcome_counts(rows)}"),
            *([Bullets(list(lines))] if lines else [])]


def render_markdown(rows: Sequence[SummaryRow], title: str = TITLE,
                    figures: Mapping[str, str] | None = None, directory: Path = Path(".")) -> str:
    """The results tables alone (no per-run sections), in Markdown."""
    return to_markdown([*_title_blocks(title, rows), *results_blocks(rows, directory),
                        *(Figure(path, caption) for caption, path in (figures or {}).items())])


def render_rst(rows: Sequence[SummaryRow], title: str = TITLE,
               figures: Mapping[str, str] | None = None, directory: Path = Path(".")) -> str:
    """The results tables alone (no per-run sections), in RST."""
    return to_rst([*_title_blocks(title, rows), *results_blocks(rows, directory),
                   *(Figure(path, caption) for caption, path in (figures or {}).items())])


# ------------------------------------------------------------------------------ figures


class FigureWriter:
    """Writes a report's figures under ``<report>/figures`` and names them for the
    document. Figures are queued by `figure` and drawn by `draw` all at once, in worker
    processes when there are many (a report of 20 runs has ~70). A run's figure already
    there and newer than its results file (drawn for pytest-html during the test) is
    reused, not drawn again."""

    def __init__(self, directory: Path, reuse: bool = False):
        self.directory = Path(directory)
        self.reuse = reuse  # a session's own figures, drawn for pytest-html: not again
        self.written: set[str] = set()
        self.undrawn: set[str] = set()  # no figure came of the data: left out of the report
        self._queue: list[tuple[str, Callable, tuple]] = []

    def figure(self, name: str, caption: str, draw: Callable[..., bytes | None], *args,
               source: str | None = None) -> Figure:
        """`draw(*args)` (a module-level function of plain data, so a worker process can
        run it) makes the PNG; the Figure block names where it will be."""
        relative = f"{FIGURES_DIR}/{name}"
        self.written.add(relative)
        try:
            fresh = self.reuse and bool(source) and (
                self.directory / relative).stat().st_mtime >= Path(source).stat().st_mtime
        except OSError:
            fresh = False
        if not fresh:
            self._queue.append((relative, draw, args))
        return Figure(relative, caption)

    def draw(self) -> None:
        queue, self._queue = self._queue, []
        if not queue:
            return
        (self.directory / FIGURES_DIR).mkdir(parents=True, exist_ok=True)
        # the same figure of the same data is drawn once (bit-exact runtimes give the same
        # confusion matrix on every target)
        unique: dict[bytes, int] = {}
        jobs, index = [], []
        for _, draw, args in queue:
            key = hashlib.sha256(pickle.dumps((draw.__module__, draw.__qualname__, args))).digest()
            if key not in unique:
                unique[key] = len(jobs)
                jobs.append((draw, args))
            index.append(unique[key])
        drawn = figures.draw_all(jobs)
        for (relative, _, _), data in zip(queue, (drawn[i] for i in index)):
            if data is None:
                self.undrawn.add(relative)
                (self.directory / relative).unlink(missing_ok=True)
            else:
                (self.directory / relative).write_bytes(data)

    def keep_drawn(self, blocks: Sequence[Block]) -> list[Block]:
        """Draws what is queued; `blocks` without the figures that came to nothing."""
        self.draw()
        return [b for b in blocks if not (isinstance(b, Figure) and b.path in self.undrawn)]

    def remove_stale(self) -> None:
        """Figures of an earlier report that this one does not show would pass for its own."""
        folder = self.directory / FIGURES_DIR
        for path in folder.glob("*.png") if folder.is_dir() else ():
            relative = f"{FIGURES_DIR}/{path.name}"
            if relative not in self.written or relative in self.undrawn:
                path.unlink(missing_ok=True)


def figure_stem(run: RunRecord) -> str:
    """A file-name stem unique per run: its results file's (named after the test id)."""
    from kenning_hil.judge.baselines import readable_stem

    stem = Path(run.path).stem if run.path.endswith(".json") else readable_stem(run.test)
    return stem.replace("%", "_")


def run_figures(run: RunRecord, writer: FigureWriter) -> dict[str, Figure]:
    """A run's figures by kind (latency, resources, confusion), queued on `writer`; drawn
    once, shown by the report and by pytest-html's row of the test."""
    stem = figure_stem(run)
    found: dict[str, Figure] = {}
    series = [s for s in (run.latency, run.protocol) if s is not None and s.values]
    if series:
        names = " and ".join(f"{s.source} ({'time' if s.unit == SECONDS else s.unit})"
                             for s in series)
        found["latency"] = writer.figure(
            f"{stem}-latency.png", f"Per-inference {names} of {run.test}",
            figures.latency_run_png, [(s.source, s.unit, s.values) for s in series],
            source=run.path)
    if run.stats is not None and len(run.stats.time_s) >= MIN_STATS_SAMPLES:
        stats = run.stats
        found["resources"] = writer.figure(
            f"{stem}-resources.png",
            f"Resource usage during {run.test} (SystemStatsCollector '{stats.prefix}')",
            figures.system_stats_png, stats.time_s, stats.cpus_percent, stats.mem_percent,
            stats.gpu_percent, stats.gpu_mem_percent, source=run.path)
    if run.confusion is not None and run.metrics:
        found["confusion"] = writer.figure(
            f"{stem}-confusion.png", f"Confusion matrix of {run.test}", figures.confusion_png,
            run.confusion, run.class_names, source=run.path)
    return found


# ------------------------------------------------------------------------- run sections


def _date(epoch: float | None) -> str:
    if epoch is None:
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _bytes(value: int | None) -> str:
    if value is None:
        return "-"
    if value >= 1 << 20:
        return f"{value} B ({value / (1 << 20):.2f} MiB)"
    return f"{value} B ({value / 1024:.1f} KiB)" if value >= 1024 else f"{value} B"


def _summary_table(run: RunRecord) -> Table:
    rows = [["outcome", run.outcome + (f": {run.reason}" if run.reason else "") or "?"],
            ["target", run.target], ["model", run.model], ["optimizer chain", run.chain],
            ["samples", "?" if run.samples is None else str(run.samples)],
            ["date", _date(run.started)]]
    environment = dict(run.environment)
    rows.append(["commit", environment.pop("commit", "?")])
    rows += [[f"{name} version", version] for name, version in sorted(environment.items())]
    if run.latency is not None:
        rows.append(["latency from", f"{run.latency.source} ({run.latency.unit})"])
    return Table(["run", "value"], rows)


def _latency_table(run: RunRecord) -> Table | None:
    import numpy as np

    series = [s for s in (run.latency, run.protocol) if s is not None]
    if not series:
        return None
    rows = []
    for s in series:
        values = np.asarray(s.values, dtype=np.float64)
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        rows.append([s.source, str(values.size), *(format_latency(v, s.unit) for v in (
            float(values.mean()), float(p50), float(p95), float(p99), float(values.max())))])
    return Table(["source", "inferences", "mean", "p50", "p95", "p99", "max"], rows)


def _quality_blocks(run: RunRecord, figure: Figure | None) -> list[Block]:
    if not run.metrics:
        # e.g. synthetic labels: a confusion matrix of them would read as a real one
        return [Paragraph("No quality metrics: the dataset reported none for this run "
                          "(random inputs or synthetic labels).")]
    blocks: list[Block] = [Table(["quality metric", "value"], [
        [k, format_metric(k, v)] for k, v in sorted(run.metrics.items())])]
    if figure is not None:
        blocks.append(figure)
    if run.confusion is not None:
        blocks += _per_class(run)
    return blocks


def _per_class(run: RunRecord) -> list[Block]:
    matrix = run.confusion or []
    n = len(matrix)
    names = run.class_names or [str(i) for i in range(n)]
    rows = []
    for i in range(n):
        support = sum(matrix[i])
        predicted = sum(row[i] for row in matrix)
        correct = matrix[i][i]
        precision = correct / predicted if predicted else None
        recall = correct / support if support else None
        rows.append((recall if recall is not None else 2.0, i, [
            names[i], str(support), "-" if precision is None else f"{precision:.3f}",
            "-" if recall is None else f"{recall:.3f}"]))
    blocks: list[Block] = []
    if n > PER_CLASS_ROWS:
        present = [r for r in rows if r[0] <= 1.0]
        rows = sorted(present)[:10]
        blocks.append(Paragraph(f"{n} classes: the {len(rows)} with the lowest recall "
                                f"(of {len(present)} with samples)"))
    blocks.append(Table(["class", "samples", "precision", "recall"], [r[2] for r in rows]))
    return blocks


def _memory_table(run: RunRecord) -> Table | None:
    ram = run.target_ram
    items = [("compiled model", run.compiled_size), ("peak RAM used", run.ram_used),
             ("tensor arena used", run.arena_used), ("tensor arena size", run.arena_size)]
    rows = []
    for name, value in items:
        if value is None:
            continue
        share = f"{100 * value / ram:.1f} % of {_bytes(ram)}" if ram else "target RAM unknown"
        rows.append([name, _bytes(value), share])
    return Table(["memory", "bytes", "of the target's RAM"], rows) if rows else None


def _checks_table(run: RunRecord) -> Table | None:
    rows = []
    for check in run.checks:
        metric = str(check.get("metric"))
        value = check.get("value")
        bound = check.get("bound", "")
        margin = check.get("margin")
        passed = check.get("passed")
        rows.append([str(check.get("kind", "threshold")), metric, str(bound),
                     format_metric(metric, value) if isinstance(value, (int, float)) else "-",
                     _margin(metric, margin),
                     "passed" if passed else ("failed" if passed is False else "?")])
    if not rows:
        return None
    return Table(["check", "metric", "bound", "measured", "margin", "result"], rows)


def _margin(metric: str, margin: object) -> str:
    """Signed room left to the bound, in the metric's unit: + inside, - past it."""
    if not isinstance(margin, (int, float)):
        return "-"
    text = format_metric(metric, abs(margin))
    return ("+" if margin >= 0 else "-") + text


AGREEMENT_COLUMNS = ["test", "reference", "target", "samples", "exact match", "max difference",
                     "distinct outputs", "failing samples", "result"]


def _pairs(data: object) -> list[Mapping]:
    """The reference/target pairs of a run's comparison block (`hil.compare`: one pair per
    compared target's result file; a list of them is read too)."""
    items = data if isinstance(data, list) else [data]
    return [p for p in items if isinstance(p, Mapping) and "reference" in p and "target" in p]


def agreement_row(test: str, pair: Mapping) -> list[str]:
    rate = pair.get("exact_match_rate")
    difference = pair.get("max_difference")
    unit = pair.get("unit", "")
    passed = pair.get("passed")
    return [test, str(pair["reference"]), str(pair["target"]), _cell(pair.get("samples")),
            f"{rate:.1%}" if isinstance(rate, (int, float)) else "-",
            f"{_cell(difference)} {unit}".strip() if difference is not None else "-",
            _cell(pair.get("distinct_outputs")), _cell(pair.get("failing_samples")),
            "passed" if passed else ("failed" if passed is False else "?")]


def comparison_table(data: object) -> Table | None:
    """Agreement data another part recorded (a list of records, or a mapping of pairs or of
    values) as a table, whatever its exact keys."""
    if _pairs(data):
        return Table(AGREEMENT_COLUMNS[1:], [agreement_row("", p)[1:] for p in _pairs(data)])
    if isinstance(data, Mapping):
        if all(isinstance(v, Mapping) for v in data.values()):
            data = [{"pair": str(k), **v} for k, v in data.items()]
        else:
            return Table(["comparison", "value"], [[str(k), _cell(v)] for k, v in data.items()])
    if not isinstance(data, list):
        return None
    records = [d for d in data if isinstance(d, Mapping)]
    if not records:
        return None
    keys: list[str] = []
    for record in records:
        keys += [str(k) for k in record if str(k) not in keys and not isinstance(
            record[k], (list, Mapping))]
    return Table(keys, [[_cell(r.get(k)) for k in keys] for r in records]) if keys else None


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, Mapping)):
        return f"{len(value)} values"
    return "-" if value is None else str(value)


def run_blocks(run: RunRecord, writer: FigureWriter, directory: Path) -> list[Block]:
    found = run_figures(run, writer)
    blocks: list[Block] = [Heading(3, run.test), _summary_table(run)]
    if run.missing:
        blocks.append(Paragraph("Missing from this run's results: " + "; ".join(run.missing)))
    latency = _latency_table(run)
    if latency is not None:
        blocks.append(latency)
    if "latency" in found:
        blocks.append(found["latency"])
    if "resources" in found:
        blocks.append(found["resources"])
    elif run.stats is not None:  # too few samples to draw: their values in words
        cpus = [sum(c) / len(c) for c in run.stats.cpus_percent if c]
        blocks.append(Paragraph(
            f"System statistics: {len(run.stats.time_s)} sample(s) only (a run shorter than "
            f"the collector's step): CPU {max(cpus, default=0):.0f} % (mean of the cores), "
            f"memory {max(run.stats.mem_percent, default=0):.0f} % in use."))
    blocks += _quality_blocks(run, found.get("confusion"))
    for table in (_memory_table(run), _checks_table(run), comparison_table(run.comparison)):
        if table is not None:
            blocks.append(table)
    return blocks


# --------------------------------------------------------------------------- comparisons


def _median(values: Sequence[float]) -> float:
    import numpy as np

    return float(np.median(np.asarray(values, dtype=np.float64)))


def comparison_blocks(runs: Sequence[RunRecord], writer: FigureWriter) -> list[Block]:
    """Across runs: per latency unit, the distributions and accuracy against latency; one
    ranking; the agreement tables recorded between targets."""
    timed = [r for r in runs if r.latency is not None and r.latency.values]
    if len(timed) < 2:
        return []
    blocks: list[Block] = [Heading(2, "Comparison")]
    for unit in sorted({r.latency.unit for r in timed}, key=lambda u: u != SECONDS):
        group = [r for r in timed if r.latency.unit == unit]
        what = "time" if unit == SECONDS else unit
        slug = "time" if unit == SECONDS else unit
        blocks.append(writer.figure(
            f"compare-{slug}-distribution.png",
            f"Per-inference {what} of each run (violin: distribution; box: quartiles and "
            "median)", figures.distributions_png, [(r.test, r.latency.values) for r in group],
            unit))
        rated = [r for r in group if "accuracy" in r.metrics]
        if len(rated) >= 2:  # one bubble compares nothing
            blocks.append(writer.figure(
                f"compare-{slug}-accuracy.png",
                f"Accuracy against median {what} (bubble area: compiled size)",
                figures.bubbles_png, [(r.test, _median(r.latency.values), r.metrics["accuracy"],
                                       r.compiled_size) for r in rated], unit))
    blocks += [Paragraph("Ranking: by accuracy, then by median latency within a unit (times "
                         "and counted instructions are not ranked against each other)."),
               ranking_table(timed)]
    blocks += agreement_blocks(runs, writer)
    return blocks


def agreement_blocks(runs: Sequence[RunRecord], writer: FigureWriter) -> list[Block]:
    """Outputs compared between targets (`hil.compare`): a row per pair and, per unit of
    difference, each pair's largest difference per sample."""
    pairs = [(r.test, p) for r in runs for p in _pairs(r.comparison)]
    if not pairs:
        return []
    blocks: list[Block] = [Heading(3, "Agreement between targets"),
                           Table(AGREEMENT_COLUMNS, [agreement_row(t, p) for t, p in pairs])]
    for unit in sorted({str(p.get("unit", "")) for _, p in pairs}):
        series = {}
        for test, pair in pairs:
            values = (pair.get("per_sample") or {}).get("max_difference") if isinstance(
                pair.get("per_sample"), Mapping) else None
            if str(pair.get("unit", "")) == unit and isinstance(values, list) and values:
                label = f"{pair['target']} vs {pair['reference']} ({test.rsplit('::', 1)[-1]})"
                series[label] = [float(v) if isinstance(v, (int, float)) else 0.0
                                 for v in values]
        if series:
            slug = re.sub(r"[^a-z0-9]+", "-", unit.lower()) or "value"
            blocks.append(writer.figure(
                f"agreement-{slug}.png", f"Largest output difference per sample ({unit or 'value'}"
                "; 0: bit-exact)", figures.agreement_png, series, unit or "value"))
    return blocks


def ranking_table(runs: Sequence[RunRecord]) -> Table:
    def key(run: RunRecord):
        return (run.latency.unit != SECONDS, run.latency.unit,
                -run.metrics.get("accuracy", -1.0), _median(run.latency.values))

    rows = []
    rank = 0
    unit = None
    for run in sorted(runs, key=key):
        rank = 1 if run.latency.unit != unit else rank + 1
        unit = run.latency.unit
        accuracy = run.metrics.get("accuracy")
        rows.append([str(rank), run.test, run.target, run.chain,
                     "-" if accuracy is None else f"{accuracy:.4f}",
                     format_latency(_median(run.latency.values), unit),
                     _bytes(run.compiled_size)])
    return Table(["rank", "test", "target", "optimizers", "accuracy", "median latency",
                  "size"], rows)


# --------------------------------------------------------------------------------- report


def _row_of(run: RunRecord) -> SummaryRow:
    import numpy as np

    p50 = p95 = None
    if run.latency is not None:
        p50, p95 = (float(v) for v in np.percentile(run.latency.values, [50, 95]))
    return SummaryRow(test=run.test, target=run.target, outcome=run.outcome or "?",
                      accuracy=run.metrics.get("accuracy"), latency_p50=p50, latency_p95=p95,
                      latency_source=run.latency.source if run.latency else None,
                      compiled_size=run.compiled_size, reason=run.reason,
                      results=run.path or None,
                      latency_unit=run.latency.unit if run.latency else SECONDS)


def build_document(rows: Sequence[SummaryRow], runs: Sequence[RunRecord], directory: Path,
                   writer: FigureWriter, notes: Sequence[str] = (), title: str = TITLE,
                   history: Sequence[Path] = (), runs_sections: bool = True) -> list[Block]:
    blocks = [*_title_blocks(title, rows, notes), *results_blocks(rows, directory)]
    timed = [r for r in rows if r.latency_p50 is not None and r.latency_unit == SECONDS]
    if timed:
        blocks.append(writer.figure(
            LATENCY_FIGURE.replace(".png", "-overview.png"), LATENCY_CAPTION,
            figures.latency_bars_png, [(r.test, r.latency_p50, r.latency_p95) for r in timed[:60]]))
    blocks += comparison_blocks(runs, writer)
    shown = [r for r in runs if r.path.endswith(".json")] if runs_sections else []
    if shown:
        blocks.append(Heading(2, "Runs"))
        for run in shown:
            blocks += run_blocks(run, writer, directory)
    if history:
        from kenning_hil.report.history import trend_blocks

        blocks += trend_blocks(history, writer)
    return writer.keep_drawn(blocks)


def _write(blocks: Sequence[Block], directory: Path, formats: Sequence[str]) -> dict[str, Path]:
    written = {}
    for fmt in formats:
        path = directory / f"report.{fmt}"
        write_text_atomic(path, RENDERERS[fmt](blocks))
        written[fmt] = path
    return written


def _runs_of_rows(rows: Sequence[SummaryRow], directory: Path) -> tuple[list[RunRecord],
                                                                         list[str]]:
    """The runs a session's rows name: their results files (also when the directory was
    moved: then under its tests/), a bare run for a row without one."""
    runs, notes = [], []
    for row in rows:
        path = Path(row.results) if row.results else None
        if path is not None and not path.is_file():
            moved = directory / "tests" / path.name
            if moved.is_file():
                path = moved
            else:
                notes.append(f"{row.test}: its results file {row.results} is missing")
                path = None
        if path is None:
            runs.append(RunRecord(test=row.test, target=row.target, outcome=row.outcome,
                                  reason=row.reason))
            continue
        run = read_run(path)
        run.outcome, run.reason = row.outcome, row.reason
        runs.append(run)
    fill_session_facts(runs, directory)
    return runs, notes


def write_session_report(rows: Sequence[SummaryRow], directory: Path,
                         formats: Sequence[str] = DEFAULT_FORMATS) -> Path:
    """Writes summary.json, then the report (report.md, report.rst, report.html and
    figures/) into `directory`; returns report.md's path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # rows first: whatever fails after, the results survive and the report can be redone
    write_json_atomic(directory / "summary.json", [asdict(r) for r in rows])
    from kenning_hil.report.environment import ENVIRONMENT_FILE, session_environment

    write_json_atomic(directory / ENVIRONMENT_FILE, session_environment(Path.cwd()))
    return render_session_report(rows, directory, formats)


def render_session_report(rows: Sequence[SummaryRow], directory: Path,
                          formats: Sequence[str] = DEFAULT_FORMATS) -> Path:
    directory = Path(directory)
    runs, notes = _runs_of_rows(rows, directory)
    writer = FigureWriter(directory, reuse=True)
    blocks = build_document(rows, runs, directory, writer, notes)
    writer.remove_stale()
    (directory / LATENCY_FIGURE).unlink(missing_ok=True)  # where earlier versions drew it
    written = _write(blocks, directory, formats)
    return written.get("md") or next(iter(written.values()))


def render_report(inputs: Sequence[Path], out: Path, formats: Sequence[str] = DEFAULT_FORMATS,
                  history: Sequence[Path] = (), title: str = TITLE,
                  runs_sections: bool = True) -> dict[str, Path]:
    """`kenning-hil report`: results directories and result/measurements files, merged
    (a row per test), rendered into `out`; `history`: results directories of earlier runs
    (nightly), oldest first, for the trends."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    loaded: Loaded = load_runs(inputs) if inputs else Loaded()
    notes = list(loaded.problems)
    if loaded.duplicates:
        notes.append(f"{loaded.duplicates} results of tests already read from another input "
                     "merged (the most recently finished run of each test is shown)")
    if loaded.ignored:
        notes.append(f"{loaded.ignored} result files not named by their directory's "
                     "summary.json (an earlier session's) left out")
    # a run's own file says more than its row (which an older session may have kept short)
    rows = [_row_of(run) if run.path.endswith(".json") else run.row or _row_of(run)
            for run in loaded.runs]
    writer = FigureWriter(out)
    blocks = build_document(rows, loaded.runs, out, writer, notes, title, history,
                            runs_sections)
    writer.remove_stale()
    return _write(blocks, out, formats)
