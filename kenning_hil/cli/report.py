"""`kenning-hil report`: the report of one or more results directories (merged), with
comparisons and, given a history of earlier results, trends."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# --- report ----------------------------------------------------------------------------------


def add_report_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        epilog="examples:\n"
        "  kenning-hil report                             the project's results/hil\n"
        "  kenning-hil report results/ci-1 results/ci-2 --out results/merged\n",
        help="render the report of results directories (report.md, .rst, .html, figures/)",
        description="Render the report of one or more results directories (a pytest run's "
        "--hil-report: summary.json and tests/*.json) or result/measurements files: a table "
        "per target, a section per run with its figures, comparisons between runs, and "
        "trends over --history. Several directories (pytest-xdist workers, CI jobs, shards) "
        "merge into one report with a row per test.",
    )
    parser.add_argument("results", type=Path, nargs="*",
                        help="results directories or result files (default: the project's "
                        "hil_report setting, results/hil)")
    parser.add_argument("--format", default="md,rst,html",
                        help="comma-separated formats to write: md, rst, html (default: all)")
    parser.add_argument("--out", type=Path, default=None,
                        help="directory to write the report into (default: the results "
                        "directory when one is given; required for several)")
    parser.add_argument("--history", type=Path, nargs="+", default=[], metavar="DIR",
                        help="earlier results directories (e.g. nightly runs): plot each "
                        "test's accuracy and latency over them, regressions marked")
    parser.add_argument("--compare", action="store_true",
                        help="only the comparison of the runs: no per-run sections (the "
                        "comparison is in every report of two runs or more)")
    parser.set_defaults(handler=report_command)


def report_command(args: argparse.Namespace) -> int:
    from kenning_hil.core.errors import ConfigurationError
    from kenning_hil.report.document import parse_formats
    from kenning_hil.report.session import render_report
    from kenning_hil.report.summary import format_table, load_rows

    try:
        formats = parse_formats(args.format)
    except ValueError as exc:
        raise ConfigurationError(f"--format: {exc}") from None
    inputs = list(args.results)
    if not inputs and not args.history:
        from kenning_hil.cli.pytest_process import project_settings

        # the project's hil_report as pytest resolves it from here
        inputs = [Path(project_settings([])["report_dir"])]
    out = args.out
    if out is None:
        if len(inputs) == 1 and inputs[0].is_dir():
            out = inputs[0]
        else:
            raise ConfigurationError(
                "--out DIR is needed: the report of several inputs (or of a file, or of a "
                "history alone) goes into a directory of its own")
    for path in [*inputs, *args.history]:
        if not path.exists():
            raise ConfigurationError(f"{path}: no such results directory or file")
    if len(inputs) == 1 and inputs[0].is_dir() and not args.history:
        directory = inputs[0]
        if not (directory / "summary.json").is_file() and not (directory / "tests").is_dir():
            raise ConfigurationError(
                f"{directory / 'summary.json'}: no such file (a results directory written by "
                "a pytest run with HIL tests has one, and tests/*.json)")
    written = render_report(inputs, out, formats, history=args.history,
                            runs_sections=not args.compare)
    summary = out / "summary.json"
    if inputs == [out] and summary.is_file():
        try:
            print(format_table(load_rows(summary)))
        except (ValueError, TypeError):
            pass  # the report says what is wrong with it
    for i, path in enumerate(written.values()):
        print(f"report: {path}" if i == 0 else f"        {path}")
    return 0
